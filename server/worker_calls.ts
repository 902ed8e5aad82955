/**
 * The messages between the supervisor (`main.ts`'s thread) and its `WORKERS` threads, and the
 * calls made with them: a query posted with an id, answered by a reply with the same id.
 *
 * @module
 */
import type { PersistReport } from "../storage/persist_workers.ts";
import type { Config } from "./config.ts";
import type { LogFormat } from "../log/logger.ts";
import type { Readiness } from "./routes.ts";

/**
 * What a query asks. Asked of a worker: its own; asked by a worker of the supervisor: the whole
 * server's (every worker's metrics merged, everyone's readiness).
 */
export interface Answers {
  /** Prometheus text. */
  metrics: string;
  readiness: Readiness;
  /** Messages not stored yet. */
  unstored: number;
}

/** One of {@linkcode Answers}' names. */
export type Query = keyof Answers;

/** A query, either way. */
export interface QueryMessage {
  readonly type: "query";
  readonly id: number;
  readonly query: Query;
}

/** The answer to the query with the same id, either way. */
export interface ReplyMessage {
  readonly type: "reply";
  readonly id: number;
  readonly value: Answers[Query];
}

/** What the supervisor tells a worker. */
export type ToWorker =
  | {
    readonly type: "start";
    readonly index: number;
    /** With the port the first worker got when `PORT=0`. */
    readonly config: Config;
    readonly logFormat: LogFormat;
  }
  | { readonly type: "stop" }
  | QueryMessage
  | ReplyMessage;

/** What a worker tells the supervisor. */
export type FromWorker =
  | { readonly type: "listening"; readonly addr: Deno.NetAddr }
  | { readonly type: "failed"; readonly message: string; readonly exitCode: 1 | 2 }
  | { readonly type: "stopped"; readonly report: PersistReport }
  | QueryMessage
  | ReplyMessage;

/** The other side did not answer in time, or went away. */
export class CallFailedError extends Error {
  readonly code = "call_failed";

  constructor(query: Query, reason: string) {
    super(`${query}: ${reason}`);
    this.name = "CallFailedError";
  }
}

interface Waiting {
  readonly query: Query;
  readonly settle: (value: Answers[Query] | CallFailedError) => void;
}

/**
 * The calls one side has made and not yet had answered. Each waits at most its timeout, so the
 * number waiting is bounded by the requests in flight.
 *
 * @example
 * ```ts
 * const calls = new PendingCalls();
 * worker.onmessage = (event) => event.data.type === "reply" && calls.settle(event.data);
 * const text = await calls.ask((message) => worker.postMessage(message), "metrics", 3_000);
 * ```
 */
export class PendingCalls {
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 0;

  /**
   * Posts `query` and waits for its reply.
   *
   * @throws {CallFailedError} after `timeoutMs` without a reply, or if {@linkcode abandon}ed.
   */
  ask<Q extends Query>(
    post: (message: QueryMessage) => void,
    query: Q,
    timeoutMs: number,
  ): Promise<Answers[Q]> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.#finish(id, new CallFailedError(query, `no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiting.set(id, {
        query,
        settle: (value) => {
          clearTimeout(timer);
          // The reply to a query named `query` carries its answer: the other side's contract.
          if (value instanceof CallFailedError) reject(value);
          else resolve(value as Answers[Q]);
        },
      });
      post({ type: "query", id, query });
    });
  }

  /** Hands a reply to its call; one that comes after its call gave up is dropped. */
  settle(reply: ReplyMessage): void {
    this.#finish(reply.id, reply.value);
  }

  /** Fails every call still waiting: the other side is gone. */
  abandon(reason: string): void {
    for (const [id, { query }] of [...this.#waiting]) {
      this.#finish(id, new CallFailedError(query, reason));
    }
  }

  #finish(id: number, value: Answers[Query] | CallFailedError): void {
    const waiting = this.#waiting.get(id);
    this.#waiting.delete(id);
    waiting?.settle(value);
  }
}
