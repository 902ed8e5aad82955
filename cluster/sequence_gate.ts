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
 * Messages reach a gate in publish order, which is seq order, except when the subscription
 * dropped some (a disconnect, a lost payload): then seqs jump. The gate lets a message through
 * only when every lower seq went through before it. On a jump it holds later messages, reads the
 * missing seqs with `fill`, and reports as a gap whatever `fill` could not find. Duplicates and
 * stale seqs are dropped. A resync ({@linkcode SequenceGate.catchUp}) finds a jump that no later
 * message revealed.
 *
 * @example
 * ```ts
 * const gate = new SequenceGate({ epoch, lastSeq: 41 }, output, (from, to) => readStream(from, to));
 * gate.push(epoch, [m43]); // held: 42 is read with fill first
 * gate.catchUp({ epoch, lastSeq: 50 }); // after a reconnect
 * ```
 */
export class SequenceGate {
  readonly #output: GateOutput;
  readonly #fill: GapFill;
  #epoch: string;
  #next: number;
  /** Arrivals held while a fill is in flight, in arrival order; `undefined` when not filling. */
  #held: HeldMessage[] | undefined;

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

  /** Takes messages in arrival order. */
  push(epoch: string, messages: readonly SequencedMessage[]): void {
    let out: SequencedMessage[] | undefined;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as SequencedMessage;
      if (this.#held) {
        this.#held.push({ epoch, message });
        continue;
      }
      const { seq } = message.message;
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

  /** Where the sequencer stands now: anything between the gate and it is read with `fill`. */
  catchUp(sequence: RoomSequence): void {
    if (this.#held) return; // a fill is in flight; a later resync will look again
    if (sequence.epoch !== this.#epoch) return this.#reset(sequence);
    if (sequence.lastSeq >= this.#next) {
      this.#held = [];
      this.#startFill(sequence.lastSeq);
    }
  }

  #reset(sequence: RoomSequence): void {
    this.#epoch = sequence.epoch;
    this.#next = sequence.lastSeq + 1;
    this.#output.reset(sequence);
  }

  #startFill(toSeq: number): void {
    const fromSeq = this.#next;
    this.#fill(fromSeq, toSeq).then(
      (found) => this.#filled(fromSeq, toSeq, found),
      () => this.#filled(fromSeq, toSeq, []),
    );
  }

  #filled(fromSeq: number, toSeq: number, found: readonly SequencedMessage[]): void {
    const run: SequencedMessage[] = [];
    const flush = () => {
      if (run.length > 0) this.#output.messages(run.splice(0));
    };
    const sorted = [...found].sort((a, b) => a.message.seq - b.message.seq);
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
      this.#output.gap(Math.max(this.#next, fromSeq), toSeq);
      this.#next = toSeq + 1;
    }
    const held = this.#held ?? [];
    this.#held = undefined;
    // Replayed through push, in order: a held message may reveal another jump.
    for (let i = 0; i < held.length; i++) {
      const entry = held[i] as HeldMessage;
      this.push(entry.epoch, [entry.message]);
      const refilling = this.#held as HeldMessage[] | undefined;
      if (refilling) {
        // A new fill started: what is left waits behind the message that started it.
        refilling.push(...held.slice(i + 1));
        return;
      }
    }
  }
}
