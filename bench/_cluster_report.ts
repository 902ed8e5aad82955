/**
 * The readable end of `bench:cluster`: one instance's fanout next to the cluster's, the p99s at
 * the same offered loads, and the verdict against the target of issue 13.
 *
 * @module
 */
import type { FanoutSummary } from "./_fanout.ts";
import { formatTable, round2 } from "./_stats.ts";
import { stepTable } from "./_step_table.ts";

/** A JSON line of the run, tagged with `target` ("one" or "cluster"). */
export type Line = Record<string, unknown>;

/** What the report needs to know of the run. */
export interface RunFacts {
  readonly lines: readonly Line[];
  readonly instances: number;
  readonly rooms: number;
  readonly members: number;
  /** The cluster's sustained deliveries/s over one instance's must reach this. */
  readonly targetRatio: number;
  readonly seconds: number;
  readonly prefix: string;
}

/** "1 instance", "2 instances". */
function instanceCount(instances: number): string {
  return `${instances} instance${instances === 1 ? "" : "s"}`;
}

/**
 * The verdict, as a JSON line and as one sentence. A ladder that did not fail (`stoppedBy`: time
 * budget, ladder end) or a generator at >= 90% of a core (`clientBound`) makes that side's
 * figure a lower bound, which the sentence says.
 *
 * @example
 * ```ts
 * const { line, text } = clusterVerdict(one, cluster, run);
 * console.log(JSON.stringify(line));
 * ```
 */
export function clusterVerdict(
  one: FanoutSummary,
  cluster: FanoutSummary,
  run: RunFacts,
): { line: Record<string, unknown>; text: string } {
  const { instances, targetRatio } = run;
  const clusterName = instanceCount(instances);
  const oneRate = one.sustainedDeliveriesPerSecond;
  const ratio = oneRate > 0 ? round2(cluster.sustainedDeliveriesPerSecond / oneRate) : undefined;
  const addedP99Ms = one.halfLoadP99Ms !== undefined && cluster.halfLoadP99Ms !== undefined
    ? round2(cluster.halfLoadP99Ms - one.halfLoadP99Ms)
    : undefined;
  const met = ratio !== undefined && ratio >= targetRatio;
  const line = {
    verdict: met ? "met" : "not met",
    instances,
    oneDeliveriesPerSecond: oneRate,
    oneP99Ms: one.sustainedP99Ms,
    oneStoppedBy: one.stoppedBy,
    oneClientBound: one.clientBound,
    clusterDeliveriesPerSecond: cluster.sustainedDeliveriesPerSecond,
    clusterP99Ms: cluster.sustainedP99Ms,
    clusterStoppedBy: cluster.stoppedBy,
    clusterClientBound: cluster.clientBound,
    ratio,
    targetRatio,
    halfLoadOfferedPerSecond: one.halfLoadOfferedPerSecond,
    oneHalfLoadP99Ms: one.halfLoadP99Ms,
    clusterHalfLoadP99Ms: cluster.halfLoadP99Ms,
    clusterHalfLoadClean: cluster.halfLoadClean,
    addedP99Ms,
    oneCpuPercentPer10kDeliveries: one.serverCpuPercentPer10kDeliveries,
    clusterCpuPercentPer10kDeliveries: cluster.serverCpuPercentPer10kDeliveries,
    p99ByOfferedLoad: p99ByLoad(run.lines),
    seconds: round2(run.seconds),
    redisPrefix: run.prefix,
  };
  const limit = (name: string, summary: FanoutSummary) =>
    summary.clientBound === true
      ? `; ${name} bounded by the generator (a lower bound)`
      : summary.stoppedBy.startsWith("failed")
      ? ""
      : `; ${name} stopped by ${summary.stoppedBy} (a lower bound)`;
  const sign = addedP99Ms !== undefined && addedP99Ms >= 0 ? "+" : "";
  const took = Math.round(run.seconds);
  const noisy = one.noisySteps + cluster.noisySteps === 0
    ? ""
    : `; noisy steps (other tasks >= 20% of a core): one instance ${one.noisySteps}/${one.steps},` +
      ` cluster ${cluster.noisySteps}/${cluster.steps}`;
  const text = `bench:cluster verdict: ${met ? "MET" : "NOT MET"}: ${clusterName} over ` +
    `one Redis sustained ${cluster.sustainedDeliveriesPerSecond} deliveries/s (p99 ` +
    `${cluster.sustainedP99Ms ?? "-"} ms) = ${ratio ?? "-"} of one instance's ${oneRate} ` +
    `(p99 ${one.sustainedP99Ms ?? "-"} ms), target >= ${targetRatio}; at the same ` +
    `${one.halfLoadOfferedPerSecond ?? "-"} msg/s (half of one instance's sustained) p99 ` +
    `${one.halfLoadP99Ms ?? "-"} ms -> ${cluster.halfLoadP99Ms ?? "-"} ms ` +
    `(${sign}${addedP99Ms ?? "-"} ms added by the cluster)` +
    `${limit("one instance", one)}${limit("cluster", cluster)}${noisy}; run took ${took} s`;
  return { line, text };
}

