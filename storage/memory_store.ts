/**
 * The in-memory message store used when `DATABASE_URL` is unset.
 *
 * @module
 */
import {
  type ChatMessage,
  checkRetentionPolicy,
  type HistoryQuery,
  type MessageRepository,
  type RetentionPolicy,
} from "./repository.ts";

/** Bounds of a {@linkcode MemoryStore}. */
export interface MemoryStoreOptions {
  /** Messages kept per room; the oldest are forgotten first. */
  readonly maxPerRoom: number;
  /** Rooms kept; the room written least recently is forgotten first. */
  readonly maxRooms: number;
}

/**
 * Keeps each room's newest messages in an array sorted by id, bounded per room and in rooms.
 * Nothing survives a restart.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxPerRoom: 10_000, maxRooms: 10_000 });
 * await store.saveBatch(messages);
 * const latest = await store.history("general", { limit: 50 });
 * ```
 */
export class MemoryStore implements MessageRepository {
  readonly kind = "memory";
  readonly #options: MemoryStoreOptions;
  // Map order is recency of writes: re-inserting a room on every write makes the first key the
  // least recently written, which is the one evicted when there are too many rooms.
  readonly #rooms = new Map<string, ChatMessage[]>();

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
  }

  saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    for (const message of messages) this.#insert(message);
    return Promise.resolve();
  }

  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const messages = this.#rooms.get(room);
    if (!messages) return Promise.resolve([]);
    const end = query.before === undefined ? messages.length : lowerBound(messages, query.before);
    if (query.after !== undefined) {
      const start = upperBound(messages, query.after);
      return Promise.resolve(messages.slice(start, Math.min(start + query.limit, end)));
    }
    return Promise.resolve(messages.slice(Math.max(0, end - query.limit), end));
  }

  /**
   * Removes what `policy` says from every room, room by room; a room left empty is forgotten.
   * Between rooms it lets other tasks run every {@linkcode PRUNE_YIELD_EVERY} messages, so a
   * large store does not stall broadcasts while it is pruned.
   *
   * @example
   * ```ts
   * const removed = await store.prune({ olderThan: new Date(Date.now() - 86_400_000) });
   * ```
   * @throws {RetentionPolicyError} if the policy is out of range.
   */
  async prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number> {
    checkRetentionPolicy(policy);
    const cutoffMs = policy.olderThan?.getTime();
    let removed = 0;
    let sinceYield = 0;
    // A snapshot of the names: rooms written while this yields are pruned next time.
    for (const room of [...this.#rooms.keys()]) {
      if (signal?.aborted) break;
      const messages = this.#rooms.get(room);
      if (messages === undefined) continue; // evicted while this yielded
      sinceYield += messages.length;
      removed += pruneRoom(messages, cutoffMs, policy.maxPerRoom);
      if (messages.length === 0) this.#rooms.delete(room);
      if (sinceYield >= PRUNE_YIELD_EVERY) {
        sinceYield = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
    return removed;
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    this.#rooms.clear();
    return Promise.resolve();
  }

  #insert(message: ChatMessage): void {
    let messages = this.#rooms.get(message.room);
    if (messages) {
      this.#rooms.delete(message.room);
    } else {
      messages = [];
      if (this.#rooms.size >= this.#options.maxRooms) this.#evictOldestRoom();
    }
    this.#rooms.set(message.room, messages);
    const last = messages[messages.length - 1];
    if (last === undefined || last.id < message.id) {
      messages.push(message); // the common case: ids arrive in order
    } else {
      const at = lowerBound(messages, message.id);
      if (messages[at]?.id === message.id) return; // already stored: saving is idempotent
      messages.splice(at, 0, message);
    }
    if (messages.length > this.#options.maxPerRoom) {
      messages.splice(0, messages.length - this.#options.maxPerRoom);
    }
  }

  #evictOldestRoom(): void {
    const oldest = this.#rooms.keys().next();
    if (!oldest.done) this.#rooms.delete(oldest.value);
  }
}

/** Messages examined between two yields of {@linkcode MemoryStore.prune}. */
const PRUNE_YIELD_EVERY = 50_000;

/**
 * Applies a policy to one room's id-sorted messages in place and returns how many it removed:
 * first those older than `cutoffMs`, then the oldest ids beyond `maxPerRoom`.
 */
function pruneRoom(
  messages: ChatMessage[],
  cutoffMs: number | undefined,
  maxPerRoom: number | undefined,
): number {
  const before = messages.length;
  if (cutoffMs !== undefined) {
    // Timestamps are parsed, not compared as text: "+010000-01-01T..." sorts before "2025-...".
    let kept = 0;
    for (const message of messages) {
      if (Date.parse(message.timestamp) >= cutoffMs) messages[kept++] = message;
    }
    messages.length = kept;
  }
  if (maxPerRoom !== undefined && messages.length > maxPerRoom) {
    messages.splice(0, messages.length - maxPerRoom);
  }
  return before - messages.length;
}

/** Index of the first message whose id is >= `id`. */
function lowerBound(messages: readonly ChatMessage[], id: string): number {
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((messages[mid] as ChatMessage).id < id) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Index of the first message whose id is > `id`. */
function upperBound(messages: readonly ChatMessage[], id: string): number {
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((messages[mid] as ChatMessage).id <= id) low = mid + 1;
    else high = mid;
  }
  return low;
}
