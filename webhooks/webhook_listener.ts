/**
 * The chat's webhook listener: hears connections and new messages on the hot path and turns
 * them into queued webhook events, never waiting.
 *
 * @module
 */
import type { ChatEvents } from "../chat/chat_events.ts";
import type { ChatMessage } from "../chat/message.ts";
import { historyItem } from "../chat/protocol.ts";
import type { Logger } from "../log/logger.ts";
import { LocalOccupancy } from "./local_occupancy.ts";
import type { Occupancy } from "./occupancy.ts";
import { RedisOccupancy } from "./redis_occupancy.ts";
import { type WebhookMetrics, WebhookSender } from "./webhook_sender.ts";

/** Options of {@linkcode WebhookListener.start}: the `WEBHOOK_*` settings. */
export interface WebhooksOptions {
  readonly url: string;
  readonly secret: string;
  readonly offlineGraceMs: number;
  readonly timeoutMs: number;
  readonly retryWindowMs: number;
  readonly queueBytes: number;
  readonly concurrency: number;
  /** The Redis several instances share (`REDIS_URL`); absent: this instance is alone. */
  readonly redis?: { readonly url: string; readonly prefix: string; readonly ttlMs: number };
  readonly metrics: WebhookMetrics;
  readonly logger: Logger;
}

/** Backoff between attempts: 1 s, doubling up to a minute, with jitter. */
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 60_000;

/**
 * Counts this instance's connections per user and per room, so that only its first and last
 * reach the {@linkcode Occupancy} (which decides what is cluster-wide), and hands new messages
 * to the sender. Every method is a few map operations and a push: the hub calls them
 * synchronously. The maps hold only users and rooms with open connections.
 *
 * @example
 * ```ts
 * const webhooks = WebhookListener.start({ url, secret, offlineGraceMs: 30_000, ... });
 * const hub = new Hub({ ..., events: webhooks });
 * await hub.close();
 * await webhooks.close(AbortSignal.timeout(5_000));
 * ```
 */
export class WebhookListener implements ChatEvents {
  readonly #sender: WebhookSender;
  readonly #occupancy: Occupancy;
  readonly #users = new Map<string, number>();
  readonly #rooms = new Map<string, number>();

  constructor(sender: WebhookSender, occupancy: Occupancy) {
    this.#sender = sender;
    this.#occupancy = occupancy;
  }

  /** Starts the sender's workers and the occupancy (Redis when several instances share one). */
  static start(options: WebhooksOptions): WebhookListener {
    const sender = new WebhookSender({
      ...options,
      retry: { baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS, windowMs: options.retryWindowMs },
    });
    const emit = sender.send.bind(sender);
    const { redis, offlineGraceMs, logger } = options;
    const occupancy = redis === undefined
      ? new LocalOccupancy({ offlineGraceMs, emit })
      : RedisOccupancy.start(redis.url, {
        prefix: redis.prefix,
        ttlMs: redis.ttlMs,
        offlineGraceMs,
        emit,
        logger,
      });
    // The origin only: a URL's path or query may hold a token.
    logger.info("webhooks.enabled", {
      origin: new URL(options.url).origin,
      instance: occupancy instanceof RedisOccupancy ? occupancy.instance : undefined,
    });
    return new WebhookListener(sender, occupancy);
  }

  /** Events waiting for a worker. */
  get queuedEvents(): number {
    return this.#sender.queuedEvents;
  }

  /** Estimated bytes of the events waiting for a worker. */
  get queuedBytes(): number {
    return this.#sender.queuedBytes;
  }

  connected(user: string, room: string): void {
    if (increment(this.#users, user)) this.#occupancy.held("user", user);
    if (increment(this.#rooms, room)) this.#occupancy.held("room", room);
  }

  disconnected(user: string, room: string): void {
    if (decrement(this.#rooms, room)) this.#occupancy.released("room", room);
    if (decrement(this.#users, user)) this.#occupancy.released("user", user);
  }

  messageCreated(message: ChatMessage): void {
    this.#sender.send("message.created", historyItem(message));
  }

  /**
   * Releases whatever is still connected (a shutdown cut short), lets the occupancy emit what
   * that decides, then delivers what is queued until `signal` aborts.
   */
  async close(signal: AbortSignal): Promise<void> {
    for (const room of this.#rooms.keys()) this.#occupancy.released("room", room);
    for (const user of this.#users.keys()) this.#occupancy.released("user", user);
    this.#rooms.clear();
    this.#users.clear();
    await this.#occupancy.close();
    await this.#sender.close(signal);
  }
}

/** Adds one; whether it is the first. */
function increment(counts: Map<string, number>, name: string): boolean {
  const count = counts.get(name) ?? 0;
  counts.set(name, count + 1);
  return count === 0;
}

/** Takes one away; whether it was the last. A name never counted is left alone. */
function decrement(counts: Map<string, number>, name: string): boolean {
  const count = counts.get(name);
  if (count === undefined) return false;
  if (count > 1) {
    counts.set(name, count - 1);
    return false;
  }
  counts.delete(name);
  return true;
}
