/**
 * `WORKERS=n`: n server threads in one process, listening on the same port (`reusePort`: the
 * kernel spreads new connections over them) and sharing the rooms through Redis as separate
 * instances would. Threads (Web Workers, each its own isolate and event loop), not processes: no
 * permission to run programs, and coordination by message passing. From the outside they are one
 * server: one `server.listening`, one shutdown, `/metrics` and `/readyz` for all.
 *
 * @module
 */
import type { LogFormat, Logger } from "../log/logger.ts";
import type { PersistReport } from "../storage/persist_workers.ts";
import type { Config } from "./config.ts";
import { addressError, type RunningServer, StartupError } from "./instance.ts";
import { mergeExpositions } from "./merged_metrics.ts";
import type { Readiness, WorkerReadiness } from "./routes.ts";
import { WorkerThread } from "./worker_thread.ts";
import type { Answers, Query } from "./worker_calls.ts";

/** Longest the supervisor waits for one worker's part of a `/metrics` or `/readyz` answer. */
const QUERY_TIMEOUT_MS = 3_000;
/** Longest a second signal waits to learn how many messages exiting now loses. */
const UNSTORED_TIMEOUT_MS = 250;

/** Options of {@linkcode WorkerPool.start}. */
export interface WorkerPoolOptions {
  /** The supervisor's own logger (the workers write their lines themselves). */
  readonly logger: Logger;
  /** The format the workers' lines take. */
  readonly logFormat: LogFormat;
}

/**
 * The supervisor's view of the `WORKERS` threads.
 *
 * @example
 * ```ts
 * const pool = await WorkerPool.start(config, { logger, logFormat: "json" });
 * const report = await pool.stop();
 * ```
 */
export class WorkerPool implements RunningServer {
  readonly #threads: readonly WorkerThread[];
  readonly #crash = Promise.withResolvers<string>();
  #addr: Deno.NetAddr | undefined;

  private constructor(count: number, logger: Logger) {
    this.#threads = Array.from({ length: count }, (_, index) =>
      new WorkerThread(index, {
        answer: (query) => this.#answer(query),
        crashed: (error) => {
          logger.error("worker.crashed", { worker: index, error });
          this.#crash.resolve(`worker ${index} crashed: ${error}`);
        },
      }));
  }

  /**
   * Starts the threads, the first on `PORT` (it learns the port when `PORT=0`), the others
   * then on the same port, and resolves once all of them listen.
   *
   * @throws {StartupError} when any worker cannot start; the others are stopped first.
   */
  static async start(config: Config, options: WorkerPoolOptions): Promise<WorkerPool> {
    requireReusePort(config);
    // With reusePort, a port held by another server started with WORKERS would be shared
    // silently: make sure nobody listens there yet.
    if (config.port !== 0) requireFreePort(config);
    const pool = new WorkerPool(config.workers, options.logger);
    const [first, ...rest] = pool.#threads;
    const start = (thread: WorkerThread, port: number) =>
      thread.start({
        type: "start",
        index: thread.index,
        config: { ...config, port },
        logFormat: options.logFormat,
      });
    try {
      if (first === undefined) throw new StartupError("WORKERS must be at least 1", 2);
      pool.#addr = await start(first, config.port);
      const port = pool.#addr.port;
      const started = await Promise.allSettled(rest.map((thread) => start(thread, port)));
      for (const outcome of started) if (outcome.status === "rejected") throw outcome.reason;
    } catch (error) {
      await pool.stop();
      throw error;
    }
    return pool;
  }

  get addr(): Deno.NetAddr {
    if (this.#addr === undefined) throw new Error("the workers are not listening yet");
    return this.#addr;
  }

  /** Settles once a worker crashed (logged as `worker.crashed`); the others keep serving. */
  get failed(): Promise<string> {
    return this.#crash.promise;
  }

  /** Stops every worker at once, each as one server stops, and adds up their reports. */
  async stop(): Promise<PersistReport> {
    const reports = await Promise.all(this.#threads.map((thread) => thread.stop()));
    return {
      saved: sum(reports.map((report) => report?.saved ?? 0)),
      unsaved: sum(reports.map((report) => report?.unsaved ?? 0)),
      rejected: sum(reports.map((report) => report?.rejected ?? 0)),
    };
  }

  async unstored(): Promise<number> {
    return sum(await this.#gather("unstored", UNSTORED_TIMEOUT_MS, () => 0));
  }

  /** A worker's question about the whole server. */
  async #answer(query: Query): Promise<Answers[Query]> {
    if (query === "unstored") return await this.unstored();
    if (query === "metrics") {
      return mergeExpositions(await this.#gather("metrics", QUERY_TIMEOUT_MS, () => ""));
    }
    return combinedReadiness(
      await this.#gather("readiness", QUERY_TIMEOUT_MS, (reason) => ({
        ready: false,
        reason,
        store: "unknown",
        queued: 0,
        cluster: "unknown",
      })),
    );
  }

  /** Every worker's own answer, in worker order; `missing(why)` for one that gives none. */
  #gather<Q extends Query>(
    query: Q,
    timeoutMs: number,
    missing: (reason: string) => Answers[Q],
  ): Promise<Answers[Q][]> {
    return Promise.all(this.#threads.map(async (thread) => {
      if (!thread.serving) return missing(thread.state);
      try {
        return await thread.ask(query, timeoutMs);
      } catch (error) {
        return missing(error instanceof Error ? error.message : String(error));
      }
    }));
  }
}

/** Ready only if every worker is; the worst cluster state; each worker's own part listed. */
function combinedReadiness(parts: readonly Readiness[]): Readiness {
  const workers: WorkerReadiness[] = parts.map((part, worker) => ({
    worker,
    status: part.ready ? "ready" : "unavailable",
    queued: part.queued,
    cluster: part.cluster,
    ...(part.reason !== undefined && { reason: part.reason }),
  }));
  const down = workers.find((worker) => worker.status !== "ready");
  const clusters = parts.map((part) => part.cluster);
  return {
    ready: down === undefined,
    ...(down && { reason: `worker ${down.worker}: ${down.reason}` }),
    store: parts.find((part) => part.store !== "unknown")?.store ?? "unknown",
    queued: sum(parts.map((part) => part.queued)),
    cluster: ["degraded", "unknown"].find((state) => clusters.includes(state)) ??
      clusters[0] ?? "unknown",
    workers,
  };
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

/** Sharing a port (`reusePort`) is one of Deno's unstable network APIs. */
function requireReusePort(config: Config): void {
  // Present only under --unstable-net; without it, Deno.serve({ reusePort }) ends the process.
  if ("listenDatagram" in Deno) return;
  throw new StartupError(
    `WORKERS=${config.workers} needs Deno's --unstable-net flag, for sharing the port ` +
      "(reusePort): deno task start passes it",
    2,
  );
}

function requireFreePort(config: Config): void {
  try {
    Deno.listen({ hostname: config.host, port: config.port }).close();
  } catch (error) {
    throw addressError(config, error) ?? error;
  }
}
