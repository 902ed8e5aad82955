/**
 * The soak scenario: for a while, rooms open and close (their members leave, new ones join a
 * new room name), members join, leave, send and resume (drop the socket, reconnect with their
 * cursor) all the time, at a pace a 2-core machine sustains. The server's RSS and JS heap (after
 * a garbage collection) are sampled after a warm-up and then at a fixed interval; their
 * least-squares slope after the warm-up says whether memory creeps up. After everyone left and
 * the server sat idle, heap snapshots compare its objects with those of the idle server before
 * the run: what grew with rooms and clients must be back.
 *
 * Every member checks its room's messages by `seq` ({@linkcode CursorLedger}): each one once and
 * in order, from `welcome`'s `last_seq` or from its resume cursor, and every resume `complete`.
 * Senders count their `ack`s.
 *
 * @module
 */
import { compareToIdle, type HeapSnapshotSummary, type Inspector } from "./_heap_snapshot.ts";
import { chatEndpoint, CursorLedger, type FrameSink, PeerSet } from "./_peers.ts";
import { sampleProc } from "./_proc.ts";
import { sleepUntil, tag, type Target, until } from "./_scenarios.ts";
import {
  type Column,
  columnTable,
  LatencyHistogram,
  type LatencySummary,
  leastSquaresSlope,
  medianSlope,
  round2,
} from "./_stats.ts";
import { framer } from "./_traffic.ts";
import { indexOf, startsWith } from "./_ws_client.ts";

/** Options of {@linkcode soak}. */
export interface SoakOptions {
  /** Traffic time, warm-up included. */
  readonly durationMs: number;
  /** Samples before this are warm-up: not in the slopes. At most half of `durationMs`. */
  readonly warmupMs: number;
  readonly sampleMs: number;
  /** Rooms open at any time, and member slots in each. */
  readonly rooms: number;
  readonly roomSize: number;
  /** Messages per second, in total. */
  readonly ratePerSecond: number;
  /** How long a room lives before all its members leave and a new room takes its place. */
  readonly roomLifeMs: number;
  /** Members leaving (a new one joins in their place) per second, and as many resuming. */
  readonly churnPerSecond: number;
  /** Idle time after everyone left, before the first end sample and snapshot. */
  readonly idleMs: number;
  /** Until this long after everyone left, snapshots are taken again until the heap is back. */
  readonly idleMaxMs: number;
  /** The server's inspector, for its heap; without it, RSS only. */
  readonly inspector: Inspector | undefined;
  /** The server's own classes: back at their idle count exactly at the end. */
  readonly serverClasses: readonly string[];
}

const TICK_MS = 20;
const OPEN_TIMEOUT_MS = 30_000;
const LEAVE_TIMEOUT_MS = 5_000;
/** A closed room's slots join the next room spread over this long. */
const JOIN_SPREAD_MS = 2_000;
/** A member that left is replaced, and one that dropped reconnects, within this long. */
const REJOIN_DELAY_MAX_MS = 1_000;
/** After the idle time: snapshot again this often until the heap is back. */
const RETRY_MS = 5_000;
const MIB = 1024 * 1024;
const encoder = new TextEncoder();
const MESSAGE = encoder.encode('{"type":"message"');
const ACK = encoder.encode('{"type":"ack"');
const ERROR = encoder.encode('{"type":"error"');
const CONTENT = encoder.encode('"content":"');

/** Checks what every member gets, counts acks and refusals per slot, and message latency. */
class SoakSink implements FrameSink {
  readonly ledger: CursorLedger;
  latency = new LatencyHistogram();
  delivered = 0;
  readonly acked: Float64Array;
  readonly refused: Float64Array;
  readonly refusedCodes = new Map<string, number>();

  constructor(slots: number) {
    this.ledger = new CursorLedger(slots);
    this.acked = new Float64Array(slots);
    this.refused = new Float64Array(slots);
  }

  welcome(peer: number, payload: Uint8Array): void {
    this.ledger.welcome(peer, payload);
  }

