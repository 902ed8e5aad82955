/**
 * The load generator's scenarios chatty (many small rooms, everyone talking) and connections
 * (many idle sockets), and what every scenario shares: the target, the report, the pass rule and
 * the handling of a noisy machine. Fanout is in bench/_fanout.ts.
 *
 * @module
 */
import { chatEndpoint, PeerSet, type PeerSpec } from "./_peers.ts";
import {
  commandCpuSeconds,
  openFileLimit,
  otherCpuPercent,
  sampleMachine,
  sampleProc,
  usageSince,
} from "./_proc.ts";
import { round2 } from "./_stats.ts";
import { type FrameStyle, type Layout, layoutSpecs, runStep, type StepResult } from "./_traffic.ts";

/** At or above this much of one core the generator, not the server, may be the bottleneck. */
export const CLIENT_BOUND_CPU_PERCENT = 90;
/**
 * Other tasks on the machine using this much of a core (others' tests, builds) make a step
 * noisy: a noisy step that fails is tried again, up to {@linkcode NOISY_RETRIES} times.
 */
export const NOISY_CPU_PERCENT = 20;
/** How often a noisy step is tried again at most. */
export const NOISY_RETRIES = 3;
/** Before a step: wait (at most this long) for a window in which other tasks are quiet. */
const QUIET_WINDOW_MS = 300;
const QUIET_MAX_MS = 10_000;
/** Sockets being opened at once at most. */
const OPEN_TIMEOUT_MS = 30_000;
/** Longest the generator waits for its sockets to close at the end. */
export const CLOSE_TIMEOUT_MS = 15_000;
/** Between steps: the server is idle once no frame arrived for this long. */
const SETTLE_QUIET_MS = 300;
const SETTLE_MAX_MS = 10_000;
/** {@linkcode until} polls this often, this long by default. */
const UNTIL_POLL_MS = 20;
const UNTIL_MAX_MS = 30_000;
/** Connections: how long to let the server settle before its RSS is read. */
const MEMORY_SETTLE_MS = 2_000;

/** Where results go: one call per step, one per scenario summary. */
export interface Report {
  step(line: Record<string, unknown>): void;
  summary(line: Record<string, unknown>): void;
  warn(text: string): void;
}

/** What every scenario is told. */
export interface Target {
  /**
   * `ws://host:port` of the server, or of each instance of one cluster: fanout and chatty spread
   * each room's members over them; connections uses the first.
   */
  readonly urls: readonly string[];
  /** The server's pid, or each instance's, for CPU and RSS; empty when unknown. */
  readonly serverPids: readonly number[];
  /** Processes of this command name are part of the system under test (e.g. `postgres`). */
  readonly sutCommand: string | undefined;
  readonly concurrency: number;
  readonly report: Report;
  /** How traffic scenarios frame their messages; `text` if absent. */
  readonly frames?: FrameStyle;
}

/**
 * A step passes when nothing was lost, doubled, reordered, refused or cut off, the room seqs
 * went up by one with no gap, and p99 holds.
 */
export function passes(result: StepResult, p99LimitMs: number): boolean {
  return result.latencyMs.p99 <= p99LimitMs && result.lost === 0 && result.duplicated === 0 &&
    result.reordered === 0 && result.seqBroken === 0 && result.gaps === 0 &&
    result.dropped === 0 && Object.keys(result.refused).length === 0;
}

/** Options of {@linkcode chatty}. */
export interface ChattyOptions {
  readonly rooms: number;
  readonly members: number;
  /** Messages per second each member sends. */
  readonly perMemberPerSecond: number;
  readonly durationMs: number;
  readonly p99LimitMs: number;
}

