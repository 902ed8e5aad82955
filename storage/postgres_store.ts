/**
 * The PostgreSQL message store used when `DATABASE_URL` is set.
 *
 * @module
 */
import postgres from "postgres";
import type { Logger } from "../log/logger.ts";
import { errorCode } from "../log/error_code.ts";
import { pruneInBatches } from "./postgres_retention.ts";
import { migrate } from "./postgres_migrations.ts";
import { selectReactions } from "./postgres_changes.ts";
import { saveItems } from "./postgres_batch.ts";
import { selectPage, toItem } from "./postgres_history.ts";
import {
  type ChatMessage,
  type HistoryQuery,
  type MessageReactions,
  newEpoch,
  type RoomSequence,
  type SentMessage,
  type UnreadCount,
} from "../chat/message.ts";
import {
  checkRetentionPolicy,
  type MessageRepository,
  type RetentionPolicy,
} from "./repository.ts";

/** Options of {@linkcode PostgresStore.connect}. */
export interface PostgresStoreOptions {
  /** How long {@linkcode PostgresStore.connect} keeps retrying before it gives up. */
  readonly connectTimeoutMs: number;
  /**
   * Longest one call may take (a `saveBatch`, with changes its whole transaction; a `history`;
   * one statement of a `prune`; a `ping`); beyond it the client is replaced.
   */
  readonly batchTimeoutMs: number;
  /** Rows one delete of {@linkcode PostgresStore.prune} removes at most; 5000 by default. */
  readonly pruneBatchSize?: number;
  /** Schema holding the tables, created if missing; without it, the server's `search_path`. */
  readonly schema?: string;
  /** Gets retries, client replacements and notices; never query parameters. */
  readonly logger: Logger;
}

/**
 * PostgreSQL did not answer `select 1` before the connect timeout; `cause` is the last failure.
 *
 * @example
 * ```ts
 * try {
 *   await PostgresStore.connect(url, options);
 * } catch (error) {
 *   if (error instanceof DatabaseUnavailableError) Deno.exit(1);
 *   throw error;
 * }
 * ```
 */
export class DatabaseUnavailableError extends Error {
  /** Stable code for logs and exit reasons. */
  readonly code = "database_unavailable";
  /** Connection attempts made before giving up. */
  readonly attempts: number;

  /** `target` is the database URL with its password already redacted. */
  constructor(target: string, options: { attempts: number; elapsedMs: number; cause: unknown }) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(
      `database unavailable: ${target} did not answer in ${Math.round(options.elapsedMs)} ms ` +
        `(${options.attempts} attempts): ${reason.replace(/\s+/g, " ")}`,
      { cause: options.cause },
    );
    this.name = "DatabaseUnavailableError";
    this.attempts = options.attempts;
  }
}

/**
 * PostgreSQL answered and refused: the database or role does not exist, the password is wrong,
 * the role may not connect. Retrying cannot help, so connecting stops at the first refusal.
 */
export class DatabaseRefusedError extends Error {
  /** Stable code for logs and exit reasons. */
  readonly code = "database_refused";

  /** `target` is the database URL with its password already redacted. */
  constructor(target: string, cause: Error & { code: string }) {
    super(
      `database refused the connection to ${target}: ${
        cause.message.replace(/\s+/g, " ")
      } (${cause.code})`,
      { cause },
    );
    this.name = "DatabaseRefusedError";
  }
}

/**
 * Refusals that only a change of settings or of the database can cure: SQLSTATEs for a missing
 * database, bad credentials and missing privileges, and postgres.js's own authentication errors.
 */
const REFUSALS = new Set([
  "3D000", // invalid_catalog_name: the database does not exist
  "28000", // invalid_authorization_specification: no such role, or pg_hba.conf says no
  "28P01", // invalid_password
  "42501", // insufficient_privilege: e.g. no CONNECT on the database
  "SASL_SIGNATURE_MISMATCH",
  "AUTH_TYPE_NOT_IMPLEMENTED",
]);

