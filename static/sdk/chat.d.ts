/**
 * The chat server's client SDK: join a room, receive its messages in order and exactly once
 * (across reconnects, resumes, server restarts and gaps), send messages safely (acknowledged,
 * never doubled), read history. One dependency-free ES module for browsers, Deno and Node 20+
 * (Node needs a WebSocket class, e.g. npm `ws`). The wire protocol is docs/protocol.md.
 *
 * @example
 * ```ts
 * import { connect } from "http://localhost:8080/sdk/chat.js";
 *
 * const room = await connect({ url: "http://localhost:8080", room: "general", user: "bot" });
 * room.on("message", (message) => console.log(message.seq, message.sender, message.content));
 * const { seq } = await room.send("hello");
 * await room.close();
 * ```
 *
 * @module
 */

/** Where the connection is: `closed` is final (after {@linkcode Room.close} or a refusal). */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/**
 * A message of the room: the server's `message` frame without `type`, as `/history` lists it.
 * Messages read from the server's store (`/history`, a resume beyond its buffer) come in their
 * latest state: `edited_at` when edited, `deleted` when deleted; live ones as they were sent
 * (the `edit`, `delete` and `react` events that follow tell what changed).
 */
export interface ChatMessage {
  /** A UUIDv7, unique. */
  readonly id: string;
  readonly room: string;
  /**
   * The message's place in the room's sequence (1, 2, 3, ... within the room's epoch), which
   * changes share: the seqs of messages have holes where changes sit.
   */
  readonly seq: number;
  readonly sender: string;
  /** The text; `""` for a deleted message (the server no longer has it). */
  readonly content: string;
  /** ISO-8601 UTC with milliseconds. */
  readonly timestamp: string;
  /** The sender's id for the message, when it gave one (every message sent by this SDK does). */
  readonly client_id?: string;
  /** The seq of the message this one answers, when it answers one. */
  readonly reply_to?: number;
  /** When the content was last edited (ISO-8601 UTC), in a message's latest state. */
  readonly edited_at?: string;
  /** The message was deleted (a tombstone: `content` is `""`), in a message's latest state. */
  readonly deleted?: true;
  /**
   * From `/history` only: each reaction on the message, how many members reacted with it and
   * whether this user is one of them. Absent when it has none.
   */
  readonly reactions?: Readonly<Record<string, ReactionSummary>>;
}

/** One reaction on a message, as `/history` counts it. */
export interface ReactionSummary {
  readonly count: number;
  /** Whether this connection's user reacted with it. */
  readonly me: boolean;
}

/** What the server answered a sent message with: its place in the room. */
export interface Ack {
  readonly id: string;
  readonly seq: number;
}

/**
 * What the server answered a change ({@linkcode Room.edit}, {@linkcode Room.delete},
 * {@linkcode Room.react}) with: the change's own place in the room's sequence.
 */
export interface ChangeAck {
  readonly id: string;
  readonly event_seq: number;
}

/**
 * What every change event carries: a change to the message at `seq`, made by `user`, itself the
 * item at `event_seq` of the room's sequence. Changes come in order with messages, each once,
 * also to the tabs of the user who made them; apply them idempotently (an edit of a deleted
 * message is ignored).
 */
export interface ChangeEventBase {
  /** The change's own id (a UUIDv7). */
  readonly id: string;
  readonly room: string;
  /** The change's own seq in the room's sequence. */
  readonly event_seq: number;
  /** Who made the change: the author, or (a delete) a moderator. */
  readonly user: string;
  /** The seq of the message changed. */
  readonly seq: number;
  /** ISO-8601 UTC with milliseconds. */
  readonly timestamp: string;
  /** The id the change was sent with (every change sent by this SDK has one). */
  readonly client_id?: string;
}

/** The author replaced the content of the message at `seq`. */
export interface EditEvent extends ChangeEventBase {
  readonly content: string;
}

/** The message at `seq` was deleted (by its author or a moderator): show a tombstone. */
export type DeleteEvent = ChangeEventBase;

