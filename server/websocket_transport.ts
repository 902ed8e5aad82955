/**
 * Connects a WebSocket to the chat core: frames in are parsed here, frames out go through a
 * {@linkcode Transport}.
 *
 * @module
 */
import type { ResumeCursor } from "../chat/room_replays.ts";
import type { Client, ReadPosition, Transport } from "../chat/client.ts";
import type { Hub } from "../chat/hub.ts";
import { CLOSE_CODES } from "../chat/protocol.ts";
import { parseClientFrame } from "./client_frame.ts";
import { legacyFrame } from "./legacy_frames.ts";
import type { ProtocolLevel } from "./request_params.ts";
import { TokenBucket } from "./token_bucket.ts";
import type { Logger } from "../log/logger.ts";

/** Limits on what one connection may send. */
export interface SocketPolicy {
  readonly maxContentChars: number;
  /** Larger frames close the connection with 1009. */
  readonly maxFrameBytes: number;
  /** Sustained frames per second. */
  readonly ratePerSecond: number;
  /** Frames allowed at once above the sustained rate. */
  readonly rateBurst: number;
  /** Refused frames tolerated (recovering 1 per second) before closing with 1008. */
  readonly rateStrikes: number;
}

/** Who joins where, already validated and authorized. */
export interface ChatJoin {
  readonly room: string;
  readonly user: string;
  /** Where a resuming client stands; absent for a fresh connection. */
  readonly cursor?: ResumeCursor;
  /** Level 0 gets message-shaped frames only, and its frames are all plain text; 2 by default. */
  readonly level?: ProtocolLevel;
  /** Whether the user moderates the room (its token's `mod`). */
  readonly moderator?: boolean;
  /** Whether frames waiting together go out as one, joined by newlines (`batch=1`). */
  readonly batch?: boolean;
  /** The user's read position in the room, when it could be read before the upgrade. */
  readonly readPosition?: ReadPosition;
}

// setTimeout takes at most a 32-bit delay; longer expiries are reached in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Told when a socket this module handles has closed. */
export interface SocketCloseListener {
  socketClosed(socket: WebSocket): void;
}

/** Options of {@linkcode attachChatSocket}. */
export interface ChatSocketOptions {
  readonly hub: Hub;
  readonly policy: SocketPolicy;
  /** When the connection's token expires (ms since the epoch): closed with 4001 then. */
  readonly expiresAtMs?: number;
  /** Told once the socket has closed, after the hub. */
  readonly closed?: SocketCloseListener;
  /** Where connects and disconnects are logged (at info: who, where from, how it ended). */
  readonly logger?: Logger;
  /** The peer's address, for the log. */
  readonly remoteAddress?: string;
}

/**
 * Joins the socket's room once it opens and feeds it the socket's frames after enforcing the
 * connection's limits: frame size, rate, and token expiry.
 *
 * @example
 * ```ts
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * attachChatSocket(socket, { room, user }, { hub, policy });
 * return response;
 * ```
 */
export function attachChatSocket(
  socket: WebSocket,
  join: ChatJoin,
  options: ChatSocketOptions,
): void {
  new ChatSocket(socket, join, options);
}

/**
 * One connection, as the socket's event listener and the core's transport at once. A single
 * object holds everything a connection needs (its handlers are methods, not closures), because
 * idle connections are most of what a chat server keeps in memory.
 */
class ChatSocket implements Transport, EventListenerObject {
  readonly #socket: WebSocket;
  readonly #join: ChatJoin;
  readonly #options: ChatSocketOptions;
  readonly #rate: TokenBucket;
  /** Refused frames tolerated before 1008; made on the first refusal. */
  #strikes: TokenBucket | undefined;
  #client: Client | undefined;
  #expiry: ReturnType<typeof setTimeout> | undefined;
  #openedAt = 0;

