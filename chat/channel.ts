/**
 * A Go-style channel: a bounded FIFO queue that producers and consumers share.
 *
 * It is the concurrency vocabulary of the hub: clients fan in to a room's inbox, a room fans out
 * to every member's outbox and to the persistence queue. It costs one array slot per buffered
 * value, no timers, and at most one promise per waiting sender or receiver.
 *
 * @module
 */

/**
 * Thrown by {@linkcode Channel.send} and {@linkcode Channel.receive} once the channel is closed.
 * A refused send carries the value that was not sent, so the caller can recover it.
 *
 * @example
 * ```ts
 * import { Channel, ChannelClosedError } from "./channel.ts";
 * const channel = new Channel<number>(1);
 * channel.close();
 * try {
 *   await channel.send(7);
 * } catch (error) {
 *   if (error instanceof ChannelClosedError) console.assert(error.value === 7);
 * }
 * ```
 */
export class ChannelClosedError<T = unknown> extends Error {
  /** Stable code for logs and metrics. */
  readonly code = "channel_closed";
  /** The value a refused `send` did not deliver; `undefined` for a refused `receive`. */
  readonly value: T | undefined;

  constructor(value?: T) {
    super("channel is closed");
    this.name = "ChannelClosedError";
    this.value = value;
  }
}

interface WaitingSender<T> {
  value: T;
  resolve: () => void;
  reject: (error: ChannelClosedError<T>) => void;
}

interface WaitingReceiver<T> {
  resolve: (value: T) => void;
  reject: (error: ChannelClosedError<T>) => void;
}

/**
 * A bounded, closable FIFO channel with blocking and non-blocking operations and async iteration.
 *
 * Invariants: waiting receivers exist only while the buffer is empty; waiting senders exist only
 * while the buffer is full. Values leave in the order they were accepted.
 *
 * @example
 * ```ts
 * import { Channel } from "./channel.ts";
 * const channel = new Channel<string>(2);
 * channel.trySend("a");
 * await channel.send("b");
 * channel.close();
 * for await (const value of channel) console.log(value); // "a", then "b"
 * ```
 */
export class Channel<T> implements AsyncIterable<T> {
  /** How many values the buffer holds before `send` waits and `trySend` refuses. */
  readonly capacity: number;
  #ring: (T | undefined)[];
  #head = 0;
  #size = 0;
  #closed = false;
  #senders: WaitingSender<T>[] = [];
  #receivers: WaitingReceiver<T>[] = [];

  /**
   * @param capacity buffered values allowed; 0 makes an unbuffered channel (a hand-off).
   * @throws {RangeError} if `capacity` is not a non-negative integer.
   */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new RangeError(`channel capacity must be a non-negative integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#ring = [];
  }

  /** Values buffered and not yet received. */
  get size(): number {
    return this.#size;
  }

  /** Whether {@linkcode Channel.close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends a value, waiting while the buffer is full.
   *
   * @throws {ChannelClosedError} (rejects) if the channel is or becomes closed before the value is
   * accepted; the error's `value` is the value.
   */
  send(value: T): Promise<void> {
    if (this.trySend(value)) return Promise.resolve();
    if (this.#closed) return Promise.reject(new ChannelClosedError(value));
    return new Promise((resolve, reject) => this.#senders.push({ value, resolve, reject }));
  }

  /**
   * Sends a value only if that needs no waiting.
   *
   * @returns `true` if the value was accepted; `false` if the buffer is full or the channel closed.
   */
  trySend(value: T): boolean {
    if (this.#closed) return false;
    // Length checks first: this runs once per member per message, and shift() is not free.
    if (this.#receivers.length > 0) {
      (this.#receivers.shift() as WaitingReceiver<T>).resolve(value);
      return true;
    }
    if (this.#size >= this.capacity || this.#senders.length > 0) return false;
    this.#push(value);
    return true;
  }

  /**
   * Receives the oldest value, waiting while the channel is empty.
   *
   * @throws {ChannelClosedError} (rejects) once the channel is closed and drained.
   */
  receive(): Promise<T> {
    if (this.#size > 0 || this.#senders.length > 0) return Promise.resolve(this.#take());
    if (this.#closed) return Promise.reject(new ChannelClosedError<T>());
    return new Promise((resolve, reject) => this.#receivers.push({ resolve, reject }));
  }

  /**
   * Moves up to `max` values that need no waiting into `target`, oldest first.
   * This is how a consumer drains a backlog in one step instead of one promise per value.
   *
   * @returns how many values were moved.
   */
  drainInto(target: T[], max: number): number {
    let moved = 0;
    while (moved < max && (this.#size > 0 || this.#senders.length > 0)) {
      target.push(this.#take());
      moved++;
    }
    return moved;
  }

  /**
   * Closes the channel: no value is accepted any more, buffered values can still be received,
   * waiting receivers are released with {@linkcode ChannelClosedError}, and waiting senders are
   * refused with theirs. Closing twice is harmless.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const receiver of this.#receivers.splice(0)) receiver.reject(new ChannelClosedError<T>());
    for (const sender of this.#senders.splice(0)) {
      sender.reject(new ChannelClosedError(sender.value));
    }
  }

  /** Iterates over received values; ends when the channel is closed and drained. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    while (this.#size > 0 || this.#senders.length > 0 || !this.#closed) {
      let value: T;
      try {
        value = await this.receive();
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
      yield value;
    }
  }

  #push(value: T): void {
    // The ring grows lazily up to capacity, so a large bound costs nothing until it is used.
    // Callers guarantee size < capacity, so a full ring here is still allowed to grow.
    if (this.#size === this.#ring.length) {
      if (this.#head !== 0) this.#unwrap();
      this.#ring.push(value);
    } else {
      this.#ring[(this.#head + this.#size) % this.#ring.length] = value;
    }
    this.#size++;
  }

  /** Rewrites the ring so that the oldest value is at index 0, letting it grow by `push`. */
  #unwrap(): void {
    const ordered: (T | undefined)[] = [];
    for (let i = 0; i < this.#size; i++) {
      ordered.push(this.#ring[(this.#head + i) % this.#ring.length]);
    }
    this.#ring = ordered;
    this.#head = 0;
  }

  #take(): T {
    if (this.#size === 0) {
      // Unbuffered hand-off: the oldest waiting sender gives its value directly.
      const sender = this.#senders.shift() as WaitingSender<T>;
      sender.resolve();
      return sender.value;
    }
    const value = this.#ring[this.#head] as T;
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#size--;
    if (this.#size === 0) this.#head = 0;
    if (this.#senders.length > 0) {
      const sender = this.#senders.shift() as WaitingSender<T>;
      this.#push(sender.value);
      sender.resolve();
    }
    return value;
  }
}
