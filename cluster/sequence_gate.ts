/**
 * Puts a room's messages from the shared sequencer back into seq order, filling holes.
 *
 * @module
 */
import type { SequencedMessage } from "../chat/cluster.ts";
import type { RoomSequence } from "../chat/message.ts";

interface HeldMessage {
  readonly epoch: string;
  readonly message: SequencedMessage;
}

/** Where a gate sends what it lets through. */
export interface GateOutput {
  /** The next messages, in seq order, with no hole since the previous call or gap. */
  messages(messages: readonly SequencedMessage[]): void;
  /** Seqs `fromSeq`..`toSeq` could not be recovered. */
  gap(fromSeq: number, toSeq: number): void;
  /** The sequence moved to another epoch and now stands at `sequence`. */
  reset(sequence: RoomSequence): void;
}

/** Reads seqs `fromSeq`..`toSeq` of the current epoch from wherever they are kept (a stream). */
export type GapFill = (fromSeq: number, toSeq: number) => Promise<SequencedMessage[]>;

/**
 * Arrivals a gate holds at most behind a hole it cannot read (the stream does not answer):
 * beyond, the hole is given up as a gap, so memory stays bounded.
 */
const MAX_HELD = 10_000;
/** Epochs a gate remembers having left (so a late payload of one cannot bring it back). */
const RETIRED_EPOCHS = 8;

/**
 * Messages reach a gate in publish order, which is seq order, except when the subscription
 * dropped some (a disconnect, a lost payload): then seqs jump. The gate lets a message through
 * only when every lower seq went through before it. On a jump it holds later messages, reads the
 * missing seqs with `fill`, and reports as a gap whatever `fill` did not find. A `fill` that
 * fails (the stream did not answer) finds nothing out: the gate keeps holding, and the next
 * {@linkcode SequenceGate.catchUp} reads again. Duplicates and stale seqs are dropped. A resync
 * ({@linkcode SequenceGate.catchUp}) also finds a jump that no later message revealed.
 *
 * @example
 * ```ts
 * const gate = new SequenceGate({ epoch, lastSeq: 41 }, output, (from, to) => readStream(from, to));
 * gate.push(epoch, [m43]); // held: 42 is read with fill first
 * gate.catchUp({ epoch, lastSeq: 50 }); // after a reconnect, and at every heartbeat
 * ```
 */
export class SequenceGate {
  readonly #output: GateOutput;
  readonly #fill: GapFill;
  #epoch: string;
  #next: number;
  /**
   * Arrivals held behind a hole, in arrival order; `undefined` when there is no hole. While it
   * is defined, `#fillTo` is the last seq of the hole.
   */
  #held: HeldMessage[] | undefined;
  #fillTo = 0;
  /** Whether a fill is in flight; a hole without one waits for the next catch-up. */
  #filling = false;
  /** Epochs left, newest last: their seqs are over. */
  readonly #retired: string[] = [];

  constructor(start: RoomSequence, output: GateOutput, fill: GapFill) {
    this.#epoch = start.epoch;
    this.#next = start.lastSeq + 1;
    this.#output = output;
    this.#fill = fill;
  }

  /** The last seq let through or reported as a gap. */
  get lastSeq(): number {
    return this.#next - 1;
  }

  /** The epoch of {@linkcode SequenceGate.lastSeq}. */
  get epoch(): string {
    return this.#epoch;
  }

  /** Whether the gate moved on from `epoch` (one of the last few it left). */
  hasLeft(epoch: string): boolean {
    return this.#retired.includes(epoch);
  }

