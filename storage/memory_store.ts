/**
 * The in-memory message store used when `DATABASE_URL` is unset.
 *
 * @module
 */
import {
  type ChatMessage,
  type HistoryQuery,
  newEpoch,
  type RoomSequence,
  type SentMessage,
} from "../chat/message.ts";
import {
  checkRetentionPolicy,
  type MessageRepository,
  type RetentionPolicy,
} from "./repository.ts";

/** Bounds of a {@linkcode MemoryStore}. */
export interface MemoryStoreOptions {
  /** Messages kept per room; the oldest are forgotten first. */
  readonly maxPerRoom: number;
  /** Rooms kept; the room written least recently is forgotten first. */
  readonly maxRooms: number;
  /**
   * Estimated bytes of all messages kept (see {@linkcode estimatedBytes}); beyond it the oldest
   * messages of the room written least recently are forgotten first. Unbounded when absent.
   */
  readonly maxBytes?: number;
}

/**
 * What a message costs the store, estimated from above: two bytes per character of its content
 * and sender (V8 keeps text with any non-Latin-1 character at two bytes per character) plus the
 * object, its id and timestamp (about 330 bytes measured for one-byte text).
 */
export function estimatedBytes(message: ChatMessage): number {
  const clientIdBytes = message.clientId === undefined
    ? 0
    : CLIENT_ID_OVERHEAD_BYTES + 2 * (message.clientId.length + message.sender.length);
  return MESSAGE_OVERHEAD_BYTES + 2 * (message.content.length + message.sender.length) +
    clientIdBytes;
}

const MESSAGE_OVERHEAD_BYTES = 360;
/** A client id's entry in the room's index (map slot and key string), besides its characters. */
const CLIENT_ID_OVERHEAD_BYTES = 100;

/**
 * One room: its sequence and its messages sorted by seq, with their estimated bytes. A room
 * whose messages were all pruned keeps its sequence; a room forgotten whole (too many rooms)
 * comes back with a new epoch.
 */
interface RoomHistory {
  readonly epoch: string;
  lastSeq: number;
  readonly messages: ChatMessage[];
  /** The messages that have a client id, by sender and client id. */
  readonly byClientId: Map<string, ChatMessage>;
  bytes: number;
}

/**
 * Keeps each room's newest messages in an array sorted by seq, bounded per room and in rooms.
 * Nothing survives a restart: every room gets a new epoch in the next run.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxPerRoom: 10_000, maxRooms: 10_000 });
 * await store.saveBatch(messages);
 * const latest = await store.history("general", { limit: 50 });
 * ```
 */
