/**
 * A WebSocket for the SDK tests: a real socket that records the URLs it opened and the frames it
 * sent, and can be made deaf (frames from the server no longer reach the SDK), to model a
 * connection whose answers are lost before it is cut.
 */

/** What the sockets of one test did; each test makes its own with {@linkcode spySockets}. */
export interface SpyLog {
  readonly urls: URL[];
  readonly sent: string[];
  readonly sockets: SpySocket[];
}

/** The interface the SDK uses, over a real WebSocket. */
export interface SpySocket {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** From now on, frames from the server are dropped before the SDK sees them. */
  deafen(): void;
}

/** A WebSocket class for `connect({ WebSocket })`, and the log of what its sockets did. */
export function spySockets(): { WebSocket: new (url: string) => SpySocket; log: SpyLog } {
  const log: SpyLog = { urls: [], sent: [], sockets: [] };
  class Spy implements SpySocket {
    readonly #inner: WebSocket;
    #deaf = false;
    onopen: ((event: Event) => void) | null = null;
    onmessage: ((event: MessageEvent) => void) | null = null;
    onclose: ((event: CloseEvent) => void) | null = null;
    onerror: ((event: Event) => void) | null = null;

    constructor(url: string) {
      log.urls.push(new URL(url));
      log.sockets.push(this);
      this.#inner = new WebSocket(url);
      this.#inner.onopen = (event) => this.onopen?.(event);
      this.#inner.onmessage = (event) => {
        if (!this.#deaf) this.onmessage?.(event);
      };
      this.#inner.onclose = (event) => this.onclose?.(event);
      this.#inner.onerror = (event) => this.onerror?.(event);
    }

    get readyState(): number {
      return this.#inner.readyState;
    }

    send(data: string): void {
      log.sent.push(data);
      this.#inner.send(data);
    }

    close(code?: number, reason?: string): void {
      this.#inner.close(code, reason);
    }

    deafen(): void {
      this.#deaf = true;
    }
  }
  return { WebSocket: Spy, log };
}
