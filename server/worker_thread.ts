/**
 * The supervisor's handle on one of the `WORKERS` threads: starts it, asks it, stops it, and
 * notices when it crashes.
 *
 * @module
 */
import type { PersistReport } from "../storage/persist_workers.ts";
import { StartupError } from "./instance.ts";
import {
  type Answers,
  type FromWorker,
  PendingCalls,
  type Query,
  type ToWorker,
} from "./worker_calls.ts";
// In the module graph: `deno compile` embeds the worker's entry, `deno check` checks it.
import "./worker_main.ts";

const ENTRY = new URL("./worker_main.ts", import.meta.url);

/** Where a worker is in its life. */
export type WorkerState = "starting" | "serving" | "stopping" | "stopped" | "failed" | "crashed";

/** What the supervisor does for a worker. */
export interface WorkerThreadHandlers {
  /** Answers the worker's question about the whole server. */
  answer(query: Query): Promise<Answers[Query]>;
  /** The worker threw and is gone (it had listened): what it threw. */
  crashed(error: string): void;
}

/**
 * One worker thread (a Web Worker running `worker_main.ts`).
 *
 * @example
 * ```ts
 * const thread = new WorkerThread(0, handlers);
 * const addr = await thread.start({ type: "start", index: 0, config, logFormat: "json" });
 * const report = await thread.stop();
 * ```
 */
export class WorkerThread {
  readonly index: number;
  readonly #worker: Worker;
  readonly #handlers: WorkerThreadHandlers;
  readonly #calls = new PendingCalls();
  readonly #listening = Promise.withResolvers<Deno.NetAddr>();
  readonly #stopped = Promise.withResolvers<PersistReport | undefined>();
  #state: WorkerState = "starting";

  /** Creates the thread, which loads its modules meanwhile; it starts on {@linkcode start}. */
  constructor(index: number, handlers: WorkerThreadHandlers) {
    this.index = index;
    this.#handlers = handlers;
    this.#worker = new Worker(ENTRY, { type: "module", name: `worker ${index}` });
    this.#worker.onmessage = (event: MessageEvent<FromWorker>) => this.#receive(event.data);
    this.#worker.onerror = (event) => {
      // Handled here: unhandled, it would end the supervisor too.
      event.preventDefault();
      this.#fail(event.message);
    };
    // A message that cannot be deserialized is a bug on one side: the worker is of no use then.
    this.#worker.onmessageerror = () => this.#fail("a message from it could not be read");
    // Until something waits for them, failures are state, not unhandled rejections.
    this.#listening.promise.catch(() => {});
  }

  get state(): WorkerState {
    return this.#state;
  }

  /** Whether it listens and answers (shutting down included). */
  get serving(): boolean {
    return this.#state === "serving" || this.#state === "stopping";
  }

  /**
   * Starts the worker's instance.
   *
   * @throws {StartupError} saying why it could not start.
   */
  start(message: Extract<ToWorker, { type: "start" }>): Promise<Deno.NetAddr> {
    this.#post(message);
    return this.#listening.promise;
  }

  /** Asks the worker for its own part of an answer. @throws {CallFailedError} */
  ask<Q extends Query>(query: Q, timeoutMs: number): Promise<Answers[Q]> {
    return this.#calls.ask((message) => this.#post(message), query, timeoutMs);
  }

  /**
   * Stops the worker's instance gracefully; resolves with its report, or `undefined` if it
   * crashed or never listened (then the thread is ended at once).
   */
  stop(): Promise<PersistReport | undefined> {
    if (this.#state === "serving") {
      this.#state = "stopping";
      this.#post({ type: "stop" });
    } else if (this.#state === "starting") {
      this.#end("stopped");
    }
    return this.#stopped.promise;
  }

  #receive(message: FromWorker): void {
    switch (message.type) {
      case "listening":
        this.#state = "serving";
        this.#listening.resolve(message.addr);
        return;
      case "failed":
        this.#listening.reject(new StartupError(message.message, message.exitCode));
        this.#end("failed");
        return;
      case "stopped":
        this.#state = "stopped";
        this.#stopped.resolve(message.report);
        return;
      case "query":
        void this.#handlers.answer(message.query).then((value) =>
          this.#post({ type: "reply", id: message.id, value })
        );
        return;
      case "reply":
        this.#calls.settle(message);
        return;
    }
  }

  /** The worker threw: while starting, a failed start; later, a crash. */
  #fail(error: string): void {
    const state = this.#state;
    if (state === "starting") {
      this.#listening.reject(startupCrash(this.index, error));
      this.#end("failed");
    } else if (state === "serving" || state === "stopping") {
      this.#end("crashed");
      this.#handlers.crashed(error);
    }
  }

  /** Ends the thread: whatever it was doing is dropped. */
  #end(state: WorkerState): void {
    this.#state = state;
    this.#worker.terminate();
    this.#calls.abandon(`worker ${this.index} ${state}`);
    this.#stopped.resolve(undefined);
  }

  #post(message: ToWorker): void {
    if (this.#state !== "stopped" && this.#state !== "failed" && this.#state !== "crashed") {
      this.#worker.postMessage(message);
    }
  }
}

/** A worker that threw before it listened, as one line. */
function startupCrash(index: number, error: string): StartupError {
  // The start task lets the server read its own modules; a worker thread loads them again.
  if (/Requires read access/.test(error)) {
    return new StartupError(
      `worker ${index} could not load the server's modules: WORKERS needs read access to ` +
        `them (deno task start grants it): ${error}`,
      2,
    );
  }
  return new StartupError(`worker ${index} failed to start: ${error}`, 1);
}
