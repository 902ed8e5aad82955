import assert from "node:assert/strict";
import postgres from "postgres";
import { silentLogger } from "../../log/logger.ts";
import {
  DatabaseUnavailableError,
  PostgresStore,
  StoreTimeoutError,
} from "../../storage/postgres_store.ts";
import { dropSchema, freshSchemaName, query } from "../support/postgres_schema.ts";
import { databaseUrl, ignore, openStore, storeTest } from "./_postgres_fixture.ts";
import { repositoryContract, SANITIZERS } from "./repository_contract.ts";
import type { ChatMessage } from "../../chat/message.ts";
import { BASE_TIME, change, ids, messages } from "./_contract_fixtures.ts";
import { tombstone } from "../../storage/message_state.ts";

repositoryContract("PostgresStore", async () => {
  const schema = freshSchemaName("test_store");
  try {
    const { store, dispose } = await openStore(schema);
    return {
      repository: store,
      dispose: () => dispose().finally(() => dropSchema(databaseUrl, schema)),
    };
  } catch (error) {
    await dropSchema(databaseUrl, schema);
    throw error;
  }
}, { ignore });

// Needs no database: runs whether or not TEST_DATABASE_URL is set.
Deno.test(
  "PostgresStore.connect() to a closed port throws DatabaseUnavailableError in time",
  SANITIZERS,
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    listener.close();
    const connectTimeoutMs = 600;
    const started = performance.now();
    const error = await PostgresStore.connect(`postgres://chat:s3cret-pw@127.0.0.1:${port}/test`, {
      connectTimeoutMs,
      batchTimeoutMs: 1_000,
      logger: silentLogger,
    }).then(() => assert.fail("connected to a closed port"), (error: unknown) => error);
    const elapsedMs = performance.now() - started;

    assert.ok(error instanceof DatabaseUnavailableError, `got ${error}`);
    assert.equal(error.code, "database_unavailable");
    assert.ok(elapsedMs >= connectTimeoutMs, `gave up after ${elapsedMs} ms`);
    assert.ok(elapsedMs < connectTimeoutMs + 1_000, `took ${elapsedMs} ms`);
    assert.ok(error.attempts > 1, "it retried");
    assert.ok(error.cause instanceof Error);
    assert.match(error.message, /ECONNREFUSED/, "the cause is the refusal, not the deadline");
    assert.ok(!error.message.includes("s3cret-pw"), error.message);
    assert.match(
      error.message,
      new RegExp(`postgres://chat:\\*\\*\\*@127\\.0\\.0\\.1:${port}/test`),
    );
    assert.doesNotMatch(error.message, /\n/);
  },
);

Deno.test({
  name: "PostgresStore.connect() migrates once, even when two servers start together",
  ignore,
  ...SANITIZERS,
  async fn() {
    const schema = freshSchemaName("test_store");
    try {
      const migrated: unknown[] = [];
      const logger = {
        ...silentLogger,
        info: (event: string, fields?: Record<string, unknown>) => {
          if (event === "store.migrated") migrated.push(fields?.version);
        },
      };
      const [first, second] = await Promise.all([
        openStore(schema, { logger }),
        openStore(schema, { logger }),
      ]);
      assert.deepEqual(migrated, [1, 2, 3, 4, 5, 6, 7], "each migration applied is logged once");
      const third = await openStore(schema, { logger });
      assert.equal(migrated.length, 7, "a current schema logs no migration");
      const batch = messages("a", 3);
      await first.store.saveBatch(batch);
      assert.deepEqual(await third.store.history("a", { limit: 10 }), batch);
      await Promise.all([first.dispose(), second.dispose(), third.dispose()]);

      const versions = await query(
        databaseUrl,
        schema,
        (sql) => sql<{ version: number }[]>`select version from schema_migrations order by version`,
      );
      assert.deepEqual(versions.map((row) => row.version), [1, 2, 3, 4, 5, 6, 7]);
      const indexes = await query(databaseUrl, schema, (sql) =>
        sql<{ indexdef: string }[]>`
          select indexdef from pg_indexes where schemaname = ${schema} and tablename = 'messages'`);
      assert.ok(indexes.some((row) => row.indexdef.endsWith("(room, id)")), "index on (room, id)");
      assert.ok(indexes.some((row) => row.indexdef.endsWith("(created_at)")), "on created_at");
      assert.ok(
        indexes.some((row) => /^CREATE UNIQUE INDEX .* \(room, seq\)$/.test(row.indexdef)),
        "(room, seq) is unique",
      );
      assert.ok(
        indexes.some((row) =>
          /^CREATE UNIQUE INDEX .* \(room, sender, client_id\) WHERE \(client_id IS NOT NULL\)$/
            .test(row.indexdef)
        ),
        "a sender's client id is unique in a room",
      );
    } finally {
      await dropSchema(databaseUrl, schema);
    }
  },
});

