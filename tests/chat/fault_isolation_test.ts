/**
 * One failing client, room, logger or flush stays contained: it is closed with 1011 (or its
 * line dropped), logged and counted, and everyone else goes on. An escaped exception here would
 * be an unhandled rejection, which fails the test run as it would end the server.
 */
import assert from "node:assert/strict";
import { SoloCluster } from "../../chat/cluster.ts";
import { type ChatMetrics, type FaultSite, NO_METRICS } from "../../chat/chat_metrics.ts";
import type { Transport } from "../../chat/client.ts";
import { Hub } from "../../chat/hub.ts";
import type { ChatMessage } from "../../chat/message.ts";
import { OutboxWriter } from "../../chat/outbox_writer.ts";
import { LineLogger, type Logger, silentLogger } from "../../log/logger.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { WriteBehindLog } from "../../storage/write_behind_log.ts";

class RecordingTransport implements Transport {
  readonly frames: Record<string, unknown>[] = [];
  closedWith: number | undefined;
  bufferedAmount = 0;

  send(frame: string): void {
    this.frames.push(JSON.parse(frame));
  }

  close(code: number): Promise<void> {
    this.closedWith = code;
    return Promise.resolve();
  }

  messages(): unknown[] {
    return this.frames.filter((frame) => frame.type === "message").map((frame) => frame.content);
  }
}

/** A socket that breaks once it has been written `healthy` frames. */
class BreakingTransport extends RecordingTransport {
  constructor(private healthy: number) {
    super();
  }

  override send(frame: string): void {
    if (this.healthy-- <= 0) throw new Error("socket broke");
    super.send(frame);
  }
}

/** A log that throws for the rooms named in `broken` (a store call that breaks its promise). */
class BreakingLog extends WriteBehindLog {
  readonly broken = new Set<string>();

  override append(message: ChatMessage): boolean {
    if (this.broken.has(message.room)) throw new Error("append broke");
    return super.append(message);
  }
}

function newHub(logger: Logger = silentLogger) {
  const log = new BreakingLog(new MemoryStore({ maxPerRoom: 100, maxRooms: 10 }), {
    queueLimit: 10_000,
    batchSize: 500,
    batchWaitMs: 0,
  });
  const faults: FaultSite[] = [];
  const metrics: ChatMetrics = { ...NO_METRICS, faultContained: (site) => faults.push(site) };
  const hub = new Hub({
    outbox: { frames: 1_000, bytes: 1 << 20 },
    roomInboxLimit: 10_000,
    log,
    resumeLimit: 100,
    sentWindow: { windowMs: 600_000, maxBytes: 1 << 20 },
    cluster: new SoloCluster(),
    metrics,
    logger,
  });
  return { hub, log, faults };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

Deno.test("A client whose socket throws is closed with 1011; its room and the others go on", async () => {
  const { hub, faults } = newHub();
  const ann = new RecordingTransport();
  const bob = new BreakingTransport(1); // its welcome, then it breaks
  const cat = new RecordingTransport();
  const sender = hub.join({ room: "r", user: "ann" }, ann);
  hub.join({ room: "r", user: "bob" }, bob);
  const other = hub.join({ room: "s", user: "cat" }, cat);
  await settle();
  sender.receive({ content: "one" });
  other.receive({ content: "elsewhere" });
  await settle();
  assert.equal(bob.closedWith, 1011);
  assert.deepEqual(faults, ["client"]);
  sender.receive({ content: "two" });
  await settle();
  assert.deepEqual(ann.messages(), ["one", "two"]);
  assert.deepEqual(cat.messages(), ["elsewhere"]);
  assert.equal(ann.closedWith, undefined);
  await hub.close();
});

Deno.test("A room whose turn throws closes its members with 1011; the next room of its name works", async () => {
  const { hub, log, faults } = newHub();
  const ann = new RecordingTransport();
  const bob = new RecordingTransport();
  const cat = new RecordingTransport();
  const sender = hub.join({ room: "bad", user: "ann" }, ann);
  hub.join({ room: "bad", user: "bob" }, bob);
  const other = hub.join({ room: "good", user: "cat" }, cat);
  await settle();
  log.broken.add("bad");
  sender.receive({ content: "boom" });
  await settle();
  assert.deepEqual([ann.closedWith, bob.closedWith], [1011, 1011]);
  assert.deepEqual(faults, ["room"]);
  other.receive({ content: "still here" });
  await settle();
  assert.deepEqual(cat.messages(), ["still here"], "another room is not stalled");

  log.broken.clear();
  const again = new RecordingTransport();
  const dan = hub.join({ room: "bad", user: "dan" }, again);
  await settle();
  await new Promise((resolve) => setTimeout(resolve, 0));
  await settle();
  dan.receive({ content: "fresh" });
  await settle();
  assert.deepEqual(again.messages(), ["fresh"], "the emptied room was replaced");
  await hub.close();
});

Deno.test("A room that fails with a logger that throws too is still contained", async () => {
  const throwing: Logger = {
    debug: () => {
      throw new Error("log broke");
    },
    info: () => {
      throw new Error("log broke");
    },
    warn: () => {
      throw new Error("log broke");
    },
    error: () => {
      throw new Error("log broke");
    },
  };
  const { hub, log } = newHub(throwing);
  const ann = new RecordingTransport();
  const sender = hub.join({ room: "bad", user: "ann" }, ann);
  await settle();
  log.broken.add("bad");
  sender.receive({ content: "boom" });
  await settle();
  assert.equal(ann.closedWith, 1011);
  await hub.close();
});

Deno.test("LineLogger never throws: a failing write is dropped and counted", () => {
  const logger = new LineLogger({
    level: "info",
    format: "json",
    write: () => {
      throw new Deno.errors.BrokenPipe("stdout closed");
    },
  });
  logger.info("server.listening", { port: 1 });
  logger.error("room.failed", { room: "r" });
  assert.equal(logger.dropped, 2);
});

Deno.test("OutboxWriter flushes every outbox of a turn even when one throws", async () => {
  const errors: unknown[] = [];
  const writer = new OutboxWriter((error) => errors.push(error));
  const flushed: string[] = [];
  writer.schedule({ flush: () => flushed.push("a") });
  writer.schedule({
    flush: () => {
      throw new Error("flush broke");
    },
  });
  writer.schedule({ flush: () => flushed.push("c") });
  await Promise.resolve();
  assert.deepEqual(flushed, ["a", "c"]);
  assert.equal(errors.length, 1);
  writer.schedule({ flush: () => flushed.push("d") });
  await Promise.resolve();
  assert.deepEqual(flushed, ["a", "c", "d"], "later turns are flushed too");
});
