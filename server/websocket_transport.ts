/**
 * Connects a WebSocket to the chat core: frames in are parsed here, frames out go through a
 * {@linkcode Transport}.
 *
 * @module
 */
import type { Client, Transport } from "../chat/client.ts";
import type { Hub } from "../chat/hub.ts";
import { parseClientFrame } from "./client_frame.ts";
import type { ChatParams } from "./request_params.ts";

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

  close(code: number, reason: string): void {
    // Deno drops the connection (the peer sees no close code) when close() runs inside a
    // message dispatch or its microtasks while the peer's frames are still arriving; from a
    // fresh macrotask the close frame goes out cleanly. One timer per close, not per frame.
    setTimeout(() => {
      const state = this.#socket.readyState;
      if (state === WebSocket.OPEN || state === WebSocket.CONNECTING) {
        this.#socket.close(code, reason);
      }
    }, 0);
  }
}

/** Options of {@linkcode attachChatSocket}. */
export interface ChatSocketOptions {
  readonly hub: Hub;
  readonly maxContentChars: number;
}

/**
 * Joins the socket's room once it opens and feeds it the socket's validated frames.
 *
 * @example
 * ```ts
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * attachChatSocket(socket, params, { hub, maxContentChars: 4000 });
 * return response;
 * ```
 */
export function attachChatSocket(
  socket: WebSocket,
  params: ChatParams,
  options: ChatSocketOptions,
): void {
  let client: Client | undefined;
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    client = options.hub.join(params, new WebSocketTransport(socket));
  };
  socket.onmessage = (event) => {
    if (!client) return;
    const frame = parseClientFrame(event.data, options.maxContentChars);
    if (frame.ok) client.receive(frame.content);
    else client.reject(frame.code);
  };
  socket.onclose = () => client?.transportClosed();
  // An error event is always followed by a close event, which does the cleanup.
  socket.onerror = (event) => event.preventDefault();
}