function isRefusal(error: unknown): error is Error & { code: string } {
  return error instanceof Error && "code" in error && typeof error.code === "string" &&
    REFUSALS.has(error.code);
}

/**
 * A query took longer than its timeout. The store has already replaced its client, so retrying
 * the same call is safe: a batch that did reach the database is not stored twice.
 *
 * @example
 * ```ts
 * try {
 *   await store.saveBatch(batch);
 * } catch (error) {
 *   if (error instanceof StoreTimeoutError) retryLater(batch);
 *   else throw error;
 * }
 * ```
 */
export class StoreTimeoutError extends Error {
  /** Stable code for logs. */
  readonly code = "store_timeout";
  /** What timed out: `saveBatch`, `history`, `prune`, `ping`, `connect` or `migrate`. */
  readonly operation: string;
  /** The timeout that passed. */
  readonly timeoutMs: number;

  /** `operation` names the call that timed out. */
  constructor(operation: string, timeoutMs: number) {
    super(`${operation} did not finish within ${timeoutMs} ms`);
    this.name = "StoreTimeoutError";
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

type Sql = postgres.Sql;

const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 1_000;
const CLOSE_TIMEOUT_S = 5;
const PRUNE_BATCH_SIZE = 5_000;

/**
 * Stores messages in PostgreSQL through postgres.js, one multi-row insert per batch. Every query
 * has a timeout; after one passes the client is replaced, because postgres.js can leave queries
 * pending forever once its connection was cut.
 *
 * @example
 * ```ts
 * const store = await PostgresStore.connect(Deno.env.get("DATABASE_URL") ?? "", {
 *   connectTimeoutMs: 30_000,
 *   batchTimeoutMs: 5_000,
 *   logger,
 * });
 * await store.saveBatch(messages);
 * const latest = await store.history("general", { limit: 50 });
 * await store.close();
 * ```
 */
export class PostgresStore implements MessageRepository {
  readonly kind = "postgres";
  readonly #url: string;
  readonly #options: PostgresStoreOptions;
  // Clients given up on after a timeout, still ending; close() awaits them.
  readonly #retiring = new Set<Promise<void>>();
  /** This run, as the owner of the rooms it opens (see {@linkcode PostgresStore.openRoom}). */
  readonly #runId = crypto.randomUUID();
  #sql: Sql;
  #closed = false;

  private constructor(url: string, options: PostgresStoreOptions, sql: Sql) {
    this.#url = url;
    this.#options = options;
    this.#sql = sql;
  }

  /**
   * Connects, retrying with capped backoff, then applies the migrations not yet recorded in
   * `schema_migrations`. Servers starting together on one database take turns migrating.
   *
   * @example
   * ```ts
   * const store = await PostgresStore.connect("postgres://chat@127.0.0.1:5432/chat", {
   *   connectTimeoutMs: 30_000,
   *   batchTimeoutMs: 5_000,
   *   logger,
   * });
   * ```
   * @throws {DatabaseUnavailableError} if no `select 1` succeeds within `connectTimeoutMs`.
   * @throws {StoreTimeoutError} if migrating takes longer than `connectTimeoutMs`.
   * @throws {postgres.PostgresError} if a migration fails; nothing of it is applied.
   */
  static async connect(url: string, options: PostgresStoreOptions): Promise<PostgresStore> {
    const sql = await connectWithRetry(url, options);
    try {
      const timeoutMs = options.connectTimeoutMs;
      const applied = await settleWithin(migrate(sql, options.schema), {
        operation: "migrate",
        timeoutMs,
      });
      for (const migration of applied) {
        options.logger.info("store.migrated", { version: migration.version, name: migration.name });
      }
    } catch (error) {
      await retire(sql, options.logger);
      throw error;
    }
    return new PostgresStore(url, options, sql);
  }

  /**
   * Inserts the batch's messages with one statement (one parameter per column, whatever the
   * batch's size) that also raises the rooms' `last_seq` to the batch's highest seqs; rows whose
   * id or room and seq are already stored are skipped, so a retry never duplicates a row. A
   * batch with changes is one transaction: the messages, then the changes recorded and applied
   * (see `postgres_changes.ts`). An empty batch sends no query.
   *
   * @example
   * ```ts
   * await store.saveBatch(batch); // safe to call again with the same batch after a failure
   * ```
   * @throws {StoreTimeoutError} if the batch takes longer than `batchTimeoutMs`.
   * @throws {postgres.PostgresError} if PostgreSQL refuses the batch.
   */
  async saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.#run("saveBatch", (sql) => saveItems(sql, messages));
  }

  /**
   * Reads one page of a room, ascending by seq (by id with protocol 1 id cursors), with the
   * paging rules of {@linkcode HistoryQuery}: messages in their latest state, and with `changes`
   * the change items of the window.
   *
   * @example
   * ```ts
   * const latest = await store.history("general", { limit: 50 });
   * const older = await store.history("general", { limit: 50, beforeSeq: latest[0]?.seq });
   * ```
   * @throws {StoreTimeoutError} if the query takes longer than `batchTimeoutMs`.
   * @throws {postgres.PostgresError} if a cursor is not a UUID.
   */
  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const rows = await this.#run("history", (sql) => selectPage(sql, room, query));
    return rows.map(toItem);
  }

