/**
 * Reading a room's history from PostgreSQL: messages in their latest state, and with
 * {@linkcode HistoryQuery.changes} the change items of the same seq window.
 *
 * @module
 */
import type postgres from "postgres";
import type { ChatMessage, HistoryQuery, MessageChange } from "../chat/message.ts";

type Sql = postgres.Sql;

/** A row of a page: a message (`kind` NULL) or a change item. */
export interface PageRow {
  readonly id: string;
  readonly room: string;
  readonly seq: string;
  readonly sender: string;
  readonly content: string | null;
  readonly created_at: Date;
  readonly client_id: string | null;
  readonly reply_to: string | null;
  readonly edited_at: Date | null;
  readonly deleted: boolean;
  readonly kind: MessageChange["kind"] | null;
  readonly target: string | null;
  readonly reaction: string | null;
  readonly on: boolean | null;
}

/**
 * Selects one page. Protocol 1 id cursors page messages in id order along `(room, id)`;
 * otherwise seq order along `(room, seq)` of messages and, with `changes`, of `room_events`:
 * each table gives at most `limit` rows of the window, and the union is cut to `limit`.
 *
 * @example
 * ```ts
 * const rows = await selectPage(sql, "general", { limit: 50, afterSeq: 10, changes: true });
 * const items = rows.map(toItem);
 * ```
 */
export function selectPage(sql: Sql, room: string, query: HistoryQuery): Promise<PageRow[]> {
  const byId = query.after !== undefined || query.before !== undefined;
  const key = sql(byId ? "id" : "seq");
  const after = byId ? query.after : query.afterSeq;
  const before = byId ? query.before : query.beforeSeq;
  const window = sql`
    room = ${room} ${after === undefined ? sql`` : sql`and ${key} > ${after}`}
    ${before === undefined ? sql`` : sql`and ${key} < ${before}`}`;
  // The oldest page after a cursor; otherwise the newest, read descending (backwards along the
  // index), then turned ascending.
  const direction = after === undefined ? sql`desc` : sql``;
  const messages = sql`
    select ${messageColumns(sql)} from messages where ${window}
    order by ${key} ${direction} limit ${query.limit}`;
  if (byId || query.changes !== true) {
    return sql<PageRow[]>`select * from (${messages}) page order by ${key}`;
  }
  return sql<PageRow[]>`
    select * from (
      select * from (
        (${messages})
        union all
        (select ${eventColumns(sql)} from room_events where ${window}
          order by seq ${direction} limit ${query.limit})
      ) items order by seq ${direction} limit ${query.limit}
    ) page order by seq`;
}

function messageColumns(sql: Sql) {
  return sql`
    id, room, seq, sender, content, created_at, client_id, reply_to, edited_at,
    deleted_at is not null as deleted, null::text as kind, null::bigint as target,
    null::text as reaction, null::boolean as "on"`;
}

function eventColumns(sql: Sql) {
  return sql`
    id, room, seq, username as sender, content, created_at, client_id, null::bigint as reply_to,
    null::timestamptz as edited_at, false as deleted, kind, target, reaction, "on"`;
}

/**
 * A page row as an item: a message in its latest state (`editedAt`, or `deleted` with content
 * `""`), or a change item (content `""` but for an edit whose target is not deleted).
 */
export function toItem(row: PageRow): ChatMessage {
  const { id, room, sender } = row;
  const item = {
    id,
    room,
    seq: Number(row.seq),
    sender,
    content: row.content ?? "",
    timestamp: row.created_at.toISOString(),
    ...(row.client_id !== null && { clientId: row.client_id }),
  };
  if (row.kind !== null) return { ...item, change: toChange(row, row.kind) };
  return {
    ...item,
    ...(row.reply_to !== null && { replyTo: Number(row.reply_to) }),
    ...(row.edited_at !== null && { editedAt: row.edited_at.toISOString() }),
    ...(row.deleted && { deleted: true as const }),
  };
}

function toChange(row: PageRow, kind: MessageChange["kind"]): MessageChange {
  const target = Number(row.target);
  if (kind !== "react") return { kind, target };
  return { kind, target, reaction: row.reaction ?? "", on: row.on === true };
}
