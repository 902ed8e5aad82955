/**
 * What only PostgreSQL keeps across runs: each room's epoch and last seq in `rooms`, and which
 * run opened a room without releasing it. Each `PostgresStore` on the schema is one run.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChatMessage } from "../../chat/message.ts";
import type { PostgresStore } from "../../storage/postgres_store.ts";
import { query } from "../support/postgres_schema.ts";
import { BASE_TIME, messages } from "./_contract_fixtures.ts";
import { databaseUrl, openStore, storeTest } from "./_postgres_fixture.ts";

/** Runs `test` with another run of the store on `schema`, closed afterwards. */
async function withNextRun(
  schema: string,
  test: (store: PostgresStore) => Promise<void>,
): Promise<void> {
  const { store, dispose } = await openStore(schema);
  try {
    await test(store);
  } finally {
    await dispose();
  }
}

function lastSeqOf(saved: readonly ChatMessage[]): number {
  return saved.at(-1)?.seq ?? 0;
}

storeTest(
  "PostgresStore.openRoom() in a new run gives a room the last run did not release a new epoch",
  async (first, schema) => {
    const before = await first.openRoom("a");
    const saved = messages("a", 3);
    await first.saveBatch(saved);
    // The first run stopped without releasing (killed): it may have handed out seqs it never
    // stored, so the next run must not hand out the same seqs in the same epoch.
    await withNextRun(schema, async (second) => {
      const after = await second.openRoom("a");
      assert.notEqual(after.epoch, before.epoch);
      assert.equal(after.lastSeq, lastSeqOf(saved), "it continues at the last stored seq");
      assert.deepEqual(await second.openRoom("a"), after, "reopened in the same run: kept");
      assert.deepEqual(await first.roomSequence("a"), after, "one sequence per room, shared");
      assert.deepEqual(await second.history("a", { limit: 10 }), saved, "the history stays");
    });
    await withNextRun(schema, async (third) => {
      const again = await third.openRoom("a");
      assert.notEqual(again.epoch, before.epoch);
      assert.equal(again.lastSeq, lastSeqOf(saved));
    });
  },
);

storeTest(
  "PostgresStore.releaseRooms() lets the next run keep the epochs of the rooms this run opened",
  async (first, schema) => {
    const a = await first.openRoom("a");
    const saved = messages("a", 4);
    await first.saveBatch(saved);
    const onlySaved = messages("saved-only", 2);
    await first.saveBatch(onlySaved); // stored here but never opened: no run owns it
    const bySaving = await first.roomSequence("saved-only");
    await withNextRun(schema, async (second) => {
      const b = await second.openRoom("b"); // the second run's, never released
      await first.releaseRooms(); // releases a, not b
      assert.deepEqual(await second.roomSequence("b"), b);
      await withNextRun(schema, async (third) => {
        assert.deepEqual(await third.openRoom("a"), { epoch: a.epoch, lastSeq: lastSeqOf(saved) });
        assert.deepEqual(await third.openRoom("saved-only"), bySaving);
        assert.notEqual((await third.openRoom("b")).epoch, b.epoch, "b was not released");
      });
    });
  },
);

storeTest(
  "PostgresStore keeps a room's last seq in rooms.last_seq, through retention removing every message",
  async (first, schema) => {
    const { epoch } = await first.openRoom("a");
    const saved = messages("a", 5);
    await first.saveBatch(saved);
    assert.equal(await first.prune({ olderThan: new Date(BASE_TIME + 86_400_000) }), 5);
    const rows = await query(
      databaseUrl,
      schema,
      (sql) =>
        sql<{ messages: number; last_seq: string }[]>`
        select (select count(*)::int from messages) as messages, last_seq::text
        from rooms where room = 'a'`,
    );
    assert.deepEqual(rows.map((row) => ({ ...row })), [
      { messages: 0, last_seq: String(lastSeqOf(saved)) },
    ]);
    await first.releaseRooms();
    await withNextRun(schema, async (second) => {
      // Seqs 1..5 named messages clients may remember: the next one is 6, in the same epoch.
      assert.deepEqual(await second.openRoom("a"), { epoch, lastSeq: lastSeqOf(saved) });
    });
  },
);
