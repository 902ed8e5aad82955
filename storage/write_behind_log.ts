/**
 * The store as the chat core sees it: a bounded queue in front of a repository, and reads that
 * see queued items (messages and changes) as if they were stored.
 *
 * @module
 */
import { batches } from "../chat/batches.ts";
import { Channel } from "../chat/channel.ts";
import type { MemoryBudget } from "../chat/memory_budget.ts";
import type {
  ChatMessage,
  HistoryQuery,
  MessageLog,
  MessageReactions,
  RoomSequence,
  SentMessage,
  UnreadCount,
} from "../chat/message.ts";
import { type FreedChanges, HeldItems } from "./held_items.ts";
import type { MessageRepository } from "./repository.ts";

/** Estimated bytes of a held message besides its strings' characters (objects, map entries). */
const HELD_OVERHEAD_BYTES = 400;

/** Estimated bytes a held item costs: two per character of its strings, plus overhead. */
export function heldBytes(message: ChatMessage): number {
  const change = message.change;
  const chars = message.content.length + message.sender.length + message.room.length +
    message.id.length + message.timestamp.length + (message.clientId?.length ?? 0) +
    (change?.kind === "react" ? change.reaction.length : 0);
  return 2 * chars + HELD_OVERHEAD_BYTES;
}

/**
 * The store could not be read and nothing held answers the request: `/history` says 503 with
 * `Retry-After` rather than 500.
 */
export class StoreUnavailableError extends Error {
  readonly code = "store_unavailable";

  constructor(cause: unknown) {
    super("the message store cannot be read right now", { cause });
    this.name = "StoreUnavailableError";
  }
}

/** A `/history` page and whether it is all the store would have given. */
export interface HistoryPage {
  readonly messages: ChatMessage[];
  /** `false` when the store could not be read: only messages held in memory are in it. */
  readonly complete: boolean;
}

/** Told which messages of a room were stored (`stored`) or given up on. */
export type SettledListener = (messages: readonly ChatMessage[], stored: boolean) => void;

/** Options of {@linkcode WriteBehindLog}. */
export interface WriteBehindLogOptions {
  /**
   * Items that may wait for a worker (queued, or changes parked behind their target); beyond,
   * {@linkcode WriteBehindLog.append} refuses.
   */
  readonly queueLimit: number;
  /** Messages per batch handed to the workers at most. */
  readonly batchSize: number;
  /** How long a batch waits to fill, in milliseconds. */
  readonly batchWaitMs: number;
  /**
   * Whether reads show queued items (messages, and changes applied); true by default. Durable
   * mode says no: an item is shown only once stored.
   */
  readonly historyShowsQueued?: boolean;
  /** Counts the held items' bytes (`unstored`); past it, {@linkcode WriteBehindLog.append} refuses. */
  readonly budget?: MemoryBudget;
}

/**
 * Queues messages for the persistence workers and holds each one until the workers settle it
 * (stored, or given up on at shutdown). Every read merges what it holds into the store's answer
 * under the same window, so nothing anyone was shown is missing from a replay or a `/history`
 * page while the store is behind (a batch in flight, an outage), and applies the held changes
 * (edits, deletes, reactions) to what it reads. This is the one place that knows about items not
 * yet stored.
 *
 * A change goes to the workers only once its target message is stored, and once the earlier
 * changes of the same target are settled (see `held_changes.ts`): a store applies a change only
 * to a stored target, and changes of one target are never written concurrently.
 *
 * @example
 * ```ts
 * const log = new WriteBehindLog(repository, { queueLimit: 100_000, batchSize: 500, batchWaitMs: 10 });
 * const workers = new PersistWorkers(repository, log.batches(), { ..., onSettled: (b) => log.settled(b) });
 * log.append(message);                 // false when the queue is full
 * await log.history("general", { limit: 50 });
 * log.close();                         // at shutdown: the workers drain what is queued
 * ```
 */
export class WriteBehindLog implements MessageLog {
  readonly #repository: MessageRepository;
  readonly #options: WriteBehindLogOptions;
  readonly #queue: Channel<ChatMessage>;
  /** Items parked, queued or being written. */
  readonly #held = new HeldItems();
  readonly #watchers = new Map<string, SettledListener>();
  #size = 0;
  /** Closed to new items; the queue itself closes once no change is parked. */
  #closing = false;

  constructor(repository: MessageRepository, options: WriteBehindLogOptions) {
    this.#repository = repository;
    this.#options = options;
    this.#queue = new Channel(options.queueLimit);
  }

  /** Items taken and not yet settled: what is lost if the process exits now. */
  get unstored(): number {
    return this.#size;
  }

  /** Items waiting for a worker: queued, or changes parked behind their target. */
  get queued(): number {
    return this.#queue.size + this.#held.parked;
  }

