/** Retry delays: capped exponential backoff with equal jitter. @module */

/** Options of {@linkcode backoffDelayMs}. */
export interface BackoffOptions {
  /** Delay before the first retry, before jitter; doubled per attempt. */
  readonly baseMs: number;
  /** Cap of the delay before jitter: no delay is longer. */
  readonly maxMs: number;
  /** A number in [0, 1); `Math.random` by default. Tests inject their own. */
  readonly random?: () => number;
}

/**
 * The delay before retrying after failed attempt number `attempt` (1 for the first failure):
 * `d = min(maxMs, baseMs * 2^(attempt - 1))`, then equal jitter, a uniform pick in `[d/2, d)`.
 * Half the delay is kept so that a database that is down is never hammered with near-zero
 * retries; the other half is spread so that workers failing together do not retry together.
 *
 * @example
 * ```ts
 * backoffDelayMs(3, { baseMs: 50, maxMs: 5_000, random: () => 0.5 }); // 150: d = 200, in [100, 200)
 * ```
 * @throws never: an attempt below 1 counts as 1, and a large one is capped.
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions): number {
  const { baseMs, maxMs, random = Math.random } = options;
  // 2 ** 1100 is Infinity, which min() caps: no overflow to worry about.
  const capped = Math.min(maxMs, baseMs * 2 ** (Math.max(1, attempt) - 1));
  return capped / 2 + (capped / 2) * random();
}
