/**
 * The fanout scenario: `rooms` x `members`, one sender per room, the offered load stepped up
 * until a rate fails, then one step at half the highest passing load. A failing step is tried
 * again (`retries`, plus more while the machine is noisy) before it counts, the half-load step
 * as well.
 *
 * Nothing is bisected after a failure: an overloaded server holds megabytes of frames
 * afterwards and runs slower for a while, which would bias every later step. The ladder is
 * therefore fine where the servers of this project top out.
 *
 * @module
 */
import { chatEndpoint, PeerSet } from "./_peers.ts";
import {
  CLIENT_BOUND_CPU_PERCENT,
  CLOSE_TIMEOUT_MS,
  flags,
  isNoisy,
  NOISY_RETRIES,
  openAll,
  passes,
  quietMachine,
  settle,
  tag,
  type Target,
} from "./_scenarios.ts";
import { median, round2 } from "./_stats.ts";
import { type Layout, layoutSpecs, runStep, type StepResult } from "./_traffic.ts";

/** Options of {@linkcode fanout}. */
export interface FanoutOptions {
  readonly rooms: number;
  readonly members: number;
  /** Offered loads to try in order, messages/s in total; stops at the first failing one. */
  readonly rates: readonly number[];
  readonly stepMs: number;
  /**
   * How often a failing rate is tried again before the ladder stops: one latency spike on a
   * shared 2-core machine should not end it, an overload fails every time. A failure while other
   * tasks were busy (a noisy step) earns up to {@linkcode NOISY_RETRIES} more tries.
   */
  readonly retries: number;
  readonly p99LimitMs: number;
  /** No new ladder step starts after this long: the run stays bounded on a noisy machine. */
  readonly budgetMs: number;
  /** The step at half the sustained load passes at this p99 (and with nothing lost). */
  readonly halfP99LimitMs: number;
  /**
   * Offered load of that step instead of half the sustained one: bench:cluster gives the cluster
   * the load of one instance's half step, so that both p99s are taken at the same load.
   */
  readonly halfRate?: number;
}

/** What {@linkcode fanout} found, as reported in its summary line. */
export interface FanoutSummary {
  readonly scenario: "fanout";
  /** The highest offered load (msg/s) that passed; 0 if none did. */
  readonly sustainedOfferedPerSecond: number;
  readonly sustainedDeliveriesPerSecond: number;
  /**
   * The most deliveries/s any step measured, passing or not: near the knee a failing step (late,
   * not lossy) may deliver more than the last passing one.
   */
  readonly peakDeliveriesPerSecond: number;
  readonly sustainedP99Ms: number | undefined;
  readonly stoppedBy: string;
  readonly halfLoadOfferedPerSecond: number | undefined;
  readonly halfLoadP99Ms: number | undefined;
  /** Whether the half-load step lost, doubled, reordered, refused and cut off nothing. */
  readonly halfLoadClean: boolean | undefined;
  readonly steps: number;
  readonly noisySteps: number;
  readonly [figure: string]: unknown;
}

/** Steps below this offered load are warm-up: they do not count for the CPU cost figures. */
const COST_MIN_OFFERED = 500;
/** Pause between the end of the ladder (an overload, usually) and the half-load step. */
const RECOVERY_MS = 2_000;

/**
 * Runs the ladder and reports every step, then a summary.
 *
 * @example
 * ```ts
 * await fanout(target, { rooms: 10, members: 100, rates: [500, 1000], stepMs: 3000,
 *   retries: 1, p99LimitMs: 100, budgetMs: 60_000, halfP99LimitMs: 25 });
 * ```
 * @throws {Error} if the members cannot connect.
 */
