/**
 * One step of paced traffic: senders send at a fixed total rate for a while, every member
 * checks what it receives, and the step reports latency, loss, duplication and reordering.
 *
 * A message's content is `"<sender peer> <step> <n> <send time µs>"`; every member of a room
 * (the sender included) must receive each of its senders' messages once, in order: loss,
 * duplication and order are judged by these fields, whatever the server adds. Frames of protocol
 * 2 also carry the room's `seq`: every member must see it go up by one from frame to frame
 * (a `gap` frame accounts for seqs that will never come, and is counted apart). With the `mix`
 * frame style, reactions (sequenced too) and typing frames go in between (bench/_mix.ts).
 *
 * @module
 */
import type { PeerSet, PeerSpec } from "./_peers.ts";
import {
  commandCpuSeconds,
  otherCpuPercent,
  sampleMachine,
  sampleProc,
  usageSince,
} from "./_proc.ts";
import { ConversationMix, type MixCounts } from "./_mix.ts";
import { type LatencySummary, round2 } from "./_stats.ts";
import { StepSink } from "./_step_sink.ts";
import { BenchSocket } from "./_ws_client.ts";

/**
 * How a sender frames a message: `text` (the bare content, the smallest frame the server
 * accepts), `json` (`{"type":"message","content":..}`), or `client-id` (the same with a
 * `client_id` unique per message, `<sender>-<step>-<n>`, as a retrying client sends it). `mix`:
 * `json` messages, and in {@linkcode runStep} one frame in ten a typing frame or a reaction
 * (bench/_mix.ts); elsewhere just `json`.
 */
export type FrameStyle = "text" | "json" | "client-id" | "mix";
/** Every {@linkcode FrameStyle}, for option parsing. */
export const FRAME_STYLES: readonly FrameStyle[] = ["text", "json", "client-id", "mix"];

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
  /** Frames per second offered in total, across all senders (messages unless `mix`). */
  readonly ratePerSecond: number;
  readonly durationMs: number;
  /** After sending: stop waiting once nothing arrived for this long... */
  readonly quietMs: number;
  /** ...or once this long has passed, whichever is first. */
  readonly drainMaxMs: number;
  /** The server's pid (each instance's, for a cluster), for CPU and RSS; empty when unknown. */
  readonly serverPids: readonly number[];
  /** Processes of this command name are part of the system under test (e.g. `postgres`). */
  readonly sutCommand?: string;
  /** How messages are framed; `text` if absent. */
  readonly frames?: FrameStyle;
}

/** What one step measured. */
export interface StepResult {
  readonly offeredPerSecond: number;
  /** Frames sent per second (typing frames included). */
  readonly sentPerSecond: number;
  /** Frames sent that the room sequences: messages, and reactions in the mix. */
  readonly sent: number;
  /** Deliveries due: `sent`, but what was refused, times the members of a room. */
  readonly expected: number;
  /** Messages, and reactions in the mix, received by the members together. */
  readonly delivered: number;
  /**
   * Text frames the members received (every kind; a batched frame once): below `delivered`
   * only when frames were joined.
   */
  readonly framesReceived: number;
  readonly deliveriesPerSecond: number;
  /** Of messages (from their send time in the content). */
  readonly latencyMs: LatencySummary;
  readonly lost: number;
  readonly duplicated: number;
  readonly reordered: number;
  /**
   * Message frames whose room `seq` was not one more than that of the previous message (or gap)
   * the same member got in this step: the server's sequence skipped, repeated or went back.
   */
  readonly seqBroken: number;
  /** `gap` frames received: seqs the server could not deliver. */
  readonly gaps: number;
  /** Messages the server answered with an `error` frame, by code. */
  readonly refused: Readonly<Record<string, number>>;
  /** `ack` frames the senders got: one per accepted message, or none from a server without. */
  readonly acked: number;
  /** Connections closed by the server during the step. */
  readonly dropped: number;
  /** CPU of the server (of its instances together), in percent of one core. */
  readonly serverCpuPercent: number | undefined;
  /** RSS of the server (of its instances together). */
  readonly serverRssKiB: number | undefined;
  /** The generator's own CPU, in percent of one core. */
  readonly clientCpuPercent: number;
  /**
   * CPU used meanwhile by every other task on the machine (user + system, in percent of one
   * core); without `serverPids` it includes the server.
   */
  readonly otherCpuPercent: number;
  /** CPU of the `sutCommand` processes, in percent of one core; absent without one. */
  readonly sutCpuPercent?: number;
  /** The `mix` frame style: what was sent and got by kind. */
  readonly mix?: MixCounts;
}

const TICK_MS = 2;
const DRAIN_POLL_MS = 10;

/**
 * Members of `layout`, rooms named `<prefix>-<n>`, users `m<n>`. With several `instances` (of
 * one cluster) each room's members, senders included, are spread over them in turn, starting
 * one further along in each room.
 */
export function layoutSpecs(prefix: string, layout: Layout, instances = 1): PeerSpec[] {
  return Array.from({ length: layout.rooms * layout.members }, (_, peer) => {
    const room = Math.floor(peer / layout.members);
    const slot = peer % layout.members;
    return { room: `${prefix}-${room}`, user: `m${slot}`, instance: (room + slot) % instances };
  });
}

