/**
 * The writer shared by every outbox of a hub: one microtask per turn writes every outbox that
 * got frames in that turn.
 *
 * @module
 */

/** Something with queued frames to write. */
export interface Flushable {
  /** Writes what is queued; called once per turn in which it was scheduled. */
  flush(): void;
}

/**
 * Collects the outboxes that got frames while the current task runs (a room turn, a socket
 * event) and flushes them together once it ends. A room turn that queues frames for a thousand
 * members thus costs one microtask, not a promise and a wake-up per member; frames queued in
 * one turn leave in one batch per member.
 *
 * @example
 * ```ts
 * const writer = new OutboxWriter();
 * writer.schedule(outbox); // outbox.flush() runs once the current task ends
 * ```
 */
export class OutboxWriter {
  readonly #due: Flushable[] = [];
  readonly #flushAll = () => this.#run();
  readonly #failed: (error: unknown) => void;

  /** `failed` hears of a flush that threw; the others of that turn are flushed all the same. */
  constructor(failed: (error: unknown) => void = () => {}) {
    this.#failed = failed;
  }

  /** Flushes `target` once the current task ends. Callers schedule each target once per turn. */
  schedule(target: Flushable): void {
    if (this.#due.push(target) === 1) queueMicrotask(this.#flushAll);
  }

  #run(): void {
    // Targets scheduled while this runs join it (the loop re-reads the length).
    const due = this.#due;
    try {
      for (let i = 0; i < due.length; i++) {
        try {
          due[i]?.flush();
        } catch (error) {
          this.#failed(error);
        }
      }
    } finally {
      due.length = 0;
    }
  }
}
