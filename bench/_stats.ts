/**
 * Latency percentiles without keeping every sample: a fixed histogram, 10 µs wide below 100 ms
 * and 1 ms wide up to 60 s (later samples land in the last bucket; `max` stays exact).
 *
 * @module
 */

const FINE_BUCKET_MS = 0.01;
const FINE_LIMIT_MS = 100;
const COARSE_BUCKET_MS = 1;
const COARSE_LIMIT_MS = 60_000;
const FINE_BUCKETS = Math.round(FINE_LIMIT_MS / FINE_BUCKET_MS);
const BUCKETS = FINE_BUCKETS + Math.round((COARSE_LIMIT_MS - FINE_LIMIT_MS) / COARSE_BUCKET_MS);

/** The percentiles every step reports, in milliseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Counts latencies into buckets; a percentile is the upper edge of the bucket it falls in.
 *
 * @example
 * ```ts
 * const histogram = new LatencyHistogram();
 * histogram.record(1.5);
 * histogram.summary().p99; // 1.51
 * ```
 */
export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS);
  #count = 0;
  #max = 0;

  /** Samples recorded. */
  get count(): number {
    return this.#count;
  }

  /** Adds one latency in milliseconds (negative values count as 0). */
  record(ms: number): void {
    const value = ms > 0 ? ms : 0;
    const bucket = value < FINE_LIMIT_MS ? Math.floor(value / FINE_BUCKET_MS) : Math.min(
      BUCKETS - 1,
      FINE_BUCKETS + Math.floor((value - FINE_LIMIT_MS) / COARSE_BUCKET_MS),
    );
    this.#counts[bucket] = (this.#counts[bucket] ?? 0) + 1;
    this.#count++;
    if (value > this.#max) this.#max = value;
  }

  /** The latency at or under which a fraction `q` (0 to 1) of the samples fall, in ms. */
  percentile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket] ?? 0;
      if (seen >= rank) return Math.min(this.#max, upperEdge(bucket));
    }
    return this.#max;
  }

  /** p50, p90, p99 and max, rounded to 0.01 ms. */
  summary(): LatencySummary {
    return {
      p50: round2(this.percentile(0.5)),
      p90: round2(this.percentile(0.9)),
      p99: round2(this.percentile(0.99)),
      max: round2(this.#max),
    };
  }
}

function upperEdge(bucket: number): number {
  return bucket < FINE_BUCKETS
    ? (bucket + 1) * FINE_BUCKET_MS
    : FINE_LIMIT_MS + (bucket - FINE_BUCKETS + 1) * COARSE_BUCKET_MS;
}

/** Rounds to two decimals. */
export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The median of some numbers (the mean of the middle two for an even count); NaN if none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] ?? NaN) + upper) / 2;
}

/**
 * Renders rows as a plain-text table with a header, columns padded to their widest cell.
 *
 * @example
 * ```ts
 * console.log(formatTable(["a", "b"], [["1", "22"]]));
 * ```
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((cell, column) =>
    Math.max(cell.length, ...rows.map((row) => (row[column] ?? "").length))
  );
  const line = (row: readonly string[]) =>
    row.map((cell, column) => cell.padStart(widths[column] ?? 0)).join("  ");
  return [line(header), widths.map((width) => "-".repeat(width)).join("  "), ...rows.map(line)]
    .join("\n");
}

/**
 * The least-squares slope of `y` over `x`; NaN with fewer than two distinct `x`.
 *
 * @example
 * ```ts
 * leastSquaresSlope([{ x: 1, y: 10 }, { x: 2, y: 12 }, { x: 3, y: 14 }]); // 2
 * ```
 */
export function leastSquaresSlope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  const meanX = points.reduce((sum, point) => sum + point.x, 0) / n;
  const meanY = points.reduce((sum, point) => sum + point.y, 0) / n;
  let covariance = 0;
  let variance = 0;
  for (const { x, y } of points) {
    covariance += (x - meanX) * (y - meanY);
    variance += (x - meanX) ** 2;
  }
  return variance > 0 ? covariance / variance : NaN;
}

/** One column of {@linkcode columnTable}: its header, and its cell of a line. */
export type Column = readonly [header: string, cell: (line: Record<string, unknown>) => unknown];

/**
 * Renders lines as a table of `columns`; a cell that is `undefined` shows as `-`.
 *
 * @example
 * ```ts
 * console.log(columnTable([["members", (line) => line.members]], lines));
 * ```
 */
export function columnTable(
  columns: readonly Column[],
  lines: readonly Record<string, unknown>[],
): string {
  return formatTable(
    columns.map(([header]) => header),
    lines.map((line) =>
      columns.map(([, cell]) => {
        const value = cell(line);
        return value === undefined ? "-" : String(value);
      })
    ),
  );
}

/**
 * The median of the slopes between every two points (Theil-Sen): unlike the least-squares slope,
 * one odd sample (a first one still high from the warm-up) does not tilt it. NaN with fewer
 * than two distinct `x`.
 *
 * @example
 * ```ts
 * medianSlope([50, 12, 14, 16, 18].map((y, i) => ({ x: i + 1, y }))); // 2
 * ```
 */
export function medianSlope(points: readonly { x: number; y: number }[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const [a, b] = [points[i], points[j]];
      if (a && b && a.x !== b.x) slopes.push((b.y - a.y) / (b.x - a.x));
    }
  }
  return median(slopes);
}
