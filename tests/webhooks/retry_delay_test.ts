import assert from "node:assert/strict";
import { retryDelayMs } from "../../webhooks/retry_delay.ts";

Deno.test("retryDelayMs() doubles from baseMs up to maxMs, with equal jitter", () => {
  const policy = { baseMs: 1_000, maxMs: 60_000, windowMs: Infinity };
  const low = [1, 2, 3, 4, 5, 6, 7, 8, 20].map((attempt) =>
    retryDelayMs(attempt, 0, { ...policy, random: () => 0 })
  );
  assert.deepEqual(low, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  const high = [1, 3, 8].map((attempt) =>
    retryDelayMs(attempt, 0, { ...policy, random: () => 0.999 })
  );
  assert.deepEqual(high.map((delay) => Math.round(delay ?? 0)), [1_000, 3_998, 59_970]);
  for (let draw = 0; draw < 100; draw++) {
    const delay = retryDelayMs(4, 0, policy) ?? -1;
    assert.ok(delay >= 4_000 && delay < 8_000, `${delay} within [d/2, d) of 8 s`);
  }
});

Deno.test("retryDelayMs() gives up once the next attempt would start after the window", () => {
  const policy = { baseMs: 1_000, maxMs: 60_000, windowMs: 600_000, random: () => 0 };
  assert.equal(retryDelayMs(1, 0, policy), 500);
  assert.equal(retryDelayMs(1, 599_500, policy), 500, "exactly at the window's end: tried");
  assert.equal(retryDelayMs(1, 599_501, policy), undefined);
  assert.equal(retryDelayMs(9, 580_000, policy), undefined, "30 s more would pass 10 minutes");
  assert.equal(
    retryDelayMs(1, 0, { ...policy, windowMs: 0 }),
    undefined,
    "a window of 0: no retry",
  );
});
