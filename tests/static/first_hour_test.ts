/**
 * The first hour of a newcomer with static/client.html, in headless Chromium against a real
 * server: signing in with a token (and its expiry), coming back by reload or bookmark, and a
 * join form that says the server's rules in plain words.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { openChat, openPage, type Page, waitForStatus } from "../support/browser.ts";
import { browserTest, changeRules, isChatUrl, nextChatAttempt, withServer } from "./_chrome.ts";

const SECRET = "test-secret-that-is-long-enough-for-hs256";
/** How long a page that stopped is watched for another attempt to join. */
const QUIET_MS = 3_000;

/** A token for `sub` in `rooms`, signed as the embedding app would, expiring in `ttlS`. */
function token(sub: string, rooms: string[], ttlS = 3600): Promise<string> {
  return new SignJWT({ rooms })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
    .sign(new TextEncoder().encode(SECRET));
}

/** The text of the page's connection notice, once it says `text`. */
async function connectionNotice(page: Page, text: RegExp): Promise<string> {
  const notice = page.locator("#notices[role=status] .notice[data-key=connection]", {
    hasText: text,
  });
  await notice.waitFor();
  return (await notice.locator("span").textContent()) ?? "";
}

browserTest(
  "client: a token that expires while connected says so in plain words and stops retrying",
  (browser) =>
    withServer({ AUTH_SECRET: SECRET }, async (server) => {
      const sockets: string[] = [];
      const jwt = await token("ann", ["general"], 4);
      const ann = await openPage(browser, server.url(`/client.html?r=general&token=${jwt}`), {
        before: (page) => {
          page.on("websocket", (socket) => sockets.push(socket.url()));
          return Promise.resolve();
        },
      });
      // The URL named the room and the token names ann: no form, no name asked for.
      await waitForStatus(ann.page, /^live$/);
      assert.equal(await ann.page.locator("#whoami").textContent(), "as ann");
      assert.equal(new URL(sockets[0] ?? "").searchParams.get("u"), null);

      // The server closes with 4001 at `exp`.
      const text = await connectionNotice(ann.page, /sign-in has expired/);
      assert.match(text, /^Your sign-in has expired \(the token is no longer valid\)\./);
      const attempts = sockets.length + ann.requests.filter(isChatUrl).length;
      assert.equal(await nextChatAttempt(ann.page, QUIET_MS), undefined);
      assert.equal(sockets.length + ann.requests.filter(isChatUrl).length, attempts);
      await waitForStatus(ann.page, /^signed out$/);
      assert.equal(await ann.page.locator("#retry").isVisible(), false);
      const reload = ann.page.locator("#notices .notice").getByRole("button", { name: "Reload" });
      assert.ok(await reload.isVisible());
      assert.equal(await ann.page.locator("#send").isDisabled(), true);
    }),
);

browserTest(
  "client: a token that does not allow the room says so, then the form asks only for a room",
  (browser) =>
    withServer({ AUTH_SECRET: SECRET }, async (server) => {
      const jwt = await token("ann", ["team-*"]);
      const ann = await openPage(browser, server.url(`/client.html?r=general&token=${jwt}`));
      // The socket is refused; the plain GET that asks why is answered 403 room_forbidden.
      const text = await connectionNotice(ann.page, /does not allow/);
      assert.equal(text, "Your sign-in does not allow the room #general.");
      await waitForStatus(ann.page, /^signed out$/);
      assert.equal(await ann.page.locator("#retry").isVisible(), false);
      assert.equal(await nextChatAttempt(ann.page, QUIET_MS), undefined);

      await ann.page.getByRole("button", { name: "Choose another room" }).click();
      await ann.page.locator("#room:focus").waitFor();
      assert.equal(await ann.page.locator("#user").isVisible(), false);
      assert.equal(
        await ann.page.locator("#signed-in").textContent(),
        "You join as ann, from your sign-in link.",
      );
      await ann.page.getByLabel("Room").fill("team-a");
      await ann.page.keyboard.press("Enter");
      await waitForStatus(ann.page, /^live$/);
      assert.equal(await ann.page.locator("#whoami").textContent(), "as ann");
      assert.equal(new URL(ann.page.url()).search, `?r=team-a&token=${jwt}`);
    }),
);

