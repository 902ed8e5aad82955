/**
 * The one interface every message store implements: in memory, PostgreSQL, and test doubles.
 *
 * @module
 */

/** A chat message as it is broadcast and stored. `id` is a UUIDv7: sorting ids sorts by time. */
export interface ChatMessage {
  /** Lower-case UUIDv7, strictly increasing within a room. */
  readonly id: string;
  /** Room name. */
  readonly room: string;
  /** User name of the sender. */
  readonly sender: string;
  /** Message text, already trimmed and validated. */
  readonly content: string;
  /** ISO-8601 UTC time at which the server accepted the message. */
  readonly timestamp: string;
}

/** Which page of a room's history to read. Ids are compared as strings (UUIDv7 order). */
export interface HistoryQuery {
  /** Page size, at least 1. */
  readonly limit: number;
  /** Only messages with an id lower than this; without `after`, the page is the newest such. */
  readonly before?: string;
  /** Only messages with an id greater than this; the page is the oldest such (forward paging). */
  readonly after?: string;
}

/**
 * Stores messages and reads them back by room.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * const store: MessageRepository = new MemoryStore({ maxPerRoom: 100, maxRooms: 10 });
 * await store.saveBatch([{ id: "0190...", room: "a", sender: "ann", content: "hi", timestamp: "..." }]);
 * const page = await store.history("a", { limit: 50 });
 * ```
 */
export interface MessageRepository {
  /** A name for logs: which store is in use. */
  readonly kind: string;
  /**
   * Saves messages; saving a message whose id is already stored changes nothing, so a retried
   * batch never duplicates a row.
   *
   * @throws if the store cannot save the batch; no message of a failed batch may be half-saved
   * in a way a retry would duplicate.
   */
  saveBatch(messages: readonly ChatMessage[]): Promise<void>;
  /** Reads one page of a room's messages in ascending id order; an unknown room gives `[]`. */
  history(room: string, query: HistoryQuery): Promise<ChatMessage[]>;
  /** Whether the store answers right now; never throws. Serves `/readyz`. */
  ping(): Promise<boolean>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}
