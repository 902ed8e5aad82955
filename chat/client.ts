/**
 * One connected member: an outbox that the hub's writer drains onto its transport.
 *
 * @module
 */
import { Channel } from "./channel.ts";
import type { Flushable, OutboxWriter } from "./outbox_writer.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ChangeRequest, Submission } from "./message.ts";
import { ackFrame, CLOSE_CODES, type CloseCode, type ErrorCode, errorFrame } from "./protocol.ts";

/**
 * What the chat core needs of a connection. The server adapts a WebSocket to it; tests can
 * adapt anything else. `chat/` never sees a socket.
 */
export interface Transport {
  /** Queues one text frame to the peer; must not throw once the peer is gone. */
  send(frame: string): void;
  /** Bytes handed to `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  /** Starts a close handshake with this code and reason; resolves once it has been started. */
  close(code: number, reason: string): Promise<void>;
}

/** Per-client bounds on what may wait to be sent. */
export interface OutboxLimits {
  /** Live frames waiting in the outbox. */
  readonly frames: number;
  /**
   * Bytes the transport may have buffered. Checked each time an eighth of this has been written,
   * counted in UTF-16 units (an eighth to three eighths of it in bytes), so it may be passed by
   * that much plus one batch before the client is cut off.
   */
  readonly bytes: number;
  /** Frames one replay may add on top of the live ones (a resume sends at most this many). */
  readonly replayFrames: number;
}

/** What a client tells the hub about itself. */
export interface ClientOwner {
  /** Takes a validated message of `client` for its room. Returns an error code if refused. */
  submit(client: Client, submission: Submission): ErrorCode | undefined;
  /** A frame of `client` was refused with `code`. */
  refused(code: ErrorCode): void;
  /** Takes a validated change of `client` for its room. Returns an error code if refused. */
  change(
    client: Client,
    request: ChangeRequest,
    clientId: string | undefined,
  ): ErrorCode | undefined;
  /** `client` says its user is typing. */
  typing(client: Client): void;
  /** `client` says its user has read its room up to `seq`. */
  read(client: Client, seq: number): void;
  /**
   * The client is gone: called exactly once per client, with the close the server chose and a
   * promise that resolves once that close has been started.
   */
  release(client: Client, close: CloseCode | undefined, closing: Promise<void>): void;
  /** Writing to `client`'s transport threw; the client is being closed with 1011. */
  faulted(client: Client, error: unknown): void;
}

/** A user's read position in a room and its unread count then, as `welcome` tells them. */
export interface ReadPosition {
  readonly readSeq: number;
  readonly unread: number;
}

/** Who a client is. */
export interface ClientIdentity {
  /** Connection id, unique in this process. */
  readonly id: number;
  readonly room: string;
  readonly user: string;
  /** Whether the user moderates the room; `false` by default. */
  readonly moderator?: boolean;
  /** The user's read position when it connected, if known. */
  readonly readPosition?: ReadPosition;
  /**
   * Whether frames waiting together are written as one transport frame, joined by newlines
   * (`batch=1`); `false` by default: one transport frame per frame.
   */
  readonly batched?: boolean;
}

const CLOSED = Promise.resolve();

/**
 * Longest batched frame, in UTF-16 units: a replay of a thousand frames leaves as several
 * frames, not one of megabytes. A turn's fan-out (at most 256 frames) mostly fits in one.
 */
const BATCH_MAX_CHARS = 65_536;

// The members of a room mostly get the same frames in a turn: the last batch joined is kept, and a
// batch of the very same strings (compared by identity, not content) reuses it instead of joining
// again. Flushes are synchronous and never nest, so one memo serves every client.
let memoFrames: readonly string[] = [];
let memoJoined: readonly string[] = [];

/**
 * The frames joined by newlines into as few transport frames as {@linkcode BATCH_MAX_CHARS}
 * allows (a frame longer than that goes alone). JSON frames hold no raw newline, so a client
 * splits them back on it.
 */
export function joinedFrames(frames: readonly string[]): readonly string[] {
  if (frames.length === memoFrames.length && frames.every((frame, i) => frame === memoFrames[i])) {
    return memoJoined;
  }
  const joined: string[] = [];
  let start = 0;
  let chars = 0;
  for (let i = 0; i < frames.length; i++) {
    const length = (frames[i] as string).length + 1;
    if (i > start && chars + length > BATCH_MAX_CHARS) {
      joined.push(frames.slice(start, i).join("\n"));
      start = i;
      chars = 0;
    }
    chars += length;
  }
  joined.push(frames.slice(start).join("\n"));
  memoFrames = frames.slice();
  memoJoined = joined;
  return joined;
}

/** The transport's buffered bytes are read each time 1/BYTES_CHECK_DIVISOR of the bound is written. */
const BYTES_CHECK_DIVISOR = 8;

// The frames of one flush, moved out of an outbox and written. Flushes are synchronous and never
// nest, so every client can share this one array instead of keeping its own.
const batch: string[] = [];

