/**
 * The periodic job that enforces `RETENTION_DAYS` and `RETENTION_MAX_PER_ROOM` on any store.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { errorCode } from "../log/error_code.ts";
import {
  checkRetentionPolicy,
  type MessageRepository,
  PruneIncompleteError,
  type RetentionPolicy,
  RetentionPolicyError,
} from "./repository.ts";

/** Options of {@linkcode RetentionJob}. */
export interface RetentionJobOptions {
  /** Messages older than this many days are removed; unset: no age limit. */
  readonly days?: number;
  /** Only this many newest messages of each room are kept; unset: no count limit. */
  readonly maxPerRoom?: number;
  /** Time from the end of one run to the start of the next. */
  readonly intervalMs: number;
  /** Gets one line per run; errors as codes only, never message contents. */
  readonly logger: Logger;
  /** Told how many messages each run removed, when it removed any (e.g. to add to a counter). */
  readonly onRemoved?: (count: number) => void;
  /** The clock the age limit is measured from, in epoch milliseconds; `Date.now` by default. */
  readonly now?: () => number;
}

const DAY_MS = 86_400_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Prunes the repository once at {@linkcode RetentionJob.start} and then every `intervalMs`
 * after the previous run ended, so runs never overlap. A failed run is logged with its error
 * code and simply tried again at the next interval. With neither `days` nor `maxPerRoom` set it
 * logs `retention.disabled` and never runs.
 *
 * @example
 * ```ts
 * const job = new RetentionJob(repository, {
 *   days: 30,
 *   intervalMs: 3_600_000,
 *   logger,
 *   onRemoved: (count) => removedCounter.add(count),
 * });
 * job.start();
 * // ... at shutdown, before repository.close():
 * await job.stop();
 * ```
 */
export class RetentionJob {
  readonly #repository: Pick<MessageRepository, "kind" | "prune">;
  readonly #options: RetentionJobOptions;
  readonly #stopped = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #started = false;

  /**
   * Checks the settings; nothing runs before {@linkcode RetentionJob.start}.
   *
   * @throws {RetentionPolicyError} if `days` is not a positive number, `maxPerRoom` not a
   * positive integer, or `intervalMs` not from 1 ms to about 24 days.
   */
  constructor(repository: Pick<MessageRepository, "kind" | "prune">, options: RetentionJobOptions) {
    const { days, maxPerRoom, intervalMs } = options;
    if (days !== undefined && !(Number.isFinite(days) && days > 0)) {
      throw new RetentionPolicyError("days", `must be a positive number, got ${days}`);
    }
    checkRetentionPolicy({ maxPerRoom });
    // Timers treat a longer delay as 1 ms: an interval past the limit would prune nonstop.
    if (!(intervalMs > 0 && intervalMs <= MAX_TIMER_MS)) {
      throw new RetentionPolicyError(
        "intervalMs",
        `must be from 1 to ${MAX_TIMER_MS} (about 24 days), got ${intervalMs}`,
      );
    }
    this.#repository = repository;
    this.#options = options;
  }

  /** Whether a limit is set, so that {@linkcode RetentionJob.start} schedules runs. */
  get enabled(): boolean {
    return this.#options.days !== undefined || this.#options.maxPerRoom !== undefined;
  }

  /**
   * Starts the first run at once (on the next turn of the event loop) and schedules the rest;
   * a second call does nothing. When disabled it logs so instead.
   */
  start(): void {
    if (this.#started || this.#stopped.signal.aborted) return;
    this.#started = true;
    const { days, maxPerRoom, intervalMs, logger } = this.#options;
    if (!this.enabled) {
      logger.info("retention.disabled", { reason: "neither a day limit nor a per-room limit" });
      return;
    }
    logger.info("retention.started", {
      store: this.#repository.kind,
      days,
      maxPerRoom,
      intervalMs,
    });
    this.#schedule(0);
  }

  /**
   * Cancels the next run and asks a run in progress to stop at its next step, then waits for it:
   * afterwards no timer is left and the repository is not used any more. Safe to call twice.
   */
  async stop(): Promise<void> {
    this.#stopped.abort();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#run().finally(() => {
        this.#running = undefined;
        this.#schedule(this.#options.intervalMs);
      });
    }, delayMs);
  }

  /** One run; never rejects: a failure is logged and the next interval tries again. */
  async #run(): Promise<void> {
    const { logger, intervalMs } = this.#options;
    const store = this.#repository.kind;
    const started = performance.now();
    try {
      const removed = await this.#repository.prune(this.#policy(), this.#stopped.signal);
      const durationMs = Math.round(performance.now() - started);
      if (removed > 0) this.#options.onRemoved?.(removed);
      const fields = { store, removed, durationMs, stopped: this.#stopped.signal.aborted };
      if (removed > 0) logger.info("retention.pruned", fields);
      else logger.debug("retention.pruned", fields);
    } catch (error) {
      const removed = error instanceof PruneIncompleteError ? error.removed : 0;
      if (removed > 0) this.#options.onRemoved?.(removed);
      // The code only: database errors may quote the rows they were about.
      const code = errorCode(error instanceof PruneIncompleteError ? error.cause : error);
      logger.warn("retention.failed", { store, error: code, removed, retryInMs: intervalMs });
    }
  }

  #policy(): RetentionPolicy {
    const { days, maxPerRoom } = this.#options;
    const now = this.#options.now ?? Date.now;
    return {
      ...(days !== undefined && { olderThan: new Date(now() - days * DAY_MS) }),
      ...(maxPerRoom !== undefined && { maxPerRoom }),
    };
  }
}
