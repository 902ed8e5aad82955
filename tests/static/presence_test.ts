/**
 * The member list of static/client.html, in headless Chromium: it starts from the welcome's
 * `members` and follows `presence` deltas (join, leave) as a set.
 */
import assert from "node:assert/strict";
import {
  openChat,
  openPage,
  type Page,
  waitForStatus,
  type WebSocketRoute,
} from "../support/browser.ts";
import { TestSocket } from "../support/test_socket.ts";
import { browserTest, withServer } from "./_chrome.ts";

/** Waits until the member list shows `names`, in that order, and counts them (both places). */
async function waitForMembers(page: Page, names: readonly string[]): Promise<void> {
  const list = await page.waitForSelector("#members");
  await page.waitForFunction(
    ([list, expected]) =>
      JSON.stringify([...list.querySelectorAll(".name")].map((name) => name.textContent)) ===
        expected,
    [list, JSON.stringify(names)] as const,
  );
  await list.dispose();
  const count = String(names.length);
  assert.equal(await page.locator("#member-count").textContent(), count);
  assert.equal(await page.locator(".member-count-mirror").textContent(), count);
}

/** The info notices the page shows, in order. */
function notices(page: Page): Promise<string[]> {
  return page.locator("#notices .notice span").allTextContents();
}

browserTest(
  "client: the member list starts from the welcome and follows join and leave deltas as a set",
  (browser) =>
    withServer({}, async (server) => {
      // The page talks to this script instead of the server (its /history is the server's).
      const sockets: WebSocketRoute[] = [];
      const welcome = (members: string[]) =>
        JSON.stringify({
          type: "welcome",
          protocol: 2,
          room: "deltas",
          user: "ann",
          members,
          epoch: "e1",
          last_seq: 0,
        });
      const ann = await openPage(browser, server.url("/client.html?r=deltas&u=ann"), {
        before: (page) =>
          page.routeWebSocket((url) => url.pathname === "/chat", (socket) => {
            const first = sockets.push(socket) === 1;
            socket.send(welcome(first ? ["ann", "cat"] : ["ann", "bob"]));
            if (!first) {
              socket.send(
                JSON.stringify({ type: "resume", complete: true, replayed: 0, epoch: "e1" }),
              );
            }
          }),
      });
      const { page } = ann;
      await waitForStatus(page, /^live$/);
      await waitForMembers(page, ["ann", "cat"]);
      assert.equal(await page.locator("#members li:has(.me) .name").textContent(), "ann");

      const presence = (event: string, user: string) =>
        sockets[0]?.send(JSON.stringify({ type: "presence", event, room: "deltas", user }));
      presence("join", "bob");
      await waitForMembers(page, ["ann", "bob", "cat"]);
      await page.locator("#notices .notice", { hasText: "bob joined." }).waitFor();

      // Nothing changes: a join of someone listed (presence is coalesced, so it may repeat the
      // welcome), a leave of someone not listed, a leave of the page's own name. Frames are
      // handled in order, so once al shows, those were handled.
      presence("join", "cat");
      presence("leave", "dan");
      presence("leave", "ann");
      presence("join", "al");
      await waitForMembers(page, ["al", "ann", "bob", "cat"]);
      const said = await notices(page);
      assert.deepEqual(said.filter((text) => /^(cat|dan|ann) /.test(text)), []);
      assert.ok(said.includes("al joined."), said.join(" | "));

      presence("leave", "bob");
      await waitForMembers(page, ["al", "ann", "cat"]);
      await page.locator("#notices .notice", { hasText: "bob left." }).waitFor();

      // A new socket's welcome is the list again, whatever the deltas before it said.
      await sockets[0]?.close({ code: 1012, reason: "test: reconnect" });
      await waitForStatus(page, /^live$/);
      await waitForMembers(page, ["ann", "bob"]);
      assert.equal(sockets.length, 2);
      await ann.context.close();
    }),
);

browserTest(
  "client: another user's join and leave reach the member list from the server's deltas",
  (browser) =>
    withServer({ PRESENCE_LEAVE_GRACE: "0" }, async (server) => {
      const ann = await openChat(browser, server.url(""), { room: "people", user: "ann" });
      await waitForMembers(ann.page, ["ann"]);
      const bob = await TestSocket.open(server.chatUrl("people", "bob"));
      await bob.nextOfType("welcome");
      await waitForMembers(ann.page, ["ann", "bob"]);
      await ann.page.locator("#notices .notice", { hasText: "bob joined." }).waitFor();
      await bob.close();
      await waitForMembers(ann.page, ["ann"]);
      await ann.page.locator("#notices .notice", { hasText: "bob left." }).waitFor();
      await ann.context.close();
    }),
);