/** `user` added (`on`) or removed a reaction to the message at `seq`. */
export interface ReactEvent extends ChangeEventBase {
  /** One emoji, or a token of 1 to 32 of `a-z 0-9 _ + -`. */
  readonly reaction: string;
  readonly on: boolean;
}

/** Someone joined or left; `members` is the room's member list after it, sorted. */
export interface PresenceEvent {
  readonly event: "join" | "leave";
  readonly user: string;
  readonly members: readonly string[];
}

/**
 * The room's history was reset on the server (`epoch_changed`, close 4002): seqs start over in
 * `epoch`, and live messages follow `last_seq`. What was missed in between is in
 * {@linkcode Room.history} of the new epoch.
 */
export interface EpochEvent {
  readonly epoch: string;
  /** The epoch the SDK knew before. */
  readonly previous: string;
  /** The newest seq of the new epoch when the SDK joined it. */
  readonly last_seq: number;
}

/**
 * The connection changed, or (`reconnecting`) a new wait before the next attempt began: it is
 * told again for every wait, each with its `retryAt`.
 */
export interface StateEvent {
  readonly state: ConnectionState;
  /** With `reconnecting`: when the next attempt starts (milliseconds, as `Date.now()`). */
  readonly retryAt?: number;
  /** With `reconnecting` after a connection was lost: the close code and reason it got. */
  readonly close?: { readonly code: number; readonly reason: string };
  /**
   * With `reconnecting` when a connection could not be opened: why (the server's code, e.g.
   * `too_many_connections`, `shutting_down`, or `unreachable`), `retryable`.
   */
  readonly error?: ChatError;
}

/** Another member is typing (the server's `typing` frame): show it for 5 s unless renewed. */
export interface TypingEvent {
  readonly room: string;
  readonly user: string;
}

/** A read receipt: `user` has read the room up to `seq`. */
export interface ReadEvent {
  readonly room: string;
  readonly user: string;
  readonly seq: number;
}

/** The welcome's `limits` (docs/protocol.md): numbers only; empty before the first welcome. */
export interface Limits {
  readonly max_content_chars?: number;
  readonly max_frame_bytes?: number;
  readonly rate_per_second?: number;
  readonly rate_burst?: number;
  readonly [name: string]: number | undefined;
}

/**
 * Filling a hole from `/history` waits (`waiting`: the server's store cannot be read now; the SDK
 * reads again at `retryAt`, never sooner than the server's Retry-After), or, after such a wait,
 * nothing is missing any more. A wait is not an error: the connection and live messages go on.
 */
export interface FillEvent {
  readonly waiting: boolean;
  /** With `waiting`: when the SDK reads again (milliseconds, as `Date.now()`). */
  readonly retryAt?: number;
  /** With `waiting`, after a failed read: the server's error (`status`, `retryAfterMs`). */
  readonly error?: ChatError;
}

/** What {@linkcode Room.on} can listen to, and what each listener receives. */
export interface RoomEventMap {
  /**
   * Each message once, never twice. In seq order, except past a hole that stays unfilled longer
   * than `holdMs` (a store outage): then later messages come first and the hole's messages
   * follow when they are read; place them by `seq`.
   */
  message: ChatMessage;
  /** A message was edited by its author (in order with messages, each once). */
  edit: EditEvent;
  /** A message was deleted by its author or a moderator (in order, each once). */
  delete: DeleteEvent;
  /** A reaction was added or removed (in order, each once). */
  react: ReactEvent;
  /** Another member is typing (ephemeral; nothing is replayed). */
  typing: TypingEvent;
  /** A read receipt (a member's read position moved; this user's other devices too). */
  read: ReadEvent;
  /** The member list changed (a `presence` delta, or a difference seen on reconnecting). */
  presence: PresenceEvent;
  /** An error frame not tied to a send, or a failure of the connection (see ChatError codes). */
  error: ChatError;
  /** Filling a hole waits for the store, or is done after such a wait (see {@linkcode FillEvent}). */
  fill: FillEvent;
  /** The connection's state changed, or a new reconnect wait began (see {@linkcode StateEvent}). */
  state: StateEvent;
  /** The room's epoch changed: the sequence starts over (see {@linkcode EpochEvent}). */
  epoch: EpochEvent;
}