  /**
   * Reads the reactions to the messages at `seqs` with one query (none for no seqs).
   *
   * @throws {StoreTimeoutError} if the query takes longer than `batchTimeoutMs`.
   */
  async reactionsTo(room: string, seqs: readonly number[]): Promise<Map<number, MessageReactions>> {
    return await this.#run("reactionsTo", (sql) => selectReactions(sql, room, seqs));
  }

  /**
   * Takes the room for this run in one statement: a new room gets a new epoch; a room that
   * another run took and did not release (it stopped uncleanly, and may have handed out seqs it
   * never stored) gets a new epoch too; otherwise the epoch stays. `lastSeq` is the last stored.
   *
   * @example
   * ```ts
   * const { epoch, lastSeq } = await store.openRoom("general");
   * ```
   * @throws {StoreTimeoutError} if the statement takes longer than `batchTimeoutMs`.
   */
  async openRoom(room: string): Promise<RoomSequence> {
    const rows = await this.#run("openRoom", (sql) =>
      sql<{ epoch: string; last_seq: string }[]>`
        insert into rooms (room, epoch, last_seq, owner) values (${room}, ${newEpoch()}, 0, ${this.#runId})
        on conflict (room) do update set
          epoch = case when rooms.owner is null or rooms.owner = excluded.owner
            then rooms.epoch else excluded.epoch end,
          owner = excluded.owner
        returning epoch, last_seq`);
    return toSequence(rows[0]);
  }

  /**
   * Reads the room's epoch and last stored seq; `undefined` for a room never written nor opened.
   *
   * @throws {StoreTimeoutError} if the query takes longer than `batchTimeoutMs`.
   */
  async roomSequence(room: string): Promise<RoomSequence | undefined> {
    const rows = await this.#run(
      "roomSequence",
      (sql) =>
        sql<{ epoch: string; last_seq: string }[]>`
        select epoch, last_seq from rooms where room = ${room}`,
    );
    return rows[0] && toSequence(rows[0]);
  }

  /**
   * Finds the room's messages with these senders' client ids, along the unique index.
   *
   * @throws {StoreTimeoutError} if the query takes longer than `batchTimeoutMs`.
   */
  async findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]> {
    if (keys.length === 0) return [];
    const senders = keys.map((key) => key.sender);
    const clientIds = keys.map((key) => key.clientId);
    const rows = await this.#run(
      "findSent",
      (sql) =>
        sql<{ sender: string; client_id: string; id: string; seq: string }[]>`
        select sender, client_id, id, seq from messages
        where room = ${room} and client_id is not null
          and (sender, client_id) in (
            select * from unnest(${senders}::text[], ${clientIds}::text[]))`,
    );
    return rows.map((row) => ({
      sender: row.sender,
      clientId: row.client_id,
      id: row.id,
      seq: Number(row.seq),
    }));
  }

  /**
   * Moves the read position forward only, in one upsert.
   *
   * @throws {StoreTimeoutError} if the statement takes longer than `batchTimeoutMs`.
   */
  async saveReadPosition(room: string, user: string, seq: number): Promise<number> {
    const rows = await this.#run(
      "saveReadPosition",
      (sql) =>
        sql<{ seq: string }[]>`
        insert into read_positions (room, username, seq) values (${room}, ${user}, ${seq})
        on conflict (room, username) do update
          set seq = greatest(read_positions.seq, excluded.seq)
        returning seq`,
    );
    return Number(rows[0]?.seq ?? seq);
  }

  /**
   * Reads the user's read positions with one query: each unread count walks the room's
   * `(room, seq)` index from the read position on.
   *
   * @throws {StoreTimeoutError} if the query takes longer than `batchTimeoutMs`.
   */
  async unread(user: string, room?: string): Promise<UnreadCount[]> {
    const rows = await this.#run(
      "unread",
      (sql) =>
        sql<{ room: string; read_seq: string; last_seq: string; unread: string }[]>`
        select p.room, p.seq as read_seq, coalesce(r.last_seq, 0) as last_seq,
          (select count(*) from messages m
            where m.room = p.room and m.seq > p.seq and m.sender <> p.username
              and m.deleted_at is null) as unread
        from read_positions p left join rooms r on r.room = p.room
        where p.username = ${user} ${room === undefined ? sql`` : sql`and p.room = ${room}`}
        order by p.room collate "C"`,
    );
    return rows.map((row) => ({
      room: row.room,
      readSeq: Number(row.read_seq),
      unread: Number(row.unread),
      lastSeq: Number(row.last_seq),
    }));
  }

  /**
   * Releases the rooms this run opened, so the next run keeps their epochs. Call it only once
   * every seq this run handed out is stored.
   *
   * @throws {StoreTimeoutError} if the statement takes longer than `batchTimeoutMs`.
   */
  async releaseRooms(): Promise<void> {
    await this.#run(
      "releaseRooms",
      (sql) => sql`update rooms set owner = null where owner = ${this.#runId}`,
    );
  }

  /**
   * Removes what `policy` says with many short statements, never one long one: each delete
   * removes at most `pruneBatchSize` messages (`delete ... where id = any(array(select ... limit
   * N))`), with their change rows and reactions, and has the query timeout; change rows older
   * than `olderThan` go in deletes of at most `pruneBatchSize` too. Rooms over `maxPerRoom` are
   * found a page of rooms at a time along the `(room, id)` index. Servers pruning together skip
   * each other's locked rows. The count is of messages.
   *
   * @example
   * ```ts
   * const removed = await store.prune({ olderThan: new Date(Date.now() - 30 * 86_400_000) });
   * ```
   * @throws {RetentionPolicyError} if the policy is out of range; no query is sent.
   * @throws {PruneIncompleteError} if a statement fails after earlier ones removed rows.
   * @throws {StoreTimeoutError} if a statement takes longer than `batchTimeoutMs` before any row
   * was removed (after that, as the cause of a `PruneIncompleteError`).
   */
  async prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number> {
    checkRetentionPolicy(policy);
    return await pruneInBatches((statement) => this.#run("prune", statement), policy, {
      batchSize: this.#options.pruneBatchSize ?? PRUNE_BATCH_SIZE,
      signal,
    });
  }

  /**
   * Tells whether PostgreSQL answers `select 1` within `batchTimeoutMs`; a timeout replaces the
   * client, as for any query.
   *
   * @example
   * ```ts
   * const ready = await store.ping(); // for /readyz
   * ```
   * @throws never: every failure answers `false`.
   */
  async ping(): Promise<boolean> {
    try {
      await this.#run("ping", (sql) => sql`select 1`);
      return true;
    } catch (error) {
      this.#options.logger.debug("store.ping_failed", { code: errorCode(error) });
      return false;
    }
  }

  /**
   * Ends the client, giving running queries up to 5 s, and awaits clients replaced earlier.
   *
   * @example
   * ```ts
   * await store.close();
   * ```
   * @throws never: a client that does not end in time has its sockets destroyed.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#sql.end({ timeout: CLOSE_TIMEOUT_S }), ...this.#retiring]);
  }

  async #run<T>(operation: string, query: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.#sql;
    const timeoutMs = this.#options.batchTimeoutMs;
    try {
      return await settleWithin(query(sql), { operation, timeoutMs });
    } catch (error) {
      if (error instanceof StoreTimeoutError) this.#replace(sql, operation);
      throw error;
    }
  }

  #replace(failed: Sql, operation: string): void {
    if (this.#closed || this.#sql !== failed) return; // a concurrent timeout replaced it already
    this.#sql = createClient(this.#url, this.#options);
    this.#options.logger.warn("store.client_replaced", { operation });
    const ending = retire(failed, this.#options.logger);
    this.#retiring.add(ending);
    ending.then(() => this.#retiring.delete(ending));
  }
}

function createClient(url: string, options: PostgresStoreOptions): Sql {
  const { logger, schema } = options;
  return postgres(url, {
    connect_timeout: options.connectTimeoutMs / 1000,
    // postgres.js prints notices to the console by default ("relation already exists, skipping").
    onnotice: (notice) => logger.debug("store.notice", { code: notice.code }),
    ...(schema !== undefined && { connection: { search_path: quoteIdentifier(schema) } }),
  });
}

async function connectWithRetry(url: string, options: PostgresStoreOptions): Promise<Sql> {
  const { logger } = options;
  const started = performance.now();
  const deadline = started + options.connectTimeoutMs;
  let delayMs = RETRY_BASE_MS;
  let cause: unknown;
  for (let attempt = 1;; attempt++) {
    const sql = createClient(url, options);
    const timeoutMs = Math.max(1, deadline - performance.now());
    try {
      await settleWithin(sql`select 1`, { operation: "connect", timeoutMs });
      return sql;
    } catch (error) {
      await retire(sql, logger);
      if (isRefusal(error)) throw new DatabaseRefusedError(redact(url), error);
      // Connection errors (refused, reset, DNS) quote no data: their message says what happened.
      logger.warn("store.connect_failed", {
        attempt,
        code: errorCode(error),
        reason: error instanceof Error ? error.message : undefined,
      });
      // The last attempt is often cut short by the deadline; the refusal before it says more.
      if (!(error instanceof StoreTimeoutError) || cause === undefined) cause = error;
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) {
        const elapsedMs = performance.now() - started;
        throw new DatabaseUnavailableError(redact(url), { attempts: attempt, elapsedMs, cause });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(delayMs, remainingMs)));
      delayMs = Math.min(delayMs * 2, RETRY_MAX_MS);
    }
  }
}

/**
 * Rejects with {@linkcode StoreTimeoutError} once `timeoutMs` passes; the timer never outlives
 * the race. An abandoned query that fails later is observed by the race, so it is not unhandled.
 */
async function settleWithin<T>(
  pending: Promise<T>,
  deadline: { operation: string; timeoutMs: number },
): Promise<T> {
  const { operation, timeoutMs } = deadline;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(operation, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([pending, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ends a client at once; bounded, because `timeout: 0` destroys its sockets instead of waiting. */
function retire(sql: Sql, logger: Logger): Promise<void> {
  return sql.end({ timeout: 0 }).catch((error) => {
    logger.debug("store.end_failed", { code: errorCode(error) });
  });
}

function toSequence(row: { epoch: string; last_seq: string } | undefined): RoomSequence {
  if (!row) throw new Error("rooms statement returned no row");
  return { epoch: row.epoch, lastSeq: Number(row.last_seq) };
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function redact(url: string): string {
  if (!URL.canParse(url)) return "(unparsable database URL)";
  const parsed = new URL(url);
  if (parsed.password !== "") parsed.password = "***";
  return parsed.href;
}