export class MemoryStore implements MessageRepository {
  readonly kind: string = "memory";
  readonly #options: MemoryStoreOptions;
  readonly #maxBytes: number;
  // Map order is recency of writes: re-inserting a room on every write makes the first key the
  // least recently written, which is the one evicted when there are too many rooms.
  readonly #rooms = new Map<string, RoomHistory>();
  /** Per user, its read position per room (both in least recently reported order). */
  readonly #readPositions = new Map<string, Map<string, number>>();
  #bytes = 0;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    this.#maxBytes = options.maxBytes ?? Infinity;
  }

  /** Estimated bytes of the messages kept (see {@linkcode estimatedBytes}). */
  get bytes(): number {
    return this.#bytes;
  }

  saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    for (const message of messages) this.#insert(message);
    if (this.#bytes > this.#maxBytes) this.#shrink();
    return Promise.resolve();
  }

  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const messages = this.#rooms.get(room)?.messages;
    if (!messages) return Promise.resolve([]);
    return Promise.resolve(
      query.after !== undefined || query.before !== undefined
        ? pageById(messages, query)
        : pageBySeq(messages, query),
    );
  }

  deleteMessage(room: string, seq: number): Promise<ChatMessage | undefined> {
    const history = this.#rooms.get(room);
    const messages = history?.messages ?? [];
    let low = 0;
    let high = messages.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((messages[mid] as ChatMessage).seq < seq) low = mid + 1;
      else high = mid;
    }
    if (!history || messages[low]?.seq !== seq) return Promise.resolve(undefined);
    const gone = messages.splice(low, 1);
    this.#forget(history, gone);
    return Promise.resolve(gone[0]);
  }

  openRoom(room: string): Promise<RoomSequence> {
    const history = this.#rooms.get(room) ?? this.#create(room);
    return Promise.resolve({ epoch: history.epoch, lastSeq: history.lastSeq });
  }

  roomSequence(room: string): Promise<RoomSequence | undefined> {
    const history = this.#rooms.get(room);
    return Promise.resolve(history && { epoch: history.epoch, lastSeq: history.lastSeq });
  }

  findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]> {
    const byClientId = this.#rooms.get(room)?.byClientId;
    const found: SentMessage[] = [];
    for (const { sender, clientId } of keys) {
      const message = byClientId?.get(clientKey(sender, clientId));
      if (message) found.push({ sender, clientId, id: message.id, seq: message.seq });
    }
    return Promise.resolve(found);
  }

  /** Nothing to release: no run after this one sees these rooms. */
  releaseRooms(): Promise<void> {
    return Promise.resolve();
  }

  saveReadPosition(room: string, user: string, seq: number): Promise<number> {
    let positions = this.#readPositions.get(user);
    if (!positions) {
      // Bounded like the rooms: the least recently reporting users are forgotten first.
      if (this.#readPositions.size >= this.#options.maxRooms) {
        this.#readPositions.delete(this.#readPositions.keys().next().value as string);
      }
      positions = new Map();
    }
    this.#readPositions.delete(user);
    this.#readPositions.set(user, positions);
    const stored = Math.max(positions.get(room) ?? 0, seq);
    positions.delete(room);
    positions.set(room, stored);
    if (positions.size > this.#options.maxRooms) {
      positions.delete(positions.keys().next().value as string);
    }
    return Promise.resolve(stored);
  }

  readPositions(user: string): Promise<{ room: string; seq: number }[]> {
    const positions = [...this.#readPositions.get(user) ?? []];
    return Promise.resolve(
      positions.map(([room, seq]) => ({ room, seq })).sort((a, b) => a.room < b.room ? -1 : 1),
    );
  }

  /**
   * Removes what `policy` says from every room, room by room; a room left empty keeps its
   * sequence.
   * Between rooms it lets other tasks run every {@linkcode PRUNE_YIELD_EVERY} messages, so a
   * large store does not stall broadcasts while it is pruned.
   *
   * @example
   * ```ts
   * const removed = await store.prune({ olderThan: new Date(Date.now() - 86_400_000) });
   * ```
   * @throws {RetentionPolicyError} if the policy is out of range.
   */
  async prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number> {
    checkRetentionPolicy(policy);
    const cutoffMs = policy.olderThan?.getTime();
    let removed = 0;
    let sinceYield = 0;
    // A snapshot of the names: rooms written while this yields are pruned next time.
    for (const room of [...this.#rooms.keys()]) {
      if (signal?.aborted) break;
      const history = this.#rooms.get(room);
      if (history === undefined) continue; // evicted while this yielded
      sinceYield += history.messages.length;
      const gone = pruneRoom(history.messages, cutoffMs, policy.maxPerRoom);
      removed += gone.length;
      this.#forget(history, gone);
      if (sinceYield >= PRUNE_YIELD_EVERY) {
        sinceYield = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
    return removed;
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    this.#rooms.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }

  #insert(message: ChatMessage): void {
    const history = this.#rooms.get(message.room) ?? this.#create(message.room);
    this.#rooms.delete(message.room);
    this.#rooms.set(message.room, history);
    const { messages } = history;
    const last = messages[messages.length - 1];
    if (last === undefined || last.seq < message.seq) {
      messages.push(message); // the common case: seqs arrive in order
    } else {
      const at = lowerBound(messages, message.seq);
      if (messages[at]?.seq === message.seq) return; // already stored: saving is idempotent
      messages.splice(at, 0, message);
    }
    if (message.seq > history.lastSeq) history.lastSeq = message.seq;
    if (message.clientId !== undefined) {
      history.byClientId.set(clientKey(message.sender, message.clientId), message);
    }
    const bytes = estimatedBytes(message);
    history.bytes += bytes;
    this.#bytes += bytes;
    if (messages.length > this.#options.maxPerRoom) {
      this.#forget(history, messages.splice(0, messages.length - this.#options.maxPerRoom));
    }
  }

  #create(room: string): RoomHistory {
    if (this.#rooms.size >= this.#options.maxRooms) this.#evictOldestRoom();
    const history: RoomHistory = {
      epoch: newEpoch(),
      lastSeq: 0,
      messages: [],
      byClientId: new Map(),
      bytes: 0,
    };
    this.#rooms.set(room, history);
    return history;
  }

  /** Forgets the oldest messages of the least recently written rooms until under `maxBytes`. */
  #shrink(): void {
    for (const history of this.#rooms.values()) {
      if (this.#bytes <= this.#maxBytes) return;
      let count = 0;
      let freed = 0;
      while (count < history.messages.length && this.#bytes - freed > this.#maxBytes) {
        freed += estimatedBytes(history.messages[count] as ChatMessage);
        count++;
      }
      this.#forget(history, history.messages.splice(0, count));
    }
  }

  #forget(history: RoomHistory, gone: readonly ChatMessage[]): void {
    let bytes = 0;
    for (const message of gone) {
      bytes += estimatedBytes(message);
      if (message.clientId !== undefined) {
        history.byClientId.delete(clientKey(message.sender, message.clientId));
      }
    }
    history.bytes -= bytes;
    this.#bytes -= bytes;
  }

  #evictOldestRoom(): void {
    const oldest = this.#rooms.entries().next();
    if (oldest.done) return;
    const [room, history] = oldest.value;
    this.#rooms.delete(room);
    this.#bytes -= history.bytes;
  }
}

/** Messages examined between two yields of {@linkcode MemoryStore.prune}. */
const PRUNE_YIELD_EVERY = 50_000;

/**
 * Applies a policy to one room's seq-sorted messages in place and returns those it removed: first
 * those older than `cutoffMs`, then the oldest seqs beyond `maxPerRoom`.
 */
function pruneRoom(
  messages: ChatMessage[],
  cutoffMs: number | undefined,
  maxPerRoom: number | undefined,
): ChatMessage[] {
  const gone: ChatMessage[] = [];
  if (cutoffMs !== undefined) {
    // Timestamps are parsed, not compared as text: "+010000-01-01T..." sorts before "2025-...".
    let kept = 0;
    for (const message of messages) {
      if (Date.parse(message.timestamp) >= cutoffMs) messages[kept++] = message;
      else gone.push(message);
    }
    messages.length = kept;
  }
  if (maxPerRoom !== undefined && messages.length > maxPerRoom) {
    // A loop, not push(...): a spread of this many arguments can overflow the stack.
    for (const message of messages.splice(0, messages.length - maxPerRoom)) gone.push(message);
  }
  return gone;
}

/** Protocol 1: a page by id cursors, in id order (ids of one room are not always in seq order). */
function pageById(messages: readonly ChatMessage[], query: HistoryQuery): ChatMessage[] {
  const { after, before, limit } = query;
  const inRange = messages
    .filter((m) => (after === undefined || m.id > after) && (before === undefined || m.id < before))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return after !== undefined
    ? inRange.slice(0, limit)
    : inRange.slice(Math.max(0, inRange.length - limit));
}

/** A page by seq cursors: the oldest after `afterSeq`, else the newest before `beforeSeq`. */
function pageBySeq(messages: readonly ChatMessage[], query: HistoryQuery): ChatMessage[] {
  const end = query.beforeSeq === undefined
    ? messages.length
    : lowerBound(messages, query.beforeSeq);
  if (query.afterSeq !== undefined) {
    const start = lowerBound(messages, query.afterSeq + 1);
    return messages.slice(start, Math.max(start, Math.min(start + query.limit, end)));
  }
  return messages.slice(Math.max(0, end - query.limit), end);
}

/** Index of the first message whose seq is >= `seq`. */
function lowerBound(messages: readonly ChatMessage[], seq: number): number {
  let low = 0;
  let high = messages.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((messages[mid] as ChatMessage).seq < seq) low = mid + 1;
    else high = mid;
  }
  return low;
}

function clientKey(sender: string, clientId: string): string {
  return `${sender}\n${clientId}`;
}