  frame(peer: number, payload: Uint8Array): void {
    this.ledger.frame(peer, payload);
    if (startsWith(payload, MESSAGE)) {
      this.delivered++;
      // A replayed message is as old as the drop: only live ones count for latency.
      if (!this.ledger.replaying(peer)) this.#latency(payload);
    } else if (startsWith(payload, ACK)) {
      this.acked[peer] = (this.acked[peer] ?? 0) + 1;
    } else if (startsWith(payload, ERROR)) {
      this.refused[peer] = (this.refused[peer] ?? 0) + 1;
      const code = /"code":"([a-z_]+)"/.exec(new TextDecoder().decode(payload))?.[1] ?? "unknown";
      this.refusedCodes.set(code, (this.refusedCodes.get(code) ?? 0) + 1);
    }
  }

  /** The content is `"<sender> <step> <n> <send time µs>"`: the fourth number. */
  #latency(payload: Uint8Array): void {
    let at = indexOf(payload, CONTENT, MESSAGE.length);
    if (at < 0) return;
    at += CONTENT.length;
    for (let spaces = 0; spaces < 3 && at < payload.length; at++) if (payload[at] === 32) spaces++;
    let sentUs = 0;
    for (let digit = payload[at] ?? 0; digit >= 48 && digit <= 57; digit = payload[++at] ?? 0) {
      sentUs = sentUs * 10 + digit - 48;
    }
    this.latency.record(performance.now() - sentUs / 1000);
  }
}

/**
 * The rooms and their members, and what they do. Every action on a slot (join, leave, resume)
 * is queued behind the slot's previous one, so that a slot never does two at once.
 */
class Population {
  roomsOpened = 0;
  roomsClosed = 0;
  joinFailures = 0;
  firstJoinError: string | undefined;
  sent = 0;
  /** Messages sent on connections that left or dropped before their ack came. */
  inDoubt = 0;
  readonly peers: PeerSet;
  readonly sink: SoakSink;
  readonly #options: SoakOptions;
  readonly #prefix = `soak-${tag()}`;
  readonly #frame: ReturnType<typeof framer>;
  readonly #generations: Uint32Array;
  readonly #closesAt: Float64Array;
  /** Per slot: messages sent on its connection (for the acks), and by its member (to number). */
  readonly #sentBy: Float64Array;
  readonly #numbered: Float64Array;
  readonly #members: Float64Array;
  readonly #queues: Promise<void>[];
  readonly #busy: Uint8Array;
  #users = 0;
  #paced = 0;
  #churned = 0;
  #next = 0;
  #started = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(target: Target, options: SoakOptions) {
    const slots = options.rooms * options.roomSize;
    this.#options = options;
    this.#frame = framer(target.frames ?? "text");
    this.#generations = new Uint32Array(options.rooms);
    this.#closesAt = new Float64Array(options.rooms);
    this.#sentBy = new Float64Array(slots);
    this.#numbered = new Float64Array(slots);
    this.#members = new Float64Array(slots);
    this.#queues = Array.from({ length: slots }, () => Promise.resolve());
    this.#busy = new Uint8Array(slots);
    this.sink = new SoakSink(slots);
    this.peers = new PeerSet(
      [chatEndpoint(target.urls[0] ?? "")],
      Array.from({ length: slots }, (_, slot) => this.#newMember(slot)),
    );
    this.peers.sink = this.sink;
    this.roomsOpened = options.rooms;
  }

