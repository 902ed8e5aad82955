/**
 * The readable end of `bench:compare`: per-run tables, server / baseline ratios and the targets
 * of the performance issue, from the JSON lines the runs printed.
 *
 * @module
 */
import { type PairComparison, printPairReport } from "./_pair_report.ts";
import { formatTable, median, round2 } from "./_stats.ts";

/**
 * Which server a run was against. `+cid`: the real server with a `client_id` on every message;
 * `+mix`: the real server getting typing frames and reactions among the messages. In those
 * comparisons the runs without send the same JSON message frames.
 */
export type TargetName =
  | "baseline"
  | "server"
  | "server+pg"
  | "server+cid"
  | "server+pg+cid"
  | "server+mix"
  | "server+pg+mix"
  | "server+batch"
  | "server+redis"
  | "server+workers";
/** One JSON line of bench/load.ts, tagged with `round` and `target`. */
export type Line = Record<string, unknown>;

/** What the report needs to know of the run. */
export interface ReportOptions {
  readonly rounds: number;
  readonly scenarios: readonly string[];
  readonly database: boolean;
  readonly seconds: number;
  /** The targets run, in order; by default the baseline, the server and (database) server+pg. */
  readonly targets?: readonly TargetName[];
  /**
   * `baseline` (default): server against baseline, targets (1)-(4). `client-id`: the server with
   * a `client_id` on every message against the server without, target (5) of issue 14. `mix`:
   * the server with typing frames and reactions among the messages against plain messages, item
   * 5 of issue 18.
   */
  readonly compare?: "baseline" | PairComparison;
}

const cell = (value: unknown) =>
  value === undefined || (typeof value === "number" && Number.isNaN(value)) ? "-" : String(value);
const mib = (kib: unknown) => round2(Number(kib) / 1024);
const ratio = (a: number, b: number) => (b > 0 ? round2(a / b) : NaN);

/**
 * Prints the tables, the ratios and the targets.
 *
 * @example
 * ```ts
 * printReport(lines, { rounds: 2, scenarios: ["fanout"], database: false, seconds: 100 });
 * ```
 */