/**
 * A member of one room. Frames reach it through {@linkcode Client.offer}, which never waits:
 * they wait in its outbox until the end of the turn, when the hub's {@linkcode OutboxWriter}
 * writes every outbox that got frames. A client that falls behind is cut off with 1013 instead
 * of slowing its room.
 *
 * @example
 * ```ts
 * const client = new Client({ id: 1, room: "a", user: "ann" }, transport, { owner, limits, writer });
 * client.offer('{"type":"message",...}'); // written once the current task ends
 * client.disconnect(CLOSE_CODES.goingAway);
 * ```
 */
export class Client implements Flushable {
  /** Connection id, unique in this process; for logs. */
  readonly id: number;
  /** Room name. */
  readonly room: string;
  /** User name. */
  readonly user: string;
  /** `performance.now()` when the connection joined. */
  readonly joinedAt = performance.now();
  /** Whether the user moderates the room (its token's `mod`): it may delete any message. */
  readonly moderator: boolean;
  /** Where the user had read the room up to when it connected, if that could be read. */
  readonly readPosition: ReadPosition | undefined;
  readonly #transport: Transport;
  readonly #owner: ClientOwner;
  readonly #limits: OutboxLimits;
  readonly #writer: OutboxWriter;
  readonly #outbox: Channel<string>;
  /** Frames in the outbox that came from a replay: they do not count against the live bound. */
  #replayed = 0;
  /** Characters written since the transport's buffered bytes were last read. */
  #unchecked = 0;
  readonly #budget: MemoryBudget | undefined;
  /** The transport's buffered bytes when last read, as counted in the budget (`outbox`). */
  #buffered = 0;
  /** Live frames held back while a replay is being prepared; `undefined` when not replaying. */
  #held: string[] | undefined;
  #flushDue = false;
  #gone = false;
  readonly #batched: boolean;

  constructor(
    identity: ClientIdentity,
    transport: Transport,
    options: {
      readonly owner: ClientOwner;
      readonly limits: OutboxLimits;
      readonly writer: OutboxWriter;
      /** Where the transport's buffered bytes are counted, as last read. */
      readonly budget?: MemoryBudget;
    },
  ) {
    this.id = identity.id;
    this.room = identity.room;
    this.user = identity.user;
    this.moderator = identity.moderator ?? false;
    this.readPosition = identity.readPosition;
    this.#batched = identity.batched ?? false;
    this.#transport = transport;
    this.#owner = options.owner;
    this.#limits = options.limits;
    this.#writer = options.writer;
    this.#budget = options.budget;
    // Room for a replay, the live frames held during it, and the resume frame; live frames alone
    // are still bounded by `frames` (see offer). The ring grows only as far as it is used.
    this.#outbox = new Channel(2 * options.limits.frames + options.limits.replayFrames + 1);
  }

  /** Whether the client still takes frames. */
  get connected(): boolean {
    return !this.#gone;
  }

