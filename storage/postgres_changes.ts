/**
 * Edits, deletes and reactions in PostgreSQL: recording change items in `room_events`, applying
 * them to `messages` and `reactions`, and reading reactions back.
 *
 * @module
 */
import type postgres from "postgres";
import type { MessageReactions } from "../chat/message.ts";
import type { ChangeItem } from "./message_state.ts";

/**
 * Records `changes` and applies them, in one statement of the caller's transaction (after the
 * batch's messages were inserted, so that a target saved with its changes is found). Every step
 * works on the changes recorded now (a retry records none again), and each takes effect only over
 * older changes, so the order batches arrive in does not matter:
 * - a change whose seq a message holds is skipped, as a message whose seq a change holds is;
 * - per target, a delete wins over edits (`content` NULL, `deleted_at`, and every recorded edit
 *   of it loses its content); otherwise the newest edit applies if newer than `change_seq`;
 * - an edit of a deleted target (deleted before, or in this batch) is recorded without content;
 * - a reaction is upserted only over a lower `event_seq`, and only for a stored target.
 *
 * @example
 * ```ts
 * await sql.begin(async (tx) => {
 *   await insertMessages(tx, messages);
 *   await saveChanges(tx, changes);
 * });
 * ```
 * @throws {postgres.PostgresError} if PostgreSQL refuses the statement; the transaction fails.
 */
export async function saveChanges(
  sql: postgres.TransactionSql,
  changes: readonly ChangeItem[],
): Promise<void> {
  const c = columns(changes);
  await sql`
    with batch as (
      select * from unnest(
        ${c.rooms}::text[], ${c.seqs}::bigint[], ${c.ids}::uuid[], ${c.kinds}::text[],
        ${c.targets}::bigint[], ${c.users}::text[], ${c.contents}::text[], ${c.reactions}::text[],
        ${c.ons}::text[]::boolean[], ${c.times}::timestamptz[], ${c.clientIds}::text[]
      ) as b (room, seq, id, kind, target, username, content, reaction, "on", created_at, client_id)
    ), recorded as (
      insert into room_events
        (room, seq, id, kind, target, username, content, reaction, "on", created_at, client_id)
      select b.room, b.seq, b.id, b.kind, b.target, b.username,
        case when b.kind = 'edit'
          -- Not correlated: one hashed look-up per edit, not a scan of the batch.
          and (b.room, b.target) not in (select room, target from batch where kind = 'delete')
          and not exists (
            select 1 from messages m
            where m.room = b.room and m.seq = b.target and m.deleted_at is not null)
        then b.content end,
        b.reaction, b."on", b.created_at, b.client_id
      from batch b
      where not exists (select 1 from messages m where m.room = b.room and m.seq = b.seq)
      on conflict do nothing
      returning room, seq, kind, target, username, content, reaction, "on", created_at
    ), effects as (
      -- One update per message (a row may be updated once per statement).
      select distinct on (room, target) room, target, kind, seq, content, created_at
      from recorded where kind <> 'react'
      order by room, target, kind = 'delete' desc, seq desc
    ), applied as (
      update messages m set
        content = case when e.kind = 'delete' then null else e.content end,
        edited_at = case when e.kind = 'delete' then null else e.created_at end,
        deleted_at = case when e.kind = 'delete' then e.created_at end,
        change_seq = greatest(m.change_seq, e.seq)
      from effects e
      where m.room = e.room and m.seq = e.target and m.deleted_at is null
        and (e.kind = 'delete' or m.change_seq < e.seq)
    ), blanked as (
      update room_events r set content = null
      from (select distinct room, target from recorded where kind = 'delete') d
      where r.room = d.room and r.target = d.target and r.kind = 'edit' and r.content is not null
    ), reacted as (
      insert into reactions (room, target, username, reaction, "on", event_seq)
      select distinct on (room, target, username, reaction)
        room, target, username, reaction, "on", seq
      from recorded r
      where kind = 'react'
        and exists (select 1 from messages m where m.room = r.room and m.seq = r.target)
      order by room, target, username, reaction, seq desc
      on conflict (room, target, username, reaction) do update
        set "on" = excluded."on", event_seq = excluded.event_seq
        where reactions.event_seq < excluded.event_seq
    )
    select count(*) from recorded`;
}

/** The changes as one array per column, for `unnest`: one parameter per column, not per row. */
function columns(changes: readonly ChangeItem[]) {
  const c = {
    rooms: [] as string[],
    seqs: [] as number[],
    ids: [] as string[],
    kinds: [] as string[],
    targets: [] as number[],
    users: [] as string[],
    contents: [] as (string | null)[],
    reactions: [] as (string | null)[],
    // As text: postgres.js would send an array starting with a boolean as one boolean.
    ons: [] as ("t" | "f" | null)[],
    times: [] as string[],
    clientIds: [] as (string | null)[],
  };
  for (const item of changes) {
    const { change } = item;
    c.rooms.push(item.room);
    c.seqs.push(item.seq);
    c.ids.push(item.id);
    c.kinds.push(change.kind);
    c.targets.push(change.target);
    c.users.push(item.sender);
    c.contents.push(change.kind === "edit" ? item.content : null);
    c.reactions.push(change.kind === "react" ? change.reaction : null);
    c.ons.push(change.kind === "react" ? (change.on ? "t" : "f") : null);
    c.times.push(item.timestamp);
    c.clientIds.push(item.clientId ?? null);
  }
  return c;
}

/**
 * The reactions that are on for the messages at `seqs` of `room` that are stored and not
 * deleted, in one query: per message, reactions by the lowest `event_seq` among their users'
 * standing changes, users sorted by code point.
 *
 * @example
 * ```ts
 * const reactions = await selectReactions(sql, "general", [41, 42]);
 * ```
 */
export async function selectReactions(
  sql: postgres.Sql,
  room: string,
  seqs: readonly number[],
): Promise<Map<number, MessageReactions>> {
  const found = new Map<number, Map<string, string[]>>();
  if (seqs.length === 0) return found;
  const rows = await sql<{ target: string; reaction: string; users: string[] }[]>`
    select r.target, r.reaction, array_agg(r.username order by r.username collate "C") as users
    from reactions r
    join messages m on m.room = r.room and m.seq = r.target and m.deleted_at is null
    where r.room = ${room} and r.target = any(${seqs}::bigint[]) and r."on"
    group by r.target, r.reaction
    order by r.target, min(r.event_seq)`;
  for (const row of rows) {
    const seq = Number(row.target);
    let reactions = found.get(seq);
    if (!reactions) found.set(seq, reactions = new Map());
    reactions.set(row.reaction, row.users);
  }
  return found;
}