export function printReport(lines: readonly Line[], options: ReportOptions): void {
  const results = (scenario: string, target: string) =>
    lines.filter((line) =>
      line.scenario === scenario && line.target === target &&
      (line.summary === true || scenario === "connections")
    );
  // Only real numbers: a figure a run could not measure is absent (or null, from NaN).
  const values = (scenario: string, target: string, key: string) =>
    results(scenario, target).map((line) => line[key]).filter((value): value is number =>
      typeof value === "number" && Number.isFinite(value)
    );
  const targets: readonly TargetName[] = options.targets ??
    (options.database ? ["baseline", "server", "server+pg"] : ["baseline", "server"]);
  const table = (
    scenario: string,
    title: string,
    columns: [string, (line: Line) => unknown][],
  ) => {
    if (!options.scenarios.includes(scenario)) return;
    console.log(`\n${title}`);
    const rows = targets.flatMap((target) =>
      results(scenario, target).map((line) =>
        [target, line.round, ...columns.map(([, get]) => get(line))].map(cell)
      )
    );
    console.log(formatTable(["target", "round", ...columns.map(([name]) => name)], rows));
  };

  console.log(`\nbench:compare: ${options.rounds} rounds, ${round2(options.seconds)} s`);
  const frames = [...new Set(lines.map((line) => `${line.target}: ${line.frames ?? "text"}`))];
  console.log(`frames: ${frames.join(", ")}`);
  table("fanout", "fanout: 10 rooms x 100 members (sustained = highest offered load passing)", [
    ["sustained msg/s", (l) => l.sustainedOfferedPerSecond],
    ["deliveries/s", (l) => l.sustainedDeliveriesPerSecond],
    ["peak deliv/s", (l) => l.peakDeliveriesPerSecond],
    ["p99 ms", (l) => l.sustainedP99Ms],
    ["srv CPU%", (l) => l.sustainedServerCpuPercent],
    ["gen CPU%", (l) => l.sustainedClientCpuPercent],
    ["db CPU%", (l) => l.sustainedSutCpuPercent],
    ["srv CPU%/10k", (l) => l.serverCpuPercentPer10kDeliveries],
    ["gen ceiling/s", (l) => l.clientCeilingDeliveriesPerSecond],
    ["acked", (l) => l.sustainedAcked],
    ["half p99", (l) => l.halfLoadP99Ms],
    ["half clean", (l) => l.halfLoadClean],
    ["noisy/steps", (l) => `${l.noisySteps}/${l.steps}`],
    ["stopped by", (l) => l.stoppedBy],
    ["client-bound", (l) => l.clientBound],
  ]);
  table("chatty", "chatty: 200 rooms x 5 members, 1 msg/s each", [
    ["deliveries/s", (l) => l.deliveriesPerSecond],
    ["p50 ms", (l) => l.p50Ms],
    ["p99 ms", (l) => l.p99Ms],
    ["srv CPU%", (l) => l.serverCpuPercent],
    ["gen CPU%", (l) => l.clientCpuPercent],
    ["other CPU%", (l) => l.otherCpuPercent],
    ["pass", (l) => l.pass],
  ]);
  table("connections", "connections: idle", [
    ["room size", (l) => l.roomSize],
    ["opened", (l) => l.opened],
    ["conn/s", (l) => l.connectsPerSecond],
    ["srv idle MiB", (l) => mib(l.serverIdleRssKiB)],
    ["srv loaded MiB", (l) => mib(l.serverLoadedRssKiB)],
    ["KiB/conn", (l) => l.serverKiBPerConnection],
    ["other CPU%", (l) => l.otherCpuPercent],
  ]);

  if (options.compare !== undefined && options.compare !== "baseline") {
    printPairReport(options.compare, { ...options, values, lines });
    return;
  }
  const figure = (label: string, scenario: string, key: string, best: "max" | "min") => {
    const server = values(scenario, "server", key);
    const baseline = values(scenario, "baseline", key);
    const pick = best === "max" ? Math.max : Math.min;
    return [
      label,
      round2(median(server)),
      round2(median(baseline)),
      ratio(median(server), median(baseline)),
      ratio(pick(...server), pick(...baseline)),
    ];
  };
  const rows = [
    figure("fanout sustained deliveries/s", "fanout", "sustainedDeliveriesPerSecond", "max"),
    figure(
      "fanout server CPU% per 10k deliveries/s",
      "fanout",
      "serverCpuPercentPer10kDeliveries",
      "min",
    ),
    figure("chatty p99 ms", "chatty", "p99Ms", "min"),
    figure("chatty server CPU%", "chatty", "serverCpuPercent", "min"),
    figure("connections conn/s", "connections", "connectsPerSecond", "max"),
    figure("connections KiB/conn", "connections", "serverKiBPerConnection", "min"),
  ].filter((row) => !Number.isNaN(row[1]));
  console.log("\nratios, server / baseline (median over rounds; best = best round of each)");
  console.log(
    formatTable(
      ["figure", "server", "baseline", "ratio", "best ratio"],
      rows.map((row) => row.map(cell)),
    ),
  );

  if (options.database) {
    const pg = values("fanout", "server+pg", "sustainedDeliveriesPerSecond");
    const memory = values("fanout", "server", "sustainedDeliveriesPerSecond");
    const pgCost = median(values("fanout", "server+pg", "serverCpuPercentPer10kDeliveries"));
    const memoryCost = median(values("fanout", "server", "serverCpuPercentPer10kDeliveries"));
    console.log(
      `\nfanout, PostgreSQL / in memory: sustained ${median(pg)} / ${median(memory)} = ` +
        `${ratio(median(pg), median(memory))} (best ${
          ratio(Math.max(...pg), Math.max(...memory))
        }); ` +
        `server CPU% per 10k deliveries/s ${round2(pgCost)} / ${round2(memoryCost)}`,
    );
  }
  if (options.targets?.includes("server+batch")) printBatch(lines, values);
  if (options.targets?.includes("server+workers")) printWorkers(values);
  printTargets(lines, { ...options, values });
}

