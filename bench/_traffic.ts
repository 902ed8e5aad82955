/**
 * One step of paced traffic: senders send at a fixed total rate for a while, every member
 * checks what it receives, and the step reports latency, loss, duplication and reordering.
 *
 * A message's content is `"<sender peer> <step> <seq> <send time µs>"`; every member of a room
 * (the sender included) must receive each of its senders' messages once, in order.
 *
 * @module
 */
import type { FrameSink, PeerSet, PeerSpec } from "./_peers.ts";
import {
  commandCpuSeconds,
  otherCpuPercent,
  sampleMachine,
  sampleProc,
  usageSince,
} from "./_proc.ts";
import { LatencyHistogram, type LatencySummary, round2 } from "./_stats.ts";
import { indexOf, startsWith } from "./_ws_client.ts";

/** Rooms of equal size; the first `senders` members of each room send. */
export interface Layout {
  readonly rooms: number;
  readonly members: number;
  readonly senders: number;
}

/** Options of {@linkcode runStep}. */
export interface StepOptions {
  /** Distinguishes this step's messages from late ones of an earlier step. */
  readonly step: number;
  /** Messages per second offered in total, across all senders. */
  readonly ratePerSecond: number;
  readonly durationMs: number;
  /** After sending: stop waiting once nothing arrived for this long... */
  readonly quietMs: number;
  /** ...or once this long has passed, whichever is first. */
  readonly drainMaxMs: number;
  /** The server's pid, for its CPU and RSS; `undefined` when unknown. */
  readonly serverPid: number | undefined;
  /** Processes of this command name are part of the system under test (e.g. `postgres`). */
  readonly sutCommand?: string;
}

/** What one step measured. */
export interface StepResult {
  readonly offeredPerSecond: number;
  readonly sentPerSecond: number;
  readonly sent: number;
  readonly expected: number;
  readonly delivered: number;
  readonly deliveriesPerSecond: number;
  readonly latencyMs: LatencySummary;
  readonly lost: number;
  readonly duplicated: number;
  readonly reordered: number;
  /** Messages the server answered with an `error` frame, by code. */
  readonly refused: Readonly<Record<string, number>>;
  /** Connections closed by the server during the step. */
  readonly dropped: number;
  readonly serverCpuPercent: number | undefined;
  readonly serverRssKiB: number | undefined;
  /** The generator's own CPU, in percent of one core. */
  readonly clientCpuPercent: number;
  /**
   * CPU used meanwhile by every other task on the machine (user + system, in percent of one
   * core); with `serverPid` unknown it includes the server.
   */
  readonly otherCpuPercent: number;
  /** CPU of the `sutCommand` processes, in percent of one core; absent without one. */
  readonly sutCpuPercent?: number;
}

const TICK_MS = 2;
const DRAIN_POLL_MS = 10;
const encoder = new TextEncoder();
const MESSAGE_PREFIX = encoder.encode('{"type":"message"');
const ERROR_PREFIX = encoder.encode('{"type":"error"');
const CONTENT_FIELD = encoder.encode('"content":"');

/** Members of `layout`, rooms named `<prefix>-<n>`, users `m<n>`. */
export function layoutSpecs(prefix: string, layout: Layout): PeerSpec[] {
  return Array.from({ length: layout.rooms * layout.members }, (_, peer) => ({
    room: `${prefix}-${Math.floor(peer / layout.members)}`,
    user: `m${peer % layout.members}`,
  }));
}

/**
 * Runs one step on open peers laid out as `layout` (as {@linkcode layoutSpecs} made them).
 *
 * @example
 * ```ts
 * const result = await runStep(peers, layout, { step: 1, ratePerSecond: 500, durationMs: 5000,
 *   quietMs: 1000, drainMaxMs: 5000, serverPid: undefined });
 * ```
 */
export async function runStep(
  peers: PeerSet,
  layout: Layout,
  options: StepOptions,
): Promise<StepResult> {
  const senders: number[] = [];
  for (let room = 0; room < layout.rooms; room++) {
    for (let slot = 0; slot < layout.senders; slot++) senders.push(room * layout.members + slot);
  }
  const perSenderPerMs = options.ratePerSecond / senders.length / 1000;
  const perSender = Math.round(perSenderPerMs * options.durationMs);
  const sink = new StepSink(options.step, layout, perSender);
  const previousSink = peers.sink;
  const droppedBefore = peers.droppedSinceOpen;
  peers.sink = sink;
  const [server, client, machine, sut] = await Promise.all([
    options.serverPid === undefined ? undefined : sampleProc(options.serverPid),
    sampleProc(Deno.pid),
    sampleMachine(),
    options.sutCommand === undefined ? 0 : commandCpuSeconds(options.sutCommand),
  ]);
  const started = performance.now();
  const sentBy = new Int32Array(senders.length);
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = Math.min(performance.now() - started, options.durationMs);
      for (let i = 0; i < senders.length; i++) {
        // Senders are spread over the period so that they do not all send at once.
        const phase = i / senders.length;
        const due = elapsed >= options.durationMs
          ? perSender
          : Math.min(perSender, Math.floor(elapsed * perSenderPerMs + 1 - phase));
        const sender = senders[i] ?? 0;
        for (let seq = sentBy[i] ?? 0; seq < due; seq++) {
          const now = Math.round(performance.now() * 1000);
          peers.send(sender, `${sender} ${options.step} ${seq} ${now}`);
        }
        if (due > (sentBy[i] ?? 0)) sentBy[i] = due;
      }
      if (elapsed >= options.durationMs) {
        clearInterval(interval);
        resolve();
      }
    };
    const interval = setInterval(tick, TICK_MS);
    tick();
  });
  const sendEnded = performance.now();
  const [serverUsage, clientUsage, machineAfter, sutAfter] = await Promise.all([
    server && options.serverPid !== undefined ? usageSince(options.serverPid, server) : undefined,
    usageSince(Deno.pid, client),
    sampleMachine(),
    options.sutCommand === undefined ? 0 : commandCpuSeconds(options.sutCommand),
  ]);
  const sutSeconds = sutAfter - sut;
  const other = otherCpuPercent(machine, machineAfter, [
    serverUsage?.cpuSeconds ?? 0,
    clientUsage.cpuSeconds,
    sutSeconds,
  ]);
  const sent = senders.length * perSender;
  await drain(sink, { expected: () => sink.expected(sent), sendEnded, ...options });
  peers.sink = previousSink;
  const receiveSeconds = (Math.max(sink.lastReceivedAt, sendEnded) - started) / 1000;
  const expected = sink.expected(sent);
  return {
    offeredPerSecond: options.ratePerSecond,
    sentPerSecond: Math.round(sent / ((sendEnded - started) / 1000)),
    sent,
    expected,
    delivered: sink.delivered,
    deliveriesPerSecond: Math.round(sink.delivered / receiveSeconds),
    latencyMs: sink.latency.summary(),
    lost: Math.max(0, expected - sink.delivered),
    duplicated: sink.duplicated,
    reordered: sink.reordered,
    refused: Object.fromEntries(sink.refusedCodes),
    dropped: peers.droppedSinceOpen - droppedBefore,
    serverCpuPercent: serverUsage && round2(serverUsage.cpuPercent),
    serverRssKiB: serverUsage?.rssKiB,
    clientCpuPercent: round2(clientUsage.cpuPercent),
    otherCpuPercent: round2(other),
    ...(options.sutCommand === undefined ? {} : {
      sutCpuPercent: round2((sutSeconds / ((sendEnded - started) / 1000)) * 100),
    }),
  };
}