  /**
   * Takes a message, or a change (parked until its target is stored, see the class), counted
   * against `queueLimit` and the budget either way.
   */
  append(message: ChatMessage): boolean {
    if (this.#held.has(message)) return true; // taken already
    if (this.#closing || this.queued >= this.#options.queueLimit) return false;
    if (this.#options.budget?.tryTake("unstored", heldBytes(message)) === false) return false;
    if (this.#held.add(message)) this.#queue.trySend(message);
    this.#size++;
    return true;
  }

  hasRoomFor(count: number): boolean {
    return !this.#closing && this.queued + count <= this.#options.queueLimit &&
      !this.#options.budget?.full;
  }

  /** The batches the persistence workers take; ends once closed and drained. */
  batches(): AsyncIterable<ChatMessage[]> {
    return batches(this.#queue, {
      maxSize: this.#options.batchSize,
      maxWaitMs: this.#options.batchWaitMs,
    });
  }

  /**
   * Tells `listener` of every message of `room` the workers store or give up on from now on, in
   * batches. One listener per room: a room's loop watches while it has messages waiting to be
   * committed (durable mode).
   *
   * @returns a function that stops it.
   */
  watch(room: string, listener: SettledListener): () => void {
    this.#watchers.set(room, listener);
    return () => {
      if (this.#watchers.get(room) === listener) this.#watchers.delete(room);
    };
  }

  /**
   * Forgets items the workers stored (`stored`) or gave up on, and tells the watchers. Changes
   * parked behind a settled item go to the workers now, or, if it was a target given up on, are
   * given up on with it.
   */
  settled(messages: readonly ChatMessage[], stored: boolean): void {
    if (this.#watchers.size > 0) this.#tellWatchers(messages, stored);
    const freed: FreedChanges = { queue: [], abandon: [] };
    for (const message of messages) {
      if (!this.#held.delete(message, stored, freed)) continue;
      this.#options.budget?.give("unstored", heldBytes(message));
      this.#size--;
    }
    // The queue has room: parked changes were counted against its limit all along.
    for (const change of freed.queue) {
      if (!this.#queue.trySend(change)) freed.abandon.push(change);
    }
    if (freed.abandon.length > 0) this.settled(freed.abandon, false);
    if (this.#closing && this.#held.parked === 0) this.#queue.close();
  }

  /**
   * Takes no more items; those queued still reach the workers, and so do parked changes once
   * their targets are stored: the workers' batches end after the last of them.
   */
  close(): void {
    this.#closing = true;
    if (this.#held.parked === 0) this.#queue.close();
  }

  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const withHeld = this.#withHeld(room, query);
    return withHeld(await this.#repository.history(room, query));
  }

  /**
   * {@linkcode WriteBehindLog.history}, but a store that cannot be read is no failure while
   * messages of the window are held: they are the page, marked incomplete.
   *
   * @throws {StoreUnavailableError} if the store failed and nothing of the window is held.
   */
  async historyPage(room: string, query: HistoryQuery): Promise<HistoryPage> {
    const withHeld = this.#withHeld(room, query);
    let stored: ChatMessage[];
    try {
      stored = await this.#repository.history(room, query);
    } catch (error) {
      const held = withHeld([]);
      if (held.length === 0) throw new StoreUnavailableError(error);
      return { messages: held, complete: false };
    }
    return { messages: withHeld(stored), complete: true };
  }

  /**
   * Merges the items held now into a store page read after this call, held changes applied;
   * taken first, so that an item settled while the store is read is in one of the two.
   */
  #withHeld(room: string, query: HistoryQuery): (stored: ChatMessage[]) => ChatMessage[] {
    if (this.#options.historyShowsQueued === false) return (stored) => stored;
    return this.#held.pageOf(room, query);
  }

  #tellWatchers(messages: readonly ChatMessage[], stored: boolean): void {
    const byRoom = new Map<string, ChatMessage[]>();
    for (const message of messages) {
      if (!this.#watchers.has(message.room)) continue;
      let room = byRoom.get(message.room);
      if (!room) byRoom.set(message.room, room = []);
      room.push(message);
    }
    for (const [room, settled] of byRoom) this.#watchers.get(room)?.(settled, stored);
  }

  async findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]> {
    // Held ones first, as for reads: one settled meanwhile is in the store's answer.
    const found: SentMessage[] = [];
    const rest: { sender: string; clientId: string }[] = [];
    for (const { sender, clientId } of keys) {
      const held = this.#held.sent(room, sender, clientId);
      if (held) found.push({ sender, clientId, id: held.id, seq: held.seq });
      else rest.push({ sender, clientId });
    }
    if (rest.length > 0) found.push(...await this.#repository.findSent(room, rest));
    return found;
  }

  saveReadPosition(room: string, user: string, seq: number): Promise<number> {
    return this.#repository.saveReadPosition(room, user, seq);
  }

  /** The store's counts with the held messages added (see {@linkcode HeldItems.unread}). */
  async unread(user: string, room?: string): Promise<UnreadCount[]> {
    const counts = await this.#repository.unread(user, room);
    if (this.#options.historyShowsQueued === false) return counts;
    return counts.map((count) => this.#held.unread(count, user));
  }

  /** The store's reactions with the held `react` changes applied in seq order. */
  async reactionsTo(room: string, seqs: readonly number[]): Promise<Map<number, MessageReactions>> {
    if (this.#options.historyShowsQueued === false) {
      return await this.#repository.reactionsTo(room, seqs);
    }
    // Held ones first, as for pages.
    const withHeld = this.#held.reactionsOf(room, seqs);
    return withHeld(await this.#repository.reactionsTo(room, seqs));
  }

  async openRoom(room: string): Promise<RoomSequence> {
    const heldSeq = this.#newestHeld(room);
    return raised(await this.#repository.openRoom(room), heldSeq);
  }

  async roomSequence(room: string): Promise<RoomSequence | undefined> {
    const heldSeq = this.#newestHeld(room);
    const stored = await this.#repository.roomSequence(room);
    return stored && raised(stored, heldSeq);
  }

  /**
   * The newest seq held for `room` (message or change), read before the store is asked: an item
   * settled after this was stored before the store's answer, so one of the two sees every item.
   */
  #newestHeld(room: string): number {
    return this.#held.newestSeq(room);
  }
}

function raised(stored: RoomSequence, heldSeq: number): RoomSequence {
  return { epoch: stored.epoch, lastSeq: Math.max(stored.lastSeq, heldSeq) };
}
