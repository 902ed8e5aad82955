/** A WebSocket client for tests: frames are awaited one by one, each wait bounded by a timeout. */

/** A decoded server frame; tests check fields they care about. */
// deno-lint-ignore no-explicit-any
export type Frame = Record<string, any>;

const DEFAULT_TIMEOUT_MS = 5_000;

/** Headers of a WebSocket upgrade, for asserting what the server answers before upgrading. */
export const UPGRADE_HEADERS: Readonly<Record<string, string>> = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

/** What a close event said. */
export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
}

export class TestSocket {
  readonly socket: WebSocket;
  /** Resolves when the socket closes, whoever closed it. */
  readonly closed: Promise<CloseInfo>;
  readonly #frames: Frame[] = [];
  #waiter: (() => void) | undefined;
  #members = new Set<string>();

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.onmessage = (event) => {
      this.#frames.push(JSON.parse(event.data));
      this.#wake();
    };
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        resolve({ code: event.code, reason: event.reason });
        this.#wake();
      });
    });
  }

  /** Opens a socket and waits until it is open. */
  static open(url: string | URL): Promise<TestSocket> {
    const socket = new WebSocket(url);
    const client = new TestSocket(socket);
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve(client);
      socket.onerror = (event) =>
        reject(new Error(`cannot open ${url}: ${(event as ErrorEvent).message}`));
    });
  }

  /** Sends a text or binary frame. */
  send(data: string | Uint8Array<ArrayBuffer>): void {
    this.socket.send(data);
  }

  /** The next frame, in arrival order. */
  async next(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    const signal = AbortSignal.timeout(timeoutMs);
    while (this.#frames.length === 0) {
      if (this.socket.readyState === WebSocket.CLOSED) {
        throw new Error("socket closed while waiting for a frame");
      }
      await this.#wait(signal);
    }
    const frame = this.#frames.shift() as Frame;
    this.#track(frame);
    return frame;
  }

  /**
   * The room's members as the frames read so far tell it, sorted: the welcome's list, then each
   * presence delta (a join of a listed user or a leave of an absent one changes nothing).
   */
  get members(): string[] {
    return [...this.#members].sort();
  }

  #track(frame: Frame): void {
    if (frame.type === "welcome") this.#members = new Set(frame.members);
    else if (frame.type === "presence" && frame.event === "join") this.#members.add(frame.user);
    else if (frame.type === "presence" && frame.event === "leave") {
      this.#members.delete(frame.user);
    }
  }

  /** The next frame of a type, skipping (and returning) frames of other types. */
  async nextOfType(type: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (frame.type === type) return frame;
    }
  }

  /** Collects the next `count` frames of a type. */
  async collect(type: string, count: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame[]> {
    const frames: Frame[] = [];
    while (frames.length < count) frames.push(await this.nextOfType(type, timeoutMs));
    return frames;
  }

  /** Every frame until the server closes the socket, and how it closed it. */
  async untilClosed(
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<{ frames: Frame[]; close: CloseInfo }> {
    const signal = AbortSignal.timeout(timeoutMs);
    const frames: Frame[] = [];
    for (;;) {
      frames.push(...this.#frames.splice(0));
      if (this.socket.readyState === WebSocket.CLOSED) return { frames, close: await this.closed };
      await this.#wait(signal);
    }
  }

  /** Closes from the client side and waits for the close to complete. */
  async close(): Promise<CloseInfo> {
    if (
      this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING
    ) {
      this.socket.close(1000, "test done");
    }
    return await this.closed;
  }

  #wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new Error("timed out waiting for a frame"));
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiter = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
