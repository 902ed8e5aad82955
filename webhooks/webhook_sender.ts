/**
 * Delivers webhook events: a byte-bounded queue the chat pushes to without waiting, and a few
 * workers that POST each event, signed, retrying with backoff until it is accepted or too old.
 *
 * @module
 */
import { errorCode } from "../log/error_code.ts";
import type { Logger } from "../log/logger.ts";
import { DeliveryQueue } from "./delivery_queue.ts";
import { retryDelayMs, type RetryPolicy } from "./retry_delay.ts";
import { SIGNATURE_HEADER, WebhookSigner } from "./signature.ts";
import { type WebhookDelivery, webhookDelivery, type WebhookEventType } from "./webhook_event.ts";

/** Why one attempt failed (`chat_webhook_failed_total{reason}`); the delivery is retried. */
export type WebhookFailure = "timeout" | "network" | "http_3xx" | "http_4xx" | "http_5xx";

/** Why an event was given up (`chat_webhook_dropped_total{reason}`). */
export type WebhookDrop = "queue_full" | "oversized" | "retries_exhausted" | "shutdown" | "error";

/** What the sender reports; the server counts it in Prometheus metrics. Never throws. */
export interface WebhookMetrics {
  /** The endpoint accepted an event (2xx). */
  webhookDelivered(): void;
  /** An attempt failed for `reason`. */
  webhookFailed(reason: WebhookFailure): void;
  /** `count` events were given up for `reason`. */
  webhookDropped(reason: WebhookDrop, count: number): void;
}

/** Counts nothing. */
export const NO_WEBHOOK_METRICS: WebhookMetrics = {
  webhookDelivered() {},
  webhookFailed() {},
  webhookDropped() {},
};

/** Options of {@linkcode WebhookSender}. */
export interface WebhookSenderOptions {
  /** Where every event is POSTed (`WEBHOOK_URL`). */
  readonly url: string;
  /** The HMAC-SHA256 key of `X-Chat-Signature` (`WEBHOOK_SECRET`). */
  readonly secret: string;
  /** Longest one request may take, answer included (`WEBHOOK_TIMEOUT`). */
  readonly timeoutMs: number;
  /** Estimated bytes the queue holds at most (`WEBHOOK_QUEUE_BYTES`); the oldest go first. */
  readonly queueBytes: number;
  /** Requests in flight at most (`WEBHOOK_CONCURRENCY`). */
  readonly concurrency: number;
  /** Backoff between attempts and how long an event is retried (`WEBHOOK_RETRY_WINDOW`). */
  readonly retry: RetryPolicy;
  readonly metrics: WebhookMetrics;
  readonly logger: Logger;
}

/**
 * At-least-once delivery of chat events to one endpoint. {@linkcode WebhookSender.send} only
 * encodes and queues: it is called on the chat's hot path and never waits, throws or blocks,
 * whatever the endpoint does. `concurrency` workers take events in order and POST them; a
 * failed attempt (network error, timeout, any status but 2xx) is retried after a capped,
 * jittered exponential backoff with the same body, id and signature, until the event is older
 * than the retry window. Events may reach the endpoint out of order (several workers, retries):
 * receivers order by `time` and dedupe by `id`.
 *
 * @example
 * ```ts
 * const sender = new WebhookSender({ url, secret, timeoutMs: 5_000, queueBytes: 16 << 20,
 *   concurrency: 4, retry: { baseMs: 1_000, maxMs: 60_000, windowMs: 600_000 }, metrics, logger });
 * sender.send("user.online", { user: "ann" });
 * await sender.close(AbortSignal.timeout(5_000)); // delivers what is queued until then
 * ```
 */
export class WebhookSender {
  readonly #options: WebhookSenderOptions;
  readonly #queue: DeliveryQueue<WebhookDelivery>;
  readonly #signer: WebhookSigner;
  /** Aborted when shutdown's time is up: requests and backoff waits end at once. */
  readonly #stop = new AbortController();
  readonly #workers: Promise<void>[];
  #failing = false;
  #dropping = false;

  constructor(options: WebhookSenderOptions) {
    this.#options = options;
    this.#queue = new DeliveryQueue(options.queueBytes);
    this.#signer = new WebhookSigner(options.secret);
    this.#workers = Array.from({ length: options.concurrency }, () => this.#work());
  }

  /** Events waiting for a worker. */
  get queuedEvents(): number {
    return this.#queue.length;
  }