/** A token, or a function that returns a fresh one (called again when the server refuses one). */
export type TokenSource = string | (() => string | Promise<string>);

/**
 * A WebSocket class: the standard one (browsers, Deno, Node 22+) or one with its interface
 * (`import WebSocket from "ws"` in Node).
 */
export type WebSocketClass = new (url: string) => object;

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /** The server's http(s) base URL, e.g. `https://chat.example.com` (a path prefix is kept). */
  readonly url: string | URL;
  /** The room to join (the server's rules for names are in docs/protocol.md). */
  readonly room: string;
  /** The name others see; with a token the server takes the token's `sub` instead. */
  readonly user?: string;
  /** A JWT (servers with `AUTH_SECRET`); a function is called again for a fresh one on expiry. */
  readonly token?: TokenSource;
  /** The protocol level, always sent as `v` (default 2, the only one this SDK speaks). */
  readonly protocol?: number;
  /** The WebSocket class (default `globalThis.WebSocket`); Node 20 needs npm `ws`. */
  readonly WebSocket?: WebSocketClass;
  /**
   * Resume from a cursor saved earlier ({@linkcode Room.epoch} and {@linkcode Room.lastSeq}):
   * every later message is delivered first. `{ seq: 0 }` asks for everything. Default: only
   * messages after joining.
   */
  readonly since?: { readonly seq: number; readonly epoch?: string };
  /** Reconnect delays: full jitter under a cap doubling from `baseMs` (500) to `maxMs` (10 s). */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number };
  /**
   * How long a message past a hole waits for the hole to be filled from `/history` before it is
   * delivered anyway, in ms (default 5000; 0 delivers at once, for views that place messages by
   * `seq`). Nothing is missed or doubled either way.
   */
  readonly holdMs?: number;
  /** Sends waiting for their ack at most (default 1000); beyond, `send` rejects `queue_full`. */
  readonly maxPending?: number;
  /** Rejects `connect` with `connect_timeout` if no welcome came by then (default: no limit). */
  readonly connectTimeoutMs?: number;
  /** Closes the room when aborted (as {@linkcode Room.close}), also while connecting. */
  readonly signal?: AbortSignal;
}

/** Options of {@linkcode Room.send}. */
export interface SendOptions {
  /**
   * The message's `client_id` (1 to 64 of `A-Z a-z 0-9 _ -`); default: a new random one. Give
   * the same one again to retry a message whose send was rejected as retryable: it is never
   * posted twice.
   */
  readonly client_id?: string;
  /** The seq of an earlier message of the room this one answers (`invalid_reply_to` else). */
  readonly reply_to?: number;
}

/** Options of {@linkcode Room.edit}, {@linkcode Room.delete} and {@linkcode Room.react}. */
export interface ChangeOptions {
  /**
   * The change's `client_id` (1 to 64 of `A-Z a-z 0-9 _ -`); default: a new random one. Give
   * the same one again to retry a change rejected as retryable: it is never applied twice.
   */
  readonly client_id?: string;
}

/** What {@linkcode Room.history} reads. */
export interface HistoryQuery {
  /** Only messages with a lower seq. */
  readonly before_seq?: number;
  /** Only messages with a greater seq; given, the messages come oldest first. */
  readonly after_seq?: number;
  /** Messages to yield at most, in all (default: every one in range). */
  readonly limit?: number;
  /** Messages per `/history` request (1 to 500, default 100). */
  readonly page_size?: number;
  /** Stops the iteration (it throws the signal's reason). */
  readonly signal?: AbortSignal;
}

/** What {@linkcode Room.historyPage} reads: one `/history` request. */
export interface HistoryPageQuery {
  /** Only messages with a lower seq; without `after_seq`, the newest `limit` of them. */
  readonly before_seq?: number;
  /** Only messages with a greater seq: the oldest `limit` of them. */
  readonly after_seq?: number;
  /** Messages at most (1 to 500, default 100). */
  readonly limit?: number;
  readonly signal?: AbortSignal;
}