  /** Takes messages in arrival order. */
  push(epoch: string, messages: readonly SequencedMessage[]): void {
    let out: SequencedMessage[] | undefined;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as SequencedMessage;
      if (this.#held) {
        this.#held.push({ epoch, message });
        if (!this.#filling && this.#held.length >= MAX_HELD) this.#filled([]);
        continue;
      }
      const { seq } = message.message;
      if (epoch !== this.#epoch && this.#retired.includes(epoch)) continue; // published before
      if (epoch !== this.#epoch) {
        if (out) this.#output.messages(out);
        out = undefined;
        this.#reset({ epoch, lastSeq: seq - 1 });
      }
      if (seq < this.#next) continue;
      if (seq > this.#next) {
        if (out) this.#output.messages(out);
        out = undefined;
        this.#held = messages.slice(i).map((held) => ({ epoch, message: held }));
        this.#startFill(seq - 1);
        return;
      }
      (out ??= []).push(message);
      this.#next++;
    }
    if (out) this.#output.messages(out);
  }

  /**
   * Where the sequencer stands now: anything between the gate and it is read with `fill`, and
   * a hole whose fill failed is read again.
   */
  catchUp(sequence: RoomSequence): void {
    if (this.#filling) return; // a later resync will look again
    const held = this.#held;
    if (sequence.epoch !== this.#epoch) {
      // The old epoch's holes are moot: its seqs mean nothing now.
      this.#held = undefined;
      this.#reset(sequence);
      if (held) this.#replay(held.filter((entry) => entry.epoch === sequence.epoch));
      return;
    }
    if (held) return this.#startFill(Math.max(this.#fillTo, sequence.lastSeq));
    if (sequence.lastSeq >= this.#next) {
      this.#held = [];
      this.#startFill(sequence.lastSeq);
    }
  }

  #reset(sequence: RoomSequence): void {
    if (sequence.epoch !== this.#epoch) {
      this.#retired.push(this.#epoch);
      if (this.#retired.length > RETIRED_EPOCHS) this.#retired.shift();
      const back = this.#retired.indexOf(sequence.epoch);
      if (back >= 0) this.#retired.splice(back, 1); // Redis says so: it is the epoch again
    }
    this.#epoch = sequence.epoch;
    this.#next = sequence.lastSeq + 1;
    this.#output.reset(sequence);
  }

  #startFill(toSeq: number): void {
    this.#fillTo = toSeq;
    this.#filling = true;
    this.#fill(this.#next, toSeq).then(
      (found) => {
        this.#filling = false;
        this.#filled(found);
      },
      () => {
        // Not an answer: nothing is known lost. The hole waits for the next catch-up.
        this.#filling = false;
        if ((this.#held?.length ?? 0) >= MAX_HELD) this.#filled([]);
      },
    );
  }

  /**
   * Lets through what `fill` found of the hole (or what arrived meanwhile), reports the rest,
   * then the held arrivals.
   */
  #filled(found: readonly SequencedMessage[]): void {
    const toSeq = this.#fillTo;
    const held = this.#held ?? [];
    const run: SequencedMessage[] = [];
    const flush = () => {
      if (run.length > 0) this.#output.messages(run.splice(0));
    };
    // Arrivals of this epoch (up to the first of another) may lie in the hole too.
    const changed = held.findIndex((entry) => entry.epoch !== this.#epoch);
    const arrived = held.slice(0, changed < 0 ? held.length : changed).map((entry) =>
      entry.message
    );
    const sorted = [...found, ...arrived].sort((a, b) => a.message.seq - b.message.seq);
    for (const message of sorted) {
      const { seq } = message.message;
      if (seq < this.#next || seq > toSeq) continue;
      if (seq > this.#next) {
        flush();
        this.#output.gap(this.#next, seq - 1);
        this.#next = seq;
      }
      run.push(message);
      this.#next++;
    }
    flush();
    if (this.#next <= toSeq) {
      this.#output.gap(this.#next, toSeq);
      this.#next = toSeq + 1;
    }
    this.#held = undefined;
    this.#replay(held);
  }

  /** Passes held arrivals through push, in order: one may reveal another hole. */
  #replay(held: readonly HeldMessage[]): void {
    for (let i = 0; i < held.length; i++) {
      const entry = held[i] as HeldMessage;
      this.push(entry.epoch, [entry.message]);
      const waiting = this.#held as HeldMessage[] | undefined;
      if (waiting) {
        // A new hole: what is left waits behind the message that opened it.
        waiting.push(...held.slice(i + 1));
        return;
      }
    }
  }
}
