/**
 * A room's newest messages, already encoded, kept for replay to clients that resume.
 *
 * @module
 */

/** One buffered message: its id (for cursors) and its encoded `message` frame. */
export interface RecentMessage {
  readonly id: string;
  readonly frame: string;
}

/**
 * A fixed-size ring of the newest messages in id order. Adding is O(1) and allocates nothing but
 * the entry; replay after a cursor is a binary search and a copy.
 *
 * @example
 * ```ts
 * const recent = new RecentMessages(1000);
 * recent.add({ id, frame });
 * if (recent.covers(since)) send(recent.after(since));
 * ```
 */
export class RecentMessages {
  readonly #capacity: number;
  readonly #ring: RecentMessage[] = [];
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

  /**
   * Adds a message, evicting the oldest when full. Ids usually arrive in order; one from another
   * instance may be slightly older than the newest held and is moved back into place.
   */
  add(message: RecentMessage): void {
    const newest = this.#at(this.#ring.length - 1);
    if (newest !== undefined && message.id < newest.id) {
      const oldest = this.#at(0);
      if (this.#ring.length === this.#capacity && oldest && message.id < oldest.id) return;
    }
    if (this.#ring.length < this.#capacity) {
      this.#ring.push(message);
    } else {
      this.#ring[this.#head] = message;
      this.#head = (this.#head + 1) % this.#capacity;
    }
    // Insertion step: swap backwards while the previous entry is newer.
    for (let i = this.#ring.length - 1; i > 0; i--) {
      const previous = this.#at(i - 1) as RecentMessage;
      const current = this.#at(i) as RecentMessage;
      if (previous.id <= current.id) break;
      this.#set(i - 1, current);
      this.#set(i, previous);
    }
  }

  /**
   * Whether every message after `since` is held: `since` is at or after the oldest entry. An
   * empty buffer covers nothing, since older messages may exist elsewhere.
   */
  covers(since: string): boolean {
    const oldest = this.#at(0);
    return oldest !== undefined && oldest.id <= since;
  }

  /** The held messages with an id greater than `since`, oldest first. */
  after(since: string): RecentMessage[] {
    let low = 0;
    let high = this.#ring.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.#at(mid) as RecentMessage).id <= since) low = mid + 1;
      else high = mid;
    }
    const result: RecentMessage[] = [];
    for (let i = low; i < this.#ring.length; i++) result.push(this.#at(i) as RecentMessage);
    return result;
  }

  #at(index: number): RecentMessage | undefined {
    return this.#ring[(this.#head + index) % this.#capacity];
  }

  #set(index: number, message: RecentMessage): void {
    this.#ring[(this.#head + index) % this.#capacity] = message;
  }
}
