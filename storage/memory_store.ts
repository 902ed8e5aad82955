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
  /**
   * Estimated bytes of all messages kept (see {@linkcode estimatedBytes}); beyond it the oldest
   * messages of the room written least recently are forgotten first. Unbounded when absent.
   */
  readonly maxBytes?: number;
}

/**
 * What a message costs the store, estimated from above: two bytes per character of its content
 * and sender (V8 keeps text with any non-Latin-1 character at two bytes per character) plus the
 * object, its id and timestamp (about 330 bytes measured for one-byte text).
 */
export function estimatedBytes(message: ChatMessage): number {
  return MESSAGE_OVERHEAD_BYTES + 2 * (message.content.length + message.sender.length);
}

const MESSAGE_OVERHEAD_BYTES = 360;

/** One room's messages, sorted by id, and their estimated bytes. */
interface RoomHistory {
  readonly messages: ChatMessage[];
  bytes: number;
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
  readonly #maxBytes: number;
  // Map order is recency of writes: re-inserting a room on every write makes the first key the
  // least recently written, which is the one evicted when there are too many rooms.
  readonly #rooms = new Map<string, RoomHistory>();
  #bytes = 0;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    this.#maxBytes = options.maxBytes ?? Infinity;
  }

  /** Estimated bytes of the messages kept (see {@linkcode estimatedBytes}). */
  get bytes(): number {
    return this.#bytes;
  }

  saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    for (const message of messages) this.#insert(message);
    if (this.#bytes > this.#maxBytes) this.#shrink();
    return Promise.resolve();
  }

  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const messages = this.#rooms.get(room)?.messages;
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
      const history = this.#rooms.get(room);
      if (history === undefined) continue; // evicted while this yielded
      sinceYield += history.messages.length;
      const gone = pruneRoom(history.messages, cutoffMs, policy.maxPerRoom);
      removed += gone.length;
      this.#forget(history, gone);
      if (history.messages.length === 0) this.#rooms.delete(room);
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
    this.#bytes = 0;
    return Promise.resolve();
  }

  #insert(message: ChatMessage): void {
    let history = this.#rooms.get(message.room);
    if (history) {
      this.#rooms.delete(message.room);
    } else {
      history = { messages: [], bytes: 0 };
      if (this.#rooms.size >= this.#options.maxRooms) this.#evictOldestRoom();
    }
    this.#rooms.set(message.room, history);
    const { messages } = history;
    const last = messages[messages.length - 1];
    if (last === undefined || last.id < message.id) {
      messages.push(message); // the common case: ids arrive in order
    } else {
      const at = lowerBound(messages, message.id);
      if (messages[at]?.id === message.id) return; // already stored: saving is idempotent
      messages.splice(at, 0, message);
    }
    const bytes = estimatedBytes(message);
    history.bytes += bytes;
    this.#bytes += bytes;
    if (messages.length > this.#options.maxPerRoom) {
      this.#forget(history, messages.splice(0, messages.length - this.#options.maxPerRoom));
    }
  }

  /** Forgets the oldest messages of the least recently written rooms until under `maxBytes`. */
  #shrink(): void {
    for (const [room, history] of this.#rooms) {
      if (this.#bytes <= this.#maxBytes) return;
      let count = 0;
      let freed = 0;
      while (count < history.messages.length && this.#bytes - freed > this.#maxBytes) {
        freed += estimatedBytes(history.messages[count] as ChatMessage);
        count++;
      }
      this.#forget(history, history.messages.splice(0, count));
      if (history.messages.length === 0) this.#rooms.delete(room);
    }
  }

  #forget(history: RoomHistory, gone: readonly ChatMessage[]): void {
    let bytes = 0;
    for (const message of gone) bytes += estimatedBytes(message);
    history.bytes -= bytes;
    this.#bytes -= bytes;
  }

  #evictOldestRoom(): void {
    const oldest = this.#rooms.entries().next();
    if (oldest.done) return;
    const [room, history] = oldest.value;
    this.#rooms.delete(room);
    this.#bytes -= history.bytes;
  }
}

/** Messages examined between two yields of {@linkcode MemoryStore.prune}. */
const PRUNE_YIELD_EVERY = 50_000;

/**
 * Applies a policy to one room's id-sorted messages in place and returns those it removed: first
 * those older than `cutoffMs`, then the oldest ids beyond `maxPerRoom`.
 */
function pruneRoom(
  messages: ChatMessage[],
  cutoffMs: number | undefined,
  maxPerRoom: number | undefined,
): ChatMessage[] {
  const gone: ChatMessage[] = [];
  if (cutoffMs !== undefined) {
    // Timestamps are parsed, not compared as text: "+010000-01-01T..." sorts before "2025-...".
    let kept = 0;
    for (const message of messages) {
      if (Date.parse(message.timestamp) >= cutoffMs) messages[kept++] = message;
      else gone.push(message);
    }
    messages.length = kept;
  }
  if (maxPerRoom !== undefined && messages.length > maxPerRoom) {
    // A loop, not push(...): a spread of this many arguments can overflow the stack.
    for (const message of messages.splice(0, messages.length - maxPerRoom)) gone.push(message);
  }
  return gone;
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
