/**
 * A pool of workers that write batches of messages to a repository, retrying failed batches and
 * splitting those the store refuses for a message in them.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { errorCode } from "../log/error_code.ts";
import { backoffDelayMs } from "./backoff.ts";
import type { ChatMessage } from "../chat/message.ts";
import type { MessageRepository } from "./repository.ts";
import { writeRemedy } from "./write_failure.ts";

/** Options of {@linkcode PersistWorkers}. */
export interface PersistWorkersOptions {
  /** Workers saving concurrently. */
  readonly workers: number;
  /** First retry delay after a failed batch, before jitter; doubled per attempt. */
  readonly retryBaseMs: number;
  /** Cap of the retry delay, before jitter. */
  readonly retryMaxMs: number;
  readonly logger: Logger;
  /** Told how long each attempt at writing a batch took, and whether it succeeded. */
  readonly onBatch?: (seconds: number, ok: boolean) => void;
  /**
   * Told of each batch once it is stored (`stored` true) or given up on (false): either way its
   * messages will not be written now. A batch split because the store refused a message in it
   * is told of in parts: each part stored, and each refused message alone, with false.
   */
  readonly onSettled?: (batch: readonly ChatMessage[], stored: boolean) => void;
  /**
   * Told of each message the store refused for good (see {@linkcode PersistWorkers.rejected}),
   * with the error's code (a SQLSTATE such as `22021`): for a metric.
   */
  readonly onRejected?: (message: ChatMessage, code: string) => void;
  /**
   * Failures of unknown cause (see `write_failure.ts`) in a row after which a batch is split as
   * if a message in it were at fault, provided the store still answers `ping`; 5 by default.
   */
  readonly splitAfterUnknownFailures?: number;
  /** Source of the retry delays' jitter, in [0, 1); `Math.random` by default. */
  readonly random?: () => number;
}

/** What the workers did by the time they stopped. */
export interface PersistReport {
  /** Messages written. */
  readonly saved: number;
  /** Messages given up on because the deadline of {@linkcode PersistWorkers.stop} passed. */
  readonly unsaved: number;
  /** Messages the store refused for good (see {@linkcode PersistWorkers.rejected}). */
  readonly rejected: number;
}

/** How a batch ended: stored, given up on at the deadline, or refused for what it holds. */
type Outcome =
  | { readonly type: "stored" }
  | { readonly type: "given_up" }
  | { readonly type: "at_fault"; readonly code: string };

const STORED: Outcome = { type: "stored" };
const GIVEN_UP: Outcome = { type: "given_up" };
const SPLIT_AFTER_UNKNOWN_FAILURES = 5;

/**
 * Takes batches from a shared source and saves each, retrying with capped exponential backoff
 * and jitter while the store is down. A batch the store refuses for its contents (a value it
 * will not take, a constraint) is split in halves, each saved the same way, until the bad
 * message is alone: that one is rejected (logged as `persist.rejected`, counted, settled as not
 * stored) instead of retried forever. The source ends when its producer closes it; the workers
 * then finish by themselves.
 *
 * @example
 * ```ts
 * const workers = new PersistWorkers(store, batches, { workers: 4, retryBaseMs: 50, retryMaxMs: 5000, logger });
 * // ... producer closes the source ...
 * const report = await workers.stop(AbortSignal.timeout(10_000));
 * ```
 */
export class PersistWorkers {
  readonly #repository: MessageRepository;
  readonly #options: PersistWorkersOptions;
  readonly #giveUp = new AbortController();
  readonly #done: Promise<void>;
  #saved = 0;
  #unsaved = 0;
  #rejected = 0;
  #failing = 0;