  constructor(socket: WebSocket, join: ChatJoin, options: ChatSocketOptions) {
    this.#socket = socket;
    this.#join = join;
    this.#options = options;
    const { policy } = options;
    this.#rate = new TokenBucket({ perSecond: policy.ratePerSecond, burst: policy.rateBurst });
    socket.binaryType = "arraybuffer";
    for (const type of EVENTS) socket.addEventListener(type, this);
  }

  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  send(frame: string): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    if (this.#join.level !== 0) return this.#socket.send(frame);
    const legacy = legacyFrame(frame, this.#join.room);
    if (legacy !== undefined) this.#socket.send(legacy);
  }

  close(code: number, reason: string): Promise<void> {
    // Deno drops the connection (the peer sees no close code) when close() runs inside a
    // message dispatch or its microtasks while the peer's frames are still arriving; from a
    // fresh macrotask the close frame goes out cleanly. One timer per close, not per frame.
    return new Promise((resolve) => {
      setTimeout(() => {
        const state = this.#socket.readyState;
        if (state === WebSocket.OPEN || state === WebSocket.CONNECTING) {
          this.#socket.close(code, reason);
        }
        resolve();
      }, 0);
    });
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case "message":
        return this.#message((event as MessageEvent).data);
      case "open":
        return this.#open();
      case "close":
        return this.#closed((event as CloseEvent).code);
      case "error":
        // An error event is always followed by a close event, which does the cleanup.
        return event.preventDefault();
    }
  }

  #open(): void {
    this.#openedAt = Date.now();
    const client = this.#client = this.#options.hub.join(this.#join, this);
    this.#options.logger?.info("client.connected", {
      client: client.id,
      room: this.#join.room,
      user: this.#join.user,
      remote: this.#options.remoteAddress,
    });
    if (this.#options.expiresAtMs !== undefined) this.#expireAt(this.#options.expiresAtMs);
  }

  #message(data: unknown): void {
    const client = this.#client;
    // Once the client is gone nothing it sends is read: its close frame needs the way clear.
    if (!client?.connected) return;
    const { policy } = this.#options;
    if (frameBytes(data, policy.maxFrameBytes) > policy.maxFrameBytes) {
      return client.disconnect(CLOSE_CODES.frameTooLarge);
    }
    if (!this.#rate.take()) {
      this.#strikes ??= new TokenBucket({ perSecond: 1, burst: policy.rateStrikes });
      if (!this.#strikes.take()) return client.disconnect(CLOSE_CODES.rateLimited);
      return client.reject("rate_limited");
    }
    const frame = parseClientFrame(data, policy.maxContentChars, this.#join.level === 0);
    if (!frame.ok) client.reject(frame.code, frame.clientId);
    else if ("typing" in frame) client.typing();
    else if ("read" in frame) client.read(frame.read);
    else if ("change" in frame) client.change(frame.change, frame.clientId);
    else client.receive(frame.submission);
  }

  #closed(code: number): void {
    clearTimeout(this.#expiry);
    const client = this.#client;
    client?.transportClosed();
    this.#options.closed?.socketClosed(this.#socket);
    if (client === undefined) return; // never opened: refused before it joined
    this.#options.logger?.info("client.disconnected", {
      client: client.id,
      room: this.#join.room,
      user: this.#join.user,
      remote: this.#options.remoteAddress,
      code,
      duration_ms: Date.now() - this.#openedAt,
    });
  }

  #expireAt(atMs: number): void {
    const remainingMs = atMs - Date.now();
    if (remainingMs <= 0) return this.#client?.disconnect(CLOSE_CODES.tokenExpired);
    this.#expiry = setTimeout(() => this.#expireAt(atMs), Math.min(remainingMs, MAX_TIMER_MS));
  }
}

const EVENTS = ["open", "message", "close", "error"] as const;

/** The size of a frame in bytes, counted only as far as needed to compare with `limit`. */
function frameBytes(data: unknown, limit: number): number {
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (typeof data !== "string") return 0;
  // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4 bytes).
  if (data.length * 3 <= limit) return data.length;
  if (data.length > limit) return data.length;
  let bytes = 0;
  for (let i = 0; i < data.length; i++) {
    const unit = data.charCodeAt(i);
    bytes += unit < 0x80 ? 1 : unit < 0x800 ? 2 : unit >= 0xd800 && unit < 0xdc00 ? 4 : 3;
    if (unit >= 0xd800 && unit < 0xdc00) i++;
  }
  return bytes;
}
