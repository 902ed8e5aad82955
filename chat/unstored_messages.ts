/**
 * The messages broadcast and not yet stored, by room: what a replay from the store must add.
 *
 * @module
 */
import type { RecentMessage } from "./recent_messages.ts";

/**
 * Every message this instance broadcast that the persistence workers have not settled (stored or
 * given up on), with its encoded frame, by room. A room's recent buffer forgets its oldest
 * messages by count, and a room that empties starts again with no buffer, while the store may be
 * behind (a batch in flight, an outage): a replay that reads the store merges these in, so that
 * nothing broadcast is missing from it. Bounded by what the persistence queue and its workers hold.
 *
 * @example
 * ```ts
 * const unstored = new UnstoredMessages();
 * unstored.add("general", { id, frame }); // when queued for storage
 * unstored.after("general", since);       // for a replay from the store
 * unstored.settled([{ id, room: "general" }]); // once saved
 * ```
 */
export class UnstoredMessages {
  // Per room, by id; insertion order is id order for a room's own messages, which is all this
  // holds (other instances store theirs).
  readonly #rooms = new Map<string, Map<string, RecentMessage>>();
  #size = 0;

  /** Messages held. */
  get size(): number {
    return this.#size;
  }

  /** Holds a message queued for storage. */
  add(room: string, message: RecentMessage): void {
    let messages = this.#rooms.get(room);
    if (!messages) this.#rooms.set(room, messages = new Map());
    if (messages.has(message.id)) return;
    messages.set(message.id, message);
    this.#size++;
  }

  /** The held messages of `room` with an id greater than `since`, oldest first. */
  after(room: string, since: string): RecentMessage[] {
    const result: RecentMessage[] = [];
    for (const message of this.#rooms.get(room)?.values() ?? []) {
      if (message.id > since) result.push(message);
    }
    return result.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
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
}