/** Chatty: many small rooms, every member sending at a steady rate. */
export async function chatty(target: Target, options: ChattyOptions): Promise<void> {
  const layout: Layout = {
    rooms: options.rooms,
    members: options.members,
    senders: options.members,
  };
  const peers = new PeerSet(
    target.urls.map(chatEndpoint),
    layoutSpecs(`chatty-${tag()}`, layout, target.urls.length),
  );
  await openAll(peers, target);
  let result: StepResult | undefined;
  // A noisy run says more about the neighbours than about the server: try again, a few times.
  for (let attempt = 1; attempt <= 1 + NOISY_RETRIES && (!result || isNoisy(result)); attempt++) {
    await settle(peers);
    await quietMachine(target);
    result = await runStep(peers, layout, {
      step: attempt,
      ratePerSecond: options.rooms * options.members * options.perMemberPerSecond,
      durationMs: options.durationMs,
      quietMs: 1_000,
      drainMaxMs: 5_000,
      serverPids: target.serverPids,
      sutCommand: target.sutCommand,
      frames: target.frames,
    });
    target.report.step({
      scenario: "chatty",
      phase: attempt === 1 ? "steady" : "retry",
      step: attempt,
      pass: passes(result, options.p99LimitMs),
      ...flags(result),
      ...result,
    });
  }
  await peers.closeAll(CLOSE_TIMEOUT_MS);
  if (!result) return;
  target.report.summary({
    scenario: "chatty",
    pass: passes(result, options.p99LimitMs),
    deliveriesPerSecond: result.deliveriesPerSecond,
    p50Ms: result.latencyMs.p50,
    p99Ms: result.latencyMs.p99,
    serverCpuPercent: result.serverCpuPercent,
    clientCpuPercent: result.clientCpuPercent,
    otherCpuPercent: result.otherCpuPercent,
    noisy: isNoisy(result),
  });
}

/** Options of {@linkcode connections}. */
export interface ConnectionsOptions {
  readonly count: number;
  /** Members per room: presence fan-out on join grows with the square of a room's size. */
  readonly roomSize: number;
}

/** Connections: ramp to `count` idle sockets; connect rate and server memory per socket. */
export async function connections(target: Target, options: ConnectionsOptions): Promise<void> {
  const needed = options.count + 256;
  const limit = await openFileLimit();
  if (limit < needed) {
    throw new Error(`connections: ulimit -n is ${limit}, ${needed} needed; raise it first`);
  }
  const pid = target.serverPids[0];
  await quietMachine(target);
  const idle = pid === undefined ? undefined : await sampleProc(pid);
  const [clientBefore, machineBefore] = await Promise.all([sampleProc(Deno.pid), sampleMachine()]);
  const peers = new PeerSet(
    [chatEndpoint(target.urls[0] ?? "")],
    connectionSpecs(`conn-${tag()}`, options.count, options.roomSize),
  );
  const opened = await peers.open({ concurrency: target.concurrency, timeoutMs: OPEN_TIMEOUT_MS });
  const [rampUsage, clientUsage, machineAfter] = await Promise.all([
    pid === undefined || idle === undefined ? undefined : usageSince(pid, idle),
    usageSince(Deno.pid, clientBefore),
    sampleMachine(),
  ]);
  const other = otherCpuPercent(machineBefore, machineAfter, [
    rampUsage?.cpuSeconds ?? 0,
    clientUsage.cpuSeconds,
  ]);
  await new Promise((resolve) => setTimeout(resolve, MEMORY_SETTLE_MS));
  const loaded = pid === undefined ? undefined : await sampleProc(pid);
  const closeStarted = performance.now();
  await peers.closeAll(CLOSE_TIMEOUT_MS);
  const line = {
    scenario: "connections",
    requested: options.count,
    roomSize: options.roomSize,
    opened: opened.opened,
    failed: opened.failed,
    firstError: opened.firstError,
    stillOpenAfterSettle: options.count - peers.droppedSinceOpen - opened.failed,
    connectSeconds: round2(opened.elapsedMs / 1000),
    connectsPerSecond: Math.round(opened.opened / (opened.elapsedMs / 1000)),
    closeSeconds: round2((performance.now() - closeStarted) / 1000),
    serverIdleRssKiB: idle?.rssKiB,
    serverLoadedRssKiB: loaded?.rssKiB,
    serverKiBPerConnection: idle && loaded && opened.opened > 0
      ? round2((loaded.rssKiB - idle.rssKiB) / opened.opened)
      : undefined,
    serverCpuPercentDuringRamp: rampUsage && round2(rampUsage.cpuPercent),
    clientCpuPercentDuringRamp: round2(clientUsage.cpuPercent),
    otherCpuPercent: round2(other),
    noisy: other >= NOISY_CPU_PERCENT,
    clientRssKiB: (await sampleProc(Deno.pid)).rssKiB,
  };
  target.report.step({ ...line, phase: "ramp", step: 1, pass: opened.failed === 0 });
}

