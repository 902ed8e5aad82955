/**
 * What a room knows of its recent messages to check a change (edit, delete, react) at once:
 * who sent each, when, whether it is deleted, and who reacted with what.
 *
 * @module
 */
import type { ChatMessage, MessageReactions } from "./message.ts";

/** A message as a change to it is checked. */
export interface Target {
  readonly sender: string;
  /** When it was sent, in ms since the epoch (for `EDIT_WINDOW`). */
  readonly atMs: number;
  deleted: boolean;
  /** Reaction → users who have it on; made on the first reaction. */
  reactions?: Map<string, Set<string>>;
}

/** Targets looked up in the store (older than the kept ones), kept at most. */
const LOOKED_UP_KEPT = 64;

/**
 * The newest messages' targets, in seq order, and every seq from {@linkcode MessageTargets.floor}
 * on is known: one that is not kept is no message (a change, or a seq lost in a gap). Older seqs
 * are looked up in the store by the room and kept here for a while.
 *
 * @example
 * ```ts
 * const targets = new MessageTargets(256);
 * targets.start(lastSeq);
 * targets.added(message);
 * targets.of(seq); // Target, null (no message), or undefined (look it up)
 * ```
 */
export class MessageTargets {
  readonly #capacity: number;
  readonly #recent = new Map<number, Target>();
  readonly #looked = new Map<number, Target | null>();
  #floor = 1;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** The lowest seq known without a look-up. */
  get floor(): number {
    return this.#floor;
  }

  /** The room's sequence stands at `lastSeq`: nothing before it is known here. */
  start(lastSeq: number): void {
    this.#recent.clear();
    this.#looked.clear();
    this.#floor = lastSeq + 1;
  }

  /**
   * The target at `seq`: `null` when it is no message of the room (or none at all), `undefined`
   * when it must be looked up.
   */
  of(seq: number): Target | null | undefined {
    if (seq >= this.#floor) return this.#recent.get(seq) ?? null;
    return this.#looked.get(seq);
  }

  /** A message took its seq (in seq order), or a change to one did. */
  added(item: ChatMessage): void {
    const { change } = item;
    if (change === undefined) {
      if (item.seq < this.#floor) return;
      this.#recent.set(item.seq, {
        sender: item.sender,
        atMs: Date.parse(item.timestamp),
        deleted: item.deleted === true,
      });
      this.#trim();
      return;
    }
    const target = this.of(change.target);
    if (!target) return;
    if (change.kind === "delete") target.deleted = true;
    else if (change.kind === "react") {
      const reactions = target.reactions ??= new Map();
      let users = reactions.get(change.reaction);
      if (change.on) {
        if (!users) reactions.set(change.reaction, users = new Set());
        users.add(item.sender);
      } else if (users) {
        users.delete(item.sender);
        if (users.size === 0) reactions.delete(change.reaction);
      }
    }
  }

  /** What the store said of `seq` (older than the kept ones): a message, or none. */
  lookedUp(seq: number, message: ChatMessage | undefined, reactions?: MessageReactions): void {
    if (seq >= this.#floor) return; // kept meanwhile
    const target: Target | null = message === undefined || message.change !== undefined ? null : {
      sender: message.sender,
      atMs: Date.parse(message.timestamp),
      deleted: message.deleted === true,
      ...(reactions && reactions.size > 0 && {
        reactions: new Map([...reactions].map(([reaction, users]) => [reaction, new Set(users)])),
      }),
    };
    this.#looked.delete(seq);
    this.#looked.set(seq, target);
    if (this.#looked.size > LOOKED_UP_KEPT) {
      this.#looked.delete(this.#looked.keys().next().value as number);
    }
  }

  #trim(): void {
    while (this.#recent.size > this.#capacity) {
      const oldest = this.#recent.keys().next().value as number;
      this.#recent.delete(oldest);
      this.#floor = oldest + 1;
    }
  }
}
