/**
 * Writes docs/client.png: the browser client on a desktop window, in a room where three people
 * have talked. Starts its own server in-process on a free port, so nothing else must run.
 *
 *     deno task screenshot
 *
 * Chromium comes from CHROME_PATH (default /usr/bin/chromium); nothing is downloaded.
 *
 * @module
 */
import { silentLogger } from "../log/logger.ts";
import { startChatServer } from "../server/chat_server.ts";
import { parseConfig } from "../server/config.ts";
import { MemoryStore } from "../storage/memory_store.ts";
import { DESKTOP, launchChromium, openChat, sendMessage } from "../tests/support/browser.ts";

const OUTPUT = new URL("./client.png", import.meta.url);
const ROOM = "launch";
const TIMEOUT_MS = 10_000;

/** Someone in the room without a page: a bare socket, for a third voice and member. */
async function openSocket(base: string, user: string): Promise<WebSocket> {
  const query = new URLSearchParams({ r: ROOM, u: user });
  const socket = new WebSocket(`${base.replace(/^http/, "ws")}/chat?${query}`);
  await new Promise<void>((resolve, reject) => {
    socket.onmessage = () => resolve(); // the welcome frame
    socket.onerror = () => reject(new Error(`${user} could not connect`));
  });
  return socket;
}

const store = new MemoryStore({ maxPerRoom: 1_000, maxRooms: 10 });
const server = startChatServer(parseConfig({ PORT: "0", HOST: "127.0.0.1" }), {
  repository: store,
  logger: silentLogger,
});
const base = `http://127.0.0.1:${server.addr.port}`;
const browser = await launchChromium(Deno.env.get("CHROME_PATH") || "/usr/bin/chromium");
try {
  const cleo = await openSocket(base, "cleo");
  const bob = await openChat(browser, base, { room: ROOM, user: "bob" });
  const says = async (text: string, expected: number) => {
    cleo.send(text);
    await bob.page.locator("#messages li.message").nth(expected - 1).waitFor();
  };
  // Said before ann arrives: she reads it from history.
  await sendMessage(bob.page, "Morning! Is the release still on for 3 pm?");
  await says("It is. Staging has been green since last night.", 2);
  await says("I'll keep an eye on the dashboards while it rolls out.", 3);

  const ann = await openChat(browser, base, { room: ROOM, user: "ann" });
  await ann.page.locator("#messages li.message").nth(2).waitFor();
  await sendMessage(ann.page, "Great, thanks both. Migrations ran cleanly on staging too.");
  await sendMessage(ann.page, "Checklist for today:\n• tag v2.4.0\n• deploy\n• announce");
  await sendMessage(bob.page, "Tag is pushed. Deploying now…");
  await sendMessage(bob.page, "Deploy finished, all health checks pass.");
  await says("Error rate flat, latency p99 unchanged.", 8);
  // Seqs so far: 1-8 the messages above. Cleo reacts (9-11), bob cheers (12), cleo answers ann's
  // message 4 (13) and reads up to there; ann writes (14), then fixes a typo with Up.
  for (const [seq, reaction] of [[7, "🎉"], [7, "🚀"], [5, "👍"]] as const) {
    cleo.send(JSON.stringify({ type: "react", seq, reaction }));
  }
  await sendMessage(bob.page, "Nice work, everyone!");
  cleo.send(JSON.stringify({ type: "message", content: "Thanks for checking!", reply_to: 4 }));
  await ann.page.locator("#messages li.message").nth(9).waitFor();
  cleo.send(JSON.stringify({ type: "read", seq: 13 }));
  await sendMessage(ann.page, "Perfect. I'll post the relase notes here in a minute.");
  await ann.page.locator("#messages li.message").nth(10).waitFor();
  await ann.page.locator("#composer").press("ArrowUp");
  const editor = ann.page.getByRole("textbox", { name: "Edit message" });
  await editor.fill("Perfect. I'll post the release notes here in a minute.");
  await editor.press("Enter");
  await ann.page.locator("#messages .edited").waitFor();
  await ann.page.getByText("Seen by cleo").waitFor({ timeout: TIMEOUT_MS });
  await ann.page.locator("#composer").fill("Release notes are up");
  await ann.page.mouse.move(0, DESKTOP.height - 1); // no hover highlight on a message
  await ann.page.screenshot({ path: OUTPUT.pathname, timeout: TIMEOUT_MS });
  console.log(`wrote ${OUTPUT.pathname} (${DESKTOP.width}x${DESKTOP.height})`);
  cleo.close();
} finally {
  await browser.close();
  await server.shutdown();
}
