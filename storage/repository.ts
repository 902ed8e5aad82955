/**
 * The one interface every message store implements: in memory, PostgreSQL, and test doubles.
 *
 * @module
 */
import type {
  ChatMessage,
  HistoryQuery,
  MessageReactions,
  RoomSequence,
  SentMessage,
  UnreadCount,
} from "../chat/message.ts";

/**
 * Which messages {@linkcode MessageRepository.prune} removes. The age rule applies first; the
 * count rule then keeps the newest `maxPerRoom` of what is left in each room. Without either
 * field nothing is removed.
 */
export interface RetentionPolicy {
  /** Removes every message whose `timestamp` is before this instant (one at it is kept). */
  readonly olderThan?: Date;
  /** Keeps only the newest (highest seq) this many messages of each room; an integer, at least 1. */
  readonly maxPerRoom?: number;
}

/**
 * A retention setting is out of range (`maxPerRoom` not a positive integer, an invalid date, a
 * non-positive interval); nothing was removed. `setting` names it.
 *
 * @example
 * ```ts
 * try {
 *   await store.prune({ maxPerRoom: 0 });
 * } catch (error) {
 *   if (error instanceof RetentionPolicyError) console.error(error.setting);
 * }
 * ```
 */
export class RetentionPolicyError extends RangeError {
  /** Stable code for logs. */
  readonly code = "invalid_retention_policy";
  /** The setting at fault, e.g. `maxPerRoom`. */
  readonly setting: string;

  /** `message` says what the setting must be. */
  constructor(setting: string, message: string) {
    super(`${setting} ${message}`);
    this.name = "RetentionPolicyError";
    this.setting = setting;
  }
}

/**
 * A prune failed after it had already removed rows (one batch of several timed out, say). The
 * removed rows stay removed; `removed` tells how many, so that a counter stays true. `cause` is
 * the failure.
 *
 * @example
 * ```ts
 * try {
 *   removedTotal += await store.prune(policy);
 * } catch (error) {
 *   if (error instanceof PruneIncompleteError) removedTotal += error.removed;
 *   else throw error;
 * }
 * ```
 */
export class PruneIncompleteError extends Error {
  /** Stable code for logs. */
  readonly code = "prune_incomplete";
  /** Rows removed before the failure. */
  readonly removed: number;

  /** `cause` is the error that stopped the prune. */
  constructor(removed: number, options: { cause: unknown }) {
    super(`prune failed after removing ${removed} messages`, options);
    this.name = "PruneIncompleteError";
    this.removed = removed;
  }
}

/**
 * Throws unless `policy` is one every store applies the same way; stores call it first.
 *
 * @example
 * ```ts
 * checkRetentionPolicy({ maxPerRoom: 1000 }); // fine
 * ```
 * @throws {RetentionPolicyError} naming the bad field.
 */
export function checkRetentionPolicy(policy: RetentionPolicy): void {
  const { olderThan, maxPerRoom } = policy;
  if (olderThan !== undefined && !Number.isFinite(olderThan.getTime())) {
    throw new RetentionPolicyError("olderThan", "must be a valid date");
  }
  if (maxPerRoom !== undefined && !(Number.isSafeInteger(maxPerRoom) && maxPerRoom >= 1)) {
    throw new RetentionPolicyError(
      "maxPerRoom",
      `must be an integer of at least 1, got ${maxPerRoom}`,
    );
  }
}

/**
 * Stores messages and reads them back by room.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * const store: MessageRepository = new MemoryStore({ maxPerRoom: 100, maxRooms: 10 });
 * await store.saveBatch([{ id: "0190...", room: "a", seq: 1, sender: "ann", content: "hi", timestamp: "..." }]);
 * const page = await store.history("a", { limit: 50 });
 * const removed = await store.prune({ olderThan: new Date(Date.now() - 30 * 86_400_000) });
 * ```
 */
export interface MessageRepository {
  /** A name for logs: which store is in use. */
  readonly kind: string;
  /**
   * Saves items (messages and changes) and raises each room's last seq to the highest saved.
   * Saving an item whose room and seq are already stored changes nothing (PostgreSQL also skips
   * a known message id), so a retried batch (or the same item saved by several instances) never
   * duplicates a row.
   *
   * A change is recorded (for replays) and applied to its target if the target is stored (the
   * caller saves a target before its changes): applying is idempotent and independent of the
   * order changes arrive in, each taking effect only over older changes (by seq):
   * - `edit`: the content and `editedAt` (the change's timestamp), unless the target is deleted;
   * - `delete`: the target becomes a tombstone: its content is removed from the store, and so is
   *   the content of every recorded edit of it; a later edit of it records no content;
   * - `react`: the sender's reaction is on or off.
   *
   * @throws if the store cannot save the batch; no item of a failed batch may be half-saved
   * in a way a retry would duplicate.
   */
  saveBatch(messages: readonly ChatMessage[]): Promise<void>;
  /**
   * Reads one page of a room's messages, each in its latest state, and with
   * {@linkcode HistoryQuery.changes} the change items of the window too (see
   * {@linkcode HistoryQuery}); an unknown room gives `[]`. A change item whose target is deleted
   * reads with content `""`.
   */
  history(room: string, query: HistoryQuery): Promise<ChatMessage[]>;
  /**
   * The reactions that are on for the messages at `seqs` of `room`: seq → reaction → users
   * (sorted). Seqs without any are left out.
   */
  reactionsTo(room: string, seqs: readonly number[]): Promise<Map<number, MessageReactions>>;
  /**
   * The room's epoch and last stored seq, for a sequencer about to hand out seqs. A room never
   * seen gets a new epoch. A room that another run of the store opened and did not release
   * ({@linkcode MessageRepository.releaseRooms}) gets a new epoch too: that run may have handed
   * out seqs it never stored, and a seq a client saw must not name another message in the same
   * epoch. The store remembers that this run opened the room.
   */
  openRoom(room: string): Promise<RoomSequence>;
  /** The room's epoch and last stored seq, if the room has an epoch; never creates one. */
  roomSequence(room: string): Promise<RoomSequence | undefined>;
  /**
   * The stored messages of `room` that `keys` name by sender and client id (at most one each:
   * a sender's client id is unique in a room).
   */
  findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]>;
  /**
   * Moves `user`'s read position in `room` to `seq`, never backwards (a lower seq changes
   * nothing). @returns the position now stored.
   */
  saveReadPosition(room: string, user: string, seq: number): Promise<number>;
  /**
   * `user`'s read positions, one per room it ever reported one in (only `room`'s when given),
   * sorted by room name, each with its unread count: the stored messages after it that others
   * sent and that are not deleted.
   */
  unread(user: string, room?: string): Promise<UnreadCount[]>;
  /**
   * Says that every seq this run handed out is stored: the rooms it opened keep their epochs
   * when the next run opens them. Called after a clean shutdown only.
   */
  releaseRooms(): Promise<void>;
  /**
   * Removes the messages `policy` says to and returns how many it removed. Large removals go in
   * bounded steps, so writers and readers are never held up for long. When `signal` aborts, the
   * prune stops at its next step and returns what it removed so far.
   *
   * @throws {RetentionPolicyError} if the policy is out of range; nothing is removed.
   * @throws {PruneIncompleteError} if it fails after removing some rows (they stay removed).
   * @throws if it fails before removing any, with the store's own error.
   */
  prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number>;
  /** Whether the store answers right now; never throws. Serves `/readyz`. */
  ping(): Promise<boolean>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}