/**
 * Issue 19's figures: the server with batched frames (`server+batch`) and without (`server`),
 * each against the baseline (one frame per message), and their targets.
 */
function printBatch(
  lines: readonly Line[],
  values: (scenario: string, target: TargetName, key: string) => number[],
): void {
  const verdict = (ok: boolean) => (ok ? "PASS" : "FAIL");
  const of = (target: TargetName, key: string) => values("fanout", target, key);
  const share = (target: TargetName, key: string) =>
    ratio(median(of(target, key)), median(of("baseline", key)));
  const peak = share("server+batch", "peakDeliveriesPerSecond");
  const sustained = share("server+batch", "sustainedDeliveriesPerSecond");
  const plain = share("server", "sustainedDeliveriesPerSecond");
  const cost = share("server+batch", "serverCpuPercentPer10kDeliveries");
  const halves = lines.filter((line) =>
    line.scenario === "fanout" && line.target === "server+batch" && line.summary === true
  );
  const halfOk = halves.length > 0 &&
    halves.every((line) => Number(line.halfLoadP99Ms) <= 25 && line.halfLoadClean === true);
  // CPU per delivery of single steps: at the highest offered load both ran cleanly, and at the
  // step of each one's most deliveries/s.
  const steps = (target: TargetName) =>
    lines.filter((line) =>
      line.scenario === "fanout" && line.target === target && line.phase === "ladder" &&
      typeof line.serverCpuPercent === "number" && Number(line.deliveriesPerSecond) > 0
    );
  const per10k = (line: Line) =>
    (Number(line.serverCpuPercent) / Number(line.deliveriesPerSecond)) * 10_000;
  const cleanRates = (target: TargetName) =>
    new Set(steps(target).filter((line) => line.pass === true).map((l) => l.offeredPerSecond));
  const batchRates = cleanRates("server+batch");
  const common = [...cleanRates("baseline")].filter((rate) => batchRates.has(rate))
    .map(Number).sort((a, b) => b - a)[0];
  const costAt = (target: TargetName) =>
    median(steps(target).filter((line) => line.offeredPerSecond === common).map(per10k));
  const costAtPeak = (target: TargetName) => {
    const byRound = Map.groupBy(steps(target), (line) => line.round);
    return median(
      [...byRound.values()].map((rounds) =>
        per10k(
          rounds.reduce((best, line) =>
            Number(line.deliveriesPerSecond) > Number(best.deliveriesPerSecond) ? line : best
          ),
        )
      ),
    );
  };
  const sameLoad = common === undefined ? NaN : ratio(costAt("server+batch"), costAt("baseline"));
  const atPeak = ratio(costAtPeak("server+batch"), costAtPeak("baseline"));
  console.log("\nbatched frames (issue 19), fanout, median over rounds, against the baseline");
  console.log(formatTable(["target", "figure", "verdict"], [
    ["(1) peak deliveries/s with batching >= 2.0x", String(peak), verdict(peak >= 2)],
    ["(1) sustained with batching >= 1.5x", String(sustained), verdict(sustained >= 1.5)],
    ["(1) sustained without batching >= 0.95x", String(plain), verdict(plain >= 0.95)],
    [
      "(2) half load with batching: p99 <= 25 ms, clean",
      halves.map((line) => `${line.halfLoadP99Ms} ms`).join(", "),
      verdict(halfOk),
    ],
    ["(3) server CPU per delivery with batching, clean steps (aim <= 0.6x)", String(cost), "-"],
    [
      `(3) ... at the same offered load (${common ?? "none"} msg/s), CPU%/10k batch/baseline`,
      `${sameLoad} (${round2(costAt("server+batch"))} / ${round2(costAt("baseline"))})`,
      "-",
    ],
    [
      "(3) ... at each one's maximum deliveries/s (aim <= 0.6x)",
      `${atPeak} (${round2(costAtPeak("server+batch"))} / ${round2(costAtPeak("baseline"))})`,
      verdict(atPeak <= 0.6),
    ],
  ]));
}

