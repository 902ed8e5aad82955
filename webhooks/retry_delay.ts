/** When a failed webhook delivery is tried again, and when it is given up. @module */
import { backoffDelayMs } from "../storage/backoff.ts";

/** Options of {@linkcode retryDelayMs}. */
export interface RetryPolicy {
  /** Delay before the first retry, before jitter; doubled per attempt. */
  readonly baseMs: number;
  /** Cap of the delay before jitter. */
  readonly maxMs: number;
  /** How long after its event was made a delivery may still be tried (`WEBHOOK_RETRY_WINDOW`). */
  readonly windowMs: number;
  /** A number in [0, 1); `Math.random` by default. Tests inject their own. */
  readonly random?: () => number;
}

/**
 * The delay before the next attempt at a delivery whose attempt number `attempt` (1 for the
 * first) just failed, `ageMs` after its event was made: capped exponential backoff with equal
 * jitter ({@linkcode backoffDelayMs}). `undefined` when the next attempt would start after the
 * window: the delivery is given up.
 *
 * @example
 * ```ts
 * const policy = { baseMs: 1_000, maxMs: 60_000, windowMs: 600_000, random: () => 0 };
 * retryDelayMs(1, 0, policy); // 500
 * retryDelayMs(3, 10_000, policy); // 2_000
 * retryDelayMs(9, 599_000, policy); // undefined: 30 s more would pass the 10 minutes
 * ```
 * @throws never.
 */
export function retryDelayMs(
  attempt: number,
  ageMs: number,
  policy: RetryPolicy,
): number | undefined {
  const delay = backoffDelayMs(attempt, policy);
  return ageMs + delay > policy.windowMs ? undefined : delay;
}