  /** Opens every slot, then starts the traffic. @throws {Error} if any cannot connect. */
  async start(concurrency: number): Promise<void> {
    const opened = await this.peers.open({ concurrency, timeoutMs: OPEN_TIMEOUT_MS });
    if (opened.failed > 0) {
      throw new Error(`soak: ${opened.failed} joins failed: ${opened.firstError}`);
    }
    this.#started = performance.now();
    // Rooms close one after another, not all at once.
    this.#closesAt.forEach((_, room) => {
      this.#closesAt[room] = ((room + 1) / this.#options.rooms) * this.#options.roomLifeMs;
    });
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  /** Stops the traffic and waits for every queued action. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#queues);
  }

  /** Messages sent on open connections and not answered yet. */
  unanswered(): number {
    let sum = 0;
    for (let slot = 0; slot < this.#sentBy.length; slot++) {
      if (this.peers.isOpen(slot)) sum += this.#outstanding(slot);
    }
    return sum;
  }

  /** Everyone leaves. */
  async leaveAll(): Promise<void> {
    for (let slot = 0; slot < this.#sentBy.length; slot++) {
      this.#queue(slot, () => this.#leave(slot));
    }
    await Promise.all(this.#queues);
  }

  #tick(): void {
    const elapsed = performance.now() - this.#started;
    const options = this.#options;
    for (let room = 0; room < options.rooms; room++) {
      if (elapsed >= (this.#closesAt[room] ?? Infinity)) this.#closeRoom(room);
    }
    const slots = this.#sentBy.length;
    const due = Math.floor((elapsed * options.ratePerSecond) / 1000);
    // What finds no open member this tick is skipped, not sent in a burst later.
    let budget = due - this.#paced;
    this.#paced = due;
    for (let tries = 0; budget > 0 && tries < slots; tries++) {
      const slot = this.#next;
      this.#next = (slot + 1) % slots;
      if (this.#busy[slot] || !this.peers.isOpen(slot)) continue;
      const n = this.#numbered[slot] ?? 0;
      const sentUs = Math.round(performance.now() * 1000);
      this.peers.send(slot, this.#frame(this.#members[slot] ?? 0, 1, n, sentUs));
      this.#numbered[slot] = n + 1;
      this.#sentBy[slot] = (this.#sentBy[slot] ?? 0) + 1;
      this.sent++;
      budget--;
      tries = 0;
    }
    const churn = Math.floor((elapsed * options.churnPerSecond * 2) / 1000);
    for (; this.#churned < churn; this.#churned++) {
      const slot = Math.floor(Math.random() * slots);
      if (this.#busy[slot] || !this.peers.isOpen(slot)) continue;
      const delay = Math.random() * REJOIN_DELAY_MAX_MS;
      if (this.#churned % 2 === 0) {
        this.#queue(slot, () => this.#leave(slot));
        this.#queue(slot, () => this.#join(slot, delay, false));
      } else {
        this.#queue(slot, () => this.#join(slot, delay, true));
      }
    }
  }

  #closeRoom(room: number): void {
    const options = this.#options;
    this.#closesAt[room] = (this.#closesAt[room] ?? 0) + options.roomLifeMs;
    this.#generations[room] = (this.#generations[room] ?? 0) + 1;
    this.roomsClosed++;
    this.roomsOpened++;
    for (let i = 0; i < options.roomSize; i++) {
      const slot = room * options.roomSize + i;
      this.#queue(slot, () => this.#leave(slot));
      this.#queue(slot, () => this.#join(slot, Math.random() * JOIN_SPREAD_MS, false));
    }
  }

  /** Runs `action` once the slot's previous actions are done. */
  #queue(slot: number, action: () => Promise<void>): void {
    this.#busy[slot] = (this.#busy[slot] ?? 0) + 1;
    this.#queues[slot] = (this.#queues[slot] ?? Promise.resolve()).then(action).finally(() => {
      this.#busy[slot] = (this.#busy[slot] ?? 1) - 1;
    });
  }

  async #leave(slot: number): Promise<void> {
    await this.#resumed(slot);
    this.#settle(slot);
    await this.peers.leave(slot, LEAVE_TIMEOUT_MS);
  }

  /** After `delayMs`: a resume of the slot's member (dropped first), or a new member. */
  async #join(slot: number, delayMs: number, resume: boolean): Promise<void> {
    if (resume) {
      await this.#resumed(slot);
      this.#settle(slot);
      this.peers.drop(slot);
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const ledger = this.sink.ledger;
    if (!resume) ledger.reset(slot);
    const params = resume ? ledger.resumeParams(slot) : undefined;
    const spec = resume ? undefined : this.#newMember(slot);
    try {
      await this.peers.join(slot, { timeoutMs: OPEN_TIMEOUT_MS, spec, params });
    } catch (error) {
      this.joinFailures++;
      this.firstJoinError ??= error instanceof Error ? error.message : String(error);
      ledger.reset(slot); // its resume, if any, will not come
    }
  }

  /** Waits (a while) for the slot's `resume` frame, if it waits for one: every resume is judged. */
  #resumed(slot: number): Promise<void> {
    const ledger = this.sink.ledger;
    return ledger.replaying(slot)
      ? until(() => !ledger.replaying(slot), LEAVE_TIMEOUT_MS)
      : Promise.resolve();
  }

  /** What the slot sent and was not answered is in doubt once its connection goes. */
  #settle(slot: number): void {
    this.inDoubt += this.#outstanding(slot);
    this.#sentBy[slot] = 0;
    this.sink.acked[slot] = 0;
    this.sink.refused[slot] = 0;
  }

  #outstanding(slot: number): number {
    return (this.#sentBy[slot] ?? 0) - (this.sink.acked[slot] ?? 0) -
      (this.sink.refused[slot] ?? 0);
  }

  #newMember(slot: number): { room: string; user: string } {
    const room = Math.floor(slot / this.#options.roomSize);
    this.#members[slot] = this.#users;
    this.#numbered[slot] = 0;
    return {
      room: `${this.#prefix}-${room}-${this.#generations[room]}`,
      user: `u${this.#users++}`,
    };
  }
}

