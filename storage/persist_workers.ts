/**
 * A pool of workers that write batches of messages to a repository, retrying failed batches.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { errorCode } from "./_error_code.ts";
import type { ChatMessage } from "../chat/message.ts";
import type { MessageRepository } from "./repository.ts";

/** Options of {@linkcode PersistWorkers}. */
export interface PersistWorkersOptions {
  /** Workers saving concurrently. */
  readonly workers: number;
  /** First retry delay after a failed batch; doubled per attempt. */
  readonly retryBaseMs: number;
  /** Cap of the retry delay. */
  readonly retryMaxMs: number;
  readonly logger: Logger;
  /** Told how long each attempt at writing a batch took, and whether it succeeded. */
  readonly onBatch?: (seconds: number, ok: boolean) => void;
  /**
   * Told of each batch once it is stored (`stored` true) or given up on (false): either way its
   * messages will not be written now.
   */
  readonly onSettled?: (batch: readonly ChatMessage[], stored: boolean) => void;
}

/** What the workers did by the time they stopped. */
export interface PersistReport {
  /** Messages written. */
  readonly saved: number;
  /** Messages given up on because the deadline of {@linkcode PersistWorkers.stop} passed. */
  readonly unsaved: number;
}

/**
 * Takes batches from a shared source and saves each with capped exponential backoff until it
 * succeeds. The source ends when its producer closes it; the workers then finish by themselves.
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

  /** Batches whose last attempt failed and that are waiting to be retried. */
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
    return { saved: this.#saved, unsaved: this.#unsaved };
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
      let stored = false;
      if (this.#giveUp.signal.aborted) {
        this.#unsaved += batch.length;
      } else {
        stored = await this.#saveWithRetry(batch);
      }
      this.#options.onSettled?.(batch, stored);
    }
  }

  /** @returns whether the batch was stored (else given up on at the deadline). */
  async #saveWithRetry(batch: readonly ChatMessage[]): Promise<boolean> {
    const { retryBaseMs, retryMaxMs, logger } = this.#options;
    for (let attempt = 1;; attempt++) {
      const started = performance.now();
      try {
        await this.#repository.saveBatch(batch);
        this.#options.onBatch?.((performance.now() - started) / 1000, true);
        this.#saved += batch.length;
        if (attempt > 1) this.#failing--;
        return true;
      } catch (error) {
        this.#options.onBatch?.((performance.now() - started) / 1000, false);
        if (attempt === 1) this.#failing++;
        const delayMs = Math.min(retryMaxMs, retryBaseMs * 2 ** (attempt - 1));
        logger.warn("persist.batch_failed", {
          store: this.#repository.kind,
          messages: batch.length,
          attempt,
          retryInMs: delayMs,
          // The code, not the message: database errors may quote the rows' contents.
          error: errorCode(error),
        });
        if (!(await pause(delayMs, this.#giveUp.signal))) {
          this.#unsaved += batch.length;
          this.#failing--;
          return false;
        }
      }
    }
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
