/**
 * The in-memory message store used when `DATABASE_URL` is unset.
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
import { estimatedBytes, MemoryRoom } from "./memory_room.ts";
import {
  checkRetentionPolicy,
  type MessageRepository,
  type RetentionPolicy,
} from "./repository.ts";
import { byCodePoint } from "./message_state.ts";

export { estimatedBytes };

/** Bounds of a {@linkcode MemoryStore}. */
export interface MemoryStoreOptions {
  /** Items (messages and changes) kept per room; the oldest are forgotten first. */
  readonly maxPerRoom: number;
  /** Rooms kept; the room written least recently is forgotten first. */
  readonly maxRooms: number;
  /**
   * Estimated bytes of all items kept (see {@linkcode estimatedBytes}); beyond it the oldest
   * items of the room written least recently are forgotten first. Unbounded when absent.
   */
  readonly maxBytes?: number;
}

/**
 * Keeps each room's newest items in seq order, bounded per room and in rooms. A room whose
 * messages were all pruned keeps its sequence; a room forgotten whole (too many rooms) comes back
 * with a new epoch. Nothing survives a restart: every room gets a new epoch in the next run.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxPerRoom: 10_000, maxRooms: 10_000 });
 * await store.saveBatch(messages);
 * const latest = await store.history("general", { limit: 50 });
 * ```
 */
export class MemoryStore implements MessageRepository {
  readonly kind: string = "memory";
  readonly #options: MemoryStoreOptions;
  readonly #maxBytes: number;
  // Map order is recency of writes: re-inserting a room on every write makes the first key the
  // least recently written, which is the one evicted when there are too many rooms.
  readonly #rooms = new Map<string, MemoryRoom>();
  /** Per user, its read position per room (both in least recently reported order). */
  readonly #readPositions = new Map<string, Map<string, number>>();
  #bytes = 0;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    this.#maxBytes = options.maxBytes ?? Infinity;
  }

  /** Estimated bytes of the items kept (see {@linkcode estimatedBytes}). */
  get bytes(): number {
    return this.#bytes;
  }

  saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    for (const item of messages) {
      const room = this.#rooms.get(item.room) ?? this.#create(item.room);
      this.#rooms.delete(item.room);
      this.#rooms.set(item.room, room);
      const before = room.bytes;
      room.save(item);
      room.trim(this.#options.maxPerRoom);
      this.#bytes += room.bytes - before;
    }
    if (this.#bytes > this.#maxBytes) this.#shrink();
    return Promise.resolve();
  }

  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return Promise.resolve(this.#rooms.get(room)?.history(query) ?? []);
  }

  reactionsTo(room: string, seqs: readonly number[]): Promise<Map<number, MessageReactions>> {
    return Promise.resolve(this.#rooms.get(room)?.reactionsTo(seqs) ?? new Map());
  }

  openRoom(room: string): Promise<RoomSequence> {
    const history = this.#rooms.get(room) ?? this.#create(room);
    return Promise.resolve({ epoch: history.epoch, lastSeq: history.lastSeq });
  }

  roomSequence(room: string): Promise<RoomSequence | undefined> {
    const history = this.#rooms.get(room);
    return Promise.resolve(history && { epoch: history.epoch, lastSeq: history.lastSeq });
  }

  findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]> {
    return Promise.resolve(this.#rooms.get(room)?.findSent(keys) ?? []);
  }

  /** Nothing to release: no run after this one sees these rooms. */
  releaseRooms(): Promise<void> {
    return Promise.resolve();
  }

  saveReadPosition(room: string, user: string, seq: number): Promise<number> {
    let positions = this.#readPositions.get(user);
    if (!positions) {
      // Bounded like the rooms: the least recently reporting users are forgotten first.
      if (this.#readPositions.size >= this.#options.maxRooms) {
        this.#readPositions.delete(this.#readPositions.keys().next().value as string);
      }
      positions = new Map();
    }
    this.#readPositions.delete(user);
    this.#readPositions.set(user, positions);
    const stored = Math.max(positions.get(room) ?? 0, seq);
    positions.delete(room);
    positions.set(room, stored);
    if (positions.size > this.#options.maxRooms) {
      positions.delete(positions.keys().next().value as string);
    }
    return Promise.resolve(stored);
  }

  /** Counts each room's unread messages by walking its items after the read position. */
  unread(user: string, room?: string): Promise<UnreadCount[]> {
    const positions = [...this.#readPositions.get(user) ?? []]
      .filter(([name]) => room === undefined || name === room)
      .sort(([a], [b]) => byCodePoint(a, b));
    return Promise.resolve(positions.map(([name, readSeq]) => {
      const history = this.#rooms.get(name);
      return {
        room: name,
        readSeq,
        unread: history?.unreadAfter(readSeq, user) ?? 0,
        lastSeq: history?.lastSeq ?? 0,
      };
    }));
  }

  /**
   * Removes what `policy` says from every room, room by room; a room left empty keeps its
   * sequence. Changes of removed messages go with them, and changes older than `olderThan` too;
   * the count is of messages. Between rooms it lets other tasks run every
   * {@linkcode PRUNE_YIELD_EVERY} items, so a large store does not stall broadcasts.
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
    for (const name of [...this.#rooms.keys()]) {
      if (signal?.aborted) break;
      const room = this.#rooms.get(name);
      if (room === undefined) continue; // evicted while this yielded
      sinceYield += room.size;
      this.#measured(room, () => removed += room.prune(cutoffMs, policy.maxPerRoom));
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
    this.#readPositions.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }

  /** Runs `change` on `room`, keeping the store's byte count in step with the room's. */
  #measured(room: MemoryRoom, change: () => void): void {
    const before = room.bytes;
    change();
    this.#bytes += room.bytes - before;
  }

  #create(name: string): MemoryRoom {
    if (this.#rooms.size >= this.#options.maxRooms) this.#evictOldestRoom();
    const room = new MemoryRoom();
    this.#rooms.set(name, room);
    return room;
  }

  /** Forgets the oldest items of the least recently written rooms until under `maxBytes`. */
  #shrink(): void {
    for (const room of this.#rooms.values()) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#measured(room, () => room.shrink(this.#bytes - this.#maxBytes));
    }
  }

  #evictOldestRoom(): void {
    const oldest = this.#rooms.entries().next();
    if (oldest.done) return;
    const [name, room] = oldest.value;
    this.#rooms.delete(name);
    this.#bytes -= room.bytes;
  }
}

/** Items examined between two yields of {@linkcode MemoryStore.prune}. */
const PRUNE_YIELD_EVERY = 50_000;
