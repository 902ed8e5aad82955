/**
 * Retention on PostgreSQL: which rows a {@linkcode RetentionPolicy} removes, deleted in bounded
 * statements so that no statement holds row locks or the table's I/O for long.
 *
 * @module
 */
import type postgres from "postgres";
import { PruneIncompleteError, type RetentionPolicy } from "./repository.ts";

type Sql = postgres.Sql;

/** Runs one statement on the store's current client, under the store's query timeout. */
export type RunStatement = <T>(statement: (sql: Sql) => Promise<T>) => Promise<T>;

/** Options of {@linkcode pruneInBatches}. */
export interface PruneOptions {
  /** Rows one delete statement removes at most; also rooms one listing statement reads. */
  readonly batchSize: number;
  /** Stops before the next statement once aborted. */
  readonly signal?: AbortSignal;
}

/**
 * Applies a (checked) policy: age first, then the per-room count. Every statement is bounded:
 * a delete removes at most `batchSize` messages (with their changes and reactions), a room
 * listing reads at most `batchSize` rooms, and finding a room's cut-off walks at most
 * `maxPerRoom + 1` index entries. Changes older than `olderThan` go too, in statements of at
 * most `batchSize`; the count returned is of messages.
 *
 * @example
 * ```ts
 * const removed = await pruneInBatches(run, { maxPerRoom: 10_000 }, { batchSize: 5_000 });
 * ```
 * @throws {PruneIncompleteError} if a statement fails after earlier ones removed rows.
 * @throws the statement's error if it fails before any row was removed.
 */
export async function pruneInBatches(
  run: RunStatement,
  policy: RetentionPolicy,
  options: PruneOptions,
): Promise<number> {
  const progress = { removed: 0 };
  try {
    const { olderThan, maxPerRoom } = policy;
    if (olderThan !== undefined) {
      await deleteInBatches(run, progress, options, (sql) => sql`created_at < ${olderThan}`);
      await deleteOldChanges(run, options, olderThan);
    }
    if (maxPerRoom !== undefined) await trimRooms(run, progress, { ...options, maxPerRoom });
  } catch (error) {
    if (progress.removed > 0) throw new PruneIncompleteError(progress.removed, { cause: error });
    throw error;
  }
  return progress.removed;
}

interface Progress {
  removed: number;
}

/**
 * Deletes the messages matching `where`, at most `batchSize` per statement, until a statement
 * removes fewer: then none are left (or another server is deleting the rest right now). The
 * same statement deletes the removed messages' change items and reactions.
 */
async function deleteInBatches(
  run: RunStatement,
  progress: Progress,
  options: PruneOptions,
  where: (sql: Sql) => postgres.PendingQuery<postgres.Row[]>,
): Promise<void> {
  const { batchSize, signal } = options;
  for (;;) {
    if (signal?.aborted) return;
    // `= any(array(...))`, not `in (...)`: the ids are picked first, along the index `where` fits,
    // then deleted through the primary key; with `in`, the planner may hash-join against a scan
    // of the whole table, once per batch. `skip locked`: two servers pruning at once take
    // different rows instead of waiting on each other. Inserts never conflict with a delete.
    const [result] = await run((sql) =>
      sql<{ removed: number }[]>`
        with gone as (
          delete from messages where id = any(array(
            select id from messages where ${where(sql)} limit ${batchSize} for update skip locked
          ))
          returning room, seq
        ), changes as (
          delete from room_events e using gone where e.room = gone.room and e.target = gone.seq
        ), reactions as (
          delete from reactions r using gone where r.room = gone.room and r.target = gone.seq
        )
        select count(*)::int as removed from gone`
    );
    const removed = result?.removed ?? 0;
    progress.removed += removed;
    if (removed < batchSize) return;
  }
}

/**
 * Deletes the change items older than `olderThan` (their effect on messages and reactions
 * stays), at most `batchSize` per statement, picked by `ctid` along the `created_at` index.
 */
async function deleteOldChanges(
  run: RunStatement,
  options: PruneOptions,
  olderThan: Date,
): Promise<void> {
  const { batchSize, signal } = options;
  for (;;) {
    if (signal?.aborted) return;
    const result = await run((sql) =>
      sql`
        delete from room_events where ctid = any(array(
          select ctid from room_events where created_at < ${olderThan}
          limit ${batchSize} for update skip locked
        ))`
    );
    if (result.count < batchSize) return;
  }
}

/**
 * Pages through the rooms; for each one finds the id of its newest message beyond the limit and
 * deletes from there down, in batches. A room at or under the limit costs one short index walk.
 */
async function trimRooms(
  run: RunStatement,
  progress: Progress,
  options: PruneOptions & { readonly maxPerRoom: number },
): Promise<void> {
  const { batchSize, maxPerRoom, signal } = options;
  let after: string | undefined;
  for (;;) {
    const rooms = await run((sql) => roomPage(sql, after, batchSize));
    for (const { room } of rooms) {
      if (signal?.aborted) return;
      const [edge] = await run((sql) =>
        sql<{ id: string }[]>`
          select id from messages where room = ${room}
          order by id desc offset ${maxPerRoom} limit 1`
      );
      if (edge === undefined) continue;
      // Ids are fixed here: messages written meanwhile are newer and out of reach.
      await deleteInBatches(
        run,
        progress,
        options,
        (sql) => sql`room = ${room} and id <= ${edge.id}`,
      );
    }
    const last = rooms[rooms.length - 1];
    if (last === undefined || rooms.length < batchSize) return;
    after = last.room;
  }
}

/**
 * Up to `size` distinct room names after `after`, in index order. A loose index scan: each step
 * is one probe of the `(room, id)` index for the next name, so a page costs `size` probes however
 * many messages the rooms hold (`select distinct` would read every row).
 */
function roomPage(sql: Sql, after: string | undefined, size: number) {
  const start = after === undefined ? sql`` : sql`where room > ${after}`;
  return sql<{ room: string }[]>`
    with recursive page (room, n) as (
      (select room, 1 from messages ${start} order by room limit 1)
      union all
      select next.room, page.n + 1 from page cross join lateral (
        select room from messages where room > page.room order by room limit 1
      ) next
      where page.n < ${size}
    )
    select room from page`;
}