/** The stored form of a message before migration 3: no seq. */
function legacyRow(message: ChatMessage) {
  const { id, room, sender, content, timestamp } = message;
  return { id, room, sender, content, created_at: timestamp };
}

/**
 * Creates `schema` exactly as a release with only the migrations up to `version` (1 or 2) left
 * it, holding `rows` (at least one).
 */
async function legacySchema(schema: string, version: 1 | 2, rows: readonly ChatMessage[]) {
  await query(databaseUrl, schema, async (sql) => {
    await sql`create schema ${sql(schema)}`;
    await sql`create table schema_migrations (
      version integer primary key, applied_at timestamptz not null default now())`;
    await sql`create table messages (id uuid primary key, room text not null,
      sender text not null, content text not null, created_at timestamptz not null)`;
    await sql`create index messages_room_id on messages (room, id)`;
    await sql`insert into schema_migrations (version) values (1)`;
    if (version === 2) {
      await sql`create index messages_created_at on messages (created_at)`;
      await sql`insert into schema_migrations (version) values (2)`;
    }
    // One statement, rows in the order given (a heap keeps that order for a sequential scan).
    return await sql`insert into messages ${sql(rows.map(legacyRow))}`;
  });
}

Deno.test({
  name:
    "PostgresStore.connect() migrates a schema left at version 1 to the current version, keeping rows",
  ignore,
  ...SANITIZERS,
  async fn() {
    const schema = freshSchemaName("test_store");
    // The only message of its room: migration 3 numbers it 1.
    const kept = { ...messages("kept", 1)[0] as ChatMessage, seq: 1 };
    try {
      await legacySchema(schema, 1, [kept]);
      const { store, dispose } = await openStore(schema);
      try {
        assert.deepEqual(await store.history("kept", { limit: 10 }), [kept]);
      } finally {
        await dispose();
      }
      const versions = await query(
        databaseUrl,
        schema,
        (sql) => sql<{ version: number }[]>`select version from schema_migrations order by version`,
      );
      assert.deepEqual(versions.map((row) => row.version), [1, 2, 3, 4, 5, 6, 7]);
      const indexes = await query(databaseUrl, schema, (sql) =>
        sql<{ indexname: string }[]>`
          select indexname from pg_indexes where schemaname = ${schema} and tablename = 'messages'
          order by indexname`);
      assert.deepEqual(indexes.map((row) => row.indexname), [
        "messages_created_at",
        "messages_pkey",
        "messages_room_id",
        "messages_room_sender_client_id",
        "messages_room_seq",
      ]);
      // Rows from before client ids have none: they are never taken for a re-send.
      const clientIds = await query(
        databaseUrl,
        schema,
        (sql) => sql<{ client_id: string | null }[]>`select client_id from messages`,
      );
      assert.deepEqual(clientIds.map((row) => row.client_id), [null]);
    } finally {
      await dropSchema(databaseUrl, schema);
    }
  },
});

