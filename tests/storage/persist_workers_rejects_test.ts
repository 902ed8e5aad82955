/** PersistWorkers with a store that refuses some messages: split, isolate, reject, go on. */
import assert from "node:assert/strict";
import { LineLogger, type Logger } from "../../log/logger.ts";
import type { ChatMessage } from "../../chat/message.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { PersistWorkers, type PersistWorkersOptions } from "../../storage/persist_workers.ts";
import { WriteBehindLog } from "../../storage/write_behind_log.ts";
import { at, messages } from "./_contract_fixtures.ts";

const SECRET = "secret\u0000content";

/** A store double: `refuse` says what a batch fails with (`undefined`: it is stored). */
class RefusingStore extends MemoryStore {
  override readonly kind = "refusing";
  /** The size of each batch it was asked to save, in order. */
  readonly attempts: number[] = [];
  /** Messages stored, in the order they were. */
  readonly stored: ChatMessage[] = [];
  answering = true;
  readonly #refuse: (batch: readonly ChatMessage[], attempt: number) => unknown;

  constructor(refuse: (batch: readonly ChatMessage[], attempt: number) => unknown) {
    super({ maxPerRoom: 10_000, maxRooms: 10 });
    this.#refuse = refuse;
  }

  override async saveBatch(batch: readonly ChatMessage[]): Promise<void> {
    this.attempts.push(batch.length);
    const error = this.#refuse(batch, this.attempts.length);
    if (error !== undefined) throw error;
    await super.saveBatch(batch);
    this.stored.push(...batch);
  }

  override ping(): Promise<boolean> {
    return Promise.resolve(this.answering);
  }
}

/** An error as postgres.js throws it: `code` is the SQLSTATE or its own code. */
function coded(code: string): Error {
  return Object.assign(new Error(`failed with ${code}: ${SECRET}`), { code });
}

function hasSecret(batch: readonly ChatMessage[]): boolean {
  return batch.some((message) => message.content === SECRET);
}

/** `count` messages of one room; those at `poisoned` hold {@linkcode SECRET}. */
function roomMessages(count: number, poisoned: readonly number[]): ChatMessage[] {
  return messages("room", count).map((message, i) =>
    poisoned.includes(i) ? { ...message, content: SECRET } : message
  );
}

/** Records every log line as its parsed JSON object. */
function recordingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = new LineLogger({
    level: "debug",
    format: "json",
    write: (line) => lines.push(JSON.parse(line)),
  });
  return { logger, lines };
}

async function* source(...batches: ChatMessage[][]): AsyncGenerator<ChatMessage[]> {
  for (const batch of batches) yield batch;
}

/** One worker with fast retries, recording what `failingBatches` was at each attempt. */
function startWorkers(
  store: RefusingStore,
  batches: AsyncIterable<ChatMessage[]>,
  options: Partial<PersistWorkersOptions> = {},
): { workers: PersistWorkers; failing: number[] } {
  const failing: number[] = [];
  const workers: PersistWorkers = new PersistWorkers(store, batches, {
    workers: 1,
    retryBaseMs: 1,
    retryMaxMs: 4,
    logger: recordingLogger().logger,
    onBatch: () => failing.push(workers.failingBatches),
    ...options,
  });
  return { workers, failing };
}

Deno.test("PersistWorkers splits a batch refused for a value, stores the rest and rejects each bad message once", async () => {
  const store = new RefusingStore((batch) => hasSecret(batch) ? coded("22021") : undefined);
  const log = new WriteBehindLog(store, { queueLimit: 100, batchSize: 10, batchWaitMs: 0 });
  const all = roomMessages(10, [2, 6]);
  for (const message of all) assert.ok(log.append(message));
  log.close();
  const settled = new Map<string, boolean[]>();
  const rejected: [number, string][] = [];
  const { logger, lines } = recordingLogger();
  const { workers, failing } = startWorkers(store, log.batches(), {
    logger,
    onSettled: (batch, stored) => {
      log.settled(batch, stored);
      for (const { id } of batch) settled.set(id, [...settled.get(id) ?? [], stored]);
    },
    onRejected: (message, code) => rejected.push([message.seq, code]),
  });

  const report = await workers.stop(AbortSignal.timeout(5_000));

  assert.deepEqual(report, { saved: 8, unsaved: 0, rejected: 2 });
  assert.equal(workers.rejected, 2);
  const good = all.filter((message) => message.content !== SECRET);
  assert.deepEqual(store.stored.map((m) => m.seq), good.map((m) => m.seq), "in seq order");
  assert.deepEqual(await log.history("room", { limit: 50 }), good, "stored once each");
  assert.deepEqual(rejected, [[at(all, 2).seq, "22021"], [at(all, 6).seq, "22021"]]);
  assert.deepEqual(
    all.map((message) => settled.get(message.id)),
    all.map((message) => [message.content !== SECRET]),
    "every message settled once, the refused ones as not stored",
  );
  assert.equal(log.unstored, 0, "the log holds nothing back");
  assert.ok(failing.every((count) => count === 0), "never counted as failing (/readyz)");
  assert.equal(workers.failingBatches, 0);
  // 10 → 5 (3 → 2, 1 rejected; 2) and 5 (3 → 2 → 1, 1 rejected; 1; 2): halves, in order.
  assert.deepEqual(store.attempts, [10, 5, 3, 2, 1, 2, 5, 3, 2, 1, 1, 1, 2], "never retried as is");
  const rejections = lines.filter((line) => line.event === "persist.rejected");
  assert.deepEqual(
    rejections.map(({ level, room, seq, id, error }) => ({ level, room, seq, id, error })),
    [
      { level: "error", room: "room", seq: at(all, 2).seq, id: at(all, 2).id, error: "22021" },
      { level: "error", room: "room", seq: at(all, 6).seq, id: at(all, 6).id, error: "22021" },
    ],
  );
  assert.ok(!JSON.stringify(lines).includes("secret"), "no content nor error message logged");
});

