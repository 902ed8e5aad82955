import assert from "node:assert/strict";
import { SoloCluster } from "../../chat/cluster.ts";
import { NO_METRICS } from "../../chat/chat_metrics.ts";
import { Hub } from "../../chat/hub.ts";
import { silentLogger } from "../../log/logger.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { WriteBehindLog } from "../../storage/write_behind_log.ts";
import type { ChatMessage } from "../../chat/message.ts";
import { waitFor } from "../support/wait_for.ts";
import { RecordingTransport } from "../support/recording_transport.ts";

function newHub(
  options: {
    outboxFrames?: number;
    outboxBytes?: number;
    persistLimit?: number;
    inboxLimit?: number;
  } = {},
) {
  // No workers drain the log: what the rooms queued for storage stays queued, to be read back.
  const log = new WriteBehindLog(new MemoryStore({ maxPerRoom: 100, maxRooms: 10 }), {
    queueLimit: options.persistLimit ?? 10_000,
    batchSize: 500,
    batchWaitMs: 0,
  });
  const hub = new Hub({
    outbox: { frames: options.outboxFrames ?? 1_000, bytes: options.outboxBytes ?? 1 << 20 },
    roomInboxLimit: options.inboxLimit ?? 10_000,
    log,
    resumeLimit: 100,
    sentWindow: { windowMs: 600_000, maxBytes: 1 << 20 },
    cluster: new SoloCluster(),
    metrics: NO_METRICS,
    logger: silentLogger,
  });
  const queued = (room: string) => log.history(room, { afterSeq: 0, limit: 100_000 });
  return { hub, log, queued };
}

