import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { RawWebSocket } from "../support/raw_ws_client.ts";
import { TestSocket } from "../support/test_socket.ts";

Deno.test("A member that never reads is cut off with 1013 while the others get every message", async () => {
  const app = startTestServer({ MAX_CONTENT_CHARS: "60000", OUTBOX_LIMIT_BYTES: "1048576" });
  const reader = await TestSocket.open(app.chatUrl("slow", "reader"));
  await reader.nextOfType("welcome");
  const stalled = await RawWebSocket.open(app.port, "/chat?r=slow&u=stalled");
  assert.equal((await reader.nextOfType("presence")).user, "stalled");

  // Send big messages in bursts until the room reports the stalled member gone. The kernel's
  // socket buffers absorb the first megabytes; after that the server's own buffer grows.
  const content = "x".repeat(50_000);
  const maxMessages = 4_000;
  const received: string[] = [];
  let sent = 0;
  let leftAfter = -1;
  while (leftAfter < 0 && sent < maxMessages) {
    for (let i = 0; i < 5; i++) reader.send(`${sent++} ${content}`);
    while (received.length < sent) {
      const frame = await reader.next(10_000);
      if (frame.type === "message") received.push(frame.content.split(" ")[0]);
      if (frame.type === "presence" && frame.event === "leave") {
        assert.equal(frame.user, "stalled");
        leftAfter = received.length;
      }
    }
  }
  assert.ok(leftAfter > 0, `the stalled member was not cut off after ${sent} messages`);

  // The room kept going: the reader got every message, in order, before and after the cut.
  for (let i = 0; i < 20; i++) reader.send(`${sent++} after`);
  while (received.length < sent) {
    const frame = await reader.nextOfType("message", 10_000);
    received.push(frame.content.split(" ")[0]);
  }
  assert.deepEqual(received, Array.from({ length: sent }, (_, i) => String(i)));

  // The stalled peer, once it reads, finds the close frame with 1013 behind its backlog.
  const { code, texts } = await stalled.readUntilClose(AbortSignal.timeout(20_000));
  assert.equal(code, 1013);
  assert.ok(texts.length < sent, "the stalled peer did not get the messages after its cut-off");
  stalled.close();
  await reader.close();
  await app.close();
});
