/**
 * The store as the chat core sees it: a bounded queue in front of a repository, and reads that
 * see queued messages as if they were stored.
 *
 * @module
 */
import { batches } from "../chat/batches.ts";
import { Channel } from "../chat/channel.ts";
import type { MemoryBudget } from "../chat/memory_budget.ts";
import {
  byId,
  bySeq,
  type ChatMessage,
  type HistoryQuery,
  type MessageLog,
  type RoomSequence,
  type SentMessage,
} from "../chat/message.ts";
import { HeldMessages } from "./held_messages.ts";
import type { MessageRepository } from "./repository.ts";

/** Estimated bytes of a held message besides its strings' characters (objects, map entries). */
const HELD_OVERHEAD_BYTES = 400;

/** Estimated bytes a held message costs: two per character of its strings, plus overhead. */
export function heldBytes(message: ChatMessage): number {
  const chars = message.content.length + message.sender.length + message.room.length +
    message.id.length + message.timestamp.length + (message.clientId?.length ?? 0);
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
  /** Messages that may wait to be stored; beyond, {@linkcode WriteBehindLog.append} refuses. */
  readonly queueLimit: number;
  /** Messages per batch handed to the workers at most. */
  readonly batchSize: number;
  /** How long a batch waits to fill, in milliseconds. */
  readonly batchWaitMs: number;
  /**
   * Whether {@linkcode WriteBehindLog.history} shows queued messages; true by default. Durable
   * mode says no: a message is shown only once stored.
   */
  readonly historyShowsQueued?: boolean;
  /** Counts the held messages' bytes (`unstored`); past it, {@linkcode WriteBehindLog.append} refuses. */
  readonly budget?: MemoryBudget;
  /** Told when a message deleted while held could not be removed once written. */
  readonly onDeleteFailed?: (message: ChatMessage) => void;
}