  /** Estimated bytes of the events waiting for a worker. */
  get queuedBytes(): number {
    return this.#queue.bytes;
  }

  /**
   * Queues one event for delivery: encodes it once and returns. When the queue is full the
   * oldest events are dropped (counted as `queue_full`); an event larger than the whole queue,
   * or one sent after {@linkcode WebhookSender.close}, is dropped itself.
   *
   * @throws never.
   */
  send(type: WebhookEventType, data: Readonly<Record<string, unknown>>): void {
    const delivery = webhookDelivery(type, data);
    if (this.#queue.closed) return this.#options.metrics.webhookDropped("shutdown", 1);
    if (!this.#queue.fits(delivery.bytes)) {
      return this.#options.metrics.webhookDropped("oversized", 1);
    }
    const dropped = this.#queue.push(delivery);
    if (dropped === 0) return;
    this.#options.metrics.webhookDropped("queue_full", dropped);
    if (!this.#dropping) {
      this.#dropping = true;
      this.#options.logger.warn("webhook.queue_full", { limitBytes: this.#queue.limitBytes });
    }
  }

  /**
   * Takes no more events and delivers what is queued (retries included) until `signal` aborts;
   * then aborts the requests in flight and gives up the rest (`shutdown`). Resolves once every
   * worker has ended.
   */
  async close(signal: AbortSignal): Promise<void> {
    this.#queue.close();
    const stop = () => {
      this.#stop.abort();
      const left = this.#queue.clear();
      if (left > 0) this.#options.metrics.webhookDropped("shutdown", left);
    };
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
    await Promise.all(this.#workers);
    signal.removeEventListener("abort", stop);
  }

  async #work(): Promise<void> {
    for (;;) {
      const delivery = await this.#queue.take();
      if (delivery === undefined) return;
      if (this.#dropping && this.#queue.length === 0) {
        this.#dropping = false;
        this.#options.logger.info("webhook.queue_recovered", {});
      }
      try {
        await this.#deliver(delivery);
      } catch (error) {
        // Not an endpoint's failure (those are retried) but a bug: contained, the worker goes on.
        this.#options.metrics.webhookDropped("error", 1);
        this.#options.logger.error("webhook.delivery_failed", { error: errorCode(error) });
      }
    }
  }

  async #deliver(delivery: WebhookDelivery): Promise<void> {
    const { metrics } = this.#options;
    const signature = await this.#signer.sign(delivery.body);
    for (let attempt = 1;; attempt++) {
      const failure = await this.#post(delivery, signature);
      if (failure === undefined) {
        metrics.webhookDelivered();
        if (this.#failing) this.#options.logger.info("webhook.recovered", {});
        this.#failing = false;
        return;
      }
      // Aborted by close(), not failed: not counted as an attempt.
      if (this.#stop.signal.aborted) return metrics.webhookDropped("shutdown", 1);
      metrics.webhookFailed(failure);
      if (!this.#failing) {
        this.#failing = true;
        // Once per episode: while the endpoint fails, every attempt would say the same.
        this.#options.logger.warn("webhook.failing", { reason: failure, type: delivery.type });
      }
      const delay = retryDelayMs(attempt, Date.now() - delivery.createdAt, this.#options.retry);
      if (delay === undefined) return metrics.webhookDropped("retries_exhausted", 1);
      await pause(delay, this.#stop.signal);
    }
  }

  /** One attempt: `undefined` when the endpoint accepted it (2xx), else why not. */
  async #post(delivery: WebhookDelivery, signature: string): Promise<WebhookFailure | undefined> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.#options.timeoutMs);
    try {
      const response = await fetch(this.#options.url, {
        method: "POST",
        headers: { "content-type": "application/json", [SIGNATURE_HEADER]: signature },
        body: delivery.body,
        // A redirect is a failure: following it would send the signed body somewhere else.
        redirect: "manual",
        signal: AbortSignal.any([this.#stop.signal, timeout.signal]),
      });
      // The answer's body is not read: only its status counts.
      await response.body?.cancel();
      if (response.ok) return undefined;
      if (response.status >= 500) return "http_5xx";
      return response.status >= 400 ? "http_4xx" : "http_3xx";
    } catch (error) {
      if (timeout.signal.aborted || this.#stop.signal.aborted) return "timeout";
      // fetch rejects with a TypeError for refused, reset and unresolvable connections.
      if (error instanceof TypeError) return "network";
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Waits `ms`, or less if `signal` aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
