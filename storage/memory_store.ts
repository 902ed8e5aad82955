/**
 * The in-memory message store used when `DATABASE_URL` is unset.
 *
 * @module
 */
import type { ChatMessage, HistoryQuery, MessageRepository } from "./repository.ts";

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