browserTest(
  "client: a URL with room and name joins at once, again after a reload; Leave ends that",
  (browser) =>
    withServer({}, async (server) => {
      const url = server.url("/client.html?r=again&u=ann");
      const ann = await openPage(browser, url);
      await waitForStatus(ann.page, /^live$/); // never clicked
      assert.equal(await ann.page.locator("#join-view").isVisible(), false);
      await ann.page.reload();
      await waitForStatus(ann.page, /^live$/);
      assert.equal(ann.page.url(), url);

      await ann.page.getByRole("button", { name: "Leave" }).click();
      await ann.page.locator("#join-view").waitFor();
      assert.equal(ann.page.url(), server.url("/client.html?r=again"));
      await ann.page.reload();
      await ann.page.locator("#user:focus").waitFor();
      assert.equal(await ann.page.getByLabel("Room").inputValue(), "again");
      assert.equal(await ann.page.locator("#chat").isVisible(), false);
    }),
);

browserTest(
  "client: the form checks room and name by the server's rules, in words a user knows",
  (browser) =>
    withServer({}, async (server) => {
      const long = "n".repeat(33);
      const ann = await openPage(browser, server.url(`/client.html?r=general&u=${long}`));
      const userError = ann.page.locator("#user-error");
      await userError.waitFor();
      assert.equal(
        await userError.textContent(),
        "Your name can be at most 32 characters (yours has 33).",
      );
      assert.equal(await ann.page.getByLabel("Name").getAttribute("maxlength"), "32");
      assert.equal(await ann.page.getByLabel("Room").getAttribute("maxlength"), "64");
      assert.equal(await ann.page.locator("#user:focus").count(), 1);

      await ann.page.getByLabel("Name").fill("ann");
      assert.equal(await userError.isVisible(), false); // cleared as the field changes
      await ann.page.getByLabel("Room").fill("no/slashes");
      await ann.page.keyboard.press("Enter");
      const roomError = ann.page.locator("#room-error");
      await roomError.waitFor();
      assert.equal(
        await roomError.textContent(),
        "Room names use letters, digits, spaces and . , : ; ! ? ' ( ) & + @ # ~ - (up to 64).",
      );
      assert.equal(await ann.page.locator("#room:focus[aria-invalid=true]").count(), 1);
      assert.deepEqual(ann.requests.filter(isChatUrl), []);

      await ann.page.getByLabel("Room").fill("general");
      await ann.page.getByLabel("Name").fill("   ");
      await ann.page.keyboard.press("Enter");
      await userError.waitFor();
      assert.equal(await userError.textContent(), "Enter the name others will see.");
    }),
);

browserTest(
  "client: the server's invalid_room and invalid_user come back to the form in the same words",
  (browser) =>
    withServer({}, async (server) => {
      // A page whose rules are looser than the server's: what passes the form, the server refuses.
      const loose = (page: Page) =>
        changeRules(page, { room_pattern: "^.+$", user_forbidden_pattern: "[^\\s\\S]" });
      const badRoom = new URLSearchParams({ r: "no/slashes", u: "ann" });
      const room = await openPage(browser, server.url(`/client.html?${badRoom}`), {
        before: loose,
      });
      const roomError = room.page.locator("#room-error");
      await roomError.waitFor();
      assert.equal(
        await roomError.textContent(),
        "Room names use letters, digits, spaces and . , : ; ! ? ' ( ) & + @ # ~ - (up to 64).",
      );
      assert.equal(await room.page.locator("#room:focus").count(), 1);
      assert.ok(room.requests.some(isChatUrl)); // the server was asked, and refused

      const ann = await openChat(
        browser,
        server.url(""),
        { room: "bad", user: "zero\u200bwidth" },
        {
          waitLive: false,
          before: loose,
        },
      );
      const userError = ann.page.locator("#user-error");
      await userError.waitFor();
      assert.equal(
        await userError.textContent(),
        "Your name can be at most 32 characters, and only visible characters and spaces.",
      );
      for (const page of [room.page, ann.page]) {
        const shown = await page.locator("body").innerText();
        assert.doesNotMatch(shown, /\b[ru] must\b|invalid_(room|user)/);
      }
    }),
);
