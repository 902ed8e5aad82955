/**
 * Tracks the WebSockets the server accepted, so shutdown can wait for their close handshakes,
 * and gives each one's connection-limit slot back when it closes.
 *
 * @module
 */
import type { ConnectionLimits } from "./connection_limits.ts";
import type { SocketCloseListener } from "./websocket_transport.ts";

/**
 * The server-side sockets not yet closed, each with the address it was admitted for.
 *
 * @example
 * ```ts
 * const sockets = new OpenSockets(limits);
 * if (limits.admit(ip) === "ok") sockets.add(socket, ip);
 * // ... on the socket's close event: sockets.socketClosed(socket);
 * await sockets.allClosed(AbortSignal.timeout(2000));
 * ```
 */
export class OpenSockets implements SocketCloseListener {
  readonly #limits: ConnectionLimits;
  readonly #sockets = new Map<WebSocket, string>();
  #onEmpty: (() => void) | undefined;

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  /** Sockets not yet closed. */
  get size(): number {
    return this.#sockets.size;
  }

  /**
   * Tracks a socket admitted by the limits for `ip` until {@linkcode OpenSockets.socketClosed}
   * (the socket's handler calls it: a listener per socket would cost memory per connection).
   */
  add(socket: WebSocket, ip: string): void {
    this.#sockets.set(socket, ip);
  }

  /** Forgets a closed socket and releases its slot in the limits. Calling it twice is harmless. */
  socketClosed(socket: WebSocket): void {
    const ip = this.#sockets.get(socket);
    if (ip === undefined) return;
    this.#sockets.delete(socket);
    this.#limits.release(ip);
    if (this.#sockets.size === 0) this.#onEmpty?.();
  }

  /**
   * Resolves once every tracked socket has closed, or when `signal` aborts (a peer that never
   * answers a close frame must not hold shutdown hostage).
   */
  allClosed(signal: AbortSignal): Promise<void> {
    if (this.#sockets.size === 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#onEmpty = undefined;
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#onEmpty = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