  constructor(
    repository: MessageRepository,
    batches: AsyncIterable<readonly ChatMessage[]>,
    options: PersistWorkersOptions,
  ) {
    this.#repository = repository;
    this.#options = options;
    const running: Promise<void>[] = [];
    for (let i = 0; i < options.workers; i++) running.push(this.#work(batches));
    this.#done = Promise.all(running).then(() => {});
  }

  /** Messages written so far. */
  get saved(): number {
    return this.#saved;
  }

  /**
   * Messages the store refused for good so far: alone in a batch, it failed with an error that
   * says a value or a constraint is at fault (or with errors of unknown cause, again and again,
   * while the store answered). Each was logged once and will never be stored.
   */
  get rejected(): number {
    return this.#rejected;
  }

  /**
   * Batches whose last attempt failed and that are waiting to be retried. A batch refused for
   * its contents is split at once and does not count.
   */
  get failingBatches(): number {
    return this.#failing;
  }

  /**
   * Waits for the source to end and every batch to be written. When `deadline` aborts first,
   * batches still failing or not yet taken are counted as unsaved instead of retried.
   */
  async stop(deadline: AbortSignal): Promise<PersistReport> {
    const stopGivingUp = this.giveUpAt(deadline);
    try {
      await this.#done;
    } finally {
      stopGivingUp();
    }
    return { saved: this.#saved, unsaved: this.#unsaved, rejected: this.#rejected };
  }

  /**
   * From when `deadline` aborts, batches still failing or not yet taken are given up on instead
   * of retried (so that what waits for them, such as a durable broadcast, ends).
   *
   * @returns a function that stops watching `deadline`.
   */
  giveUpAt(deadline: AbortSignal): () => void {
    const giveUp = () => this.#giveUp.abort();
    if (deadline.aborted) giveUp();
    deadline.addEventListener("abort", giveUp, { once: true });
    return () => deadline.removeEventListener("abort", giveUp);
  }

  async #work(batches: AsyncIterable<readonly ChatMessage[]>): Promise<void> {
    for await (const batch of batches) {
      if (this.#giveUp.signal.aborted) this.#settleUnsaved(batch);
      else await this.#save(batch);
    }
  }

  /**
   * Saves `batch`, or, if the store refuses it for its contents, each half in turn (first half
   * first, so a room's messages still go in seq order), down to single messages: every message
   * is settled exactly once. Halves taken after the deadline are tried once, not retried.
   */
  async #save(batch: readonly ChatMessage[]): Promise<void> {
    const outcome = await this.#saveWithRetry(batch);
    if (outcome.type === "stored") {
      this.#saved += batch.length;
      this.#options.onSettled?.(batch, true);
    } else if (outcome.type === "given_up") {
      this.#settleUnsaved(batch);
    } else if (batch.length <= 1) {
      this.#reject(batch, outcome.code);
    } else {
      const half = Math.ceil(batch.length / 2);
      this.#options.logger.warn("persist.batch_split", {
        store: this.#repository.kind,
        messages: batch.length,
        error: outcome.code,
      });
      await this.#save(batch.slice(0, half));
      await this.#save(batch.slice(half));
    }
  }

  /** Retries `batch` while no message of it is to blame, until stored or the deadline passes. */
  async #saveWithRetry(batch: readonly ChatMessage[]): Promise<Outcome> {
    const { retryBaseMs, retryMaxMs, logger, random } = this.#options;
    const unknownLimit = this.#options.splitAfterUnknownFailures ?? SPLIT_AFTER_UNKNOWN_FAILURES;
    let unknownFailures = 0;
    let failing = false;
    try {
      for (let attempt = 1;; attempt++) {
        const error = await this.#attempt(batch);
        if (error === undefined) return STORED;
        // The code, not the message: database errors may quote the rows' contents.
        const code = errorCode(error.cause);
        const remedy = writeRemedy(error.cause);
        if (remedy === "split") return { type: "at_fault", code };
        // An unknown error again and again while the store answers: blame the batch, so that a
        // poison message of a kind not foreseen cannot hold its worker (and /readyz) forever.
        if (remedy === "unknown" && ++unknownFailures >= unknownLimit) {
          if (await this.#repository.ping()) return { type: "at_fault", code };
        }
        if (!failing) this.#failing++;
        failing = true;
        const delayMs = backoffDelayMs(attempt, { baseMs: retryBaseMs, maxMs: retryMaxMs, random });
        logger.warn("persist.batch_failed", {
          store: this.#repository.kind,
          messages: batch.length,
          attempt,
          retryInMs: Math.round(delayMs),
          error: code,
        });
        if (!(await pause(delayMs, this.#giveUp.signal))) return GIVEN_UP;
      }
    } finally {
      if (failing) this.#failing--;
    }
  }

  /** One `saveBatch`, timed for `onBatch`; what it threw, wrapped, or `undefined` if stored. */
  async #attempt(batch: readonly ChatMessage[]): Promise<{ cause: unknown } | undefined> {
    const started = performance.now();
    try {
      await this.#repository.saveBatch(batch);
      this.#options.onBatch?.((performance.now() - started) / 1000, true);
      return undefined;
    } catch (cause) {
      this.#options.onBatch?.((performance.now() - started) / 1000, false);
      return { cause };
    }
  }

  #settleUnsaved(batch: readonly ChatMessage[]): void {
    this.#unsaved += batch.length;
    this.#options.onSettled?.(batch, false);
  }

  /**
   * Gives up on a message the store refuses alone. Logged at error: the message was accepted
   * (and maybe shown) and is now lost. Its room, seq and id name it; its content is never logged.
   */
  #reject(single: readonly ChatMessage[], code: string): void {
    const [message] = single;
    if (message === undefined) return;
    this.#rejected++;
    const { room, seq, id } = message;
    this.#options.logger.error("persist.rejected", {
      store: this.#repository.kind,
      room,
      seq,
      id,
      error: code,
    });
    this.#options.onRejected?.(message, code);
    this.#options.onSettled?.(single, false);
  }
}

/** Waits `ms`; resolves `false` early if `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
