/**
 * The report of `bench:compare` when it runs the real server against itself with one thing
 * changed, in the same run on the same machine: a `client_id` on every message
 * (`--compare-client-id`, target (5) of issue 14) or the conversation mix of typing frames and
 * reactions (`--compare-mix`, item 5 of issue 18). Ratios changed / unchanged of the fanout and
 * chatty figures, then the target.
 *
 * @module
 */
import { formatTable, median, round2 } from "./_stats.ts";

/** Which comparison; names the changed side's target suffix (`+cid`, `+mix`). */
export type PairComparison = "client-id" | "mix";
/** The figures of one scenario and target, over the rounds: `values(scenario, target, key)`. */
export type Values = (scenario: string, target: string, key: string) => number[];

/** What each comparison is called, and its target. */
const PAIRS: Readonly<
  Record<PairComparison, { suffix: string; changed: string; unchanged: string; target: string }>
> = {
  "client-id": {
    suffix: "+cid",
    changed: "with client_id",
    unchanged: "without",
    target: "(5) fanout with client_id >= 90% of without",
  },
  mix: {
    suffix: "+mix",
    changed: "mix",
    unchanged: "plain",
    target: "issue 18 (5): fanout with 10% typing/reactions >= 90% of plain",
  },
};
/** The changed side must reach this share of the unchanged side's sustained deliveries/s. */
const TARGET_SHARE = 0.9;

const FIGURES: readonly [string, string, string, "max" | "min"][] = [
  ["fanout sustained deliveries/s", "fanout", "sustainedDeliveriesPerSecond", "max"],
  ["fanout sustained offered frames/s", "fanout", "sustainedOfferedPerSecond", "max"],
  ["fanout peak deliveries/s (any step)", "fanout", "peakDeliveriesPerSecond", "max"],
  ["fanout server CPU% per 10k deliveries/s", "fanout", "serverCpuPercentPer10kDeliveries", "min"],
  ["fanout p99 ms at sustained", "fanout", "sustainedP99Ms", "min"],
  ["fanout half-load p99 ms", "fanout", "halfLoadP99Ms", "min"],
  ["chatty p99 ms", "chatty", "p99Ms", "min"],
  ["chatty server CPU%", "chatty", "serverCpuPercent", "min"],
];

const cell = (value: unknown) =>
  value === undefined || (typeof value === "number" && Number.isNaN(value)) ? "-" : String(value);
const ratio = (a: number, b: number) => (b > 0 ? round2(a / b) : NaN);

/**
 * Prints the ratios of every figure both sides measured (median over rounds, and best round
 * against best round), what the mix sent and got, and the target.
 *
 * @example
 * ```ts
 * printPairReport("mix", { values, database: false, scenarios: ["fanout"], lines });
 * ```
 */
export function printPairReport(
  comparison: PairComparison,
  options: {
    readonly values: Values;
    readonly database: boolean;
    readonly scenarios: readonly string[];
    readonly lines: readonly Record<string, unknown>[];
  },
): void {
  const pair = PAIRS[comparison];
  const { values } = options;
  const stores: [string, string][] = [["in memory", "server"]];
  if (options.database) stores.push(["PostgreSQL", "server+pg"]);
  const rows: string[][] = [];
  for (const [store, unchanged] of stores) {
    for (const [label, scenario, key, best] of FIGURES) {
      const a = values(scenario, unchanged + pair.suffix, key);
      const b = values(scenario, unchanged, key);
      if (a.length === 0 || b.length === 0) continue;
      const pick = best === "max" ? Math.max : Math.min;
      rows.push(
        [
          store,
          label,
          round2(median(a)),
          round2(median(b)),
          ratio(median(a), median(b)),
          ratio(pick(...a), pick(...b)),
        ].map(cell),
      );
    }
  }
  console.log(
    `\nratios, ${pair.changed} / ${pair.unchanged} (median over rounds; best = best round of each)`,
  );
  console.log(
    formatTable(["store", "figure", pair.changed, pair.unchanged, "ratio", "best ratio"], rows),
  );
  if (comparison === "mix") printMixCounts(options.lines);
  if (!options.scenarios.includes("fanout")) return;
  const verdict = (ok: boolean) => (ok ? "PASS" : "FAIL");
  const targetRows = stores.map(([store, unchanged]) => {
    const a = values("fanout", unchanged + pair.suffix, "sustainedDeliveriesPerSecond");
    const b = values("fanout", unchanged, "sustainedDeliveriesPerSecond");
    const share = ratio(median(a), median(b));
    const best = ratio(Math.max(...a), Math.max(...b));
    return [
      `${pair.target} (${store})`,
      `median ${share}, best ${best}`,
      `${verdict(share >= TARGET_SHARE)} (best: ${verdict(best >= TARGET_SHARE)})`,
    ];
  });
  console.log("\ntargets");
  console.log(formatTable(["target", "measured", "verdict"], targetRows));
}

/** What the mix's senders sent and its members got, at each run's sustained step. */
function printMixCounts(lines: readonly Record<string, unknown>[]): void {
  const rows = lines.filter((line) => line.summary === true && line.sustainedMix !== undefined)
    .map((line) => {
      const mix = line.sustainedMix as Record<string, number>;
      return [
        line.target,
        line.round,
        line.scenario,
        mix.messagesSent,
        mix.reactionsSent,
        mix.typingSent,
        mix.reactionsDelivered,
        mix.typingDelivered,
      ].map(cell);
    });
  if (rows.length === 0) return;
  console.log(
    "\nmix at the sustained step (deliveries = messages + reactions received; a reaction reaches " +
      "every member, typing frames at most one per user per 2 s, to the others, and are not " +
      "counted as deliveries)",
  );
  console.log(formatTable(
    [
      "target",
      "round",
      "scenario",
      "messages sent",
      "reactions sent",
      "typing sent",
      "reactions got",
      "typing got",
    ],
    rows,
  ));
}