/** One page of `/history`, as the server sent it. */
export interface HistoryPage {
  /**
   * Ascending by seq, each in its latest state. A seq missing between two messages of a
   * complete page is normal: a change (edit, delete, reaction) sits there.
   */
  readonly messages: readonly ChatMessage[];
  /** The server could not read its store (`X-Chat-Incomplete`): `holes` may exist. */
  readonly incomplete: boolean;
  /**
   * The seqs an incomplete page should have held but lacks (empty for a complete page). Some may
   * be changes' seqs, not messages': read them again, and a complete page says they hold none.
   */
  readonly holes: readonly { readonly from_seq: number; readonly to_seq: number }[];
}

/** One joined room; see {@linkcode connect}. */
export interface Room {
  /** The room's name, as the server spells it (it trims and normalizes names). */
  readonly name: string;
  /** The user name the server knows this connection by (trimmed, or the token's `sub`). */
  readonly user: string;
  /** The members, sorted (by UTF-16 code units, as the server sorts them); this user included. */
  readonly members: readonly string[];
  /** The room's epoch: a seq means something only within it. */
  readonly epoch: string;
  /**
   * The resume cursor: the newest seq delivered (a message's `seq` or a change's `event_seq`),
   * with every one before it delivered (or gone).
   */
  readonly lastSeq: number;
  readonly state: ConnectionState;
  /** The limits of the connection, from the server's latest welcome. */
  readonly limits: Limits;
  /**
   * This user's read position in the room: the welcome's `read_seq` (0 if none is stored),
   * raised by {@linkcode Room.read} and by this user's own read receipts (other devices).
   */
  readonly readSeq: number;
  /**
   * The messages after `read_seq` that others sent (and that are not deleted), as the latest
   * welcome counted them; not updated in between.
   */
  readonly unread: number;
  /** Whether this user moderates the room (may delete others' messages), from the welcome. */
  readonly moderator: boolean;

  /**
   * Listens to `type`; returns the function that stops listening. Listeners registered right
   * after `connect` resolves (in the same task) miss nothing.
   */
  on<K extends keyof RoomEventMap>(type: K, listener: (event: RoomEventMap[K]) => void): () => void;

  /**
   * Sends a message. It waits in a queue while disconnected and is sent again after a reconnect
   * (with the same `client_id`, which the server recognises: it appears once).
   *
   * @returns the ack: the message's id and seq.
   * @throws {ChatError} with the server's code (`empty_content`, `content_too_long`,
   * `room_busy`, ...; `retryable` for `room_busy`, `backlog`, `unavailable`), or `closed`,
   * `queue_full`, `frame_too_large`, `token_expired`.
   */
  send(content: string, options?: SendOptions): Promise<Ack>;

  /**
   * Replaces the content of this user's message at `seq` (queued and sent again like
   * {@linkcode Room.send}). The `edit` event follows, to every member.
   *
   * @returns the change's id and `event_seq`.
   * @throws {ChatError} `invalid_target` (no message at `seq`, or deleted), `not_author`,
   * `edit_window_passed`, `empty_content`, `content_too_long`, `invalid_text`, or those of
   * `send` (`closed`, `queue_full`, `room_busy`, ...).
   */
  edit(seq: number, content: string, options?: ChangeOptions): Promise<ChangeAck>;

  /**
   * Deletes the message at `seq`: this user's own, or anyone's in a room it moderates
   * ({@linkcode Room.moderator}). The `delete` event follows, to every member.
   *
   * @returns the change's id and `event_seq`.
   * @throws {ChatError} `invalid_target`, `not_author`, `edit_window_passed`, or those of `send`.
   */
  delete(seq: number, options?: ChangeOptions): Promise<ChangeAck>;

