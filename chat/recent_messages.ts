/**
 * A room's newest messages, already encoded, kept for replay to clients that resume.
 *
 * @module
 */
import type { MemoryBudget, Reclaimable } from "./memory_budget.ts";

/** One buffered message: its seq (the cursor), its id (protocol 1 cursors) and its frame. */
export interface RecentMessage {
  readonly seq: number;
  readonly id: string;
  readonly frame: string;
}

/** Estimated bytes of one entry besides its frame's characters (object, slot, id string). */
const ENTRY_OVERHEAD_BYTES = 160;

/** Estimated bytes an entry holds: two per character of its frame, plus the entry itself. */
export function recentBytes(message: RecentMessage): number {
  return 2 * message.frame.length + ENTRY_OVERHEAD_BYTES;
}

/**
 * A bounded queue of the newest messages in seq order. Adding is O(1) amortised; replay after a
 * cursor is a binary search and a copy. Seqs are ascending but may
 * have holes (a gap the cluster could not fill); a replay checks that.
 *
 * With a {@linkcode MemoryBudget}, its bytes count against the budget, and the budget may take
 * the oldest entries back when it runs short: a resume then reads them from the store.
 *
 * @example
 * ```ts
 * const recent = new RecentMessages(1000);
 * recent.add({ seq, id, frame });
 * const frames = recent.after(sinceSeq);
 * ```
 */
export class RecentMessages implements Reclaimable {
  readonly #capacity: number;
  readonly #budget: MemoryBudget | undefined;
  /** Entries from `#head` on, oldest first; those before it were dropped. */
  #ring: (RecentMessage | undefined)[] = [];
  #head = 0;
  #bytes = 0;

  /** @throws {RangeError} if `capacity` is not a positive integer. */
  constructor(capacity: number, budget?: MemoryBudget) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
    this.#budget = budget;
  }

  /** Entries held. */
  get size(): number {
    return this.#ring.length - this.#head;
  }

  /** Estimated bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The oldest seq held; `undefined` when empty. */
  get oldestSeq(): number | undefined {
    return this.#at(0)?.seq;
  }

  /**
   * Adds a message, evicting the oldest when full.
   *
   * @throws {RangeError} if `message.seq` is not greater than every seq held: the room
   * delivers in seq order, so anything else is a bug upstream.
   */
  add(message: RecentMessage): void {
    const newest = this.#at(this.size - 1);
    if (newest !== undefined && message.seq <= newest.seq) {
      throw new RangeError(`seq ${message.seq} added after ${newest.seq}`);
    }
    if (this.size === this.#capacity) this.#dropOldest();
    this.#ring.push(message);
    if (this.#bytes === 0) this.#budget?.register(this);
    const bytes = recentBytes(message);
    this.#bytes += bytes;
    this.#budget?.take("recent", bytes);
  }

  /** Forgets every entry (the room's sequence was reset, or the room closed). */
  clear(): void {
    this.#budget?.give("recent", this.#bytes);
    this.#budget?.unregister(this);
    this.#ring = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  /** Drops the oldest entries until about `bytes` are freed; returns what was freed. */
  reclaim(bytes: number): number {
    let freed = 0;
    while (freed < bytes && this.size > 0) freed += this.#dropOldest();
    return freed;
  }

  /**
   * Drops the oldest entry. The ring is compacted once half of it is dropped slots, so dropping
   * stays O(1) amortised and the array does not keep dropped frames alive.
   */
  #dropOldest(): number {
    const oldest = this.#ring[this.#head] as RecentMessage;
    this.#ring[this.#head] = undefined; // its frame can be collected before the compaction
    this.#head++;
    if (this.#head * 2 >= this.#ring.length) {
      this.#ring = this.#ring.slice(this.#head);
      this.#head = 0;
    }
    const bytes = recentBytes(oldest);
    this.#bytes -= bytes;
    this.#budget?.give("recent", bytes);
    if (this.#bytes === 0) this.#budget?.unregister(this);
    return bytes;
  }

  /** The held messages with a seq greater than `sinceSeq`, oldest first. */
  after(sinceSeq: number): RecentMessage[] {
    let low = 0;
    let high = this.size;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.#at(mid) as RecentMessage).seq <= sinceSeq) low = mid + 1;
      else high = mid;
    }
    const result: RecentMessage[] = [];
    for (let i = low; i < this.size; i++) result.push(this.#at(i) as RecentMessage);
    return result;
  }

  /**
   * Rewrites the frame of the held message at `seq` (a deleted message becomes its tombstone),
   * so that a replay still runs unbroken through it. Nothing happens if `seq` is not held.
   */
  replace(seq: number, rewrite: (frame: string) => string): void {
    let low = 0;
    let high = this.size;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.#at(mid) as RecentMessage).seq < seq) low = mid + 1;
      else high = mid;
    }
    const entry = this.#at(low);
    if (entry?.seq !== seq) return;
    const replaced = { ...entry, frame: rewrite(entry.frame) };
    const delta = recentBytes(replaced) - recentBytes(entry);
    this.#ring[this.#head + low] = replaced;
    this.#bytes += delta;
    if (delta > 0) this.#budget?.take("recent", delta);
    else this.#budget?.give("recent", -delta);
  }

  /** Rewrites every held frame for which `rewrite` returns a new one (a rare, O(n) pass). */
  rewriteEach(rewrite: (entry: RecentMessage) => string | undefined): void {
    for (let i = 0; i < this.size; i++) {
      const entry = this.#at(i) as RecentMessage;
      const frame = rewrite(entry);
      if (frame !== undefined) this.replace(entry.seq, () => frame);
    }
  }

  /** The seq of the held message with this id, if one is held (protocol 1 cursors). */
  seqOf(id: string): number | undefined {
    for (let i = 0; i < this.size; i++) {
      const entry = this.#at(i) as RecentMessage;
      if (entry.id === id) return entry.seq;
    }
    return undefined;
  }

  #at(index: number): RecentMessage | undefined {
    return this.#ring[this.#head + index];
  }
}
