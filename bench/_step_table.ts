/**
 * The table of traffic steps (fanout, chatty) that `bench` and `bench:cluster` print after their
 * JSON lines: one row per step line, latency in ms.
 *
 * @module
 */
import { formatTable } from "./_stats.ts";

const HEADER = [
  "scenario",
  "phase",
  "offered/s",
  "sent/s",
  "deliveries/s",
  "p50",
  "p90",
  "p99",
  "max",
  "lost",
  "dup",
  "reord",
  "seq",
  "refused",
  "dropped",
  "srv CPU%",
  "srv RSS MiB",
  "gen CPU%",
  "other CPU%",
  "result",
];

/**
 * Renders step lines as a table. `seq` counts broken room sequences and `gap` frames together.
 *
 * @example
 * ```ts
 * console.log(stepTable(lines.filter((line) => line.scenario === "fanout" && !line.summary)));
 * ```
 */
export function stepTable(lines: readonly Record<string, unknown>[]): string {
  const cell = (value: unknown) => value === undefined ? "-" : String(value);
  return formatTable(
    HEADER,
    lines.map((line) => {
      const latency = (line.latencyMs ?? {}) as Record<string, number>;
      const refused = Object.values((line.refused ?? {}) as Record<string, number>);
      return [
        line.scenario,
        line.phase,
        line.offeredPerSecond,
        line.sentPerSecond,
        line.deliveriesPerSecond,
        latency.p50,
        latency.p90,
        latency.p99,
        latency.max,
        line.lost,
        line.duplicated,
        line.reordered,
        Number(line.seqBroken ?? 0) + Number(line.gaps ?? 0),
        refused.reduce((sum, n) => sum + n, 0),
        line.dropped,
        line.serverCpuPercent,
        typeof line.serverRssKiB === "number" ? Math.round(line.serverRssKiB / 1024) : undefined,
        line.clientCpuPercent,
        line.otherCpuPercent,
        `${line.pass ? "ok" : "FAIL"}${line.clientBound ? " client-bound" : ""}${
          line.noisy ? " noisy" : ""
        }`,
      ].map(cell);
    }),
  );
}
