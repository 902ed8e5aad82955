import assert from "node:assert/strict";
import postgres from "postgres";
import { PruneIncompleteError } from "../../storage/repository.ts";
import { query } from "../support/postgres_schema.ts";
import { databaseUrl, storeTest } from "./_postgres_fixture.ts";
import type { ChatMessage } from "../../chat/message.ts";
import { BASE_TIME, change, messages } from "./_contract_fixtures.ts";

/**
 * Makes PostgreSQL itself count the store's deletes: a statement-level trigger appends one row
 * per `delete` statement on `messages`, with the number of rows that statement removed. With
 * `failFrom`, the statement with that (0-based) number raises instead, rolling itself back.
 */
async function auditDeletes(schema: string, failFrom?: number): Promise<void> {
  const fail = failFrom === undefined
    ? ""
    : `if (select count(*) from delete_audit) >= ${failFrom} then
         raise exception 'refused by the test';
       end if;`;
  await query(databaseUrl, schema, (sql) =>
    sql.unsafe(`
      create table delete_audit (statement serial primary key, removed integer not null);
      create function audit_delete() returns trigger language plpgsql as $$
      begin
        ${fail}
        insert into delete_audit (removed) select count(*) from removed;
        return null;
      end $$;
      create trigger messages_delete_audit after delete on messages
        referencing old table as removed for each statement execute function audit_delete();
    `));
}

/** Rows removed by each delete statement so far, in order. */
async function deletes(schema: string): Promise<number[]> {
  const rows = await query(
    databaseUrl,
    schema,
    (sql) => sql<{ removed: number }[]>`select removed from delete_audit order by statement`,
  );
  return rows.map((row) => row.removed);
}

async function countRows(schema: string): Promise<number> {
  const [row] = await query(
    databaseUrl,
    schema,
    (sql) => sql<{ count: number }[]>`select count(*)::int as count from messages`,
  );
  return row?.count ?? -1;
}

storeTest(
  "PostgresStore.prune({ olderThan }) removes 12,000 rows in statements of at most 5,000",
  async (store, schema) => {
    const saved = messages("a", 12_100);
    await store.saveBatch(saved);
    await auditDeletes(schema);

    const removed = await store.prune({ olderThan: new Date(BASE_TIME + 12_000) });

    assert.equal(removed, 12_000);
    assert.deepEqual(await deletes(schema), [5_000, 5_000, 2_000], "three bounded deletes");
    assert.equal(await countRows(schema), 100);
    assert.deepEqual(await store.history("a", { limit: 500 }), saved.slice(12_000));
    assert.equal(await store.prune({ olderThan: new Date(BASE_TIME + 12_000) }), 0);
    assert.deepEqual(
      await deletes(schema),
      [5_000, 5_000, 2_000, 0],
      "one short delete, then done",
    );
  },
);

storeTest(
  "PostgresStore.prune({ maxPerRoom }) pages through rooms and deletes in batches",
  async (store, schema) => {
    const small = Array.from({ length: 250 }, (_, i) => messages(`room-${i}`, 2));
    const big = messages("big", 450);
    await store.saveBatch([...small.flat(), ...big]);
    await auditDeletes(schema);

    // 251 rooms in pages of 100; the big room's 449 extra rows in deletes of 100 at most.
    const removed = await store.prune({ maxPerRoom: 1 });

    assert.equal(removed, 250 + 449);
    const statements = await deletes(schema);
    assert.ok(statements.every((rows) => rows <= 100), `deletes of ${statements.join(", ")}`);
    assert.equal(statements.reduce((sum, rows) => sum + rows, 0), 699);
    assert.deepEqual(statements.filter((rows) => rows > 1), [100, 100, 100, 100, 49]);
    assert.deepEqual(await store.history("big", { limit: 10 }), big.slice(-1));
    for (const [i, saved] of small.entries()) {
      assert.deepEqual(await store.history(`room-${i}`, { limit: 10 }), saved.slice(-1));
    }
    assert.equal(await countRows(schema), 251);
  },
  { pruneBatchSize: 100 },
);

storeTest(
  "PostgresStore.prune() that fails after a batch throws PruneIncompleteError with the count",
  async (store, schema) => {
    await store.saveBatch(messages("a", 300));
    await auditDeletes(schema, 1); // the second delete statement raises

    const error = await store.prune({ olderThan: new Date(BASE_TIME + 1_000) }).then(
      () => assert.fail("the prune succeeded"),
      (error: unknown) => error,
    );

    assert.ok(error instanceof PruneIncompleteError, `got ${error}`);
    assert.equal(error.code, "prune_incomplete");
    assert.equal(error.removed, 100);
    assert.ok(error.cause instanceof postgres.PostgresError);
    assert.equal(error.cause.code, "P0001");
    assert.equal(await countRows(schema), 200, "the first batch stays removed, the second not");
  },
  { pruneBatchSize: 100 },
);

storeTest(
  "PostgresStore.prune() that fails before removing anything throws the database's error",
  async (store, schema) => {
    await store.saveBatch(messages("a", 10));
    await auditDeletes(schema, 0);
    await assert.rejects(store.prune({ maxPerRoom: 5 }), postgres.PostgresError);
    assert.equal(await countRows(schema), 10);
  },
);

storeTest(
  "PostgresStore.prune() removes the change rows and reactions of removed messages, and old change rows",
  async (store, schema) => {
    const old = messages("a", 250); // BASE_TIME + i
    const kept = messages("a", 10).map((message) => ({
      ...message,
      timestamp: new Date(BASE_TIME + 10_000).toISOString(),
    }));
    const react = (target: ChatMessage, user: string) =>
      change("a", user, { kind: "react", target: target.seq, reaction: "👍", on: true });
    // Changes of kept messages made long ago: their rows go by age, their effect stays.
    const oldEdit = {
      ...change("a", "ann", { kind: "edit", target: kept[0]?.seq ?? 0 }, "edited long ago"),
      timestamp: new Date(BASE_TIME).toISOString(),
    };
    await store.saveBatch([...old, ...kept]);
    await store.saveBatch([...old.map((message) => react(message, "bob")), oldEdit]);
    await store.saveBatch(kept.map((message) => react(message, "carol")));
    await auditDeletes(schema);

    const removed = await store.prune({ olderThan: new Date(BASE_TIME + 5_000) });

    assert.equal(removed, 250, "messages are counted, not their changes");
    assert.deepEqual(await deletes(schema), [100, 100, 50], "bounded deletes of messages");
    const [left] = await query(
      databaseUrl,
      schema,
      (sql) =>
        sql<{ events: number; reactions: number }[]>`
        select (select count(*) from room_events)::int as events,
          (select count(*) from reactions)::int as reactions`,
    );
    assert.deepEqual({ ...left }, { events: 10, reactions: 10 }, "carol's reactions to kept ones");
    assert.equal(
      (await store.history("a", { limit: 1, afterSeq: 0 }))[0]?.content,
      "edited long ago",
    );
  },
  { pruneBatchSize: 100 },
);