/** Lets queued loops run until nothing changes; microtasks only, no timers. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

Deno.test("Room cuts off members whose outbox overflows in one turn; the room does not wait", async () => {
  const { hub } = newHub({ outboxFrames: 4 });
  const ann = new RecordingTransport();
  const bob = new RecordingTransport();
  const sender = hub.join({ room: "r", user: "ann" }, ann);
  hub.join({ room: "r", user: "bob" }, bob);
  await settle();
  // Two messages in one turn: the sender gets each with its ack, 4 frames, as many as fit.
  for (let i = 0; i < 2; i++) sender.receive({ content: `m${i}` });
  await settle();
  assert.deepEqual(bob.messages(), ["m0", "m1"]);
  assert.deepEqual(ann.messages(), ["m0", "m1"]);
  assert.deepEqual(ann.frames.slice(-4).map((frame) => frame.type), [
    "message",
    "ack",
    "message",
    "ack",
  ]);
  assert.equal(ann.closedWith, undefined, "4 frames (2 messages, 2 acks) fit an outbox of 4");
  assert.equal(bob.closedWith, undefined, "2 frames fit an outbox of 4");
  // Ten messages handled in one room turn, before any writer runs: more than 4 frames wait.
  for (let i = 2; i < 12; i++) sender.receive({ content: `m${i}` });
  await settle();
  assert.deepEqual(bob.closedWith, {
    code: 1013,
    reason: "slow consumer: too many frames waiting to be sent",
  });
  assert.deepEqual(bob.messages(), ["m0", "m1"], "a cut-off client is written no more");
  assert.deepEqual(bob.closedWith, ann.closedWith, "the same bound holds for the sender");
  assert.deepEqual(ann.messages(), ["m0", "m1"], "nor is a cut-off sender");
  await hub.close();
});

Deno.test("Client is cut off once its transport buffers more bytes than allowed", async () => {
  // The buffered bytes are read each time an eighth of the bound (128) has been written: the
  // welcome and the first message are more than that.
  const { hub } = newHub({ outboxBytes: 1024 });
  const ann = new RecordingTransport();
  const bob = new RecordingTransport();
  const sender = hub.join({ room: "r", user: "ann" }, ann);
  hub.join({ room: "r", user: "bob" }, bob);
  await settle();
  sender.receive({ content: "before" });
  await settle();
  bob.bufferedAmount = 1025; // the peer stopped reading
  sender.receive({ content: "after" });
  sender.receive({ content: "later" });
  await settle();
  assert.equal(bob.closedWith?.code, 1013);
  assert.deepEqual(bob.messages(), ["before"], "nothing more is written to a cut-off client");
  assert.deepEqual(ann.messages(), ["before", "after", "later"]);
  // Presence goes out in batches, at most one per window (a timer): wait for it.
  await waitFor("bob's leave", () => ann.frames.at(-1)?.type === "presence" || undefined);
  assert.deepEqual(ann.frames.at(-1), {
    type: "presence",
    event: "leave",
    room: "r",
    user: "bob",
  });
  await hub.close();
});

Deno.test("Room refuses a message with backlog when the persistence queue is full, and shows it to no one", async () => {
  const { hub, log, queued } = newHub({ persistLimit: 2 });
  const ann = new RecordingTransport();
  const bob = new RecordingTransport();
  const sender = hub.join({ room: "r", user: "ann" }, ann);
  hub.join({ room: "r", user: "bob" }, bob);
  await settle();
  for (const content of ["one", "two", "three"]) sender.receive({ content: content });
  await settle();
  assert.deepEqual(ann.messages(), ["one", "two"]);
  assert.deepEqual(bob.messages(), ["one", "two"]);
  assert.deepEqual(ann.frames.at(-1), {
    type: "error",
    code: "backlog",
    message: "the server cannot store more messages right now; the message was not sent",
  });
  assert.equal(log.queued, 2);
  const stored = await queued("r");
  assert.deepEqual(stored.map((message) => [message.seq, message.content]), [[1, "one"], [
    2,
    "two",
  ]]);
  await hub.close();
});

Deno.test("Room refuses a message with room_busy when its inbox is full", async () => {
  const { hub } = newHub({ inboxLimit: 3 });
  const ann = new RecordingTransport();
  const sender = hub.join({ room: "r", user: "ann" }, ann);
  await settle();
  for (let i = 0; i < 5; i++) sender.receive({ content: `m${i}` });
  await settle();
  // The waiting loop takes the first message directly; three more fill the inbox.
  assert.deepEqual(ann.messages(), ["m0", "m1", "m2", "m3"]);
  const errors = ann.frames.filter((frame) => frame.type === "error");
  assert.deepEqual(errors.map((frame) => frame.code), ["room_busy"]);
  await hub.close();
});

Deno.test("Hub.close() closes every client with 1001 after flushing what was queued", async () => {
  const { hub, log } = newHub();
  const transports = [new RecordingTransport(), new RecordingTransport(), new RecordingTransport()];
  const clients = transports.map((transport, i) =>
    hub.join({ room: `r${i % 2}`, user: `u${i}` }, transport)
  );
  await settle();
  clients[0]?.receive({ content: "last words" });
  await hub.close();
  for (const transport of transports) assert.equal(transport.closedWith?.code, 1001);
  assert.deepEqual(transports[0]?.messages(), ["last words"]);
  assert.equal(log.queued, 1, "an accepted message reached the persistence queue");
  assert.equal(hub.clientCount, 0);
  assert.equal(hub.roomCount, 0);
  // After close, a newcomer is turned away at once.
  const late = new RecordingTransport();
  hub.join({ room: "r0", user: "late" }, late);
  await settle();
  assert.equal(late.closedWith?.code, 1001);
});

Deno.test("Room seqs run 1, 2, 3, ... without a gap; ids increase and timestamps match them", async () => {
  const { hub, queued: read } = newHub({ persistLimit: 20_000 });
  const sender = hub.join({ room: "r", user: "ann" }, new RecordingTransport());
  await settle();
  for (let i = 0; i < 5_000; i++) sender.receive({ content: `m${i}` });
  await settle();
  const queued = await read("r");
  assert.equal(queued.length, 5_000);
  assert.deepEqual(queued.map((message) => message.seq), queued.map((_, i) => i + 1));
  for (let i = 1; i < queued.length; i++) {
    assert.ok((queued[i - 1]?.id ?? "") < (queued[i]?.id ?? ""), `id ${i} increases`);
  }
  const first = queued[0] as ChatMessage;
  const ms = parseInt(first.id.slice(0, 8) + first.id.slice(9, 13), 16);
  assert.equal(new Date(ms).toISOString(), first.timestamp);
  await hub.close();
});