/**
 * p99 of both targets at each ladder load both ran: a load's passing attempt, else its last one.
 */
function p99ByLoad(
  lines: readonly Line[],
): { offered: number; one: number; cluster: number; added: number }[] {
  const p99At = (target: string) => {
    const byLoad = new Map<number, { p99: number; pass: boolean }>();
    for (const line of lines) {
      if (line.target !== target || line.summary || line.phase === "half") continue;
      const offered = Number(line.offeredPerSecond);
      if (byLoad.get(offered)?.pass) continue;
      const p99 = (line.latencyMs as { p99: number }).p99;
      byLoad.set(offered, { p99, pass: line.pass === true });
    }
    return byLoad;
  };
  const one = p99At("one");
  const cluster = p99At("cluster");
  return [...one].flatMap(([offered, { p99 }]) => {
    const other = cluster.get(offered);
    return other ? [{ offered, one: p99, cluster: other.p99, added: round2(other.p99 - p99) }] : [];
  });
}

/**
 * Prints each target's steps, the p99s at the loads both ran, and both summaries side by side.
 *
 * @example
 * ```ts
 * printClusterTables(one, cluster, run);
 * ```
 */
export function printClusterTables(
  one: FanoutSummary,
  cluster: FanoutSummary,
  run: RunFacts,
): void {
  const { lines, rooms, members } = run;
  const clusterName = instanceCount(run.instances);
  const steps = (target: string) => lines.filter((line) => line.target === target && !line.summary);
  console.log(`\none instance: ${rooms} rooms x ${members} members (latency in ms)`);
  console.log(stepTable(steps("one")));
  console.log(`\n${clusterName} over one Redis (srv = all instances; Redis CPU in JSON)`);
  console.log(stepTable(steps("cluster")));
  const cell = (value: unknown) => value === undefined ? "-" : String(value);
  console.log("\np99 ms at the same offered load (a load's passing attempt, else its last)");
  console.log(formatTable(
    ["offered/s", "one instance", clusterName, "added"],
    p99ByLoad(lines).map((row) => [row.offered, row.one, row.cluster, row.added].map(cell)),
  ));
  const row = (name: string, summary: FanoutSummary) =>
    [
      name,
      summary.sustainedOfferedPerSecond,
      summary.sustainedDeliveriesPerSecond,
      summary.sustainedP99Ms,
      summary.sustainedServerCpuPercent,
      summary.sustainedSutCpuPercent,
      summary.sustainedClientCpuPercent,
      summary.serverCpuPercentPer10kDeliveries,
      summary.halfLoadOfferedPerSecond,
      summary.halfLoadP99Ms,
      summary.stoppedBy,
      `${summary.noisySteps}/${summary.steps}`,
    ].map(cell);
  console.log(
    "\nsustained = the highest offered load passing; half = the step at one instance's half; " +
      "srv CPU%/10k = servers' CPU per 10,000 deliveries/s over clean steps",
  );
  console.log(formatTable(
    [
      "target",
      "sustained msg/s",
      "deliveries/s",
      "p99 ms",
      "srv CPU%",
      "redis CPU%",
      "gen CPU%",
      "srv CPU%/10k",
      "half msg/s",
      "half p99 ms",
      "stopped by",
      "noisy/steps",
    ],
    [row("one instance", one), row(clusterName, cluster)],
  ));
}
