/**
 * A browser client written to the description of the Go server this one replaces, served from
 * another origin: raw text out, message objects in, `/history` read cross-origin. Against our
 * server at protocol level 0 it must work as it did against the original.
 */
import assert from "node:assert/strict";
import { TestSocket } from "../support/test_socket.ts";
import { browserTest, withServer } from "./_chrome.ts";

/** The legacy client: every frame is `{sender, room, content, timestamp}`, shown as a line. */
function legacyPage(chatPort: number, room: string, user: string): string {
  const base = `127.0.0.1:${chatPort}`;
  const query = `r=${encodeURIComponent(room)}&u=${encodeURIComponent(user)}`;
  return `<!doctype html><meta charset="utf-8"><ul id="log"></ul>
<form id="form"><input id="text"><button>Send</button></form>
<script>
  const log = document.getElementById("log");
  const show = (m) => {
    const li = document.createElement("li");
    li.textContent = m.sender + ": " + m.content;
    log.append(li);
  };
  fetch("http://${base}/history?r=${encodeURIComponent(room)}")
    .then((response) => response.json())
    .then((messages) => {
      messages.forEach(show);
      const socket = new WebSocket("ws://${base}/chat?${query}");
      socket.onmessage = (event) => show(JSON.parse(event.data));
      document.getElementById("form").onsubmit = (event) => {
        event.preventDefault();
        socket.send(document.getElementById("text").value);
        document.getElementById("text").value = "";
      };
    });
</script>`;
}

browserTest(
  "Level 0: the Go server's browser client, from another origin, in room café crème",
  (browser) =>
    withServer(
      { DEFAULT_PROTOCOL: "0", ALLOWED_ORIGINS: "*", PRESENCE_LEAVE_GRACE: "0" },
      async (server) => {
        const room = "café crème";
        const earlier = await TestSocket.open(
          `ws://127.0.0.1:${server.port}/chat?r=${encodeURIComponent(room)}&u=Ann&v=2`,
        );
        await earlier.nextOfType("welcome");
        earlier.send("said before you came");
        await earlier.nextOfType("ack");
        await earlier.close();

        const html = legacyPage(server.port, room, "Zoë");
        const site = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen: () => {} },
          () => new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } }),
        );
        const page = await browser.newPage();
        try {
          await page.goto(`http://127.0.0.1:${site.addr.port}/`);
          const line = (text: string) => page.locator("#log li", { hasText: text }).waitFor();
          await line("Ann: said before you came");
          await line("SYSTEM: User Zoë entered the chat");

          const bob = await TestSocket.open(
            `ws://127.0.0.1:${server.port}/chat?r=${encodeURIComponent(room)}&u=Bob`,
          );
          await line("SYSTEM: User Bob entered the chat");
          bob.send("bonjour Zoë");
          await line("Bob: bonjour Zoë");
          await page.locator("#text").fill("salut Bob");
          await page.locator("#text").press("Enter");
          await line("Zoë: salut Bob");
          const frames = [];
          for (;;) {
            const frame = await bob.next();
            frames.push(frame);
            if (frame.content === "salut Bob") break;
          }
          assert.deepEqual(Object.keys(frames.at(-1) ?? {}).sort(), [
            "content",
            "room",
            "sender",
            "timestamp",
          ]);
          await bob.close();
          await line("SYSTEM: User Bob left the chat");
          const lines = await page.locator("#log li").allTextContents();
          assert.ok(lines.every((text) => !text.startsWith("undefined")), lines.join("\n"));
        } finally {
          await page.close();
          await site.shutdown();
        }
      },
    ),
);
