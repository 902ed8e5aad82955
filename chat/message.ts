/**
 * The message model of the chat core, and the port through which the core reaches the store.
 * `storage/` implements {@linkcode MessageLog}; the core never sees SQL.
 *
 * @module
 */
import { v7 as uuidv7 } from "uuid";

/**
 * A change to an earlier message of the room (`target` is its seq). A change is itself an item
 * of the room's sequence: it takes the next seq (sent as `event_seq`), so messages and changes
 * share one order, one resume cursor and one replay.
 */
export type MessageChange =
  /** The author replaced the content (the item's `content` is the new one). */
  | { readonly kind: "edit"; readonly target: number }
  /** The author or a moderator deleted the message: its content is removed from the store. */
  | { readonly kind: "delete"; readonly target: number }
  /** The item's sender added (`on`) or removed a reaction. */
  | {
    readonly kind: "react";
    readonly target: number;
    readonly reaction: string;
    readonly on: boolean;
  };

/** What a change item names of its kind, as a client asked for it. */
export type ChangeKind = MessageChange["kind"];

/**
 * An item of a room's sequence as it is broadcast and stored: a chat message, or (with
 * `change`) a change to one. Reads of a room's history give messages in their latest state
 * (`editedAt`, `deleted`).
 */
export interface ChatMessage {
  /** Lower-case UUIDv7 taken when the message was accepted: unique, roughly time-ordered. */
  readonly id: string;
  /** Room name. */
  readonly room: string;
  /**
   * Position in the room's sequence: 1, 2, 3, ... with no gaps and no reuse within the room's
   * epoch. The cursor of resume and `/history` (protocol 2).
   */
  readonly seq: number;
  /** User name of the sender. */
  readonly sender: string;
  /**
   * Message text, already trimmed and validated; `""` for a deleted message, a `delete` or a
   * `react` change.
   */
  readonly content: string;
  /** ISO-8601 UTC time at which the server accepted the message. */
  readonly timestamp: string;
  /**
   * The sender's own id for the message (1 to 64 of `A-Za-z0-9_-`), when it gave one: a re-send
   * with the same one by the same sender in the same room is not a new message.
   */
  readonly clientId?: string;
  /** The seq of the message of the same room this one answers, when it answers one. */
  readonly replyTo?: number;
  /** Set on a change item: what it changes. `seq` is then the change's own (`event_seq`). */
  readonly change?: MessageChange;
  /** A message's latest state: when its content was last edited (ISO-8601 UTC). */
  readonly editedAt?: string;
  /** A message's latest state: deleted (a tombstone: `content` is `""`). */
  readonly deleted?: true;
}

/** Whether `item` is a message rather than a change to one. */
export function isMessage(item: ChatMessage): boolean {
  return item.change === undefined;
}

/** What a member asks to change: validated at the edge; the room checks who may. */
export type ChangeRequest =
  | { readonly kind: "edit"; readonly target: number; readonly content: string }
  | { readonly kind: "delete"; readonly target: number }
  | {
    readonly kind: "react";
    readonly target: number;
    readonly reaction: string;
    readonly on: boolean;
  };

/** Who reacted to a message with what: reaction → user names (sorted), `on` ones only. */
export type MessageReactions = ReadonlyMap<string, readonly string[]>;

/** A user's read position in one room and what it has not read. */
export interface UnreadCount {
  readonly room: string;
  /** The seq the user has read up to. */
  readonly readSeq: number;
  /** Messages after `readSeq` sent by others and not deleted (change items not counted). */
  readonly unread: number;
  /** The room's last seq (of any item). */
  readonly lastSeq: number;
}

/** What a client submits: validated content, and its id for the message if it gave one. */
export interface Submission {
  readonly content: string;
  readonly clientId?: string;
  /** The seq of the message it answers (`reply_to`); checked by the room against its seqs. */
  readonly replyTo?: number;
}

/** Where an earlier message with the same client id stands: what its ack said. */
export interface SentMessage {
  readonly sender: string;
  readonly clientId: string;
  readonly id: string;
  readonly seq: number;
}

/** Where a room's sequence stands: its epoch and the last seq handed out in it. */
export interface RoomSequence {
  /**
   * Opaque; changes only when the room's history was lost or reset, so that a cursor (seq) from
   * another epoch is never taken to name the same message.
   */
  readonly epoch: string;
  /** The last seq handed out; 0 before the first message. */
  readonly lastSeq: number;
}

/**
 * Which page of a room's history to read. Seq cursors (protocol 2) and id cursors (protocol 1)
 * are not mixed in one query: with a seq cursor the page is in seq order, with an id cursor in
 * id order, and without a cursor in seq order.
 */
