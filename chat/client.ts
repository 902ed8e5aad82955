/**
 * One connected member: an outbox drained by a writer onto its transport.
 *
 * @module
 */
import { Channel, ChannelClosedError } from "./channel.ts";
import { CLOSE_CODES, type CloseCode, ERROR_FRAMES, type ErrorCode } from "./protocol.ts";

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
  /** Bytes the transport may have buffered. */
  readonly bytes: number;
  /** Frames one replay may add on top of the live ones (a resume sends at most this many). */
  readonly replayFrames: number;
}

/** What a client tells the hub about itself. */
export interface ClientOwner {
  /** Takes a validated message of `client` for its room. Returns an error code if refused. */
  submit(client: Client, content: string): ErrorCode | undefined;
  /** A frame of `client` was refused with `code`. */
  refused(code: ErrorCode): void;
  /** The client is gone: called exactly once per client, with the close the server chose. */
  release(client: Client, close: CloseCode | undefined): void;
}

/**
 * A member of one room. Frames reach it through {@linkcode Client.offer}, which never waits:
 * a client that falls behind is cut off with 1013 instead of slowing its room.
 *
 * @example
 * ```ts
 * const client = new Client({ id: 1, room: "a", user: "ann" }, transport, { owner, limits });
 * client.offer('{"type":"message",...}');
 * client.disconnect(CLOSE_CODES.goingAway);
 * await client.done;
 * ```
 */
export class Client {
  /** Connection id, unique in this process; for logs. */
  readonly id: number;
  /** Room name. */
  readonly room: string;
  /** User name. */
  readonly user: string;
  /** Resolves when the writer has flushed the outbox and the close (if any) was started. */
  readonly done: Promise<void>;
  readonly #transport: Transport;
  readonly #owner: ClientOwner;
  readonly #maxBufferedBytes: number;
  readonly #maxLiveFrames: number;
  readonly #outbox: Channel<string>;
  /** Live frames held back while a replay is being prepared; `undefined` when not replaying. */
  #held: string[] | undefined;
  #closeWith: CloseCode | undefined;
  #gone = false;

  constructor(
    identity: { readonly id: number; readonly room: string; readonly user: string },
    transport: Transport,
    options: { readonly owner: ClientOwner; readonly limits: OutboxLimits },
  ) {
    this.id = identity.id;
    this.room = identity.room;
    this.user = identity.user;
    this.#transport = transport;
    this.#owner = options.owner;
    this.#maxBufferedBytes = options.limits.bytes;
    this.#maxLiveFrames = options.limits.frames;
    // Room for a replay, the live frames held during it, and the resume frame; live frames alone
    // are still bounded by `frames` (see offer). The ring grows only as far as it is used.
    this.#outbox = new Channel(2 * options.limits.frames + options.limits.replayFrames + 1);
    this.done = this.#write();
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
      if (this.#held.length >= this.#maxLiveFrames) return false;
      this.#held.push(frame);
      return true;
    }
    return this.#outbox.size < this.#maxLiveFrames && this.#outbox.trySend(frame);
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
    for (const frame of held) this.#outbox.trySend(frame);
  }

  /** Handles a validated frame from the peer. */
  receive(content: string): void {
    if (this.#gone) return;
    const refused = this.#owner.submit(this, content);
    if (refused) this.reject(refused);
  }

  /** Sends the peer an `error` frame; the connection stays open. */
  reject(code: ErrorCode): void {
    this.#owner.refused(code);
    if (!this.offer(ERROR_FRAMES[code])) this.disconnect(CLOSE_CODES.slowConsumer);
  }

  /** Closes the connection from the server side after flushing what is queued. */
  disconnect(close: CloseCode): void {
    if (this.#gone) return;
    this.#closeWith = close;
    this.#leave();
  }

  /** The transport reported that the peer is gone. */
  transportClosed(): void {
    this.#leave();
  }

  #leave(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#outbox.close();
    this.#owner.release(this, this.#closeWith);
  }

  async #write(): Promise<void> {
    const batch: string[] = [];
    for (;;) {
      try {
        batch.push(await this.#outbox.receive());
      } catch (error) {
        if (error instanceof ChannelClosedError) break; // closed and drained
        throw error;
      }
      this.#outbox.drainInto(batch, Infinity);
      // Measured before this batch is written: what is still buffered then is what the peer has
      // not taken since the last turn, whereas right after a write every batch looks like a backlog.
      if (this.#transport.bufferedAmount > this.#maxBufferedBytes && !this.#gone) {
        this.#closeWith = CLOSE_CODES.slowConsumer;
        this.#leave();
      }
      if (this.#closeWith !== CLOSE_CODES.slowConsumer) {
        for (const frame of batch) this.#transport.send(frame);
      }
      batch.length = 0;
    }
    if (this.#closeWith) await this.#transport.close(this.#closeWith.code, this.#closeWith.reason);
  }
}
