/**
 * What every member of a traffic step checks in each frame it gets: its own payload fields
 * (`"<sender peer> <step> <n> <send time µs>"`: latency, loss, duplication, order) and, on
 * protocol 2, the room's sequence (up by one from frame to frame; a `gap` frame says where the
 * next one starts). A `react` frame is an item of that sequence too: its own place is its
 * `event_seq` (its `seq` names the message it changes). A sender's `ack` frames are counted, and
 * `typing` frames (ephemeral, outside the sequence).
 *
 * @module
 */
import type { FrameSink } from "./_peers.ts";
import { LatencyHistogram } from "./_stats.ts";
import type { Layout } from "./_traffic.ts";
import { indexOf, startsWith } from "./_ws_client.ts";

const encoder = new TextEncoder();
const MESSAGE_PREFIX = encoder.encode('{"type":"message"');
const ERROR_PREFIX = encoder.encode('{"type":"error"');
const GAP_PREFIX = encoder.encode('{"type":"gap"');
const ACK_PREFIX = encoder.encode('{"type":"ack"');
const REACT_PREFIX = encoder.encode('{"type":"react"');
const TYPING_PREFIX = encoder.encode('{"type":"typing"');
const CONTENT_FIELD = encoder.encode('"content":"');
const SEQ_FIELD = encoder.encode('"seq":');
const TO_SEQ_FIELD = encoder.encode('"to_seq":');
const EVENT_SEQ_FIELD = encoder.encode('"event_seq":');

/**
 * Checks every frame of one step. Per (receiver, sender) stream: a bitmap of the senders'
 * numbers seen; per receiver: the last room seq seen.
 *
 * @example
 * ```ts
 * const sink = new StepSink(1, { rooms: 10, members: 100, senders: 1 }, 1500);
 * peers.sink = sink; // ... send the step's messages, drain ...
 * console.log(sink.delivered, sink.expected(sent), sink.seqBroken);
 * ```
 */
export class StepSink implements FrameSink {
  readonly latency = new LatencyHistogram();
  readonly refusedCodes = new Map<string, number>();
  /** Messages and `react` frames received (a reaction reaches every member, as a message). */
  delivered = 0;
  /** The `react` frames among {@linkcode StepSink.delivered}. */
  reactions = 0;
  /** `typing` frames received (not deliveries: the server passes on at most one per 2 s). */
  typing = 0;
  duplicated = 0;
  reordered = 0;
  seqBroken = 0;
  gaps = 0;
  /** Frames of another step, or whose content this step did not send. */
  foreign = 0;
  refused = 0;
  /** `ack` frames: servers that acknowledge send one per accepted message to its sender. */
  acked = 0;
  lastReceivedAt = 0;
  readonly #step: number;
  readonly #layout: Layout;
  readonly #perSender: number;
  readonly #bytesPerStream: number;
  readonly #seen: Uint8Array;
  readonly #highest: Int32Array;
  /** Per receiver, the room seq of its last message, reaction or gap this step; -1 before. */
  readonly #lastSeq: Float64Array;
  /** Per receiver, the seq of the last message it got this step; 0 before the first. */
  readonly #lastMessageSeq: Float64Array;

  constructor(step: number, layout: Layout, perSender: number) {
    this.#step = step;
    this.#layout = layout;
    this.#perSender = perSender;
    this.#bytesPerStream = Math.ceil(perSender / 8);
    const streams = layout.rooms * layout.members * layout.senders;
    this.#seen = new Uint8Array(streams * this.#bytesPerStream);
    this.#highest = new Int32Array(streams).fill(-1);
    this.#lastSeq = new Float64Array(layout.rooms * layout.members).fill(-1);
    this.#lastMessageSeq = new Float64Array(layout.rooms * layout.members);
  }

  /**
   * Deliveries due: every accepted message (or reaction; `sent` counts both) reaches every member
   * of its room.
   */
  expected(sent: number): number {
    return (sent - this.refused) * this.#layout.members;
  }

  /** The room seq of the last message member `peer` got this step; 0 before the first. */
  lastMessageSeq(peer: number): number {
    return this.#lastMessageSeq[peer] ?? 0;
  }

  frame(peer: number, payload: Uint8Array): void {
    if (startsWith(payload, MESSAGE_PREFIX)) {
      const seq = numberAfter(payload, SEQ_FIELD);
      this.#checkSeq(peer, seq);
      if (seq !== undefined) this.#lastMessageSeq[peer] = seq;
      return this.#message(peer, payload);
    }
    if (startsWith(payload, ACK_PREFIX)) return void this.acked++;
    if (startsWith(payload, REACT_PREFIX)) {
      // Its place in the sequence is its event_seq; its "seq" names the message reacted to.
      this.#checkSeq(peer, numberAfter(payload, EVENT_SEQ_FIELD));
      this.lastReceivedAt = performance.now();
      this.reactions++;
      this.delivered++;
      return;
    }
    if (startsWith(payload, TYPING_PREFIX)) return void this.typing++;
    if (startsWith(payload, GAP_PREFIX)) {
      // The seqs up to `to_seq` will never come: the next message follows it.
      this.gaps++;
      this.#lastSeq[peer] = numberAfter(payload, TO_SEQ_FIELD) ?? -1;
      return;
    }
    if (startsWith(payload, ERROR_PREFIX)) {
      const code = /"code":"([a-z_]+)"/.exec(new TextDecoder().decode(payload))?.[1] ?? "unknown";
      this.refused++;
      this.refusedCodes.set(code, (this.refusedCodes.get(code) ?? 0) + 1);
    }
  }

  /**
   * A message (or reaction) must carry the seq after the last one. Frames without a seq
   * (protocol 1 servers, the baseline) are not checked.
   */
  #checkSeq(peer: number, seq: number | undefined): void {
    if (seq === undefined) return;
    const last = this.#lastSeq[peer] ?? -1;
    if (last >= 0 && seq !== last + 1) this.seqBroken++;
    this.#lastSeq[peer] = seq;
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

/** The unsigned integer right after `field` (e.g. `"seq":`), or `undefined` if there is none. */
function numberAfter(payload: Uint8Array, field: Uint8Array): number | undefined {
  const at = indexOf(payload, field, MESSAGE_PREFIX.length);
  if (at < 0) return undefined;
  let position = at + field.length;
  let value = 0;
  let digit = payload[position] ?? 0;
  if (digit < 48 || digit > 57) return undefined;
  while (digit >= 48 && digit <= 57) {
    value = value * 10 + digit - 48;
    digit = payload[++position] ?? 0;
  }
  return value;
}