  /**
   * Queues an encoded frame without waiting.
   *
   * @returns `false` if the outbox is full: the caller must cut the client off. A client that
   * is already gone accepts and drops frames, so callers need no check of their own.
   */
  offer(frame: string): boolean {
    if (this.#gone) return true;
    if (this.#held) {
      if (this.#held.length >= this.#limits.frames) return false;
      this.#held.push(frame);
      return true;
    }
    if (this.#outbox.size - this.#replayed >= this.#limits.frames) return false;
    if (!this.#outbox.trySend(frame)) return false;
    this.#flushSoon();
    return true;
  }

  /**
   * Holds live frames back until {@linkcode Client.endReplay}, so a replay prepared
   * asynchronously still reaches the peer before anything newer.
   */
  beginReplay(): void {
    this.#held ??= [];
  }

  /** Queues the replay frames, then the live frames held meanwhile, then resumes live delivery. */
  endReplay(replay: readonly string[]): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    if (this.#gone) return;
    // Capacity was reserved for this in the constructor, so these sends cannot be refused.
    for (const frame of replay) this.#outbox.trySend(frame);
    this.#replayed += replay.length;
    for (const frame of held) this.#outbox.trySend(frame);
    if (this.#outbox.size > 0) this.#flushSoon();
  }

  /** Handles a validated message from the peer. */
  receive(submission: Submission): void {
    if (this.#gone) return;
    const refused = this.#owner.submit(this, submission);
    if (refused) this.reject(refused, submission.clientId);
  }

  /** Handles a validated change (edit, delete, react) from the peer. */
  change(request: ChangeRequest, clientId: string | undefined): void {
    if (this.#gone) return;
    const refused = this.#owner.change(this, request, clientId);
    if (refused) this.reject(refused, clientId);
  }

  /** The peer says its user has read the room up to `seq`: stored, and told to the others. */
  read(seq: number): void {
    if (!this.#gone) this.#owner.read(this, seq);
  }

  /** The peer says its user is typing: the room tells the others (never stored). */
  typing(): void {
    if (!this.#gone) this.#owner.typing(this);
  }

  /**
   * Sends the peer an `error` frame, naming the refused message by its client id when it had
   * one; the connection stays open.
   */
  reject(code: ErrorCode, clientId?: string): void {
    this.#owner.refused(code);
    this.#send(errorFrame(code, clientId));
  }

  /** Tells the peer its message is in the room at `seq` (or was already, for a re-send). */
  acknowledge(clientId: string | undefined, id: string, seq: number): void {
    this.#send(ackFrame(clientId, id, seq));
  }

  #send(frame: string): void {
    if (!this.offer(frame)) this.disconnect(CLOSE_CODES.slowConsumer);
  }

  /** Closes the connection from the server side after writing what is queued. */
  disconnect(close: CloseCode): void {
    this.#leave(close);
  }

  /** The transport reported that the peer is gone. */
  transportClosed(): void {
    this.#leave(undefined);
  }

  /** @internal Called by the {@linkcode OutboxWriter}: writes the outbox or cuts the client off. */
  flush(): void {
    this.#flushDue = false;
    try {
      if (!this.#gone && !this.#writeQueued()) this.#leave(CLOSE_CODES.slowConsumer);
    } catch (error) {
      this.#fail(error);
    }
  }

  #flushSoon(): void {
    if (this.#flushDue) return;
    this.#flushDue = true;
    if (this.#batched) this.#writer.scheduleAtIdle(this);
    else this.#writer.schedule(this);
  }

  /**
   * Writes every queued frame.
   *
   * @returns `false`, writing nothing, if the peer is too far behind.
   */
  #writeQueued(): boolean {
    if (this.#outbox.size === 0) return true;
    // Reading the buffered bytes costs a call into the runtime, as much as a write, so it is read
    // once per eighth of the bound written (and when leaving), not per batch (see OutboxLimits).
    // Read before the batch is written: what is buffered then is what the peer has not taken
    // since earlier turns, whereas right after a write every batch looks like a backlog.
    if (this.#unchecked * BYTES_CHECK_DIVISOR >= this.#limits.bytes && this.#overBytes()) {
      return false;
    }
    this.#outbox.drainInto(batch, Infinity);
    this.#replayed = 0;
    try {
      if (this.#batched && batch.length > 1) {
        for (const joined of joinedFrames(batch)) {
          this.#transport.send(joined);
          this.#unchecked += joined.length;
        }
      } else {
        for (const frame of batch) {
          this.#transport.send(frame);
          this.#unchecked += frame.length;
        }
      }
    } finally {
      batch.length = 0;
    }
    return true;
  }

  /**
   * Reads the transport's buffered bytes again, for the budget: a socket that drained since its
   * last write is otherwise still counted as it was then. The hub calls this now and then for
   * clients that had bytes buffered.
   */
  measureBuffered(): void {
    if (this.#gone) return;
    try {
      this.#countBuffered(this.#transport.bufferedAmount);
    } catch (error) {
      this.#fail(error);
    }
  }

  /** The transport's buffered bytes as last read (0 once gone). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  #overBytes(): boolean {
    this.#unchecked = 0;
    const buffered = this.#transport.bufferedAmount;
    this.#countBuffered(buffered);
    return buffered > this.#limits.bytes;
  }

  #countBuffered(buffered: number): void {
    if (!this.#budget || buffered === this.#buffered) return;
    if (buffered > this.#buffered) this.#budget.take("outbox", buffered - this.#buffered);
    else this.#budget.give("outbox", this.#buffered - buffered);
    this.#buffered = buffered;
  }

  #leave(close: CloseCode | undefined): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#held = undefined;
    // A close the server chose goes out after what was queued, unless the peer is too far behind
    // to take it; a peer that is gone is written nothing more.
    if (close !== undefined && close !== CLOSE_CODES.slowConsumer) {
      try {
        if (this.#overBytes() || !this.#writeQueued()) close = CLOSE_CODES.slowConsumer;
      } catch (error) {
        // Called from a room's turn: a transport that throws must not take the room with it.
        this.#owner.faulted(this, error);
        close = CLOSE_CODES.internalError;
      }
    }
    this.#close(close);
  }

  /** The transport threw while being written: closed with 1011, nothing more written. */
  #fail(error: unknown): void {
    this.#owner.faulted(this, error);
    if (this.#gone) return;
    this.#gone = true;
    this.#held = undefined;
    this.#close(CLOSE_CODES.internalError);
  }

  #close(close: CloseCode | undefined): void {
    this.#outbox.close();
    this.#countBuffered(0); // what the socket still holds goes with it
    let closing = CLOSED;
    if (close) {
      try {
        closing = this.#transport.close(close.code, close.reason).catch(() => {});
      } catch {
        // A transport that cannot even close is gone: the hub still releases its client.
      }
    }
    this.#owner.release(this, close, closing);
  }
}