/** One sample of the server and of the run so far. */
interface Sample {
  readonly phase: string;
  readonly minute: number;
  readonly heapUsedMiB: number | undefined;
  readonly rssMiB: number | undefined;
}

/**
 * Runs the soak and reports a line per sample, then a summary.
 *
 * @example
 * ```ts
 * await soak(target, { durationMs: 600_000, warmupMs: 60_000, sampleMs: 60_000, rooms: 40,
 *   roomSize: 10, ratePerSecond: 200, roomLifeMs: 30_000, churnPerSecond: 5, idleMs: 5_000,
 *   idleMaxMs: 40_000, inspector, serverClasses: ["Room", "Client"] });
 * ```
 * @throws {Error} if the members cannot connect in the first place.
 */
export async function soak(target: Target, options: SoakOptions): Promise<void> {
  const inspector = options.inspector;
  if (target.serverPids.length === 0) target.report.warn("soak: no --pid, so no RSS figures");
  if (!inspector) target.report.warn("soak: no inspector (--inspect-port), so no heap figures");
  const population = new Population(target, options);
  const sampler = new Sampler(target, inspector, population);
  // RSS and heap are read before each snapshot: a snapshot is built in the server's process.
  await sampler.take("idle");
  const idle = await inspector?.snapshot();
  // What the snapshot left in RSS stays there: later RSS compares with this, not with idle.
  const pid = target.serverPids[0];
  const rssAfterSnapshotKiB = idle && pid !== undefined
    ? (await sampleProc(pid)).rssKiB
    : undefined;
  await population.start(target.concurrency);
  sampler.started = performance.now();
  const warmupMs = Math.min(options.warmupMs, options.durationMs / 2);
  for (let at = warmupMs; at < options.durationMs; at += options.sampleMs) {
    await sleepUntil(sampler.started + at);
    await sampler.take(at === warmupMs ? "warm-up" : "load");
  }
  await sleepUntil(sampler.started + options.durationMs);
  await population.stop();
  await until(() => population.unanswered() === 0, 5_000);
  const unanswered = population.unanswered();
  const last = await sampler.take("load");
  const loaded = await inspector?.snapshot();
  await population.leaveAll();
  await population.peers.closeAll(LEAVE_TIMEOUT_MS);
  const idleFrom = performance.now();
  await new Promise((resolve) => setTimeout(resolve, options.idleMs));
  // Snapshot until the heap is back at idle, a while: a room lingers for PRESENCE_LEAVE_GRACE, and
  // a connection dropped without a close handshake is held (by Deno) for up to IDLE_TIMEOUT / 2.
  for (;;) {
    let heap: Awaited<ReturnType<typeof endHeap>> | undefined;
    const end = await sampler.take("end", async () => {
      heap = idle && loaded ? await endHeap(idle, loaded, inspector, options) : undefined;
      return heap
        ? {
          retained: heap.retained.map((row) => `${row.key} ${row.idle} -> ${row.end}`),
          grownCollections: heap.grownCollections.length,
        }
        : {};
    });
    if (!heap || heap.back || performance.now() - idleFrom + RETRY_MS > options.idleMaxMs) {
      const settledSeconds = round2((performance.now() - idleFrom) / 1000);
      const run = {
        last,
        end,
        unanswered,
        heap,
        population,
        options,
        settledSeconds,
        rssAfterSnapshotKiB,
      };
      return target.report.summary(summarise(sampler.samples, run));
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** Takes and reports samples: the server's RSS and heap, and the run so far. */
class Sampler {
  readonly samples: Sample[] = [];
  /** When the traffic started; the idle sample comes before. */
  started = 0;
  readonly #target: Target;
  readonly #inspector: Inspector | undefined;
  readonly #population: Population;

  constructor(target: Target, inspector: Inspector | undefined, population: Population) {
    this.#target = target;
    this.#inspector = inspector;
    this.#population = population;
  }

  /** Reads RSS and heap, then adds what `extra` finds after, and reports the line. */
  async take(
    phase: string,
    extra: () => Promise<Record<string, unknown>> = () => Promise.resolve({}),
  ): Promise<Record<string, unknown>> {
    const pid = this.#target.serverPids[0];
    const [proc, heap] = await Promise.all([
      pid === undefined ? undefined : sampleProc(pid),
      this.#inspector?.heapUsage(),
    ]);
    const taken = {
      phase,
      minute: this.started === 0 ? 0 : round2((performance.now() - this.started) / 60_000),
      heapUsedMiB: heap && round2(heap.usedBytes / MIB),
      rssMiB: proc && round2(proc.rssKiB / 1024),
    };
    this.samples.push(taken);
    const step = this.samples.length;
    const line = {
      scenario: "soak",
      step,
      ...taken,
      ...progress(this.#population),
      ...await extra(),
    };
    this.#target.report.step(line);
    return line;
  }
}

async function endHeap(
  idle: HeapSnapshotSummary,
  loaded: HeapSnapshotSummary,
  inspector: Inspector | undefined,
  options: SoakOptions,
) {
  const end = await inspector?.snapshot() ?? idle;
  // The in-memory store keeps its newest rooms (2 references an entry): MEMORY_MAX_ROOMS is
  // twice the rooms open at once when the soak starts the server.
  const comparison = compareToIdle(idle, loaded, end, {
    exact: options.serverClasses,
    collectionSlack: 4 * options.rooms,
    // It keeps a Map (client ids) for each room.
    kindSlack: { Map: 2 * options.rooms },
  });
  const watched = Object.fromEntries(
    ["Room", "Client", "Map", "Set"].map((name) => [name, {
      idle: idle.groups.get(`object:${name}`)?.count ?? 0,
      loaded: loaded.groups.get(`object:${name}`)?.count ?? 0,
      end: end.groups.get(`object:${name}`)?.count ?? 0,
    }]),
  );
  const back = comparison.retained.length === 0 && comparison.grownCollections.length === 0;
  return { ...comparison, watched, back };
}

/** The run so far: traffic and correctness. */
function progress(population: Population): Record<string, unknown> {
  const { peers, sink } = population;
  const ledger = sink.ledger;
  const latency = sink.latency.summary();
  sink.latency = new LatencyHistogram();
  return {
    connections: peers.openCount,
    roomsOpened: population.roomsOpened,
    roomsClosed: population.roomsClosed,
    sent: population.sent,
    delivered: sink.delivered,
    latencyMs: latency,
    lost: ledger.lost,
    duplicated: ledger.duplicated,
    reordered: ledger.reordered,
    gaps: ledger.gaps,
    resumes: ledger.resumes,
    resumesComplete: ledger.resumesComplete,
    resumesIncomplete: Object.fromEntries(ledger.incomplete),
    resumesAbandoned: ledger.abandoned,
    refused: Object.fromEntries(sink.refusedCodes),
    serverCloses: Object.fromEntries(peers.dropCodes),
    joinFailures: population.joinFailures,
    firstJoinError: population.firstJoinError,
    inDoubt: population.inDoubt,
  };
}

function summarise(
  samples: readonly Sample[],
  run: {
    last: Record<string, unknown>;
    end: Record<string, unknown>;
    unanswered: number;
    heap: Awaited<ReturnType<typeof endHeap>> | undefined;
    population: Population;
    options: SoakOptions;
    settledSeconds: number;
    rssAfterSnapshotKiB: number | undefined;
  },
): Record<string, unknown> {
  const { last, end, heap, population } = run;
  const loaded = samples.filter((sample) => sample.phase === "warm-up" || sample.phase === "load");
  const slope = (value: (sample: Sample) => number | undefined, fit = leastSquaresSlope) => {
    const points = loaded.map((sample) => ({ x: sample.minute, y: value(sample) ?? NaN }));
    const result = fit(points.filter((point) => !Number.isNaN(point.y)));
    return Number.isNaN(result) ? undefined : round2(result);
  };
  const first = samples[0];
  const ledger = population.sink.ledger;
  const correct = ledger.lost === 0 && ledger.duplicated === 0 && ledger.reordered === 0 &&
    ledger.gaps === 0 && ledger.resumesComplete === ledger.resumes - ledger.abandoned &&
    population.joinFailures === 0 && population.peers.dropCodes.size === 0 &&
    population.sink.refusedCodes.size === 0 && run.unanswered === 0;
  return {
    scenario: "soak",
    pass: correct && (heap?.back ?? true),
    correct,
    minutes: round2(run.options.durationMs / 60_000),
    heapSlopeMiBPerMinute: slope((sample) => sample.heapUsedMiB),
    rssSlopeMiBPerMinute: slope((sample) => sample.rssMiB),
    heapMedianSlopeMiBPerMinute: slope((sample) => sample.heapUsedMiB, medianSlope),
    rssMedianSlopeMiBPerMinute: slope((sample) => sample.rssMiB, medianSlope),
    idleHeapMiB: first?.heapUsedMiB,
    endHeapMiB: end.heapUsedMiB,
    idleRssMiB: first?.rssMiB,
    idleRssAfterSnapshotMiB: run.rssAfterSnapshotKiB && round2(run.rssAfterSnapshotKiB / 1024),
    loadedRssMiB: last.rssMiB,
    endRssMiB: end.rssMiB,
    returnedToIdle: heap?.back,
    idleSecondsToReturn: heap?.back ? run.settledSeconds : undefined,
    watched: heap?.watched,
    retained: heap?.retained.slice(0, 10),
    grownCollections: heap?.grownCollections.slice(0, 10),
    roomsOpened: population.roomsOpened,
    messagesSent: population.sent,
    resumes: ledger.resumes,
    unanswered: run.unanswered,
  };
}

const COLUMNS: readonly Column[] = [
  ["phase", (line) => line.phase],
  ["minute", (line) => line.minute],
  ["conns", (line) => line.connections],
  ["rooms", (line) => line.roomsOpened],
  ["sent", (line) => line.sent],
  ["delivered", (line) => line.delivered],
  ["p50", (line) => (line.latencyMs as LatencySummary).p50],
  ["p99", (line) => (line.latencyMs as LatencySummary).p99],
  ["lost", (line) => line.lost],
  ["dup", (line) => line.duplicated],
  ["reord", (line) => line.reordered],
  ["resumes ok/all", (line) => `${line.resumesComplete}/${line.resumes}`],
  ["closed", (line) => Object.values(line.serverCloses as object).reduce((a, b) => a + b, 0)],
  ["heap MiB", (line) => line.heapUsedMiB],
  ["RSS MiB", (line) => line.rssMiB],
  ["retained", (line) => (line.retained as string[] | undefined)?.length],
];

/**
 * The table of soak sample lines; latency (ms) over each interval.
 *
 * @example
 * ```ts
 * console.log(soakTable(lines.filter((line) => line.scenario === "soak")));
 * ```
 */
export function soakTable(lines: readonly Record<string, unknown>[]): string {
  return columnTable(COLUMNS, lines);
}

/**
 * The classes declared in the server's source (chat/, server/, storage/, cluster/, log/): those
 * must be back at their idle count after a soak. `Room` and `Client` when the source cannot be
 * read (no --allow-read).
 *
 * @example
 * ```ts
 * const exact = await serverClassNames(); // ["AuthError", ..., "Room", ...]
 * ```
 * @throws {Error} on a read error other than a missing permission or folder.
 */
export async function serverClassNames(): Promise<string[]> {
  const names = new Set<string>();
  try {
    for (const folder of ["chat", "server", "storage", "cluster", "log"]) {
      const directory = new URL(`../${folder}/`, import.meta.url);
      for await (const entry of Deno.readDir(directory)) {
        if (!entry.name.endsWith(".ts")) continue;
        const text = await Deno.readTextFile(new URL(entry.name, directory));
        for (const match of text.matchAll(/^(?:export )?class (\w+)/gm)) names.add(match[1] ?? "");
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.NotFound)) {
      throw error;
    }
    return ["Room", "Client"];
  }
  return [...names].sort();
}
