/**
 * Tracks the WebSockets the server accepted, so shutdown can wait for their close handshakes.
 *
 * @module
 */

/**
 * The set of server-side sockets not yet closed.
 *
 * @example
 * ```ts
 * const sockets = new OpenSockets();
 * sockets.add(socket);
 * await sockets.allClosed(AbortSignal.timeout(2000));
 * ```
 */
export class OpenSockets {
  readonly #sockets = new Set<WebSocket>();
  #onEmpty: (() => void) | undefined;

  /** Sockets not yet closed. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Tracks a socket until its close event. */
  add(socket: WebSocket): void {
    this.#sockets.add(socket);
    socket.addEventListener("close", () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.#onEmpty?.();
    });
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
