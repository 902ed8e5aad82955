/**
 * Messages taken and not yet stored, per room, in seq order.
 *
 * @module
 */
import type { ChatMessage } from "../chat/message.ts";

/** A window of seqs, as `/history` and replays ask for it. */
export interface SeqWindow {
  readonly afterSeq?: number;
  readonly beforeSeq?: number;
  readonly limit: number;
  /** The oldest of the window (`true`) or the newest (`false`), oldest first either way. */
  readonly oldestFirst: boolean;
}

/**
 * One room's held messages: an array in seq order read by binary search, so a read of a window
 * costs O(log N + limit) however many messages an outage piled up, not a scan and a sort of all
 * of them. Settled messages are removed lazily and the array compacted once half of it is.
 */
class RoomHeld {
  /** Seq order; settled entries stay until the next compaction. */
  #order: Entry[] = [];
  /** The live entry of each id: an entry is live only if it is the one here. */
  readonly #live = new Map<string, Entry>();

  get size(): number {
    return this.#live.size;
  }

  has(id: string): boolean {
    return this.#live.has(id);
  }

  add(message: ChatMessage): void {
    // A fresh entry each time: a settled copy of the same message left in the order is not it.
    const entry = { message };
    this.#live.set(message.id, entry);
    const last = this.#order.at(-1);
    // Rooms hand out seqs in order, so this is a push but for a message of another instance
    // that overtook one of this instance's.
    if (!last || last.message.seq < message.seq) this.#order.push(entry);
    else this.#order.splice(firstAbove(this.#order, message.seq - 1), 0, entry);
  }

  delete(id: string): boolean {
    if (!this.#live.delete(id)) return false;
    if (this.#live.size === 0) this.#order = [];
    else if (this.#order.length > 2 * this.#live.size + 16) {
      this.#order = this.#order.filter((entry) => this.#isLive(entry));
    }
    return true;
  }

  newestSeq(): number {
    for (let i = this.#order.length - 1; i >= 0; i--) {
      const entry = this.#order[i] as Entry;
      if (this.#isLive(entry)) return entry.message.seq;
    }
    return 0;
  }

  window(window: SeqWindow): ChatMessage[] {
    const start = firstAbove(this.#order, window.afterSeq ?? 0);
    const end = window.beforeSeq === undefined
      ? this.#order.length
      : firstAbove(this.#order, window.beforeSeq - 1);
    const found: ChatMessage[] = [];
    if (window.oldestFirst) {
      for (let i = start; i < end && found.length < window.limit; i++) this.#collect(i, found);
      return found;
    }
    for (let i = end - 1; i >= start && found.length < window.limit; i--) this.#collect(i, found);
    return found.reverse();
  }

  /** The live message at `seq`, if any. */
  at(seq: number): ChatMessage | undefined {
    for (let i = firstAbove(this.#order, seq - 1); i < this.#order.length; i++) {
      const entry = this.#order[i] as Entry;
      if (entry.message.seq !== seq) return undefined;
      if (this.#isLive(entry)) return entry.message;
    }
    return undefined;
  }

  /** Every live message, in seq order. */
  all(): ChatMessage[] {
    return this.#order.filter((entry) => this.#isLive(entry)).map((entry) => entry.message);
  }

  #isLive(entry: Entry): boolean {
    return this.#live.get(entry.message.id) === entry;
  }

  #collect(index: number, into: ChatMessage[]): void {
    const entry = this.#order[index] as Entry;
    if (this.#isLive(entry)) into.push(entry.message);
  }
}

/** A held message in a room's order. */
interface Entry {
  readonly message: ChatMessage;
}

/**
 * Held messages of every room, by seq window and by id.
 *
 * @example
 * ```ts
 * const held = new HeldMessages();
 * held.add(message);
 * held.window("general", { afterSeq: 41, limit: 50, oldestFirst: true });
 * held.delete(message);
 * ```
 */
export class HeldMessages {
  readonly #rooms = new Map<string, RoomHeld>();

  /** Whether `message` (by room and id) is held. */
  has(message: Pick<ChatMessage, "room" | "id">): boolean {
    return this.#rooms.get(message.room)?.has(message.id) ?? false;
  }

  add(message: ChatMessage): void {
    let room = this.#rooms.get(message.room);
    if (!room) this.#rooms.set(message.room, room = new RoomHeld());
    room.add(message);
  }

  /** @returns whether it was held. */
  delete(message: Pick<ChatMessage, "room" | "id">): boolean {
    const room = this.#rooms.get(message.room);
    if (!room?.delete(message.id)) return false;
    if (room.size === 0) this.#rooms.delete(message.room);
    return true;
  }

  /** At most `limit` held messages of `room` in the window, oldest first. */
  window(room: string, window: SeqWindow): ChatMessage[] {
    return this.#rooms.get(room)?.window(window) ?? [];
  }

  /** The held message of `room` at `seq`, if any. */
  at(room: string, seq: number): ChatMessage | undefined {
    return this.#rooms.get(room)?.at(seq);
  }

  /** How many messages of `room` are held. */
  size(room: string): number {
    return this.#rooms.get(room)?.size ?? 0;
  }

  /** Every held message of `room`, in seq order. */
  all(room: string): ChatMessage[] {
    return this.#rooms.get(room)?.all() ?? [];
  }

  /** The newest seq held for `room`; 0 if none. */
  newestSeq(room: string): number {
    return this.#rooms.get(room)?.newestSeq() ?? 0;
  }
}

/** The index of the first entry with a seq above `seq` (binary search over seq order). */
function firstAbove(order: readonly Entry[], seq: number): number {
  let low = 0;
  let high = order.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((order[mid] as Entry).message.seq <= seq) low = mid + 1;
    else high = mid;
  }
  return low;
}
