/**
 * Items (messages and changes) taken and not yet stored, and how reads see them: merged into the
 * store's answers, with the held changes applied.
 *
 * @module
 */
import {
  byId,
  bySeq,
  type ChatMessage,
  type HistoryQuery,
  type MessageReactions,
  type UnreadCount,
} from "../chat/message.ts";
import { type FreedChanges, HeldChanges } from "./held_changes.ts";
import { HeldMessages } from "./held_messages.ts";
import { type ChangeItem, isChange, withChanges, withReactions } from "./message_state.ts";

export type { FreedChanges };

/**
 * What the write-behind log holds, by room: messages in seq order, changes by seq and by target
 * (parked until their target is stored), messages by client id.
 *
 * @example
 * ```ts
 * const held = new HeldItems();
 * if (held.add(item)) queue.trySend(item); // else a change parked behind its target
 * const withHeld = held.pageOf("general", { limit: 50 }); // before the store is asked
 * const page = withHeld(await repository.history("general", { limit: 50 }));
 * ```
 */
export class HeldItems {
  readonly #messages = new HeldMessages();
  readonly #changes = new HeldChanges();
  /** The held messages that have a client id, by room, sender and client id. */
  readonly #byClientId = new Map<string, ChatMessage>();

  /** Changes waiting for their target (or an earlier change of it) to be settled. */
  get parked(): number {
    return this.#changes.parked;
  }

  /** Whether `item` (by room and id) is held. */
  has(item: ChatMessage): boolean {
    return isChange(item) ? this.#changes.has(item) : this.#messages.has(item);
  }

  /**
   * Holds `item`.
   *
   * @returns whether it may go to the workers now; `false` for a change parked until its target
   * (or an earlier change of the same target) is settled.
   */
  add(item: ChatMessage): boolean {
    if (isChange(item)) {
      const targetHeld = this.#messages.at(item.room, item.change.target) !== undefined;
      return this.#changes.add(item, targetHeld);
    }
    this.#messages.add(item);
    if (item.clientId !== undefined) {
      this.#byClientId.set(clientKey(item.room, item.sender, item.clientId), item);
    }
    return true;
  }

