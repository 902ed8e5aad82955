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
  /** Starts a close handshake with this code and reason. */
  close(code: number, reason: string): void;
}

/** Per-client bounds on what may wait to be sent. */
export interface OutboxLimits {
  /** Frames waiting in the outbox. */
  readonly frames: number;
  /** Bytes the transport may have buffered. */
  readonly bytes: number;
}

/** What a client tells the hub about itself. */
export interface ClientOwner {
  /** Takes a validated message of `client` for its room. Returns an error code if refused. */
  submit(client: Client, content: string): ErrorCode | undefined;
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
  readonly #outbox: Channel<string>;
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
    this.#outbox = new Channel(options.limits.frames);
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
    return this.#gone || this.#outbox.trySend(frame);
  }

  /** Handles a validated frame from the peer. */
  receive(content: string): void {
    if (this.#gone) return;
    const refused = this.#owner.submit(this, content);
    if (refused) this.reject(refused);
  }

  /** Sends the peer an `error` frame; the connection stays open. */
  reject(code: ErrorCode): void {
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
    if (this.#closeWith) this.#transport.close(this.#closeWith.code, this.#closeWith.reason);
  }
}