function drain(
  sink: StepSink,
  options: { expected: () => number; sendEnded: number; quietMs: number; drainMaxMs: number },
): Promise<void> {
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      const now = performance.now();
      const quiet = now - Math.max(sink.lastReceivedAt, options.sendEnded) > options.quietMs;
      if (
        sink.delivered >= options.expected() || quiet ||
        now - options.sendEnded > options.drainMaxMs
      ) {
        clearInterval(poll);
        resolve();
      }
    }, DRAIN_POLL_MS);
  });
}

/** Checks every frame of one step. Per (receiver, sender) stream: a bitmap of seqs seen. */
class StepSink implements FrameSink {
  readonly latency = new LatencyHistogram();
  readonly refusedCodes = new Map<string, number>();
  delivered = 0;
  duplicated = 0;
  reordered = 0;
  /** Frames of another step, or whose content this step did not send. */
  foreign = 0;
  refused = 0;
  lastReceivedAt = 0;
  readonly #step: number;
  readonly #layout: Layout;
  readonly #perSender: number;
  readonly #bytesPerStream: number;
  readonly #seen: Uint8Array;
  readonly #highest: Int32Array;

  constructor(step: number, layout: Layout, perSender: number) {
    this.#step = step;
    this.#layout = layout;
    this.#perSender = perSender;
    this.#bytesPerStream = Math.ceil(perSender / 8);
    const streams = layout.rooms * layout.members * layout.senders;
    this.#seen = new Uint8Array(streams * this.#bytesPerStream);
    this.#highest = new Int32Array(streams).fill(-1);
  }

  /** Deliveries due: every accepted message reaches every member of its room. */
  expected(sent: number): number {
    return (sent - this.refused) * this.#layout.members;
  }

  frame(peer: number, payload: Uint8Array): void {
    if (startsWith(payload, MESSAGE_PREFIX)) return this.#message(peer, payload);
    if (startsWith(payload, ERROR_PREFIX)) {
      const code = /"code":"([a-z_]+)"/.exec(new TextDecoder().decode(payload))?.[1] ?? "unknown";
      this.refused++;
      this.refusedCodes.set(code, (this.refusedCodes.get(code) ?? 0) + 1);
    }
  }

  #message(peer: number, payload: Uint8Array): void {
    const at = performance.now();
    this.lastReceivedAt = at;
    const field = indexOf(payload, CONTENT_FIELD, MESSAGE_PREFIX.length);
    if (field < 0) return void this.foreign++;
    // Four space-separated integers: sender, step, seq, send time in µs.
    const numbers = [0, 0, 0, 0];
    let position = field + CONTENT_FIELD.length;
    for (let n = 0; n < 4; n++) {
      let value = 0;
      let digit = payload[position] ?? 0;
      while (digit >= 48 && digit <= 57) {
        value = value * 10 + digit - 48;
        digit = payload[++position] ?? 0;
      }
      numbers[n] = value;
      position++; // the space
    }
    const [sender = 0, step = 0, seq = 0, sentUs = 0] = numbers;
    const slot = sender % this.#layout.members;
    const sameRoom = Math.floor(sender / this.#layout.members) ===
      Math.floor(peer / this.#layout.members);
    if (
      step !== this.#step || slot >= this.#layout.senders || !sameRoom || seq >= this.#perSender
    ) {
      return void this.foreign++;
    }
    const stream = peer * this.#layout.senders + slot;
    const byte = stream * this.#bytesPerStream + (seq >> 3);
    const bit = 1 << (seq & 7);
    const seen = this.#seen[byte] ?? 0;
    if (seen & bit) return void this.duplicated++;
    this.#seen[byte] = seen | bit;
    this.delivered++;
    if (seq < (this.#highest[stream] ?? -1)) this.reordered++;
    else this.#highest[stream] = seq;
    this.latency.record(at - sentUs / 1000);
  }
}
