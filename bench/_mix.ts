/**
 * The conversation mix of issue 18: senders send messages with, in between, `typing` frames and
 * reactions, as people in a conversation do. Of every {@linkcode MIX_EVERY} frames a sender sends,
 * one is not a message: a `typing` frame and a `react` in turn, so 5% each.
 *
 * A reaction names the newest message its sender has seen come back (the sink knows), and they
 * come in pairs on one message, `"on":true` then `"on":false`, so that reactions do not pile up.
 * A sender that has seen no message yet in the step sends a message instead.
 *
 * What the server does with them, and what the generator counts:
 * - a reaction takes the room's next seq (its `event_seq`) and reaches every member, the sender
 *   included, like a message: it counts as a delivery, and each member checks that its
 *   `event_seq` continues the room's sequence;
 * - a `typing` frame reaches the others at most once per 2 s per user and is never sequenced:
 *   counted, but neither expected nor a delivery.
 *
 * @module
 */
import type { StepSink } from "./_step_sink.ts";

/** One frame in this many is a typing frame or a reaction (10%). */
export const MIX_EVERY = 10;
/** The reaction every `react` frame adds or removes. */
export const MIX_REACTION = "👍";
const TYPING_FRAME = '{"type":"typing"}';

/** Frames a message of the step's payload fields (as `framer` of bench/_traffic.ts does). */
export type MessageFramer = (sender: number, step: number, n: number, sentUs: number) => string;

/** What the senders of one step sent, by kind. */
export interface MixSent {
  readonly messages: number;
  readonly reactions: number;
  readonly typing: number;
}

/** What one step of the mix sent and got, beyond the messages of a plain step. */
export interface MixCounts {
  readonly messagesSent: number;
  readonly reactionsSent: number;
  readonly typingSent: number;
  /** `react` frames received, by every member together (part of `delivered`). */
  readonly reactionsDelivered: number;
  /** `typing` frames received (not part of `delivered`). */
  readonly typingDelivered: number;
}

/**
 * Frames of one step of the mix, sender by sender; keeps count of what it made.
 *
 * @example
 * ```ts
 * const mix = new ConversationMix(sink, { peers: peers.specs.length, message: framer("json") });
 * peers.send(sender, mix.frame(sender, step, n, sentUs));
 * mix.sent; // { messages, reactions, typing }
 * ```
 */
export class ConversationMix {
  readonly #sink: Pick<StepSink, "lastMessageSeq">;
  readonly #message: MessageFramer;
  /** Per sender peer: the message its open reaction (`"on":true`) is on; 0 when none is. */
  readonly #reactedTo: Float64Array;
  #messages = 0;
  #reactions = 0;
  #typing = 0;

  /**
   * `peers`: how many member slots there are (senders are among them); `message`: how a message
   * is framed.
   */
  constructor(
    sink: Pick<StepSink, "lastMessageSeq">,
    options: { readonly peers: number; readonly message: MessageFramer },
  ) {
    this.#sink = sink;
    this.#message = options.message;
    this.#reactedTo = new Float64Array(options.peers);
  }

  /** What has been made so far. */
  get sent(): MixSent {
    return { messages: this.#messages, reactions: this.#reactions, typing: this.#typing };
  }

  /**
   * The `n`-th frame of `sender` in `step`: a message, or every
   * {@linkcode MIX_EVERY}-th a typing frame or a reaction, in turn.
   */
  frame(sender: number, step: number, n: number, sentUs: number): string {
    if (n % MIX_EVERY === MIX_EVERY - 1) {
      if (Math.floor(n / MIX_EVERY) % 2 === 0) {
        this.#typing++;
        return TYPING_FRAME;
      }
      const reaction = this.#react(sender);
      if (reaction !== undefined) {
        this.#reactions++;
        return reaction;
      }
    }
    this.#messages++;
    return this.#message(sender, step, n, sentUs);
  }

  /** Adds a reaction to the newest message seen, or takes back the one added before. */
  #react(sender: number): string | undefined {
    const open = this.#reactedTo[sender] ?? 0;
    if (open > 0) {
      this.#reactedTo[sender] = 0;
      return reactFrame(open, false);
    }
    const seq = this.#sink.lastMessageSeq(sender);
    if (seq === 0) return undefined;
    this.#reactedTo[sender] = seq;
    return reactFrame(seq, true);
  }
}

/** A `react` frame on the message at `seq`. */
export function reactFrame(seq: number, on: boolean): string {
  return `{"type":"react","seq":${seq},"reaction":"${MIX_REACTION}","on":${on}}`;
}
