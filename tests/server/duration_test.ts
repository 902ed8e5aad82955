import assert from "node:assert/strict";
import { parseDuration } from "../../server/duration.ts";

Deno.test("parseDuration() reads each unit in milliseconds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("3h"), 10_800_000);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.equal(parseDuration("0s"), 0);
});

Deno.test("parseDuration() adds up parts written largest unit first", () => {
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("1s500ms"), 1_500);
  assert.equal(parseDuration("1m5ms"), 60_005);
  assert.equal(parseDuration("1d2h3m4s5ms"), 93_784_005);
  // A part may exceed the next unit up: configurations already say "90s" and "10080m".
  assert.equal(parseDuration("90m"), 5_400_000);
});

Deno.test("parseDuration() reads a bare integer as seconds, as configurations always have", () => {
  assert.equal(parseDuration("3"), 3_000);
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("007"), 7_000);
});

Deno.test("parseDuration() refuses anything else", () => {
  const rejects = [
    "",
    "s",
    "ms",
    "abc",
    "soon",
    "-5m",
    "+5m",
    "1.5s",
    "0.5",
    ".5s",
    "1e3",
    "1e3ms",
    " 10s",
    "10s ",
    "1h 30m",
    "10 s",
    "10S",
    "1H",
    "30m1h",
    "1s1m",
    "500ms1s",
    "1m1m",
    "1h30",
    "1w",
    "1y",
    "1sec",
    "1mss",
    "0x10",
    "١٠s", // non-ASCII digits
  ];
  for (const raw of rejects) assert.equal(parseDuration(raw), undefined, JSON.stringify(raw));
});

Deno.test("parseDuration() refuses values too large to be exact in milliseconds", () => {
  assert.equal(parseDuration(`${Number.MAX_SAFE_INTEGER}ms`), Number.MAX_SAFE_INTEGER);
  assert.equal(parseDuration(`${Number.MAX_SAFE_INTEGER + 1}ms`), undefined);
  assert.equal(parseDuration("9".repeat(400)), undefined);
  assert.equal(parseDuration(`${"9".repeat(400)}d`), undefined);
  assert.equal(parseDuration("104249991d"), 9_007_199_222_400_000);
  assert.equal(parseDuration("104249992d"), undefined);
  assert.equal(parseDuration("104249991d9h"), undefined);
});
