/**
 * A room's newest messages, already encoded, kept for replay to clients that resume.
 *
 * @module
 */

/** One buffered message: its seq (the cursor), its id (protocol 1 cursors) and its frame. */
export interface RecentMessage {
  readonly seq: number;
  readonly id: string;
  readonly frame: string;
}

/**
 * A fixed-size ring of the newest messages in seq order. Adding is O(1) and allocates nothing but
 * the entry; replay after a cursor is a binary search and a copy. Seqs are ascending but may
 * have holes (a gap the cluster could not fill); a replay checks that.
 *
 * @example
 * ```ts
 * const recent = new RecentMessages(1000);
 * recent.add({ seq, id, frame });
 * const frames = recent.after(sinceSeq);
 * ```
 */
export class RecentMessages {
  readonly #capacity: number;
  #ring: RecentMessage[] = [];
  #head = 0; // index of the oldest entry once the ring is full

  /** @throws {RangeError} if `capacity` is not a positive integer. */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  /** Entries held. */
  get size(): number {
    return this.#ring.length;
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
    const newest = this.#at(this.#ring.length - 1);
    if (newest !== undefined && message.seq <= newest.seq) {
      throw new RangeError(`seq ${message.seq} added after ${newest.seq}`);
    }
    if (this.#ring.length < this.#capacity) {
      this.#ring.push(message);
    } else {
      this.#ring[this.#head] = message;
      this.#head = (this.#head + 1) % this.#capacity;
    }
  }

  /** Forgets every entry (the room's sequence was reset). */
  clear(): void {
    this.#ring = [];
    this.#head = 0;
  }

  /** The held messages with a seq greater than `sinceSeq`, oldest first. */
  after(sinceSeq: number): RecentMessage[] {
    let low = 0;
    let high = this.#ring.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.#at(mid) as RecentMessage).seq <= sinceSeq) low = mid + 1;
      else high = mid;
    }
    const result: RecentMessage[] = [];
    for (let i = low; i < this.#ring.length; i++) result.push(this.#at(i) as RecentMessage);
    return result;
  }

  /** The seq of the held message with this id, if one is held (protocol 1 cursors). */
  seqOf(id: string): number | undefined {
    for (const entry of this.#ring) if (entry.id === id) return entry.seq;
    return undefined;
  }

  #at(index: number): RecentMessage | undefined {
    return this.#ring[(this.#head + index) % this.#capacity];
  }
}