Deno.test({
  name:
    "PostgresStore.connect() migration 3 numbers each room's rows in id order and keeps their epoch",
  ignore,
  ...SANITIZERS,
  async fn() {
    const schema = freshSchemaName("test_store");
    // Seqs 1.. in id order per room; the rows go in shuffled, timestamps running backwards.
    const numbered = (room: string, count: number) =>
      ids(count).map((id, i) => ({
        id,
        room,
        seq: i + 1,
        sender: "ann",
        content: `${room} ${i}`,
        timestamp: new Date(BASE_TIME - i * 1_000).toISOString(),
      }));
    const a = numbered("a", 6);
    const b = numbered("b", 3);
    const shuffled = [a[3], b[2], a[0], a[5], b[0], a[1], a[4], b[1], a[2]] as ChatMessage[];
    try {
      await legacySchema(schema, 2, shuffled);
      const { store, dispose } = await openStore(schema);
      try {
        assert.deepEqual(await store.history("a", { limit: 10 }), a);
        assert.deepEqual(await store.history("b", { limit: 10 }), b);
        assert.deepEqual(await store.history("a", { limit: 2, afterSeq: 3 }), a.slice(3, 5));
        const rooms = await query(
          databaseUrl,
          schema,
          (sql) =>
            sql<{ room: string; last_seq: string; owner: string | null }[]>`
            select room, last_seq::text, owner from rooms order by room`,
        );
        assert.deepEqual(rooms.map((row) => ({ ...row })), [
          { room: "a", last_seq: "6", owner: null },
          { room: "b", last_seq: "3", owner: null },
        ]);
        // The migrated sequence is no other run's: the first run to open it keeps its epoch.
        const sequence = await store.roomSequence("a");
        assert.equal(sequence?.lastSeq, 6);
        assert.deepEqual(await store.openRoom("a"), sequence);
      } finally {
        await dispose();
      }
    } finally {
      await dropSchema(databaseUrl, schema);
    }
  },
});

storeTest(
  "PostgresStore.saveBatch() writes a batch of 500 with one insert",
  async (store, schema) => {
    const batch = messages("a", 500);
    await store.saveBatch(batch);
    // Statements outside a transaction commit one by one: one transaction id means one insert.
    const counts = await query(
      databaseUrl,
      schema,
      (sql) =>
        sql<{ rows: number; inserts: number }[]>`
        select count(*)::int as rows, count(distinct xmin::text)::int as inserts from messages`,
    );
    assert.deepEqual(counts.map((row) => ({ ...row })), [{ rows: 500, inserts: 1 }]);
    assert.deepEqual(await store.history("a", { limit: 500 }), batch);
  },
);

storeTest(
  "PostgresStore.saveBatch() stores a batch of 10,000 (the largest PERSIST_BATCH_SIZE) whole",
  async (store, schema) => {
    // More rows than a VALUES list could bind (65535 parameters): one parameter per column
    // (`unnest`) takes them all, and every row lands.
    const batch = messages("a", 10_000);
    await store.saveBatch(batch);
    const [count] = await query(
      databaseUrl,
      schema,
      (sql) => sql<{ rows: number }[]>`select count(*)::int as rows from messages`,
    );
    assert.equal(count?.rows, 10_000);
    assert.equal((await store.roomSequence("a"))?.lastSeq, batch.at(-1)?.seq);
  },
);

storeTest(
  "PostgresStore queries past batchTimeoutMs throw StoreTimeoutError, then work again",
  async (store, schema) => {
    const batch = messages("a", 3);
    const locker = postgres(databaseUrl, { max: 1, connection: { search_path: schema } });
    try {
      const reserved = await locker.reserve();
      await reserved`begin`;
      await reserved`lock table messages in access exclusive mode`;
      const started = performance.now();
      await assert.rejects(store.saveBatch(batch), StoreTimeoutError);
      const elapsedMs = performance.now() - started;
      assert.ok(elapsedMs >= 290 && elapsedMs < 1_500, `timed out after ${elapsedMs} ms`);
      await assert.rejects(store.history("a", { limit: 10 }), (error: unknown) => {
        assert.ok(error instanceof StoreTimeoutError);
        assert.equal(error.code, "store_timeout");
        assert.equal(error.operation, "history");
        return true;
      });
      assert.equal(await store.ping(), true, "the replacement client answers");
      await reserved`rollback`;
      reserved.release();
    } finally {
      await locker.end({ timeout: 5 });
    }
    await store.saveBatch(batch);
    assert.deepEqual(await store.history("a", { limit: 10 }), batch);
  },
  { batchTimeoutMs: 300 },
);

storeTest(
  "PostgresStore.ping() answers true while the database answers, false once closed",
  async (store) => {
    assert.equal(await store.ping(), true);
    await store.close();
    assert.equal(await store.ping(), false);
  },
);

