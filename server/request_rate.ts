/**
 * Per-address rate limits for HTTP requests a client can repeat at will (`/history`).
 *
 * @module
 */
import { TokenBucket } from "./token_bucket.ts";

/** Addresses tracked at most; the least recently seen are forgotten first (a full bucket again). */
const MAX_ADDRESSES = 10_000;

/**
 * One token bucket per client address, `perSecond` with a burst of twice that. The map is
 * bounded: many addresses cost at most {@linkcode MAX_ADDRESSES} buckets.
 *
 * @example
 * ```ts
 * const rate = new RequestRate(20);
 * if (!rate.take(info.remoteAddr.hostname)) return tooManyRequests(rate.retryAfterSeconds);
 * ```
 */
export class RequestRate {
  readonly #perSecond: number;
  /** In least recently seen order: each request moves its address to the end. */
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  /** Seconds after which a refused client has a token again. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(1 / this.#perSecond));
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Admits one request from `address` if its bucket has a token. */
  take(address: string): boolean {
    let bucket = this.#buckets.get(address);
    if (bucket) this.#buckets.delete(address);
    else bucket = new TokenBucket({ perSecond: this.#perSecond, burst: 2 * this.#perSecond });
    this.#buckets.set(address, bucket);
    if (this.#buckets.size > MAX_ADDRESSES) {
      this.#buckets.delete(this.#buckets.keys().next().value as string);
    }
    return bucket.take();
  }
}