  /**
   * Adds (`on`, the default) or removes this user's `reaction` to the message at `seq`. The
   * `react` event follows, to every member.
   *
   * @returns the change's id and `event_seq`.
   * @throws {ChatError} `invalid_target`, `invalid_reaction` (one emoji, or 1 to 32 of
   * `a-z 0-9 _ + -`), `too_many_reactions` (20 different ones at most), or those of `send`.
   */
  react(seq: number, reaction: string, on?: boolean, options?: ChangeOptions): Promise<ChangeAck>;

  /**
   * The room's messages from `/history`, each once. Order: with `after_seq`, oldest first
   * (catching up); without it, newest first (scrolling back). Waits out 503 and 429
   * (Retry-After) and incomplete pages, a bounded number of times.
   *
   * @throws {ChatError} `history_incomplete` (the store stayed unreadable), `epoch_changed`
   * (the room's history was reset while paging), `closed`, or the server's HTTP error code.
   */
  history(query?: HistoryQuery): AsyncGenerator<ChatMessage, void, undefined>;

  /**
   * One `/history` request, not retried: an incomplete page comes back with its `holes` instead
   * of an error, for a view that shows what there is and reads the rest again later.
   *
   * @throws {ChatError} the server's HTTP error (`status`, `retryAfterMs`, `retryable` for 429,
   * 503 and other passing failures), `unreachable` (retryable), `epoch_changed` (the room's
   * history was reset: the connection resumes and the room starts over), `closed`.
   */
  historyPage(query?: HistoryPageQuery): Promise<HistoryPage>;

  /**
   * Reports that this user has read the room up to `seq`: stored by the server (never
   * backwards) and told to the room as a receipt. Nothing while not connected.
   */
  read(seq: number): void;

  /**
   * Tells the others that this user is typing. Sent at most once every 2 s (the server's
   * limit); nothing while not connected. Call it on every keystroke.
   */
  typing(): void;

  /**
   * Ends a reconnect wait and connects now (a Retry button, the browser's `online` event);
   * nothing while connected, connecting or closed. The backoff starts over.
   */
  reconnectNow(): void;

  /**
   * Closes the room: the socket with 1000, pending sends rejected with `closed`, every timer
   * stopped. Resolves once the socket is closed.
   */
  close(): Promise<void>;
}

/** Options of {@linkcode ChatError}. */
export interface ChatErrorOptions {
  /** The HTTP status, when the error is an HTTP answer. */
  readonly status?: number;
  /** How long the server asked to wait (its Retry-After), in milliseconds. */
  readonly retryAfterMs?: number;
  /** Whether the same request may succeed later. */
  readonly retryable?: boolean;
  /** The `client_id` of the send this error is about. */
  readonly clientId?: string;
  readonly cause?: unknown;
}

/**
 * Every error of this SDK: `code` is the server's error code (docs/protocol.md) or one of the
 * SDK's own: `closed`, `queue_full`, `frame_too_large`, `connect_timeout`, `token_expired`,
 * `token_unavailable`, `unsupported_protocol`, `history_incomplete`, `epoch_changed`,
 * `messages_unavailable`, `invalid_response`, `unreachable`.
 */
export declare class ChatError extends Error {
  constructor(code: string, message: string, options?: ChatErrorOptions);
  readonly code: string;
  readonly status: number | undefined;
  readonly retryAfterMs: number;
  readonly retryable: boolean;
  readonly clientId: string | undefined;
}

/**
 * Joins a room. Resolves once the server welcomed the connection; until then it retries what
 * may pass (the server unreachable, restarting, full) with backoff.
 *
 * @example
 * ```ts
 * import WebSocket from "ws"; // Node 20; browsers and Deno have one
 * const room = await connect({ url: "http://localhost:8080", room: "general", user: "bot", WebSocket });
 * ```
 * @throws {ChatError} the server's refusal (`invalid_room`, `invalid_user`, `token_invalid`,
 * `token_expired`, `room_forbidden`, `origin_forbidden`, ...; `status` 400, 401 or 403),
 * `connect_timeout`, `closed` (aborted), `unsupported_protocol`; a `TypeError` for bad options.
 */
export declare function connect(options: ConnectOptions): Promise<Room>;
