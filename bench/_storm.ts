/**
 * The storm scenario (a reconnect storm): `members` join one room; once all are welcomed, every
 * one drops its socket at once (no close handshake, as a lost network or a restarted proxy
 * does) and they reconnect spread over `spreadMs`, each resuming with its cursor. Meanwhile a
 * pair of members of another room talks at a steady rate: its latency over the storm window
 * says whether the storm stalls the rest of the server. The window runs from the drop until
 * every member is re-welcomed and resumed, plus `tailMs` (longer than the server's
 * `PRESENCE_LEAVE_GRACE`, so that presence sent when the grace runs out is counted).
 *
 * @module
 */
import { chatEndpoint, CursorLedger, type FrameSink, PeerSet } from "./_peers.ts";
import { type IntervalUsage, meterUsage } from "./_proc.ts";
import {
  CLIENT_BOUND_CPU_PERCENT,
  CLOSE_TIMEOUT_MS,
  NOISY_CPU_PERCENT,
  openAll,
  quietMachine,
  tag,
  type Target,
  until,
} from "./_scenarios.ts";
import {
  type Column,
  columnTable,
  LatencyHistogram,
  type LatencySummary,
  round2,
} from "./_stats.ts";
import { StepSink } from "./_step_sink.ts";
import { framer } from "./_traffic.ts";
import { startsWith } from "./_ws_client.ts";

/** Options of {@linkcode storm}. */
export interface StormOptions {
  readonly members: number;
  /** Reconnects are spread evenly over this long after the drop. */
  readonly spreadMs: number;
  /** Messages per second the pair of the other room sends, in total. */
  readonly ratePerSecond: number;
  /** Messages per second sent in the storm room by a member that stays (resumes replay them). */
  readonly roomRatePerSecond: number;
  /** The window stays open this long after the last resume. */
  readonly tailMs: number;
  /** p99 the other room must meet over the window. */
  readonly p99LimitMs: number;
  /** Presence bytes one member may get in the window, per member of the room: O(N) each. */
  readonly presenceBytesPerPeerLimit: number;
}

const OPEN_TIMEOUT_MS = 30_000;
/** Steady traffic in the other room before the drop: the p99 to compare with. */
const LEAD_MS = 2_000;
const TICK_MS = 5;
/** The generator's own timer, whose lateness is its event loop's lag. */
const LAG_TIMER_MS = 20;
/** No presence frame for this long: the joins before the storm are over. */
const SETTLED_MS = 500;
const PRESENCE = new TextEncoder().encode('{"type":"presence"');
const PAIR_LAYOUT = { rooms: 1, members: 2, senders: 2 };

/** Counts every member's frames in the window; the ledger checks seqs and resumes throughout. */
class StormSink implements FrameSink {
  readonly ledger: CursorLedger;
  counting = false;
  /** When the last presence frame came: the joins are over once they stop. */
  lastPresenceAt = 0;
  readonly frames: Float64Array;
  readonly presenceBytes: Float64Array;
  readonly presenceFrames: Float64Array;

  constructor(members: number) {
    this.ledger = new CursorLedger(members);
    this.frames = new Float64Array(members);
    this.presenceBytes = new Float64Array(members);
    this.presenceFrames = new Float64Array(members);
  }

  welcome(peer: number, payload: Uint8Array): void {
    this.ledger.welcome(peer, payload);
    if (this.counting) this.frames[peer] = (this.frames[peer] ?? 0) + 1;
  }

  frame(peer: number, payload: Uint8Array): void {
    this.ledger.frame(peer, payload);
    const presence = startsWith(payload, PRESENCE);
    if (presence) this.lastPresenceAt = performance.now();
    if (!this.counting) return;
    this.frames[peer] = (this.frames[peer] ?? 0) + 1;
    if (!presence) return;
    this.presenceBytes[peer] = (this.presenceBytes[peer] ?? 0) + payload.length;
    this.presenceFrames[peer] = (this.presenceFrames[peer] ?? 0) + 1;
  }
}

/**
 * Sends from peers 0 and 1 of a pair in turn at a steady total rate. Each message carries the
 * current step, so that a {@linkcode StepSink} of that step checks it.
 */