/**
 * Queues messages for the persistence workers and holds each one until the workers settle it
 * (stored, or given up on at shutdown). Every read merges what it holds into the store's answer
 * under the same window, so nothing anyone was shown is missing from a replay or a `/history`
 * page while the store is behind (a batch in flight, an outage). This is the one place that
 * knows about messages not yet stored.
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
  /** Queued or being written, per room in seq order. */
  readonly #held = new HeldMessages();
  readonly #watchers = new Map<string, SettledListener>();
  /** The held messages that have a client id, by room, sender and client id. */
  readonly #heldByClientId = new Map<string, ChatMessage>();
  /** Held messages deleted by a moderator: hidden now, deleted from the store once written. */
  readonly #deleted = new Set<string>();
  #size = 0;

  constructor(repository: MessageRepository, options: WriteBehindLogOptions) {
    this.#repository = repository;
    this.#options = options;
    this.#queue = new Channel(options.queueLimit);
  }

  /** Messages taken and not yet settled: what is lost if the process exits now. */
  get unstored(): number {
    return this.#size;
  }

  /** Messages waiting for a worker. */
  get queued(): number {
    return this.#queue.size;
  }

  append(message: ChatMessage): boolean {
    if (this.#held.has(message)) return true; // taken already
    if (this.#queue.closed || this.#queue.size >= this.#options.queueLimit) return false;
    if (this.#options.budget?.tryTake("unstored", heldBytes(message)) === false) return false;
    this.#queue.trySend(message);
    this.#held.add(message);
    if (message.clientId !== undefined) {
      this.#heldByClientId.set(clientKey(message.room, message.sender, message.clientId), message);
    }
    this.#size++;
    return true;
  }

  hasRoomFor(count: number): boolean {
    return !this.#queue.closed && this.#queue.size + count <= this.#options.queueLimit &&
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

  /** Forgets messages the workers stored (`stored`) or gave up on, and tells the watchers. */
  settled(messages: readonly ChatMessage[], stored: boolean): void {
    if (this.#watchers.size > 0) this.#tellWatchers(messages, stored);
    for (const message of messages) {
      if (!this.#held.delete(message)) continue;
      if (this.#deleted.delete(message.id) && stored) this.#deleteStored(message);
      const { room, sender, clientId } = message;
      if (clientId !== undefined) this.#heldByClientId.delete(clientKey(room, sender, clientId));
      this.#options.budget?.give("unstored", heldBytes(message));
      this.#size--;
    }
  }

  /**
   * Deletes the message at `seq` of `room` (moderation): from the store, or, while it is still
   * held, from every read at once and from the store once it is written.
   *
   * @returns the deleted message, or `undefined` if there is none at that seq.
   */
  async deleteMessage(room: string, seq: number): Promise<ChatMessage | undefined> {
    const [held] = this.#held.window(room, {
      afterSeq: seq - 1,
      beforeSeq: seq + 1,
      limit: 1,
      oldestFirst: true,
    });
    if (held && !this.#deleted.has(held.id)) {
      this.#deleted.add(held.id);
      return held;
    }
    if (held) return undefined; // deleted already
    return await this.#repository.deleteMessage(room, seq);
  }

  /** A message deleted while held was written meanwhile: it goes now (tried once more on failure). */
  #deleteStored(message: ChatMessage): void {
    const again = () => this.#repository.deleteMessage(message.room, message.seq);
    again().catch(() => again()).catch(() => {
      // Both failed (the store went away right after the write): the message stays stored.
      this.#options.onDeleteFailed?.(message);
    });
  }

  /** Takes no more messages; those queued still reach the workers. */
  close(): void {
    this.#queue.close();
  }

  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return this.#merge(room, query, await this.#repository.history(room, query));
  }

  /**
   * {@linkcode WriteBehindLog.history}, but a store that cannot be read is no failure while
   * messages of the window are held: they are the page, marked incomplete.
   *
   * @throws {StoreUnavailableError} if the store failed and nothing of the window is held.
   */
  async historyPage(room: string, query: HistoryQuery): Promise<HistoryPage> {
    let stored: ChatMessage[];
    try {
      stored = await this.#repository.history(room, query);
    } catch (error) {
      const held = this.#merge(room, query, []);
      if (held.length === 0) throw new StoreUnavailableError(error);
      return { messages: held, complete: false };
    }
    return { messages: this.#merge(room, query, stored), complete: true };
  }

  /** The store's page with the held messages of the same window merged in. */
  #merge(room: string, query: HistoryQuery, stored: ChatMessage[]): ChatMessage[] {
    const page = this.#mergeHeld(room, query, stored);
    return this.#deleted.size === 0
      ? page
      : page.filter((message) => !this.#deleted.has(message.id));
  }

  #mergeHeld(room: string, query: HistoryQuery, stored: ChatMessage[]): ChatMessage[] {
    if (this.#options.historyShowsQueued === false) return stored;
    const byIdCursor = query.after !== undefined || query.before !== undefined;
    // The store's window: the oldest after an `after` cursor, else the newest.
    const forward = query.after !== undefined || query.afterSeq !== undefined;
    const inWindow = byIdCursor
      ? this.#held.all(room).filter((message) =>
        (query.after === undefined || message.id > query.after) &&
        (query.before === undefined || message.id < query.before)
      )
      : this.#held.window(room, {
        afterSeq: query.afterSeq,
        beforeSeq: query.beforeSeq,
        limit: query.limit,
        oldestFirst: forward,
      });
    if (inWindow.length === 0) return stored;
    const bySeqKey = new Map<number, ChatMessage>();
    for (const message of stored) bySeqKey.set(message.seq, message);
    for (const message of inWindow) bySeqKey.set(message.seq, message);
    const merged = [...bySeqKey.values()].sort(byIdCursor ? byId : bySeq);
    return forward
      ? merged.slice(0, query.limit)
      : merged.slice(Math.max(0, merged.length - query.limit));
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
      const held = this.#heldByClientId.get(clientKey(room, sender, clientId));
      if (held) found.push({ sender, clientId, id: held.id, seq: held.seq });
      else rest.push({ sender, clientId });
    }
    if (rest.length > 0) found.push(...await this.#repository.findSent(room, rest));
    return found;
  }

  saveReadPosition(room: string, user: string, seq: number): Promise<number> {
    return this.#repository.saveReadPosition(room, user, seq);
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
   * The newest seq held for `room`, read before the store is asked: a message settled after this
   * was stored before the store's answer, so one of the two sees every message.
   */
  #newestHeld(room: string): number {
    return this.#held.newestSeq(room);
  }
}

function raised(stored: RoomSequence, heldSeq: number): RoomSequence {
  return { epoch: stored.epoch, lastSeq: Math.max(stored.lastSeq, heldSeq) };
}

function clientKey(room: string, sender: string, clientId: string): string {
  return `${room}\n${sender}\n${clientId}`;
}
