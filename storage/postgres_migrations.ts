/**
 * The PostgreSQL schema, as an append-only list of migrations.
 *
 * @module
 */
import type postgres from "postgres";

/** One change of schema, applied once in its own transaction. */
export interface Migration {
  readonly version: number;
  /** What it does, for the log. */
  readonly name: string;
  apply(tx: postgres.TransactionSql): Promise<unknown>;
}

// Append only: a released migration is never edited; a change of schema is a new version.
export const MIGRATIONS: readonly Migration[] = [{
  version: 1,
  name: "messages table",
  async apply(tx) {
    await tx`
      create table messages (
        id uuid primary key,
        room text not null,
        sender text not null,
        content text not null,
        created_at timestamptz not null
      )`;
    // "Newest N of a room" walks this index backwards from the room's end; cursors seek into it.
    await tx`create index messages_room_id on messages (room, id)`;
  },
}, {
  version: 2,
  name: "index for retention by age",
  async apply(tx) {
    // Retention deletes `created_at < cutoff` in batches; without this index every batch would
    // scan the table. Building it blocks writes for as long as it takes: on a large table an
    // operator can first run `create index concurrently messages_created_at on messages
    // (created_at)`, which `if not exists` then keeps.
    await tx`create index if not exists messages_created_at on messages (created_at)`;
  },
}, {
  version: 3,
  name: "per-room sequence and rooms table",
  async apply(tx) {
    // Each room's sequence. Rows written before seqs existed are numbered in id order, which was
    // their order then. `owner` names the run that opened the room and has not released it.
    await tx`alter table messages add column seq bigint`;
    await tx`
      update messages set seq = numbered.seq
      from (select id, row_number() over (partition by room order by id) as seq from messages)
        as numbered
      where messages.id = numbered.id`;
    await tx`alter table messages alter column seq set not null`;
    await tx`create unique index messages_room_seq on messages (room, seq)`;
    await tx`
      create table rooms (
        room text primary key,
        epoch text not null,
        last_seq bigint not null default 0,
        owner text
      )`;
    await tx`
      insert into rooms (room, epoch, last_seq)
      select room, md5(random()::text || room), max(seq) from messages group by room`;
  },
}, {
  version: 4,
  name: "client ids of sent messages",
  async apply(tx) {
    // A sender's client id names one message per room, for as long as the row exists: a re-send
    // is found here, and a concurrent one cannot be stored twice.
    await tx`alter table messages add column client_id text`;
    await tx`
      create unique index messages_room_sender_client_id on messages (room, sender, client_id)
      where client_id is not null`;
  },
}, {
  version: 5,
  name: "replies",
  async apply(tx) {
    // The seq of the message of the same room a message answers; no foreign key: the answered
    // message may be pruned or deleted, and the reply keeps naming it.
    await tx`alter table messages add column reply_to bigint`;
  },
}, {
  version: 6,
  name: "read positions",
  async apply(tx) {
    // Where each user stopped reading each room: moved forward only (greatest), across devices
    // and instances.
    await tx`
      create table read_positions (
        room text not null,
        username text not null,
        seq bigint not null,
        primary key (username, room)
      )`;
  },
}, {
  version: 7,
  name: "edits, deletes and reactions",
  async apply(tx) {
    // A message's latest state: `content` is NULL once deleted (the text is gone from the row);
    // `change_seq` is the seq of the latest edit or delete applied, so that an older change
    // arriving late changes nothing.
    await tx`alter table messages alter column content drop not null`;
    await tx`alter table messages add column edited_at timestamptz`;
    await tx`alter table messages add column deleted_at timestamptz`;
    await tx`alter table messages add column change_seq bigint not null default 0`;
    // Each change is an item of the room's sequence, kept for replays. An edit's `content` is
    // NULL once its target is deleted.
    await tx`
      create table room_events (
        room text not null,
        seq bigint not null,
        id uuid not null,
        kind text not null check (kind in ('edit', 'delete', 'react')),
        target bigint not null,
        username text not null,
        content text,
        reaction text,
        "on" boolean,
        created_at timestamptz not null,
        client_id text,
        primary key (room, seq),
        check ((kind = 'react') = (reaction is not null and "on" is not null)),
        check (kind = 'edit' or content is null)
      )`;
    // A delete finds its target's edits here, and retention the changes of the messages it removes.
    await tx`create index room_events_room_target on room_events (room, target)`;
    await tx`create index room_events_created_at on room_events (created_at)`;
    // Each user's reaction to each message: on or off, as the change with the highest seq says.
    await tx`
      create table reactions (
        room text not null,
        target bigint not null,
        username text not null,
        reaction text not null,
        "on" boolean not null,
        event_seq bigint not null,
        primary key (room, target, username, reaction)
      )`;
  },
}];

/**
 * Applies the migrations not yet recorded in `schema_migrations`, in order. Servers starting
 * together on one database take turns.
 *
 * @returns the migrations this call applied (none when the schema is current).
 */
export async function migrate(sql: postgres.Sql, schema: string | undefined): Promise<Migration[]> {
  const applied: Migration[] = [];
  const lockKey = `chat-server.migrations.${schema ?? ""}`;
  for (const migration of MIGRATIONS) {
    await sql.begin(async (tx) => {
      // Held until commit: a second server starting now waits here, then finds the work done.
      await tx`select pg_advisory_xact_lock(hashtext(${lockKey}))`;
      if (schema !== undefined) await tx`create schema if not exists ${tx(schema)}`;
      await tx`
        create table if not exists schema_migrations (
          version integer primary key,
          applied_at timestamptz not null default now()
        )`;
      const done = await tx`select 1 from schema_migrations where version = ${migration.version}`;
      if (done.length > 0) return;
      await migration.apply(tx);
      await tx`insert into schema_migrations (version) values (${migration.version})`;
      applied.push(migration);
    });
  }
  return applied;
}
