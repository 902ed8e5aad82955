/**
 * The webhook queue: FIFO, bounded in estimated bytes, dropping its oldest entries when full.
 *
 * @module
 */

/** What the queue needs to know of an entry. */
export interface Sized {
  /** Estimated bytes the entry holds while queued. */
  readonly bytes: number;
}

/**
 * A byte-bounded FIFO between the chat's hot path (which pushes and never waits) and the
 * delivery workers (which take, waiting while it is empty).
 *
 * Full policy: the oldest entries are dropped to make room, and `push` says how many. Webhook
 * events describe the present (who is online, which rooms are occupied, what was just said): a
 * receiver that misses old ones is put right by newer ones, while refusing the newest would lose
 * exactly the events that end an outage (the last `user.offline`). An entry larger than the
 * whole bound is the caller's to refuse (see {@linkcode DeliveryQueue.fits}).
 *
 * Invariants: `bytes` is the sum of the queued entries' bytes and never exceeds `limitBytes`
 * after a push; takers wait only while nothing is queued.
 *
 * @example
 * ```ts
 * const queue = new DeliveryQueue<{ bytes: number }>(1_000);
 * queue.push({ bytes: 600 }); // 0 dropped
 * queue.push({ bytes: 600 }); // 1 dropped: the first
 * await queue.take(); // the second
 * queue.close();
 * await queue.take(); // undefined: closed and empty
 * ```
 */
export class DeliveryQueue<T extends Sized> {
  /** The bound, in estimated bytes. */
  readonly limitBytes: number;
  #entries: (T | undefined)[] = [];
  #head = 0;
  #bytes = 0;
  #closed = false;
  readonly #takers: ((entry: T | undefined) => void)[] = [];

  /** @throws {RangeError} if `limitBytes` is not a positive integer. */
  constructor(limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 1) {
      throw new RangeError(`limitBytes must be a positive integer, got ${limitBytes}`);
    }
    this.limitBytes = limitBytes;
  }

  /** Entries waiting (not those handed to a taker). */
  get length(): number {
    return this.#entries.length - this.#head;
  }

  /** Estimated bytes of the entries waiting. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether {@linkcode DeliveryQueue.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether an entry of `bytes` can be queued at all (alone, it is within the bound). */
  fits(bytes: number): boolean {
    return bytes <= this.limitBytes;
  }

  /**
   * Queues `entry` (or hands it to a waiting taker), dropping the oldest entries until it fits.
   *
   * @returns how many entries were dropped to make room.
   * @throws {RangeError} if the entry does not {@linkcode DeliveryQueue.fits fit}, or the queue
   * is closed: both are the caller's to check, and neither may reach the hot path as an error.
   */
  push(entry: T): number {
    if (this.#closed) throw new RangeError("the queue is closed");
    if (!this.fits(entry.bytes)) throw new RangeError(`${entry.bytes} bytes never fit`);
    const taker = this.#takers.shift();
    if (taker) {
      taker(entry);
      return 0;
    }
    let dropped = 0;
    while (this.#bytes + entry.bytes > this.limitBytes && this.#shift()) dropped++;
    this.#entries.push(entry);
    this.#bytes += entry.bytes;
    return dropped;
  }

  /** The oldest entry, waiting for one; `undefined` once closed and empty. */
  take(): Promise<T | undefined> {
    const entry = this.#shift();
    if (entry !== undefined || this.#closed) return Promise.resolve(entry);
    return new Promise((resolve) => this.#takers.push(resolve));
  }

  /** No more pushes; takers get what is left, then `undefined`. */
  close(): void {
    this.#closed = true;
    for (const taker of this.#takers.splice(0)) taker(undefined);
  }

  /** Empties the queue. @returns how many entries it held. */
  clear(): number {
    const count = this.length;
    this.#entries = [];
    this.#head = 0;
    this.#bytes = 0;
    return count;
  }

  #shift(): T | undefined {
    if (this.#head === this.#entries.length) return undefined;
    const entry = this.#entries[this.#head] as T;
    this.#entries[this.#head++] = undefined;
    this.#bytes -= entry.bytes;
    // Compact once the consumed prefix is most of the array: amortised O(1) per entry.
    if (this.#head > 1_024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    return entry;
  }
}