export async function fanout(target: Target, options: FanoutOptions): Promise<FanoutSummary> {
  const layout: Layout = { rooms: options.rooms, members: options.members, senders: 1 };
  const peers = new PeerSet(
    target.urls.map(chatEndpoint),
    layoutSpecs(`fanout-${tag()}`, layout, target.urls.length),
  );
  await openAll(peers, target);
  const started = performance.now();
  const results: StepResult[] = [];
  let stepNumber = 0;
  const step = async (rate: number, phase: string, p99LimitMs: number) => {
    await openAll(peers, target); // reconnect members a failed step cut off
    await settle(peers);
    await quietMachine(target);
    const result = await runStep(peers, layout, {
      step: ++stepNumber,
      ratePerSecond: rate,
      durationMs: options.stepMs,
      quietMs: 1_000,
      drainMaxMs: 5_000,
      serverPids: target.serverPids,
      sutCommand: target.sutCommand,
      frames: target.frames,
    });
    const pass = passes(result, p99LimitMs);
    target.report.step({
      scenario: "fanout",
      phase,
      step: stepNumber,
      pass,
      ...flags(result),
      ...result,
    });
    results.push(result);
    return { result, pass };
  };

  /** Tries a rate until it passes or runs out of retries; every attempt is reported. */
  const attempt = async (rate: number, phase: string, p99LimitMs: number) => {
    const tried: StepResult[] = [];
    let noisyFailures = 0;
    for (let n = 0; n <= options.retries + noisyFailures; n++) {
      if (phase === "ladder" && performance.now() - started > options.budgetMs) break;
      const { result } = await step(rate, n === 0 ? phase : `${phase} retry`, p99LimitMs);
      tried.push(result);
      if (passes(result, p99LimitMs)) return { passed: result, tried };
      if (isNoisy(result) && noisyFailures < NOISY_RETRIES) noisyFailures++;
    }
    return { passed: undefined, tried };
  };

  let best: StepResult | undefined;
  let stoppedBy = "ladder end";
  for (const rate of options.rates) {
    const { passed, tried } = await attempt(rate, "ladder", options.p99LimitMs);
    if (passed) {
      best = passed;
      continue;
    }
    stoppedBy = tried.length === 0 ? "time budget" : `failed at ${rate}`;
    break;
  }
  // After an overload the server still holds what it queued: give it a moment.
  await new Promise((resolve) => setTimeout(resolve, RECOVERY_MS));
  const halfRate = options.halfRate ?? (best && Math.round(best.offeredPerSecond / 2));
  const halves = halfRate ? await attempt(halfRate, "half", options.halfP99LimitMs) : undefined;
  const half = halves?.passed ?? halves?.tried.at(-1);
  await peers.closeAll(CLOSE_TIMEOUT_MS);
  const summary: FanoutSummary = {
    scenario: "fanout",
    sustainedOfferedPerSecond: best?.offeredPerSecond ?? 0,
    sustainedDeliveriesPerSecond: best?.deliveriesPerSecond ?? 0,
    sustainedP99Ms: best?.latencyMs.p99,
    sustainedServerCpuPercent: best?.serverCpuPercent,
    sustainedClientCpuPercent: best?.clientCpuPercent,
    sustainedSutCpuPercent: best?.sutCpuPercent,
    sustainedAcked: best?.acked,
    ...(best?.mix && { sustainedMix: best.mix }),
    peakDeliveriesPerSecond: Math.max(0, ...results.map((result) => result.deliveriesPerSecond)),
    stoppedBy,
    halfLoadOfferedPerSecond: half?.offeredPerSecond,
    halfLoadP99Ms: half?.latencyMs.p99,
    halfLoadClean: half ? passes(half, Infinity) : undefined,
    halfLoadNoisy: half ? isNoisy(half) : undefined,
    halfLoadAttemptsP99Ms: halves?.tried.map((result) => result.latencyMs.p99),
    ...costs(results, options.p99LimitMs),
    clientBound: best ? best.clientCpuPercent >= CLIENT_BOUND_CPU_PERCENT : undefined,
    steps: results.length,
    noisySteps: results.filter(isNoisy).length,
  };
  target.report.summary(summary);
  if (stoppedBy === "time budget") {
    target.report.warn("fanout: the time budget ran out before any rate failed");
  }
  if (stoppedBy === "ladder end") {
    target.report.warn("fanout: every offered load passed; extend --rates to find the limit");
  }
  return summary;
}

/**
 * CPU per 10,000 deliveries/s over the clean steps (passing, not noisy, past warm-up): what a
 * delivery costs the server and the generator, whatever the ceiling. The generator's ceiling is
 * what one full core of it would receive at that cost.
 */
function costs(results: readonly StepResult[], p99LimitMs: number): Record<string, number> {
  const clean = results.filter((result) =>
    passes(result, p99LimitMs) && !isNoisy(result) && result.offeredPerSecond >= COST_MIN_OFFERED
  );
  const per10k = (cpu: number | undefined, result: StepResult) =>
    ((cpu ?? NaN) / result.deliveriesPerSecond) * 10_000;
  const server = median(clean.map((result) => per10k(result.serverCpuPercent, result)));
  const client = median(clean.map((result) => per10k(result.clientCpuPercent, result)));
  if (clean.length === 0) return { cleanSteps: 0 };
  return {
    cleanSteps: clean.length,
    serverCpuPercentPer10kDeliveries: round2(server),
    clientCpuPercentPer10kDeliveries: round2(client),
    clientCeilingDeliveriesPerSecond: Math.round((100 / client) * 10_000),
  };
}