/**
 * Issue 19's `WORKERS` figure: n server threads against one, both joined through Redis, with the
 * generator's CPU beside them (it shares the machine's cores with the servers).
 */
function printWorkers(
  values: (scenario: string, target: TargetName, key: string) => number[],
): void {
  const of = (target: TargetName, key: string) => round2(median(values("fanout", target, key)));
  const rows = (["server", "server+redis", "server+workers"] as const).map((target) => [
    target,
    String(of(target, "sustainedDeliveriesPerSecond")),
    String(of(target, "peakDeliveriesPerSecond")),
    String(of(target, "sustainedServerCpuPercent")),
    String(of(target, "sustainedClientCpuPercent")),
  ]);
  console.log("\nWORKERS (issue 19), fanout, median over rounds (CPU % of one core)");
  console.log(formatTable(
    ["target", "sustained deliveries/s", "peak deliveries/s", "srv CPU%", "gen CPU%"],
    rows,
  ));
  const gain = ratio(
    of("server+workers", "sustainedDeliveriesPerSecond"),
    of("server+redis", "sustainedDeliveriesPerSecond"),
  );
  console.log(`server+workers / server+redis, sustained: ${gain}`);
}

function printTargets(
  lines: readonly Line[],
  options: ReportOptions & {
    values: (scenario: string, target: TargetName, key: string) => number[];
  },
): void {
  const { values } = options;
  const verdict = (ok: boolean) => (ok ? "PASS" : "FAIL");
  const rows: string[][] = [];
  if (options.scenarios.includes("fanout")) {
    const server = values("fanout", "server", "sustainedDeliveriesPerSecond");
    const baseline = values("fanout", "baseline", "sustainedDeliveriesPerSecond");
    const share = ratio(median(server), median(baseline));
    const bestShare = ratio(Math.max(...server), Math.max(...baseline));
    rows.push([
      "(1) fanout sustained >= 85% of baseline",
      `median ${share}, best ${bestShare}`,
      `${verdict(share >= 0.85)} (best: ${verdict(bestShare >= 0.85)})`,
    ]);
    const halves = lines.filter((line) =>
      line.scenario === "fanout" && line.target === "server" && line.summary === true
    );
    const p99s = halves.map((line) =>
      `${line.halfLoadP99Ms}${line.halfLoadNoisy ? " (noisy)" : ""}`
    );
    const ok = halves.every((line) =>
      Number(line.halfLoadP99Ms) <= 25 && line.halfLoadClean === true
    );
    rows.push([
      "(2) half load: p99 <= 25 ms, no loss/dup/reorder",
      `p99 ${p99s.join(", ")} ms; clean ${halves.every((line) => line.halfLoadClean === true)}`,
      verdict(ok),
    ]);
    if (lines.some((line) => line.summary === true && line.clientBound === true)) {
      console.error(
        "WARNING: a fanout result was bounded by the load generator (>= 90% of a core): " +
          "the sustained ratio then flatters the slower server; see the CPU-per-delivery ratio",
      );
    }
  }
  if (options.scenarios.includes("connections")) {
    const kib = median(values("connections", "server", "serverKiBPerConnection"));
    const rate = median(values("connections", "server", "connectsPerSecond"));
    const count = Math.max(...values("connections", "server", "requested"));
    rows.push([
      `(3) ${count.toLocaleString("en")} idle: <= 24 KiB each, >= 2,000 conn/s`,
      `${round2(kib)} KiB, ${Math.round(rate)} conn/s`,
      verdict(kib <= 24 && rate >= 2000),
    ]);
  }
  if (options.database && options.scenarios.includes("fanout")) {
    const pg = values("fanout", "server+pg", "sustainedDeliveriesPerSecond");
    const memory = values("fanout", "server", "sustainedDeliveriesPerSecond");
    const share = ratio(median(pg), median(memory));
    rows.push([
      "(4) PostgreSQL fanout >= 80% of in memory",
      `median ${share}, best ${ratio(Math.max(...pg), Math.max(...memory))}`,
      verdict(share >= 0.8),
    ]);
  }
  console.log("\ntargets");
  console.log(formatTable(["target", "measured", "verdict"], rows));
}