storeTest("PostgresStore.saveBatch([]) sends no query", async (store) => {
  await store.close();
  await store.saveBatch([]); // a query would reject: the client has ended
  await assert.rejects(store.saveBatch(messages("a", 1)));
});

storeTest(
  "PostgresStore.saveBatch() keeps a copy that reused a client id as a message of its own, without the client id",
  async (store) => {
    const [first, copy] = messages("copies", 2).map((message) => ({
      ...message,
      sender: "ann",
      clientId: "c1",
    })) as [ChatMessage, ChatMessage];
    await store.saveBatch([first]);
    // The copy went out with a seq of its own (its client id could not be looked up): its seq
    // must be no hole, and the client id keeps naming the first.
    await store.saveBatch([copy]);
    await store.saveBatch([first, copy]); // a retry changes nothing
    const page = await store.history("copies", { limit: 10 });
    assert.deepEqual(page.map((message) => [message.seq, message.clientId]), [
      [first.seq, "c1"],
      [copy.seq, undefined],
    ]);
    assert.deepEqual(await store.findSent("copies", [{ sender: "ann", clientId: "c1" }]), [
      { sender: "ann", clientId: "c1", id: first.id, seq: first.seq },
    ]);
  },
);

storeTest(
  "PostgresStore.saveBatch() of a delete leaves the content in no row of messages or room_events",
  async (store, schema) => {
    const secret = `secret-${crypto.randomUUID()}`;
    const [kept, gone] = messages("a", 2) as [ChatMessage, ChatMessage];
    const target = { ...gone, content: `${secret} original` };
    const edit = (content: string) =>
      change("a", target.sender, { kind: "edit", target: target.seq }, content);
    await store.saveBatch([kept, target, edit(`${secret} edit 1`)]);
    await store.saveBatch([edit(`${secret} edit 2`)]);
    await store.saveBatch([change("a", "mod", { kind: "delete", target: target.seq })]);
    await store.saveBatch([edit(`${secret} after the delete`)]); // recorded without content
    // The whole row as text: no column of any row holds the text.
    const holding = await query(databaseUrl, schema, (sql) =>
      sql<{ rows: number }[]>`
        select (select count(*) from messages m where m::text like ${`%${secret}%`})::int
          + (select count(*) from room_events e where e::text like ${`%${secret}%`})::int as rows`);
    assert.deepEqual(holding.map((row) => row.rows), [0]);
    const [row] = await query(
      databaseUrl,
      schema,
      (sql) =>
        sql<{ content: string | null; deleted: boolean; edited: boolean }[]>`
        select content, deleted_at is not null as deleted, edited_at is not null as edited
        from messages where seq = ${target.seq}`,
    );
    assert.deepEqual({ ...row }, { content: null, deleted: true, edited: false });
    const edits = await query(databaseUrl, schema, (sql) =>
      sql<{ content: string | null }[]>`
        select content from room_events where kind = 'edit' order by seq`);
    assert.deepEqual(edits.map((edit) => edit.content), [null, null, null]);
    assert.deepEqual(await store.history("a", { limit: 10 }), [kept, tombstone(target)]);
  },
);

storeTest(
  "PostgresStore.saveBatch() of messages and 1,000 changes commits them in one transaction",
  async (store, schema) => {
    const saved = messages("a", 500);
    const changes = saved.flatMap((message) => [
      change("a", message.sender, { kind: "edit", target: message.seq }, `${message.content}!`),
      change("a", "bob", { kind: "react", target: message.seq, reaction: "👍", on: true }),
    ]);
    await store.saveBatch([...saved, ...changes]);
    const [counts] = await query(
      databaseUrl,
      schema,
      (sql) =>
        sql<{ events: number; reactions: number; edited: number; transactions: number }[]>`
        select (select count(*) from room_events)::int as events,
          (select count(*) from reactions)::int as reactions,
          (select count(*) from messages where edited_at is not null)::int as edited,
          (select count(distinct xmin::text) from (
            select xmin from messages union all select xmin from room_events
            union all select xmin from reactions) rows)::int as transactions`,
    );
    assert.deepEqual({ ...counts }, {
      events: 1_000,
      reactions: 500,
      edited: 500,
      transactions: 1,
    });
    assert.equal((await store.roomSequence("a"))?.lastSeq, changes.at(-1)?.seq);
  },
);
