/**
 * Connects a WebSocket to the chat core: frames in are parsed here, frames out go through a
 * {@linkcode Transport}.
 *
 * @module
 */
import type { Client, Transport } from "../chat/client.ts";
import type { Hub } from "../chat/hub.ts";
import { CLOSE_CODES } from "../chat/protocol.ts";
import { parseClientFrame } from "./client_frame.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Adapts a server-side WebSocket to the core's transport interface. */
class WebSocketTransport implements Transport {
  readonly #socket: WebSocket;

  constructor(socket: WebSocket) {
    this.#socket = socket;
  }

  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  send(frame: string): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(frame);
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
}

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

/** Options of {@linkcode attachChatSocket}. */
export interface ChatSocketOptions {
  readonly hub: Hub;
  readonly policy: SocketPolicy;
  /** When the connection's token expires (ms since the epoch): closed with 4001 then. */
  readonly expiresAtMs?: number;
}

/** Who joins where, already validated and authorized. */
export interface ChatJoin {
  readonly room: string;
  readonly user: string;
  readonly since?: string;
}

// setTimeout takes at most a 32-bit delay; longer expiries are reached in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

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
  const { policy } = options;
  const rate = new TokenBucket({ perSecond: policy.ratePerSecond, burst: policy.rateBurst });
  const strikes = new TokenBucket({ perSecond: 1, burst: policy.rateStrikes });
  let client: Client | undefined;
  let expiry: ReturnType<typeof setTimeout> | undefined;
  const expireAt = (atMs: number) => {
    const remainingMs = atMs - Date.now();
    if (remainingMs <= 0) return client?.disconnect(CLOSE_CODES.tokenExpired);
    expiry = setTimeout(() => expireAt(atMs), Math.min(remainingMs, MAX_TIMER_MS));
  };
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    client = options.hub.join(join, new WebSocketTransport(socket));
    if (options.expiresAtMs !== undefined) expireAt(options.expiresAtMs);
  };
  socket.onmessage = (event) => {
    // Once the client is gone nothing it sends is read: its close frame needs the way clear.
    if (!client?.connected) return;
    if (frameBytes(event.data, policy.maxFrameBytes) > policy.maxFrameBytes) {
      return client.disconnect(CLOSE_CODES.frameTooLarge);
    }
    if (!rate.take()) {
      if (!strikes.take()) return client.disconnect(CLOSE_CODES.rateLimited);
      return client.reject("rate_limited");
    }
    const frame = parseClientFrame(event.data, policy.maxContentChars);
    if (frame.ok) client.receive(frame.content);
    else client.reject(frame.code);
  };
  socket.onclose = () => {
    clearTimeout(expiry);
    client?.transportClosed();
  };
  // An error event is always followed by a close event, which does the cleanup.
  socket.onerror = (event) => event.preventDefault();
}

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
