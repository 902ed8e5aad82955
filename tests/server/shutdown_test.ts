import assert from "node:assert/strict";
import { startChildServer } from "../support/child_server.ts";
import { GatedStore } from "../support/gated_store.ts";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";

Deno.test("Shutdown with messages in flight stores every message that was broadcast", async () => {
  const app = startTestServer({ PERSIST_BATCH_WAIT_MS: "50" });
  const ann = await TestSocket.open(app.chatUrl("drain", "ann"));
  const bob = await TestSocket.open(app.chatUrl("drain", "bob"));
  await ann.nextOfType("welcome");
  await bob.nextOfType("welcome");
  for (let i = 0; i < 500; i++) ann.send(`in flight ${i}`);
  const seenBefore = await bob.collect("message", 50);

  const report = await app.server.shutdown();
  const [seenByAnn, seenByBob] = await Promise.all([ann.untilClosed(), bob.untilClosed()]);
  assert.equal(seenByBob.close.code, 1001);
  assert.equal(seenByBob.close.reason, "server shutting down");
  assert.equal(seenByAnn.close.code, 1001);

  const broadcast = seenByBob.frames.filter((frame) => frame.type === "message").map((f) => f.id);
  const saved = app.repository.saved.map((message) => message.id);
  assert.equal(report.unsaved, 0);
  assert.equal(report.saved, saved.length);
  assert.ok(saved.length >= 1);
  assert.deepEqual(
    saved,
    [...seenBefore.map((frame) => frame.id), ...broadcast],
    "everything broadcast was stored, nothing else",
  );
  // What ann sent but the server no longer took was refused out loud, not dropped silently.
  const refused = seenByAnn.frames.filter((frame) => frame.type === "error");
  for (const frame of refused) assert.equal(frame.code, "shutting_down");
  await app.repository.close();
});

Deno.test("deno task start exits 0 on SIGTERM, closing its clients with 1001", async () => {
  const child = await startChildServer();
  const ann = await TestSocket.open(`ws://127.0.0.1:${child.port}/chat?r=ops&u=ann`);
  await ann.nextOfType("welcome");
  ann.send("before the signal");
  assert.equal((await ann.nextOfType("message")).content, "before the signal");

  child.process.kill("SIGTERM");
  const { close } = await ann.untilClosed(10_000);
  assert.equal(close.code, 1001);
  const { code, stderr } = await child.finished();
  assert.equal(code, 0, stderr);
  const events = child.logs.map((line) => line.event);
  assert.equal(events[0], "store.selected");
  assert.ok(events.indexOf("server.listening") > 0);
  const openMode = child.logs.find((line) => line.event === "auth.open_mode");
  assert.equal(openMode?.level, "warn", "open mode is announced as a warning");
  assert.equal(events.at(-1), "server.stopped");
  assert.deepEqual(child.logs.at(-1)?.saved, 1);
});

Deno.test("SHUTDOWN_TIMEOUT bounds the whole shutdown, a save that never returns included", async () => {
  const store = new GatedStore();
  const app = startTestServer({ SHUTDOWN_TIMEOUT: "1s" }, store);
  try {
    const ann = await TestSocket.open(app.chatUrl("stuck", "ann"));
    await ann.nextOfType("welcome");
    store.saves.close();
    ann.send("never stored in time");
    await ann.nextOfType("message");
    await store.saves.arrival(); // the save is in flight, and will not return by itself
    const started = performance.now();
    const report = await app.server.shutdown();
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs < 5_000, `shutdown took ${Math.round(elapsedMs)} ms`);
    assert.equal(report.unsaved, 1, "the message whose save did not return is reported");
    assert.equal((await ann.untilClosed()).close.code, 1001);
  } finally {
    store.saves.open();
    await store.close();
  }
});
