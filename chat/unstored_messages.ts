/**
 * The messages broadcast and not yet stored, by room: what a read of the store must add.
 *
 * @module
 */
import type { ChatMessage, HistoryQuery } from "../storage/repository.ts";
import type { RecentMessage } from "./recent_messages.ts";

interface Held {
  readonly message: ChatMessage;
  readonly frame: string;
}

/**
 * Every message this instance broadcast that the persistence workers have not settled (stored or
 * given up on), with its encoded frame, by room. The store may be behind (a batch in flight, an
 * outage) while a room's recent buffer forgets its oldest messages by count, and a room that
 * empties starts again with no buffer: replays and `/history` merge these in, so that nothing
 * anyone saw is missing from them. Bounded by what the persistence queue and its workers hold.
 *
 * @example
 * ```ts
 * const unstored = new UnstoredMessages();
 * unstored.add(message, frame);              // when queued for storage
 * unstored.after("general", since);          // for a replay from the store
 * unstored.complete("general", query, page); // for /history
 * unstored.settled(batch);                   // once the workers are done with it
 * ```
 */
export class UnstoredMessages {
  // Per room, by id: other instances store their own messages, so this holds only this one's.
  readonly #rooms = new Map<string, Map<string, Held>>();
  #size = 0;

  /** Messages held. */
  get size(): number {
    return this.#size;
  }

  /** Holds a message queued for storage, with its encoded frame. */
  add(message: ChatMessage, frame: string): void {
    let held = this.#rooms.get(message.room);
    if (!held) this.#rooms.set(message.room, held = new Map());
    if (held.has(message.id)) return;
    held.set(message.id, { message, frame });
    this.#size++;
  }

  /** The held messages of `room` with an id greater than `since`, oldest first. */
  after(room: string, since: string): RecentMessage[] {
    return this.#inRange(room, since, undefined).map(({ message, frame }) => ({
      id: message.id,
      frame,
    }));
  }

  /**
   * `stored`, a page the store gave for `query`, with the held messages the page would have if
   * they were stored already.
   */
  complete(room: string, query: HistoryQuery, stored: readonly ChatMessage[]): ChatMessage[] {
    const held = this.#inRange(room, query.after, query.before);
    if (held.length === 0) return [...stored];
    const byId = new Map<string, ChatMessage>();
    for (const message of stored) byId.set(message.id, message);
    for (const { message } of held) byId.set(message.id, message);
    const merged = [...byId.values()].sort(byIdOrder);
    // The same window as the store's: the oldest after `after`, else the newest before `before`.
    return query.after !== undefined
      ? merged.slice(0, query.limit)
      : merged.slice(Math.max(0, merged.length - query.limit));
  }

  /** Forgets messages the workers stored or gave up on. */
  settled(messages: readonly { readonly id: string; readonly room: string }[]): void {
    for (const { id, room } of messages) {
      const held = this.#rooms.get(room);
      if (!held?.delete(id)) continue;
      this.#size--;
      if (held.size === 0) this.#rooms.delete(room);
    }
  }

  #inRange(room: string, after: string | undefined, before: string | undefined): Held[] {
    const result: Held[] = [];
    for (const entry of this.#rooms.get(room)?.values() ?? []) {
      const { id } = entry.message;
      if ((after === undefined || id > after) && (before === undefined || id < before)) {
        result.push(entry);
      }
    }
    return result.sort((a, b) => byIdOrder(a.message, b.message));
  }
}

function byIdOrder(a: { readonly id: string }, b: { readonly id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