  /**
   * Forgets a settled item. Changes it set free go into `freed`: to the workers, or given up on
   * with a target that was given up on.
   *
   * @returns whether it was held.
   */
  delete(item: ChatMessage, stored: boolean, freed: FreedChanges): boolean {
    if (isChange(item)) return this.#changes.delete(item, freed);
    if (!this.#messages.delete(item)) return false;
    const { room, sender, clientId } = item;
    if (clientId !== undefined) this.#byClientId.delete(clientKey(room, sender, clientId));
    this.#changes.targetSettled(room, item.seq, stored, freed);
    return true;
  }

  /** The newest seq held for `room`, message or change; 0 if none. */
  newestSeq(room: string): number {
    return Math.max(this.#messages.newestSeq(room), this.#changes.newestSeq(room));
  }

  /** The held message of `room` with this sender's client id, if any. */
  sent(room: string, sender: string, clientId: string): ChatMessage | undefined {
    return this.#byClientId.get(clientKey(room, sender, clientId));
  }

  /**
   * Takes what is held of `room` for `query` now; the function it returns merges it into the
   * store's page read after this call (change items only with `query.changes`, so that they never
   * take a message's place) and applies the held changes. Taken before the store is asked: an item
   * settled meanwhile is in the store's answer, so the page misses none.
   */
  pageOf(room: string, query: HistoryQuery): (stored: ChatMessage[]) => ChatMessage[] {
    const inWindow = this.#inWindow(room, query);
    const changes = this.#changesOf(room);
    return (stored) => {
      const page = merged(query, inWindow, stored);
      return changes.size === 0 ? page : page.map((item) => latest(item, changes));
    };
  }

  /**
   * `count` with the held messages after both its read position and the store's last seq that
   * others sent (and no held change deletes) added, and the last seq raised to the newest held.
   * Held messages at or below the store's last seq are left out, so that none is counted twice
   * (stored, not yet settled); one that a later batch overtook is missed for that moment.
   */
  unread(count: UnreadCount, user: string): UnreadCount {
    const newest = this.newestSeq(count.room);
    if (newest <= count.lastSeq) return count;
    const afterSeq = Math.max(count.readSeq, count.lastSeq);
    let unread = count.unread;
    const window = { afterSeq, limit: Infinity, oldestFirst: true };
    for (const message of this.#messages.window(count.room, window)) {
      if (message.sender !== user && !this.#deletes(message.room, message.seq)) unread++;
    }
    return { ...count, unread, lastSeq: newest };
  }

  /**
   * Takes the held changes of `room` now (before the store is asked, as
   * {@linkcode HeldItems.pageOf}); the function it returns applies their `react` changes of `seqs`
   * in seq order to the store's reactions (modified). A change applied twice (held when taken,
   * stored by the time of the store's answer) changes nothing the second time.
   */
  reactionsOf(
    room: string,
    seqs: readonly number[],
  ): (stored: Map<number, MessageReactions>) => Map<number, MessageReactions> {
    const changes = this.#changesOf(room);
    return (stored) => {
      if (changes.size === 0) return stored;
      for (const seq of seqs) {
        const held = changes.get(seq);
        if (held === undefined) continue;
        // As the stores do: a deleted message has no reactions.
        const latest = deletes(changes, seq) ? new Map() : withReactions(stored.get(seq), held);
        if (latest.size > 0) stored.set(seq, latest);
        else stored.delete(seq);
      }
      return stored;
    };
  }

  /** The held items of the window `query` asks for (changes too with `query.changes`). */
  #inWindow(room: string, query: HistoryQuery): ChatMessage[] {
    const byIdCursor = query.after !== undefined || query.before !== undefined;
    const forward = query.after !== undefined || query.afterSeq !== undefined;
    const { afterSeq, beforeSeq, limit } = query;
    const window = { afterSeq, beforeSeq, limit, oldestFirst: forward };
    const inWindow = byIdCursor
      ? this.#messages.all(room).filter((message) =>
        (query.after === undefined || message.id > query.after) &&
        (query.before === undefined || message.id < query.before)
      )
      : this.#messages.window(room, window);
    if (query.changes === true && !byIdCursor && this.#changes.size(room) > 0) {
      return inWindow.concat(this.#changes.window(room, window));
    }
    return inWindow;
  }

  /** The held changes of `room` by target, each target's in seq order. */
  #changesOf(room: string): Map<number, ChangeItem[]> {
    const byTarget = new Map<number, ChangeItem[]>();
    if (this.#changes.size(room) === 0) return byTarget;
    const all = this.#changes.window(room, { limit: Infinity, oldestFirst: true });
    for (const item of all as ChangeItem[]) {
      const target = item.change.target;
      const ofTarget = byTarget.get(target);
      if (ofTarget === undefined) byTarget.set(target, [item]);
      else ofTarget.push(item);
    }
    return byTarget;
  }

  /** Whether a held change deletes the message at `seq`. */
  #deletes(room: string, seq: number): boolean {
    return this.#changes.of(room, seq)?.some((held) => held.change.kind === "delete") ?? false;
  }
}

/** The store's page with the held items of its window merged in, by seq. */
function merged(
  query: HistoryQuery,
  inWindow: readonly ChatMessage[],
  stored: ChatMessage[],
): ChatMessage[] {
  if (inWindow.length === 0) return stored;
  const byIdCursor = query.after !== undefined || query.before !== undefined;
  // The store's window: the oldest after an `after` cursor, else the newest.
  const forward = query.after !== undefined || query.afterSeq !== undefined;
  const bySeqKey = new Map<number, ChatMessage>();
  for (const message of stored) bySeqKey.set(message.seq, message);
  for (const message of inWindow) bySeqKey.set(message.seq, message);
  const all = [...bySeqKey.values()].sort(byIdCursor ? byId : bySeq);
  return forward ? all.slice(0, query.limit) : all.slice(Math.max(0, all.length - query.limit));
}

/**
 * An item with the held changes of it applied: a message in its latest state; an edit of a
 * message a held change deletes without its content.
 */
function latest(
  item: ChatMessage,
  changes: ReadonlyMap<number, readonly ChangeItem[]>,
): ChatMessage {
  if (!isChange(item)) {
    const held = changes.get(item.seq);
    return held === undefined ? item : withChanges(item, held);
  }
  if (item.change.kind !== "edit" || item.content === "") return item;
  return deletes(changes, item.change.target) ? { ...item, content: "" } : item;
}

/** Whether a held change deletes the message at `seq`. */
function deletes(changes: ReadonlyMap<number, readonly ChangeItem[]>, seq: number): boolean {
  return changes.get(seq)?.some((held) => held.change.kind === "delete") ?? false;
}

function clientKey(room: string, sender: string, clientId: string): string {
  return `${room}\n${sender}\n${clientId}`;
}
