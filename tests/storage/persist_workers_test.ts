import assert from "node:assert/strict";
import { batches } from "../../chat/batches.ts";
import { Channel } from "../../chat/channel.ts";
import { silentLogger } from "../../log/logger.ts";
import { PersistWorkers, type PersistWorkersOptions } from "../../storage/persist_workers.ts";
import type { ChatMessage } from "../../chat/message.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import { MemoryStore } from "../../storage/memory_store.ts";

function message(i: number): ChatMessage {
  return {
    id: `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`,
    room: "r",
    seq: i + 1,
    sender: "s",
    content: `m${i}`,
    timestamp: new Date(0).toISOString(),
  };
}

/** A store double that fails its first `failures` saves, then records. */
class FlakyStore extends MemoryStore {
  override readonly kind = "flaky";
  readonly saved: ChatMessage[] = [];
  attempts = 0;
  #failures: number;

  constructor(failures: number) {
    super({ maxPerRoom: 100_000, maxRooms: 10 });
    this.#failures = failures;
  }

  override saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    this.attempts++;
    if (this.#failures > 0) {
      this.#failures--;
      return Promise.reject(new Error("database blip"));
    }
    this.saved.push(...messages);
    return Promise.resolve();
  }

  override ping(): Promise<boolean> {
    return Promise.resolve(this.#failures === 0);
  }
}

const fastRetry = { retryBaseMs: 1, retryMaxMs: 4, logger: silentLogger };

/** Workers with fast retries over batches of `queue` (sent as soon as taken unless `maxWaitMs`). */
function startWorkers(
  store: MessageRepository,
  queue: Channel<ChatMessage>,
  options:
    & { workers: number; maxSize: number; maxWaitMs?: number }
    & Partial<
      PersistWorkersOptions
    >,
): PersistWorkers {
  const { maxSize, maxWaitMs = 0, ...rest } = options;
  return new PersistWorkers(store, batches(queue, { maxSize, maxWaitMs }), {
    ...fastRetry,
    ...rest,
  });
}

Deno.test("batches() groups queued values up to maxSize and ends on close", async () => {
  const channel = new Channel<number>(100);
  for (let i = 0; i < 12; i++) channel.trySend(i);
  channel.close();
  const seen: number[][] = [];
  for await (const batch of batches(channel, { maxSize: 5, maxWaitMs: 0 })) seen.push(batch);
  assert.deepEqual(seen, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]);
});

Deno.test("PersistWorkers saves every message in batches and reports the count", async () => {
  const store = new FlakyStore(0);
  const queue = new Channel<ChatMessage>(10_000);
  const workers = startWorkers(store, queue, { workers: 4, maxSize: 500, maxWaitMs: 1 });
  for (let i = 0; i < 2_000; i++) queue.trySend(message(i));
  queue.close();
  const report = await workers.stop(AbortSignal.timeout(5_000));
  assert.deepEqual(report, { saved: 2_000, unsaved: 0, rejected: 0 });
  assert.equal(store.saved.length, 2_000);
  assert.equal(new Set(store.saved.map((m) => m.id)).size, 2_000);
  assert.ok(store.attempts <= 8, `2000 messages in batches of 500 took ${store.attempts} saves`);
});

Deno.test("PersistWorkers retries a failed batch until it is saved", async () => {
  const store = new FlakyStore(3);
  const queue = new Channel<ChatMessage>(100);
  const workers = startWorkers(store, queue, { workers: 1, maxSize: 500 });
  for (let i = 0; i < 10; i++) queue.trySend(message(i));
  queue.close();
  const report = await workers.stop(AbortSignal.timeout(5_000));
  assert.deepEqual(report, { saved: 10, unsaved: 0, rejected: 0 });
  assert.equal(store.attempts, 4);
  assert.deepEqual(
    store.saved.map((m) => m.content),
    Array.from({ length: 10 }, (_, i) => `m${i}`),
  );
});

Deno.test("PersistWorkers.stop() counts what it could not save once the deadline passes", async () => {
  const store = new FlakyStore(Infinity);
  const queue = new Channel<ChatMessage>(100);
  const workers = startWorkers(store, queue, { workers: 1, maxSize: 3 });
  for (let i = 0; i < 10; i++) queue.trySend(message(i));
  queue.close();
  const deadline = new AbortController();
  const stopping = workers.stop(deadline.signal);
  deadline.abort();
  assert.deepEqual(await stopping, { saved: 0, unsaved: 10, rejected: 0 });
});

Deno.test("PersistWorkers tells onSettled of each batch once stored, or once given up on", async () => {
  const settled: string[] = [];
  const onSettled = (batch: readonly ChatMessage[]) => {
    for (const m of batch) settled.push(m.content);
  };
  const flaky = new FlakyStore(1);
  const queue = new Channel<ChatMessage>(100);
  const workers = startWorkers(flaky, queue, { workers: 1, maxSize: 2, onSettled });
  for (let i = 0; i < 4; i++) queue.trySend(message(i));
  queue.close();
  await workers.stop(AbortSignal.timeout(5_000));
  assert.deepEqual(settled, ["m0", "m1", "m2", "m3"], "a failed attempt does not settle");

  settled.length = 0;
  const down = new FlakyStore(Infinity);
  const stuck = new Channel<ChatMessage>(100);
  const givingUp = startWorkers(down, stuck, { workers: 1, maxSize: 3, onSettled });
  for (let i = 0; i < 5; i++) stuck.trySend(message(i));
  stuck.close();
  const deadline = new AbortController();
  const stopping = givingUp.stop(deadline.signal);
  deadline.abort();
  assert.deepEqual(await stopping, { saved: 0, unsaved: 5, rejected: 0 });
  assert.deepEqual(settled.sort(), ["m0", "m1", "m2", "m3", "m4"]);
});