/**
 * Runs one step on open peers laid out as `layout` (as {@linkcode layoutSpecs} made them).
 *
 * @example
 * ```ts
 * const result = await runStep(peers, layout, { step: 1, ratePerSecond: 500, durationMs: 5000,
 *   quietMs: 1000, drainMaxMs: 5000, serverPids: [] });
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
    Promise.all(options.serverPids.map(async (pid) => ({ pid, before: await sampleProc(pid) }))),
    sampleProc(Deno.pid),
    sampleMachine(),
    options.sutCommand === undefined ? 0 : commandCpuSeconds(options.sutCommand),
  ]);
  const started = performance.now();
  const framesBefore = BenchSocket.textFramesReceived;
  const sentBy = new Int32Array(senders.length);
  const mix = options.frames === "mix"
    ? new ConversationMix(sink, { peers: peers.specs.length, message: framer("json") })
    : undefined;
  const frame = mix ? mix.frame.bind(mix) : framer(options.frames ?? "text");
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
          peers.send(sender, frame(sender, options.step, seq, now));
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
  const [serverUsages, clientUsage, machineAfter, sutAfter] = await Promise.all([
    Promise.all(server.map(({ pid, before }) => usageSince(pid, before))),
    usageSince(Deno.pid, client),
    sampleMachine(),
    options.sutCommand === undefined ? 0 : commandCpuSeconds(options.sutCommand),
  ]);
  const sutSeconds = sutAfter - sut;
  const serverUsage = serverUsages.length === 0 ? undefined : {
    cpuPercent: serverUsages.reduce((sum, usage) => sum + usage.cpuPercent, 0),
    cpuSeconds: serverUsages.reduce((sum, usage) => sum + usage.cpuSeconds, 0),
    rssKiB: serverUsages.reduce((sum, usage) => sum + usage.rssKiB, 0),
  };
  const other = otherCpuPercent(machine, machineAfter, [
    serverUsage?.cpuSeconds ?? 0,
    clientUsage.cpuSeconds,
    sutSeconds,
  ]);
  const frames = senders.length * perSender;
  const sent = frames - (mix?.sent.typing ?? 0);
  await drain(sink, { sent, sendEnded, ...options });
  peers.sink = previousSink;
  const receiveSeconds = (Math.max(sink.lastReceivedAt, sendEnded) - started) / 1000;
  const expected = sink.expected(sent);
  return {
    offeredPerSecond: options.ratePerSecond,
    sentPerSecond: Math.round(frames / ((sendEnded - started) / 1000)),
    sent,
    expected,
    delivered: sink.delivered,
    framesReceived: BenchSocket.textFramesReceived - framesBefore,
    deliveriesPerSecond: Math.round(sink.delivered / receiveSeconds),
    latencyMs: sink.latency.summary(),
    lost: Math.max(0, expected - sink.delivered),
    duplicated: sink.duplicated,
    reordered: sink.reordered,
    seqBroken: sink.seqBroken,
    gaps: sink.gaps,
    refused: Object.fromEntries(sink.refusedCodes),
    acked: sink.acked,
    dropped: peers.droppedSinceOpen - droppedBefore,
    serverCpuPercent: serverUsage && round2(serverUsage.cpuPercent),
    serverRssKiB: serverUsage?.rssKiB,
    clientCpuPercent: round2(clientUsage.cpuPercent),
    otherCpuPercent: round2(other),
    ...(options.sutCommand === undefined ? {} : {
      sutCpuPercent: round2((sutSeconds / ((sendEnded - started) / 1000)) * 100),
    }),
    ...(mix && {
      mix: {
        messagesSent: mix.sent.messages,
        reactionsSent: mix.sent.reactions,
        typingSent: mix.sent.typing,
        reactionsDelivered: sink.reactions,
        typingDelivered: sink.typing,
      },
    }),
  };
}

/**
 * Makes a message frame of the step's payload fields. The content needs no JSON escaping: four
 * integers and spaces. `mix` frames its messages as `json`.
 */
export function framer(
  style: FrameStyle,
): (sender: number, step: number, seq: number, sentUs: number) => string {
  if (style === "json" || style === "mix") {
    return (sender, step, seq, sentUs) =>
      `{"type":"message","content":"${sender} ${step} ${seq} ${sentUs}"}`;
  }
  if (style === "client-id") {
    return (sender, step, seq, sentUs) =>
      `{"type":"message","content":"${sender} ${step} ${seq} ${sentUs}",` +
      `"client_id":"${sender}-${step}-${seq}"}`;
  }
  return (sender, step, seq, sentUs) => `${sender} ${step} ${seq} ${sentUs}`;
}

/**
 * Waits for every delivery due and, from a server that acknowledges (it acked something this
 * step), every ack; or until nothing arrived for `quietMs`, or `drainMaxMs` passed.
 */
function drain(
  sink: StepSink,
  options: { sent: number; sendEnded: number; quietMs: number; drainMaxMs: number },
): Promise<void> {
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      const now = performance.now();
      const quiet = now - Math.max(sink.lastReceivedAt, options.sendEnded) > options.quietMs;
      const acked = sink.acked === 0 || sink.acked >= options.sent - sink.refused;
      if (
        (sink.delivered >= sink.expected(options.sent) && acked) || quiet ||
        now - options.sendEnded > options.drainMaxMs
      ) {
        clearInterval(poll);
        resolve();
      }
    }, DRAIN_POLL_MS);
  });
}
