/**
 * A token bucket: the rate limiter of one connection.
 *
 * @module
 */

// Shared rather than bound per bucket: every connection has a bucket.
const monotonicNow = () => performance.now();

/**
 * Holds up to `burst` tokens and gains `perSecond` per second; each admitted event takes one.
 * Refilling is computed on demand from the clock, so an idle bucket costs no timer.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket({ perSecond: 10, burst: 20 });
 * if (!bucket.take()) refuse();
 * ```
 */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #updatedAt: number;

  constructor(options: { perSecond: number; burst: number; now?: () => number }) {
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst;
    this.#now = options.now ?? monotonicNow;
    this.#tokens = options.burst;
    this.#updatedAt = this.#now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#updatedAt) * this.#perMs);
    this.#updatedAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