Deno.test("PersistWorkers retries a batch while the store is unreachable, with jittered delays, then stores it once", async () => {
  const failures = [coded("ECONNRESET"), coded("57P01"), coded("CONNECTION_CLOSED")];
  const store = new RefusingStore((_, attempt) => failures[attempt - 1]);
  const draws = [0, 0.5, 0.75];
  const { logger, lines } = recordingLogger();
  const batch = roomMessages(10, []);
  const { workers, failing } = startWorkers(store, source(batch), {
    logger,
    retryBaseMs: 4,
    retryMaxMs: 8,
    random: () => draws.shift() ?? assert.fail("drew more than 3 times"),
    splitAfterUnknownFailures: 1, // a known outage never counts toward splitting
  });

  const report = await workers.stop(AbortSignal.timeout(5_000));

  assert.deepEqual(report, { saved: 10, unsaved: 0, rejected: 0 });
  assert.deepEqual(store.attempts, [10, 10, 10, 10]);
  assert.deepEqual(store.stored, batch, "stored once, as one batch");
  // Capped exponential 4, 8, 8 ms; equal jitter keeps half and adds a draw of the other half.
  const retries = lines.filter((line) => line.event === "persist.batch_failed");
  assert.deepEqual(retries.map((line) => [line.attempt, line.retryInMs, line.error]), [
    [1, 2, "ECONNRESET"],
    [2, 6, "57P01"],
    [3, 7, "CONNECTION_CLOSED"],
  ]);
  assert.ok(failing.some((count) => count === 1), "counted as failing while retried");
  assert.equal(workers.failingBatches, 0);
});

Deno.test("PersistWorkers isolates a message failing forever with an unknown error, once the store still answers", async () => {
  const store = new RefusingStore((batch) => hasSecret(batch) ? new Error(SECRET) : undefined);
  const all = roomMessages(4, [1]);
  const rejected: string[] = [];
  const settled: boolean[] = [];
  const { workers, failing } = startWorkers(store, source(all), {
    onRejected: (message, code) => rejected.push(`${message.seq} ${code}`),
    onSettled: (batch, stored) => settled.push(...batch.map(() => stored)),
  });

  const report = await workers.stop(AbortSignal.timeout(5_000));

  assert.deepEqual(report, { saved: 3, unsaved: 0, rejected: 1 });
  // Five failures of each batch holding it (the default) before it is split.
  assert.deepEqual(store.attempts, [4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 2]);
  assert.deepEqual(store.stored, [at(all, 0), at(all, 2), at(all, 3)]);
  assert.deepEqual(rejected, [`${at(all, 1).seq} Error`]);
  assert.equal(settled.length, 4);
  assert.ok(failing.some((count) => count > 0), "retried first, as failing");
  assert.equal(workers.failingBatches, 0, "then /readyz is ready again");
});

Deno.test("PersistWorkers never rejects for an unknown error while the store does not answer", async () => {
  const store = new RefusingStore(() => new Error("unknown"));
  store.answering = false;
  const { promise: failedTwelveTimes, resolve } = Promise.withResolvers<void>();
  const { workers } = startWorkers(store, source(roomMessages(2, [])), {
    splitAfterUnknownFailures: 2,
    onBatch: () => store.attempts.length >= 12 && resolve(),
  });
  await failedTwelveTimes;
  const deadline = new AbortController();
  const stopping = workers.stop(deadline.signal);
  deadline.abort();

  assert.deepEqual(await stopping, { saved: 0, unsaved: 2, rejected: 0 });
  assert.ok(store.attempts.every((size) => size === 2), "never split: the store is down");
});
