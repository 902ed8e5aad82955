import assert from "node:assert/strict";
import { backoffDelayMs } from "../../storage/backoff.ts";

Deno.test("backoffDelayMs() doubles from baseMs up to maxMs, keeping half and jittering half", () => {
  const options = { baseMs: 50, maxMs: 1_000 };
  const low = [1, 2, 3, 4, 5, 6, 10, 2_000].map((attempt) =>
    backoffDelayMs(attempt, { ...options, random: () => 0 })
  );
  assert.deepEqual(low, [25, 50, 100, 200, 400, 500, 500, 500]);
  const middle = [1, 2, 5].map((attempt) =>
    backoffDelayMs(attempt, { ...options, random: () => 0.5 })
  );
  assert.deepEqual(middle, [37.5, 75, 600]);
});

Deno.test("backoffDelayMs() stays within [d/2, d) for any draw, Math.random by default", () => {
  const options = { baseMs: 10, maxMs: 300 };
  for (let attempt = 1; attempt <= 12; attempt++) {
    const capped = Math.min(300, 10 * 2 ** (attempt - 1));
    const top = backoffDelayMs(attempt, { ...options, random: () => 0.999_999 });
    assert.ok(top >= capped / 2 && top < capped, `attempt ${attempt}: ${top} of ${capped}`);
    for (let draw = 0; draw < 50; draw++) {
      const delay = backoffDelayMs(attempt, options);
      assert.ok(delay >= capped / 2 && delay < capped, `attempt ${attempt}: ${delay} of ${capped}`);
    }
  }
});

Deno.test("backoffDelayMs() spreads workers that fail together", () => {
  const draws = [0.1, 0.4, 0.7, 0.95];
  const delays = draws.map((draw) =>
    backoffDelayMs(4, { baseMs: 50, maxMs: 5_000, random: () => draw })
  );
  assert.equal(new Set(delays).size, draws.length);
  assert.deepEqual(delays, [220, 280, 340, 390]);
});
