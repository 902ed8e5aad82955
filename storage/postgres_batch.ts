/**
 * Saving a batch of items to PostgreSQL: messages with one `unnest` insert, and a batch with
 * changes as one transaction that also records and applies them.
 *
 * @module
 */
import type postgres from "postgres";
import { type ChatMessage, isMessage } from "../chat/message.ts";
import { isChange } from "./message_state.ts";
import { saveChanges } from "./postgres_changes.ts";

type Sql = postgres.Sql | postgres.TransactionSql;

/**
 * Saves `items` (at least one): messages alone with one statement (two when a copy lost its
 * client id); with changes, in one transaction, the messages first, then the changes recorded
 * and applied (see {@linkcode saveChanges}). Every room's `last_seq` is raised to its highest
 * seq in the batch, changes included: a seq handed out is never handed out again.
 *
 * @example
 * ```ts
 * await saveItems(sql, batch); // safe to call again with the same batch after a failure
 * ```
 * @throws {postgres.PostgresError} if PostgreSQL refuses the batch.
 */
export async function saveItems(sql: postgres.Sql, items: readonly ChatMessage[]): Promise<void> {
  const changes = items.filter(isChange);
  const lastSeqs = highestSeqs(items);
  if (changes.length === 0) {
    await saveMessages(sql, items, lastSeqs);
    return;
  }
  const messages = items.filter(isMessage);
  await sql.begin(async (tx) => {
    await saveMessages(tx, messages, lastSeqs);
    await saveChanges(tx, changes);
  });
}

/** Per room, the highest seq of `items`: what the rooms' `last_seq` is raised to. */
function highestSeqs(items: readonly ChatMessage[]): RoomSeqs {
  const highest = new Map<string, number>();
  for (const { room, seq } of items) highest.set(room, Math.max(highest.get(room) ?? 0, seq));
  return { rooms: [...highest.keys()], seqs: [...highest.values()] };
}

/** Rooms and the seq to raise each one's `last_seq` to, as `unnest` takes them. */
interface RoomSeqs {
  readonly rooms: readonly string[];
  readonly seqs: readonly number[];
}

const NO_ROOMS: RoomSeqs = { rooms: [], seqs: [] };

/**
 * Inserts the messages and raises `last_seqs`, then stores again, without its client id, each
 * message skipped for its client id alone: a copy that went out as a message of its own (the
 * look-up of its client id failed), so that its seq is no hole in the room. Rows stored before
 * (a retry, another instance) stay skipped.
 */
async function saveMessages(
  sql: Sql,
  messages: readonly ChatMessage[],
  lastSeqs: RoomSeqs,
): Promise<void> {
  const known = new Set(await insertMessages(sql, messages, lastSeqs));
  const copies = messages
    .filter((message) => message.clientId !== undefined && !known.has(message.id))
    .map(({ clientId: _clientId, ...message }) => message);
  if (copies.length > 0) await insertMessages(sql, copies, NO_ROOMS);
}

/**
 * One statement: the rows and their rooms' last seq commit together. Rooms are locked in name
 * order, so concurrent batches touching the same rooms cannot deadlock. A row whose seq a change
 * item holds is skipped like one whose seq a message holds.
 *
 * @returns the ids of the rows now stored: inserted, or stored before by id.
 */
async function insertMessages(
  sql: Sql,
  messages: readonly ChatMessage[],
  lastSeqs: RoomSeqs,
): Promise<string[]> {
  const ids = messages.map((message) => message.id);
  const rows = await sql<{ id: string }[]>`
    with saved as (
      insert into messages (id, room, seq, sender, content, created_at, client_id, reply_to)
      select b.* from unnest(
        ${ids}::uuid[], ${messages.map((m) => m.room)}::text[],
        ${messages.map((m) => m.seq)}::bigint[], ${messages.map((m) => m.sender)}::text[],
        ${messages.map((m) => m.content)}::text[],
        ${messages.map((m) => m.timestamp)}::timestamptz[],
        ${messages.map((m) => m.clientId ?? null)}::text[],
        ${messages.map((m) => m.replyTo ?? null)}::bigint[]
      ) as b (id, room, seq, sender, content, created_at, client_id, reply_to)
      where not exists (select 1 from room_events e where e.room = b.room and e.seq = b.seq)
      on conflict do nothing
      returning id
    ), last_seqs as (
      insert into rooms (room, epoch, last_seq)
      select room, md5(random()::text || room), last_seq
      from unnest(${lastSeqs.rooms}::text[], ${lastSeqs.seqs}::bigint[]) as l (room, last_seq)
      order by room
      on conflict (room) do update set last_seq = greatest(rooms.last_seq, excluded.last_seq)
    )
    select id from saved
    union all
    select id from messages where id = any(${ids}::uuid[])`;
  return rows.map((row) => row.id);
}
