/** PersistWorkers on a real PostgreSQL: a message it refuses does not hold back its batch. */
import assert from "node:assert/strict";
import type { ChatMessage } from "../../chat/message.ts";
import { silentLogger } from "../../log/logger.ts";
import { PersistWorkers } from "../../storage/persist_workers.ts";
import { at, messages } from "./_contract_fixtures.ts";
import { storeTest } from "./_postgres_fixture.ts";

async function* source(batch: ChatMessage[]): AsyncGenerator<ChatMessage[]> {
  yield batch;
}

storeTest(
  "PersistWorkers on PostgreSQL stores a batch's good messages and rejects one holding a NUL (22021)",
  async (store) => {
    const batch = messages("nul", 7).map((message, i) =>
      i === 4 ? { ...message, content: "text refuses \u0000" } : message
    );
    const rejected: [string, string][] = [];
    const settled: [number, boolean][] = [];
    const workers = new PersistWorkers(store, source(batch), {
      workers: 1,
      retryBaseMs: 1,
      retryMaxMs: 4,
      logger: silentLogger,
      onRejected: (message, code) => rejected.push([message.id, code]),
      onSettled: (part, stored) =>
        settled.push(...part.map((m): [number, boolean] => [m.seq, stored])),
    });

    const report = await workers.stop(AbortSignal.timeout(10_000));

    assert.deepEqual(report, { saved: 6, unsaved: 0, rejected: 1 });
    assert.deepEqual(rejected, [[at(batch, 4).id, "22021"]]);
    const good = batch.filter((_, i) => i !== 4);
    assert.deepEqual(await store.history("nul", { limit: 50 }), good);
    assert.deepEqual(
      settled.sort(([a], [b]) => a - b),
      batch.map((message, i): [number, boolean] => [message.seq, i !== 4]),
    );
    assert.equal(workers.failingBatches, 0);
  },
);
