/**
 * What runs in each of the `WORKERS` threads (a Web Worker: its own isolate and event loop): one
 * {@linkcode Instance}, started, queried and stopped by the supervisor's messages. It is a
 * cluster instance of its own (its own Redis connections and instance id), listening on the
 * shared port.
 *
 * @module
 */
import { LineLogger, type Logger, silentLogger } from "../log/logger.ts";
import type { WorkerRole } from "./chat_server.ts";
import type { Config } from "./config.ts";
import { Instance, type InstanceOptions, StartupError } from "./instance.ts";
import { type FromWorker, PendingCalls, type Query, type ToWorker } from "./worker_calls.ts";

/** The worker's end of its channel to the supervisor: a worker's global scope, or a port. */
export interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  close(): void;
}

/** Longest a worker waits for the supervisor to gather the whole server's answer. */
const GATHER_TIMEOUT_MS = 5_000;

/**
 * Serves the supervisor's messages on `scope` until it says stop: then the instance stops,
 * its report is posted, and the channel closes.
 *
 * @example
 * ```ts
 * if (import.meta.main) serveWorker(self as unknown as WorkerScope);
 * ```
 */
export function serveWorker(scope: WorkerScope): void {
  const calls = new PendingCalls();
  let instance: Promise<Instance | undefined> = Promise.resolve(undefined);
  let logger = silentLogger;
  const post = (message: FromWorker) => scope.postMessage(message);
  scope.onmessage = ({ data: message }) => {
    switch (message.type) {
      case "start": {
        const role: WorkerRole = {
          index: message.index,
          metrics: () => calls.ask(post, "metrics", GATHER_TIMEOUT_MS),
          readiness: () => calls.ask(post, "readiness", GATHER_TIMEOUT_MS),
        };
        logger = new LineLogger({
          level: message.config.logLevel,
          format: message.logFormat,
          fields: { worker: message.index },
        });
        instance = start(message.config, { logger, worker: role }, post);
        return;
      }
      case "query":
        // Asked of this worker: its own part. Unanswered, the supervisor's call times out and
        // the answer goes without this worker's part.
        void answer(instance, message.query).then(
          (value) => post({ type: "reply", id: message.id, value }),
          (error) =>
            logger.warn("worker.query_failed", {
              query: message.query,
              error: error instanceof Error ? error.name : typeof error,
            }),
        );
        return;
      case "reply":
        calls.settle(message);
        return;
      case "stop":
        void stop(instance, { post, logger }).then(() => scope.close());
        return;
    }
  };
}

async function start(
  config: Config,
  options: InstanceOptions,
  post: (message: FromWorker) => void,
): Promise<Instance | undefined> {
  try {
    const instance = await Instance.start(Object.freeze(config), options);
    post({ type: "listening", addr: instance.addr });
    return instance;
  } catch (error) {
    // Anything else is a crash: thrown on, the supervisor sees it as the worker's error event.
    if (!(error instanceof StartupError)) throw error;
    post({ type: "failed", message: error.message, exitCode: error.exitCode });
    return undefined;
  }
}

/** This worker's own answer; the supervisor asks only workers that listen. */
async function answer(started: Promise<Instance | undefined>, query: Query) {
  const server = (await started)?.server;
  if (query === "metrics") return await server?.metrics() ?? "";
  if (query === "readiness") {
    return await server?.readiness() ??
      { ready: false, reason: "not started", store: "none", queued: 0, cluster: "off" };
  }
  return server?.unstored ?? 0;
}

async function stop(
  started: Promise<Instance | undefined>,
  options: { post: (message: FromWorker) => void; logger: Logger },
): Promise<void> {
  const report = await (await started)?.stop() ?? { saved: 0, unsaved: 0, rejected: 0 };
  options.logger.info("worker.stopped", { ...report });
  options.post({ type: "stopped", report });
}

if (import.meta.main) {
  // This module is the worker's entry: its global scope is the channel (typed as Deno's window
  // scope, which has no postMessage of its own).
  serveWorker(globalThis as unknown as WorkerScope);
}
