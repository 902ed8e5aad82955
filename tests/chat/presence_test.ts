import assert from "node:assert/strict";
import { NO_METRICS } from "../../chat/chat_metrics.ts";
import { SoloCluster } from "../../chat/cluster.ts";
import { Hub } from "../../chat/hub.ts";
import { silentLogger } from "../../log/logger.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { WriteBehindLog } from "../../storage/write_behind_log.ts";
import { RecordingTransport } from "../support/recording_transport.ts";
import { waitFor } from "../support/wait_for.ts";

function newHub(options: { graceMs?: number; outboxFrames?: number } = {}): Hub {
  const log = new WriteBehindLog(new MemoryStore({ maxPerRoom: 100, maxRooms: 10 }), {
    queueLimit: 10_000,
    batchSize: 500,
    batchWaitMs: 0,
  });
  return new Hub({
    outbox: { frames: options.outboxFrames ?? 1_000, bytes: 1 << 30 },
    roomInboxLimit: 100_000,
    log,
    resumeLimit: 100,
    sentWindow: { windowMs: 600_000, maxBytes: 1 << 20 },
    presenceLeaveGraceMs: options.graceMs,
    cluster: new SoloCluster(),
    metrics: NO_METRICS,
    logger: silentLogger,
  });
}

type Joined = Awaited<ReturnType<typeof join>>;

/** Joins `user` and waits for its welcome. */
async function join(hub: Hub, user: string, room = "r") {
  const transport = new RecordingTransport();
  const client = hub.join({ room, user }, transport);
  await waitFor(`${user}'s welcome`, () => transport.frames.length > 0 || undefined);
  return { transport, client };
}

/** Waits past one presence window (100 ms) and a little more. */
const pastWindow = () => new Promise((resolve) => setTimeout(resolve, 250));

Deno.test("Presence: a delta per change, none to the newcomer about itself; welcome has the list", async () => {
  const hub = newHub();
  const ann = await join(hub, "ann");
  const bob = await join(hub, "bob");
  assert.deepEqual(bob.transport.frames[0]?.members, ["ann", "bob"]);
  await waitFor("ann told of bob", () => ann.transport.presence().length > 0 || undefined);
  bob.client.transportClosed();
  await waitFor("ann told bob left", () => ann.transport.presence().length > 1 || undefined);
  await pastWindow();
  assert.deepEqual(ann.transport.presence(), ["join bob", "leave bob"]);
  assert.deepEqual(bob.transport.presence(), [], "its own join is in its welcome");
  for (const frame of ann.transport.frames) {
    assert.equal(frame.members === undefined, frame.type !== "welcome");
  }
  await hub.close();
});

Deno.test("Presence: a reconnect within PRESENCE_LEAVE_GRACE is no leave and no join; a real leave comes after it", async () => {
  const hub = newHub({ graceMs: 300 });
  const ann = await join(hub, "ann");
  const bob = await join(hub, "bob");
  await waitFor("ann told of bob", () => ann.transport.presence().length > 0 || undefined);
  bob.client.transportClosed();
  const again = await join(hub, "bob");
  assert.deepEqual(again.transport.frames[0]?.members, ["ann", "bob"]);
  await new Promise((resolve) => setTimeout(resolve, 500)); // past the first grace
  assert.deepEqual(ann.transport.presence(), ["join bob"], "bob never left");
  again.client.transportClosed();
  await waitFor(
    "bob's leave after the grace",
    () => ann.transport.presence().length > 1 || undefined,
  );
  assert.deepEqual(ann.transport.presence(), ["join bob", "leave bob"]);
  await hub.close();
});

Deno.test("Presence: a join and a leave within one window cancel out", async () => {
  const hub = newHub();
  const ann = await join(hub, "ann");
  // ann's own join opened a window: what happens within it goes out at its end, as net
  // changes. Microtasks only here, so all of it happens within the window.
  const bob = new RecordingTransport();
  const bobClient = hub.join({ room: "r", user: "bob" }, bob);
  for (let i = 0; i < 50 && bob.frames.length === 0; i++) await Promise.resolve();
  assert.equal(bob.frames[0]?.type, "welcome");
  bobClient.transportClosed();
  const cat = await join(hub, "cat");
  await pastWindow();
  assert.deepEqual(ann.transport.presence(), ["join cat"]);
  assert.deepEqual(cat.transport.frames[0]?.members, ["ann", "cat"]);
  await hub.close();
});

Deno.test("Presence: a storm of 2,000 reconnects costs each member O(N) bytes and cuts no one off", async () => {
  const hub = newHub({ graceMs: 5_000, outboxFrames: 256 });
  const count = 2_000;
  const members: Joined[] = [];
  for (let i = 0; i < count; i++) {
    const transport = new RecordingTransport();
    members.push({ transport, client: hub.join({ room: "big", user: `user${i}` }, transport) });
  }
  await waitFor(
    "every welcome",
    () => members.every((m) => m.transport.frames.length > 0) || undefined,
  );
  await waitFor(
    "the joins told",
    () => members[0]?.transport.presence().length === count - 1 || undefined,
    20_000,
  );
  // Everyone drops and comes back at once.
  const again: Joined[] = [];
  for (let i = 0; i < count; i++) {
    members[i]?.client.transportClosed();
    const transport = new RecordingTransport();
    again.push({ transport, client: hub.join({ room: "big", user: `user${i}` }, transport) });
  }
  await waitFor(
    "every welcome",
    () => again.every((m) => m.transport.frames.length > 0) || undefined,
  );
  await pastWindow();
  for (const { transport } of [...members, ...again]) {
    assert.equal(transport.closedWith?.code === 1013, false);
  }
  // Before the drop, each first member heard of the others once: N frames at most.
  const first = members[0]?.transport as RecordingTransport;
  assert.ok(
    (first.sizes.get("presence") ?? 0) < count * 80,
    `${first.sizes.get("presence")} chars`,
  );
  // After it, nobody hears anything: every one of them was back within the grace.
  for (const { transport } of again) assert.deepEqual(transport.presence(), []);
  const welcome = again[0]?.transport.frames[0]?.members as string[];
  assert.equal(welcome.length, count);
  await hub.close();
});