/** `count` peers in rooms of `roomSize` (the last one may be smaller), named `<prefix>-<n>`. */
export function connectionSpecs(prefix: string, count: number, roomSize: number): PeerSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    room: `${prefix}-${Math.floor(i / roomSize)}`,
    user: `m${i % roomSize}`,
  }));
}

/** Opens every member not open yet. @throws {Error} if any connection fails. */
export async function openAll(peers: PeerSet, target: Target): Promise<void> {
  if (peers.openCount === peers.specs.length) return;
  const report = await peers.open({ concurrency: target.concurrency, timeoutMs: OPEN_TIMEOUT_MS });
  if (report.failed > 0) {
    throw new Error(`${report.failed} connections failed, first: ${report.firstError}`);
  }
}

/** Waits until no frame arrived for a while: the previous step's backlog is gone. */
export function settle(peers: PeerSet): Promise<void> {
  let last = performance.now();
  const started = last;
  const previous = peers.sink;
  peers.sink = { frame: () => void (last = performance.now()) };
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      const now = performance.now();
      if (now - last >= SETTLE_QUIET_MS || now - started >= SETTLE_MAX_MS) {
        clearInterval(poll);
        peers.sink = previous;
        resolve();
      }
    }, 50);
  });
}

/** The flags every step line carries. */
export function flags(result: StepResult): { clientBound: boolean; noisy: boolean } {
  return {
    clientBound: result.clientCpuPercent >= CLIENT_BOUND_CPU_PERCENT,
    noisy: isNoisy(result),
  };
}

/** Whether other tasks used {@linkcode NOISY_CPU_PERCENT} or more of a core during the step. */
export function isNoisy(result: StepResult): boolean {
  return result.otherCpuPercent >= NOISY_CPU_PERCENT;
}

/**
 * Waits until other tasks on the machine used less than {@linkcode NOISY_CPU_PERCENT} of a core
 * over one short window, or {@linkcode QUIET_MAX_MS} passed: others' test runs come in bursts.
 */
export async function quietMachine(target: Target): Promise<void> {
  const command = target.sutCommand;
  const sample = () =>
    Promise.all(
      [
        Promise.all(target.serverPids.map((pid) => sampleProc(pid))).then((samples) =>
          samples.reduce((sum, sample) => sum + sample.cpuSeconds, 0)
        ),
        sampleProc(Deno.pid).then((sample) => sample.cpuSeconds),
        command === undefined ? 0 : commandCpuSeconds(command),
        sampleMachine(),
      ] as const,
    );
  const started = performance.now();
  while (performance.now() - started < QUIET_MAX_MS) {
    const [server, client, sut, machine] = await sample();
    await new Promise((resolve) => setTimeout(resolve, QUIET_WINDOW_MS));
    const [serverAfter, clientAfter, sutAfter, machineAfter] = await sample();
    const own = [serverAfter - server, clientAfter - client, sutAfter - sut];
    if (otherCpuPercent(machine, machineAfter, own) < NOISY_CPU_PERCENT) return;
  }
}

/**
 * Resolves once `done()` holds (polled), or after `maxMs`: the caller checks which.
 *
 * @example
 * ```ts
 * await until(() => sink.delivered >= expected, 5_000);
 * ```
 */
export function until(done: () => boolean, maxMs = UNTIL_MAX_MS): Promise<void> {
  const started = performance.now();
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      if (done() || performance.now() - started >= maxMs) {
        clearInterval(poll);
        resolve();
      }
    }, UNTIL_POLL_MS);
  });
}

/** Resolves at `performance.now()` time `at` (at once if it passed). */
export function sleepUntil(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())));
}

/** A short random tag, so that rooms of two runs against one server never meet. */
export function tag(): string {
  return crypto.randomUUID().slice(0, 8);
}
