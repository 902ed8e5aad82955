/**
 * The writer shared by every outbox of a hub: one microtask per turn writes every outbox that
 * got frames in that turn; outboxes that join their frames wait for the end of the event loop's
 * iteration instead.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/**
 * An at-idle flush shorter than this lets the next one run at once: pacing writes only pays off
 * (and only adds latency worth it) when one flush costs milliseconds.
 */
export const PACED_FLUSH_MIN_MS = 1;

/** Something with queued frames to write. */
export interface Flushable {
  /** Writes what is queued; called once per turn (or, at idle, per write cycle) it was scheduled in. */
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
  readonly #flushAll = () => this.#run(this.#due);
  readonly #dueAtIdle: Flushable[] = [];
  readonly #flushAllAtIdle = () => this.#runAtIdle();
  /** When the next at-idle flush may run: as long after the last one as that one took. */
  #nextAtIdleMs = 0;
  readonly #failed: (error: unknown) => void;

  /** `failed` hears of a flush that threw; the others of that turn are flushed all the same. */
  constructor(failed: (error: unknown) => void = () => {}) {
    this.#failed = failed;
  }

  /** Flushes `target` once the current task ends. Callers schedule each target once per turn. */
  schedule(target: Flushable): void {
    if (this.#due.push(target) === 1) queueMicrotask(this.#flushAll);
  }

  /**
   * Flushes `target` once the event loop has run the tasks that were ready with the current one
   * (an immediate: nothing waits for more frames to come), so that the turns of every socket
   * event of that iteration leave as one joined frame per member. The next flush waits as long
   * after the last one as that one took, when that is at least {@linkcode PACED_FLUSH_MIN_MS}: a
   * server busy writing then reads what is waiting for it meanwhile (a fan-out server reads one
   * frame per socket per iteration), and the next flush joins it; writes never take more than
   * half of its time, and a server whose flushes are short writes at once.
   */
  scheduleAtIdle(target: Flushable): void {
    if (this.#dueAtIdle.push(target) !== 1) return;
    const waitMs = this.#nextAtIdleMs - performance.now();
    if (waitMs < PACED_FLUSH_MIN_MS) setImmediate(this.#flushAllAtIdle);
    else setTimeout(this.#flushAllAtIdle, waitMs);
  }

  #runAtIdle(): void {
    const started = performance.now();
    this.#run(this.#dueAtIdle);
    const ended = performance.now();
    this.#nextAtIdleMs = ended + (ended - started);
  }

  #run(due: Flushable[]): void {
    // Targets scheduled while this runs join it (the loop re-reads the length).
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
