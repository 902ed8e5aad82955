/**
 * The one duration syntax shared by the server's configuration and `deno task token`: `1h30m`,
 * `2d`, `500ms`, or a bare number of seconds.
 *
 * @module
 */

/** Milliseconds per unit, largest first: the order the parts must come in. */
const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;

// The groups are in UNIT_MS order and each is optional, so the regex alone refuses units out of
// order ("30m1h") or repeated ("1m1m"). No decimals: "1.5h" is "1h30m", and a fraction of a
// millisecond would need a rounding rule nobody reads.
const PARTS = /^(?:(?<d>\d+)d)?(?:(?<h>\d+)h)?(?:(?<m>\d+)m)?(?:(?<s>\d+)s)?(?:(?<ms>\d+)ms)?$/;

/**
 * Parses a duration into milliseconds: one or more `<integer><unit>` parts with units `d`, `h`,
 * `m`, `s`, `ms`, largest unit first and each at most once, or a bare integer meaning seconds
 * (what configurations written before the units existed use). No whitespace, signs, decimals or
 * upper-case units.
 *
 * Returns `undefined` for anything else, and for a value too large to be exact in milliseconds
 * (beyond `Number.MAX_SAFE_INTEGER`); it never throws. Bounds are the caller's business.
 *
 * @example
 * ```ts
 * parseDuration("1h30m"); // 5_400_000
 * parseDuration("2d"); // 172_800_000
 * parseDuration("500ms"); // 500
 * parseDuration("10"); // 10_000 (seconds)
 * parseDuration("30m1h"); // undefined
 * ```
 */
export function parseDuration(raw: string): number | undefined {
  if (/^\d+$/.test(raw)) return exact(Number(raw) * UNIT_MS.s);
  const groups = raw === "" ? undefined : PARTS.exec(raw)?.groups;
  if (groups === undefined) return undefined;
  let total = 0;
  for (const [unit, ms] of Object.entries(UNIT_MS)) {
    const digits = groups[unit];
    if (digits !== undefined) total += Number(digits) * ms;
  }
  return exact(total);
}

function exact(ms: number): number | undefined {
  return Number.isSafeInteger(ms) ? ms : undefined;
}