export interface HistoryQuery {
  /** Page size, at least 1. */
  readonly limit: number;
  /** Only messages with a seq lower than this; without an `after` cursor, the newest such. */
  readonly beforeSeq?: number;
  /** Only messages with a seq greater than this; the page is the oldest such (forward paging). */
  readonly afterSeq?: number;
  /** Protocol 1: only messages with an id lower than this (UUIDv7 order). */
  readonly before?: string;
  /** Protocol 1: only messages with an id greater than this; the oldest such. */
  readonly after?: string;
  /**
   * Whether change items are included, in seq order among the messages (a replay needs them);
   * `limit` then counts both. Only with seq cursors (or none). `false` by default: messages
   * only, each in its latest state.
   */
  readonly changes?: boolean;
}

/**
 * What the chat core needs of the store: a queue in front of it that never waits, reads that see
 * what is queued as if it were stored, and each room's sequence.
 *
 * @example
 * ```ts
 * const sequence = await log.openRoom("general");
 * if (!log.append({ ...message, seq: sequence.lastSeq + 1 })) refuse("backlog");
 * const page = await log.history("general", { limit: 50, afterSeq: 10 });
 * ```
 */
export interface MessageLog {
  /**
   * Queues a message to be stored, without waiting; from then on reads include it.
   *
   * @returns `false` if the queue is full: the message was not taken.
   */
  append(message: ChatMessage): boolean;
  /** Whether `count` more messages would be taken by {@linkcode MessageLog.append} now. */
  hasRoomFor(count: number): boolean;
  /** One page of a room's history, queued messages included. An unknown room gives `[]`. */
  history(room: string, query: HistoryQuery): Promise<ChatMessage[]>;
  /**
   * The room's epoch and last seq (queued messages included), giving the room an epoch on first
   * use.
   */
  openRoom(room: string): Promise<RoomSequence>;
  /** The room's epoch and last seq if it has one; never creates it. */
  roomSequence(room: string): Promise<RoomSequence | undefined>;
  /**
   * The messages of `room` (stored or queued) that `keys` name by sender and client id; keys
   * without one are left out.
   */
  findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]>;
  /**
   * Tells `listener` of every message of `room` that is stored (`stored` true) or given up on
   * from now on, in batches; one listener per room.
   *
   * @returns a function that stops it.
   */
  watch(
    room: string,
    listener: (messages: readonly ChatMessage[], stored: boolean) => void,
  ): () => void;
  /** Stores `user`'s read position in `room`, never moving it backwards. */
  saveReadPosition(room: string, user: string, seq: number): Promise<number>;
  /**
   * `user`'s read positions with unread counts (queued messages included), one per room it
   * ever reported one in; only `room`'s when given.
   */
  unread(user: string, room?: string): Promise<UnreadCount[]>;
  /** The reactions to the messages at `seqs` of `room` (queued changes included); none left out. */
  reactionsTo(room: string, seqs: readonly number[]): Promise<Map<number, MessageReactions>>;
}

/** Orders messages by seq. */
export function bySeq(a: { readonly seq: number }, b: { readonly seq: number }): number {
  return a.seq - b.seq;
}

/** Orders messages by id (protocol 1 cursors). */
export function byId(a: { readonly id: string }, b: { readonly id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** A new epoch: 16 random hex digits. */
export function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * A message accepted now, before it has a seq: a new UUIDv7 id, and the time encoded in it as
 * the timestamp.
 */
export function draftMessage(
  room: string,
  sender: string,
  submission: Submission,
): Omit<ChatMessage, "seq"> {
  const id = uuidv7();
  const { content, clientId, replyTo } = submission;
  const timestamp = new Date(timeOfUuidv7(id)).toISOString();
  return {
    id,
    room,
    sender,
    content,
    timestamp,
    ...(clientId !== undefined && { clientId }),
    ...(replyTo !== undefined && { replyTo }),
  };
}

/** A change accepted now, before it has a seq: a new UUIDv7 id and its time. */
export function draftChange(
  room: string,
  sender: string,
  request: ChangeRequest,
  clientId: string | undefined,
): Omit<ChatMessage, "seq"> {
  const id = uuidv7();
  const change: MessageChange = request.kind === "react"
    ? { kind: "react", target: request.target, reaction: request.reaction, on: request.on }
    : { kind: request.kind, target: request.target };
  return {
    id,
    room,
    sender,
    content: request.kind === "edit" ? request.content : "",
    timestamp: new Date(timeOfUuidv7(id)).toISOString(),
    ...(clientId !== undefined && { clientId }),
    change,
  };
}

/** Milliseconds since the epoch encoded in the first 48 bits of a UUIDv7. */
export function timeOfUuidv7(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
