/**
 * The SDK in headless Chromium, imported from the server's `/sdk/chat.js` by a tiny page of the
 * server's origin: it joins, sends, receives and reads history; and another origin may import
 * the module too.
 */
import assert from "node:assert/strict";
import { foreignRequests, openPage, type Page } from "../support/browser.ts";
import { TestSocket } from "../support/test_socket.ts";
import { browserTest, withServer } from "../static/_chrome.ts";

/** The page: a module script that imports the SDK and records what happens in `sdkEvents`. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>sdk</title>
<script type="module">
  const events = (window.sdkEvents = []);
  const say = (event) => events.push(event);
  try {
    const { connect } = await import("/sdk/chat.js");
    const room = await connect({ url: location.origin, room: "browser", user: "chromium" });
    window.sdkRoom = room;
    room.on("message", (m) => say({ event: "message", seq: m.seq, content: m.content }));
    say({ event: "open", members: room.members });
    const ack = await room.send("hello from chromium");
    say({ event: "ack", seq: ack.seq });
  } catch (error) {
    say({ event: "failed", code: error.code, message: String(error) });
  }
</script>`;

type PageEvent = Record<string, unknown>;

/** The page's recorded events once one matches `condition` (source text run in the page). */
async function eventsOnce(page: Page, condition: string): Promise<PageEvent[]> {
  await page.waitForFunction(
    `(window.sdkEvents ?? []).some((e) => e.event === "failed" || (${condition}))`,
  );
  const events = await page.evaluate("window.sdkEvents") as PageEvent[];
  const failed = events.find((event) => event.event === "failed");
  assert.equal(failed, undefined, `the page failed: ${JSON.stringify(failed)}`);
  return events;
}

browserTest(
  "The SDK in Chromium, imported from /sdk/chat.js: join, send, receive, history",
  async (browser) => {
    await withServer({}, async (server) => {
      const deno = await TestSocket.open(server.chatUrl("browser", "deno"));
      await deno.nextOfType("welcome");
      const opened = await openPage(browser, server.url("/healthz"));
      try {
        await opened.page.setContent(PAGE);
        const events = await eventsOnce(opened.page, `e.event === "ack"`);
        assert.deepEqual(events.find((event) => event.event === "open")?.members, [
          "chromium",
          "deno",
        ]);
        const hello = await deno.nextOfType("message");
        assert.deepEqual([hello.sender, hello.content, hello.seq], [
          "chromium",
          "hello from chromium",
          1,
        ]);
        deno.send("hello from deno");
        const all = await eventsOnce(opened.page, `e.content === "hello from deno"`);
        assert.deepEqual(all.filter((event) => event.event === "message"), [
          { event: "message", seq: 1, content: "hello from chromium" },
          { event: "message", seq: 2, content: "hello from deno" },
        ]);
        const history = await opened.page.evaluate(`(async () => {
        const seqs = [];
        for await (const m of window.sdkRoom.history()) seqs.push(m.seq);
        return seqs;
      })()`);
        assert.deepEqual(history, [2, 1], "newest first without after_seq");
        await opened.page.evaluate("window.sdkRoom.close()");
        const left = await deno.nextOfType("presence");
        assert.deepEqual([left.event, left.user], ["leave", "chromium"]);
        assert.deepEqual(foreignRequests(opened.requests, server.url("")), []);
        assert.ok(opened.requests.includes(server.url("/sdk/chat.js")));
      } finally {
        await opened.context.close();
        await deno.close();
      }
    });
  },
);

browserTest(
  "The SDK module may be imported by a page of another origin (CORS)",
  async (browser) => {
    await withServer({}, async (server) => {
      const opened = await openPage(browser, server.url("/healthz"));
      try {
        // localhost and 127.0.0.1 are different origins for the browser.
        const other = server.url("/sdk/chat.js").replace("127.0.0.1", "localhost");
        const exported = await opened.page.evaluate(
          `import(${JSON.stringify(other)}).then((sdk) => Object.keys(sdk).sort())`,
        );
        assert.deepEqual(exported, ["ChatError", "connect"]);
      } finally {
        await opened.context.close();
      }
    });
  },
);
