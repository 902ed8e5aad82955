/**
 * The load generator's sockets: WebSocket connections ({@linkcode BenchSocket}) opened with
 * bounded concurrency, each joined once its `welcome` arrived, every later text frame handed
 * (as bytes) to one replaceable sink.
 *
 * @module
 */
import { BenchSocket, startsWith } from "./_ws_client.ts";

/** Where one member connects. */
export interface PeerSpec {
  readonly room: string;
  readonly user: string;
  /** Which of the {@linkcode PeerSet}'s endpoints (instances of one cluster); 0 if absent. */
  readonly instance?: number;
}

/** Takes every text frame after `welcome`; swapped per step, never per frame. */
export interface FrameSink {
  /** `payload` is valid only during the call. */
  frame(peer: number, payload: Uint8Array): void;
}

/** Options of {@linkcode PeerSet.open}. */
export interface OpenOptions {
  /** Connections being opened at once at most. */
  readonly concurrency: number;
  /** Longest one connection may take to get its `welcome`. */
  readonly timeoutMs: number;
}

/** How an open went. */
export interface OpenReport {
  readonly opened: number;
  readonly failed: number;
  /** From the first connection request to the last `welcome`. */
  readonly elapsedMs: number;
  readonly firstError?: string;
}

const IGNORE: FrameSink = { frame: () => {} };
const WELCOME = new TextEncoder().encode('{"type":"welcome"');

/**
 * A fixed list of members; `sockets[i]` is the i-th spec's connection once open.
 *
 * @example
 * ```ts
 * const peers = new PeerSet(["ws://127.0.0.1:8080/chat"], [{ room: "a", user: "u0" }]);
 * await peers.open({ concurrency: 200, timeoutMs: 10_000 });
 * peers.send(0, "hello");
 * await peers.closeAll(5_000);
 * ```
 */
export class PeerSet {
  readonly specs: readonly PeerSpec[];
  /** Frames after `welcome` go here. */
  sink: FrameSink = IGNORE;
  /** Connections the server (or the network) closed since the last {@linkcode PeerSet.open}. */
  droppedSinceOpen = 0;
  /** Close codes seen on dropped connections, with counts. */
  readonly dropCodes = new Map<number, number>();
  readonly #endpoints: readonly string[];
  readonly #sockets: (BenchSocket | undefined)[];
  #closing = false;

  /**
   * `endpoints`: the `/chat` URL of one server, or of each instance of one cluster (a spec's
   * `instance` picks one).
   */
  constructor(endpoints: readonly string[], specs: readonly PeerSpec[]) {
    if (endpoints.length === 0) throw new RangeError("PeerSet: no endpoint");
    this.#endpoints = endpoints;
    this.specs = specs;
    this.#sockets = specs.map(() => undefined);
  }

  /** Connections open now. */
  get openCount(): number {
    return this.#sockets.filter((socket) => socket?.isOpen).length;
  }

  /** Opens every member that is not open (all of them the first time). */
  async open(options: OpenOptions): Promise<OpenReport> {
    this.droppedSinceOpen = 0;
    const pending: number[] = [];
    this.#sockets.forEach((socket, index) => {
      if (!socket?.isOpen) pending.push(index);
    });
    let next = 0;
    let opened = 0;
    let failed = 0;
    let firstError: string | undefined;
    const started = performance.now();
    const lane = async () => {
      while (next < pending.length) {
        const index = pending[next++] ?? 0;
        try {
          this.#sockets[index] = await this.#connect(index, options.timeoutMs);
          opened++;
        } catch (error) {
          failed++;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, pending.length) }, lane));
    return { opened, failed, elapsedMs: performance.now() - started, firstError };
  }

  /** Sends a text frame on member `index` if it is open. @returns whether it was sent. */
  send(index: number, text: string): boolean {
    const socket = this.#sockets[index];
    if (!socket?.isOpen) return false;
    socket.sendText(text);
    return true;
  }

  /**
   * Closes every connection with a close handshake; those not ended within `timeoutMs` are
   * dropped.
   */
  async closeAll(timeoutMs: number): Promise<void> {
    this.#closing = true;
    const ended = this.#sockets.map((socket) => socket?.close());
    const timeout = timer(timeoutMs, undefined);
    await Promise.race([Promise.all(ended), timeout.done]);
    timeout.cancel();
    for (const socket of this.#sockets) socket?.abort();
  }

  async #connect(index: number, timeoutMs: number): Promise<BenchSocket> {
    const spec = this.specs[index] ?? { room: "none", user: "none" };
    const endpoints = this.#endpoints;
    const url = new URL(endpoints[(spec.instance ?? 0) % endpoints.length] ?? "");
    url.searchParams.set("r", spec.room);
    url.searchParams.set("u", spec.user);
    let welcomed: () => void = () => {};
    const welcome = new Promise<void>((resolve) => welcomed = resolve);
    const socket = await BenchSocket.open(url, (payload) => {
      if (startsWith(payload, WELCOME)) welcomed();
    }, timeoutMs);
    const timeout = timer(timeoutMs, `no welcome within ${timeoutMs} ms`);
    const outcome = await Promise.race([
      welcome.then(() => undefined),
      socket.ended.then((code) => `closed before welcome: ${code}`),
      timeout.done,
    ]);
    timeout.cancel();
    if (outcome !== undefined) {
      await socket.abort();
      throw new Error(`${spec.room}/${spec.user}: ${outcome}`);
    }
    this.#attach(index, socket);
    return socket;
  }

  #attach(index: number, socket: BenchSocket): void {
    socket.onText = (payload) => this.sink.frame(index, payload);
    socket.ended.then((code) => {
      if (this.#closing) return;
      this.droppedSinceOpen++;
      this.dropCodes.set(code, (this.dropCodes.get(code) ?? 0) + 1);
    });
  }
}

/** `ws://host:port` or `ws://host:port/chat` (any query dropped) → the `/chat` endpoint. */
export function chatEndpoint(serverUrl: string): string {
  const url = new URL(serverUrl);
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/chat";
  url.search = "";
  return url.toString();
}

/**
 * Resolves with `value` after `ms` unless cancelled. Unlike `AbortSignal.timeout` with a listener,
 * which keeps the process alive until it fires, this one is cleared once the race it is in ends.
 */
function timer<T>(ms: number, value: T): { done: Promise<T>; cancel(): void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<T>((resolve) => id = setTimeout(() => resolve(value), ms));
  return { done, cancel: () => clearTimeout(id) };
}