class Pacer {
  sent = 0;
  readonly #pair: PeerSet;
  readonly #ratePerSecond: number;
  readonly #frame = framer("text");
  #interval: ReturnType<typeof setInterval> | undefined;
  #step = 0;
  #started = 0;

  constructor(pair: PeerSet, ratePerSecond: number) {
    this.#pair = pair;
    this.#ratePerSecond = ratePerSecond;
  }

  /** Starts step `step` from its message 0. */
  next(step: number): void {
    this.#step = step;
    this.#started = performance.now();
    this.sent = 0;
    this.#interval ??= setInterval(() => this.#tick(), TICK_MS);
  }

  /** @returns what the current step sent. */
  stop(): number {
    clearInterval(this.#interval);
    return this.sent;
  }

  #tick(): void {
    const due = Math.floor(((performance.now() - this.#started) * this.#ratePerSecond) / 1000);
    for (; this.sent < due; this.sent++) {
      const sender = this.sent % 2;
      const sentUs = Math.round(performance.now() * 1000);
      this.#pair.send(sender, this.#frame(sender, this.#step, Math.floor(this.sent / 2), sentUs));
    }
  }
}

/** What the window measured, besides the sinks. */
interface WindowResult {
  readonly windowMs: number;
  readonly welcomedMs: number;
  readonly resumedMs: number;
  readonly rewelcomed: number;
  readonly failed: number;
  readonly firstError: string | undefined;
  /** Connections the server closed during the window, by close code. */
  readonly closes: Readonly<Record<string, number>>;
  /** Connections the server closed before the storm (in the joins), by close code. */
  readonly closedBefore: Readonly<Record<string, number>>;
  readonly lagMs: LatencySummary;
  readonly usage: IntervalUsage;
}

/**
 * Runs the storm once and reports it: one step line and a summary.
 *
 * @example
 * ```ts
 * await storm(target, { members: 2000, spreadMs: 1000, ratePerSecond: 50,
 *   roomRatePerSecond: 2, tailMs: 6000, p99LimitMs: 50, presenceBytesPerPeerLimit: 256 });
 * ```
 * @throws {Error} if the members cannot connect in the first place.
 */
export async function storm(target: Target, options: StormOptions): Promise<void> {
  const name = `storm-${tag()}`;
  const endpoint = [chatEndpoint(target.urls[0] ?? "")];
  const n = options.members;
  const members = new PeerSet(
    endpoint,
    Array.from({ length: n }, (_, i) => ({ room: name, user: `m${i}` })),
  );
  const talker = new PeerSet(endpoint, [{ room: name, user: "talker" }]);
  const pair = new PeerSet(endpoint, ["a", "b"].map((user) => ({ room: `${name}-other`, user })));
  const sink = new StormSink(n);
  members.sink = sink;
  const capacity = Math.ceil(options.ratePerSecond * 3600);
  const lead = new StepSink(1, PAIR_LAYOUT, capacity);
  const during = new StepSink(2, PAIR_LAYOUT, capacity);
  pair.sink = lead;
  const pacer = new Pacer(pair, options.ratePerSecond);
  const talk = setInterval(() => talker.send(0, "talk"), 1000 / options.roomRatePerSecond);
  try {
    for (const peers of [talker, pair, members]) await openAll(peers, target);
    // Every member holds a message (a cursor), and the joins' presence frames are all out.
    talker.send(0, "first");
    await until(() => everyone(n, (i) => sink.ledger.cursor(i) > 0));
    await until(() => performance.now() - sink.lastPresenceAt >= SETTLED_MS);
    await quietMachine(target);
    pacer.next(1);
    await new Promise((resolve) => setTimeout(resolve, LEAD_MS));
    pacer.next(2);
    pair.sink = during;
    const result = await stormWindow(members, sink, target, options);
    const sent = pacer.stop();
    await until(() => during.delivered >= during.expected(sent), 5_000);
    const line = stormLine(options, { sink, during, sent, lead, ...result });
    target.report.step(line);
    target.report.summary(summaryOf(line));
  } finally {
    pacer.stop();
    clearInterval(talk);
    await Promise.all([talker, pair, members].map((peers) => peers.closeAll(CLOSE_TIMEOUT_MS)));
  }
}

/** Drops everyone, reconnects them over `spreadMs`, waits for the resumes and the tail. */
async function stormWindow(
  members: PeerSet,
  sink: StormSink,
  target: Target,
  options: StormOptions,
): Promise<WindowResult> {
  const dropsBefore = new Map(members.dropCodes);
  const stopUsage = await meterUsage(target.serverPids[0]);
  const stopLag = lagMeter();
  sink.counting = true;
  const started = performance.now();
  for (let i = 0; i < options.members; i++) members.drop(i);
  const reconnects = await reconnectAll(members, sink.ledger, options.spreadMs);
  const welcomedMs = performance.now() - started;
  await until(() => sink.ledger.awaitingResume <= reconnects.failed);
  const resumedMs = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, options.tailMs));
  sink.counting = false;
  const closes: Record<string, number> = {};
  for (const [code, count] of members.dropCodes) {
    const during = count - (dropsBefore.get(code) ?? 0);
    if (during > 0) closes[code] = during;
  }
  return {
    windowMs: performance.now() - started,
    welcomedMs,
    resumedMs,
    ...reconnects,
    closes,
    closedBefore: Object.fromEntries(dropsBefore),
    lagMs: stopLag(),
    usage: await stopUsage(),
  };
}

/** Reconnects member i at `spreadMs * i / N` after now, with its cursor; all settled. */
async function reconnectAll(members: PeerSet, ledger: CursorLedger, spreadMs: number) {
  const n = members.specs.length;
  const started = performance.now();
  const joins: Promise<void>[] = [];
  let rewelcomed = 0;
  let failed = 0;
  let firstError: string | undefined;
  const join = (i: number) =>
    members.join(i, { timeoutMs: OPEN_TIMEOUT_MS, params: ledger.resumeParams(i) }).then(
      () => void rewelcomed++,
      (error) => {
        failed++;
        firstError ??= error instanceof Error ? error.message : String(error);
      },
    );
  await new Promise<void>((resolve) => {
    const launch = setInterval(() => {
      const due = Math.min(n, Math.floor(((performance.now() - started) / spreadMs) * n) + 1);
      while (joins.length < due) joins.push(join(joins.length));
      if (joins.length === n) {
        clearInterval(launch);
        resolve();
      }
    }, 1);
  });
  await Promise.all(joins);
  return { rewelcomed, failed, firstError };
}

/** The step line: every figure of the storm, and whether it met its targets. */
function stormLine(
  options: StormOptions,
  run: WindowResult & { sink: StormSink; during: StepSink; lead: StepSink; sent: number },
): Record<string, unknown> {
  const { sink, during, sent, usage } = run;
  const n = options.members;
  const ledger = sink.ledger;
  const perMember = (values: Float64Array) => {
    const max = values.reduce((a, b) => Math.max(a, b), 0);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    return { max, mean: round2(mean), maxPerN: round2(max / n), meanPerN: round2(mean / n) };
  };
  const otherRoom = {
    sent,
    delivered: during.delivered,
    lost: Math.max(0, during.expected(sent) - during.delivered),
    duplicated: during.duplicated,
    reordered: during.reordered,
    refused: Object.fromEntries(during.refusedCodes),
  };
  const roomSeq = {
    lost: ledger.lost,
    duplicated: ledger.duplicated,
    reordered: ledger.reordered,
    gaps: ledger.gaps,
  };
  const presence = perMember(sink.presenceBytes);
  const latency = during.latency.summary();
  const intact = otherRoom.lost === 0 && otherRoom.duplicated === 0 &&
    otherRoom.reordered === 0 && during.refused === 0 &&
    Object.values(roomSeq).every((count) => count === 0);
  const pass = intact && latency.p99 <= options.p99LimitMs &&
    Object.keys(run.closes).length === 0 && Object.keys(run.closedBefore).length === 0 &&
    run.failed === 0 &&
    ledger.resumesComplete === n && presence.maxPerN <= options.presenceBytesPerPeerLimit;
  return {
    scenario: "storm",
    phase: "storm",
    step: 1,
    pass,
    clientBound: usage.clientCpuPercent >= CLIENT_BOUND_CPU_PERCENT,
    noisy: usage.otherCpuPercent >= NOISY_CPU_PERCENT,
    members: n,
    spreadMs: options.spreadMs,
    offeredPerSecond: options.ratePerSecond,
    latencyMs: latency,
    leadLatencyMs: run.lead.latency.summary(),
    otherRoom,
    closed1013: run.closes[1013] ?? 0,
    serverCloses: run.closes,
    serverClosesBeforeStorm: run.closedBefore,
    rewelcomed: run.rewelcomed,
    reconnectsFailed: run.failed,
    firstError: run.firstError,
    allWelcomedSeconds: round2(run.welcomedMs / 1000),
    allResumedSeconds: round2(run.resumedMs / 1000),
    resumes: ledger.resumes,
    resumesComplete: ledger.resumesComplete,
    resumesIncomplete: Object.fromEntries(ledger.incomplete),
    roomSeq,
    presenceBytesPerMember: presence,
    presenceFramesPerMember: perMember(sink.presenceFrames),
    framesPerMember: perMember(sink.frames),
    windowSeconds: round2(run.windowMs / 1000),
    ...usage,
    generatorLagMs: run.lagMs,
  };
}

function summaryOf(line: Record<string, unknown>): Record<string, unknown> {
  const presence = line.presenceBytesPerMember as Record<string, number>;
  return {
    scenario: "storm",
    pass: line.pass,
    members: line.members,
    p99Ms: (line.latencyMs as LatencySummary).p99,
    closed1013: line.closed1013,
    presenceBytesPerMemberMax: presence.max,
    presenceBytesPerMemberMaxPerN: presence.maxPerN,
    allWelcomedSeconds: line.allWelcomedSeconds,
    clientBound: line.clientBound,
    noisy: line.noisy,
  };
}

/** A figure of a line: `line[field][key]`. */
const figure = (field: string, key: string) => (line: Record<string, unknown>) =>
  (line[field] as Record<string, unknown> | undefined)?.[key];

const COLUMNS: readonly Column[] = [
  ["members", (line) => line.members],
  ["welcomed s", (line) => line.allWelcomedSeconds],
  ["resumed s", (line) => line.allResumedSeconds],
  ["p50", figure("latencyMs", "p50")],
  ["p99", figure("latencyMs", "p99")],
  ["max", figure("latencyMs", "max")],
  ["lead p99", figure("leadLatencyMs", "p99")],
  ["1013", (line) => line.closed1013],
  ["presence B/member max", figure("presenceBytesPerMember", "max")],
  ["mean", figure("presenceBytesPerMember", "mean")],
  ["max/N", figure("presenceBytesPerMember", "maxPerN")],
  ["frames/member max", figure("framesPerMember", "max")],
  ["mean", figure("framesPerMember", "mean")],
  ["gen lag p99", figure("generatorLagMs", "p99")],
  ["gen CPU%", (line) => line.clientCpuPercent],
  ["srv CPU%", (line) => line.serverCpuPercent],
  ["result", verdict],
];

/**
 * The table of storm lines: the other room's latency in ms, presence bytes and frames per member
 * over the window.
 *
 * @example
 * ```ts
 * console.log(stormTable(lines.filter((line) => line.scenario === "storm")));
 * ```
 */
export function stormTable(lines: readonly Record<string, unknown>[]): string {
  return columnTable(COLUMNS, lines);
}

/** `ok` or `FAIL`, and the flags. */
function verdict(line: Record<string, unknown>): string {
  return `${line.pass ? "ok" : "FAIL"}${line.clientBound ? " client-bound" : ""}${
    line.noisy ? " noisy" : ""
  }`;
}

function everyone(count: number, test: (index: number) => boolean): boolean {
  for (let i = 0; i < count; i++) if (!test(i)) return false;
  return true;
}

/**
 * Measures how late this process's timers fire (its event loop busy with the storm): a latency
 * the generator itself adds. The returned function stops it.
 */
function lagMeter(): () => LatencySummary {
  const lag = new LatencyHistogram();
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lag.record(now - last - LAG_TIMER_MS);
    last = now;
  }, LAG_TIMER_MS);
  return () => {
    clearInterval(timer);
    return lag.summary();
  };
}
