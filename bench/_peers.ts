/**
 * The load generator's sockets: WebSocket connections ({@linkcode BenchSocket}) opened with
 * bounded concurrency, each joined once its `welcome` arrived, every later text frame handed
 * (as bytes) to one replaceable sink.
 *
 * @module
 */
import { BenchSocket, indexOf, numberAfter, startsWith } from "./_ws_client.ts";

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
  /** Each connection's `welcome`, before its later frames (which may come in the same read). */
  welcome?(peer: number, payload: Uint8Array): void;
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
const encoder = new TextEncoder();
const WELCOME = encoder.encode('{"type":"welcome"');
const MESSAGE = encoder.encode('{"type":"message"');
const RESUME = encoder.encode('{"type":"resume"');
const GAP = encoder.encode('{"type":"gap"');
const SEQ_FIELD = encoder.encode('"seq":');
const LAST_SEQ_FIELD = encoder.encode('"last_seq":');
const TO_SEQ_FIELD = encoder.encode('"to_seq":');
const EPOCH_FIELD = encoder.encode('"epoch":"');
const REASON_FIELD = encoder.encode('"reason":"');
const COMPLETE = encoder.encode('"complete":true');
const QUOTE = 0x22;
/** Seqs a member remembers as skipped (to tell a late one from a duplicate); more count as lost. */
const SKIPPED_LIMIT = 10_000;

/** Options of {@linkcode PeerSet.join}. */
export interface JoinOptions {
  /** Longest the connection may take to get its `welcome`. */
  readonly timeoutMs: number;
  /** Who connects in this slot from now on (a new member); the slot's current spec if absent. */
  readonly spec?: PeerSpec;
  /** Added to the query string, e.g. a resume cursor (`since_seq`, `epoch`). */
  readonly params?: Readonly<Record<string, string>>;
}

/**
 * A fixed number of member slots; slot `i` holds the i-th spec's connection once open. A slot
 * can be left, dropped and joined again (as the same member with a cursor, or as a new one):
 * frames of a connection the slot has moved on from never reach the sink.
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
  /** Frames after `welcome` go here. */
  sink: FrameSink = IGNORE;
  /** Connections the server (or the network) closed since the last {@linkcode PeerSet.open}. */
  droppedSinceOpen = 0;
  /** Close codes seen on dropped connections, with counts. */
  readonly dropCodes = new Map<number, number>();
  readonly #endpoints: readonly string[];
  readonly #specs: PeerSpec[];
  readonly #sockets: (BenchSocket | undefined)[];
  /** Per slot, the number of its current connection: frames of older ones are ignored. */
  readonly #generations: Uint32Array;
  #closing = false;

  /**
   * `endpoints`: the `/chat` URL of one server, or of each instance of one cluster (a spec's
   * `instance` picks one).
   */
  constructor(endpoints: readonly string[], specs: readonly PeerSpec[]) {
    if (endpoints.length === 0) throw new RangeError("PeerSet: no endpoint");
    this.#endpoints = endpoints;
    this.#specs = [...specs];
    this.#sockets = specs.map(() => undefined);
    this.#generations = new Uint32Array(specs.length);
  }

  /** Who is in each slot. */
  get specs(): readonly PeerSpec[] {
    return this.#specs;
  }

  /** Connections open now. */
  get openCount(): number {
    return this.#sockets.filter((socket) => socket?.isOpen).length;
  }

  /** Whether slot `index` has an open connection. */
  isOpen(index: number): boolean {
    return this.#sockets[index]?.isOpen ?? false;
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
          await this.#connect(index, options.timeoutMs, {});
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

  /**
   * Connects slot `index` (again), replacing any connection it has, and resolves once the new one
   * got its `welcome`.
   *
   * @throws {Error} if it fails or gets no `welcome` within `timeoutMs`.
   */
  async join(index: number, options: JoinOptions): Promise<void> {
    if (options.spec) this.#specs[index] = options.spec;
    this.drop(index);
    await this.#connect(index, options.timeoutMs, options.params ?? {});
  }

  /**
   * Drops slot `index`'s connection at once, without a close handshake (as a lost network does);
   * not counted as dropped by the server.
   */
  drop(index: number): void {
    this.#generations[index] = (this.#generations[index] ?? 0) + 1;
    this.#sockets[index]?.abort();
    this.#sockets[index] = undefined;
  }

  /**
   * Closes slot `index`'s connection with a close handshake; dropped if not ended within
   * `timeoutMs`. Frames still arriving on it are ignored.
   */
  async leave(index: number, timeoutMs: number): Promise<void> {
    const socket = this.#sockets[index];
    this.#generations[index] = (this.#generations[index] ?? 0) + 1;
    this.#sockets[index] = undefined;
    if (!socket) return;
    const timeout = timer(timeoutMs, undefined);
    await Promise.race([socket.close(), timeout.done]);
    timeout.cancel();
    await socket.abort();
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

  async #connect(index: number, timeoutMs: number, params: Record<string, string>): Promise<void> {
    const generation = (this.#generations[index] ?? 0) + 1;
    this.#generations[index] = generation;
    const spec = this.#specs[index] ?? { room: "none", user: "none" };
    const endpoints = this.#endpoints;
    const url = new URL(endpoints[(spec.instance ?? 0) % endpoints.length] ?? "");
    url.searchParams.set("r", spec.room);
    url.searchParams.set("u", spec.user);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    let welcomed: (() => void) | undefined;
    const welcome = new Promise<void>((resolve) => welcomed = resolve);
    // Frames that follow the welcome in the same read (a replay) go to the sink as well.
    const socket = await BenchSocket.open(url, (payload) => {
      if (this.#generations[index] !== generation) return;
      if (welcomed === undefined) return this.sink.frame(index, payload);
      if (!startsWith(payload, WELCOME)) return;
      welcomed();
      welcomed = undefined;
      this.sink.welcome?.(index, payload);
    }, timeoutMs);
    const timeout = timer(timeoutMs, `no welcome within ${timeoutMs} ms`);
    const outcome = await Promise.race([
      welcome.then(() => undefined),
      socket.ended.then((code) => `closed before welcome: ${code}`),
      timeout.done,
    ]);
    timeout.cancel();
    if (outcome !== undefined || this.#generations[index] !== generation) {
      await socket.abort();
      throw new Error(`${spec.room}/${spec.user}: ${outcome ?? "replaced while connecting"}`);
    }
    this.#sockets[index] = socket;
    socket.ended.then((code) => {
      if (this.#closing || this.#generations[index] !== generation) return;
      this.droppedSinceOpen++;
      this.dropCodes.set(code, (this.dropCodes.get(code) ?? 0) + 1);
    });
  }
}

/**
 * What each member slot knows of its room's sequence: the cursor to resume with, and a check that
 * the room's `seq` goes up by one across reconnects. A fresh join starts after `welcome`'s
 * `last_seq`; a resume after its cursor (the replay, then `resume`, then live frames).
 *
 * @example
 * ```ts
 * const ledger = new CursorLedger(peers.specs.length);
 * peers.sink = ledger; // or a sink that calls ledger.welcome() and ledger.frame()
 * peers.drop(0);
 * await peers.join(0, { timeoutMs: 10_000, params: ledger.resumeParams(0) });
 * ```
 */
export class CursorLedger implements FrameSink {
  /** Seqs skipped and not seen since. */
  lost = 0;
  duplicated = 0;
  /** Seqs that came after a later one. */
  reordered = 0;
  /** `gap` frames: seqs the server said it could not deliver. */
  gaps = 0;
  /** Reconnects with a cursor, and the `resume` frames that said `complete: true`. */
  resumes = 0;
  resumesComplete = 0;
  /** Resumes given up before their `resume` frame (the reconnect failed). */
  abandoned = 0;
  /** `resume` frames with `complete: false`, by `reason`. */
  readonly incomplete = new Map<string, number>();
  /** Per slot, the seq expected next; 0 before its first welcome. */
  readonly #next: Float64Array;
  readonly #epochs: (string | undefined)[];
  readonly #resuming: Uint8Array;
  readonly #skipped: (Set<number> | undefined)[];

  constructor(slots: number) {
    this.#next = new Float64Array(slots);
    this.#epochs = Array.from({ length: slots }, () => undefined);
    this.#resuming = new Uint8Array(slots);
    this.#skipped = Array.from({ length: slots }, () => undefined);
  }

  /** Resumes asked for whose `resume` frame has not come yet. */
  get awaitingResume(): number {
    return this.#resuming.reduce((sum, flag) => sum + flag, 0);
  }

  /** The newest seq slot `peer` holds with nothing missing before it (0: none). */
  cursor(peer: number): number {
    return Math.max(0, (this.#next[peer] ?? 0) - 1);
  }

  /**
   * The query of a reconnect that resumes slot `peer` (`since_seq`, `epoch`); from now on the
   * slot waits for its `resume` frame.
   */
  resumeParams(peer: number): Record<string, string> {
    const since = this.cursor(peer);
    const epoch = this.#epochs[peer];
    this.#resuming[peer] = 1;
    this.resumes++;
    if (since === 0 || epoch === undefined) return { since_seq: "0" };
    return { since_seq: String(since), epoch };
  }

  /** Whether slot `peer` waits for its `resume` frame: its messages are replayed ones. */
  replaying(peer: number): boolean {
    return this.#resuming[peer] === 1;
  }

  /** Slot `peer` gets a new member (a fresh join): forgets its cursor. */
  reset(peer: number): void {
    this.abandoned += this.#resuming[peer] ?? 0;
    this.#next[peer] = 0;
    this.#epochs[peer] = undefined;
    this.#resuming[peer] = 0;
    this.#skipped[peer] = undefined;
  }

  welcome(peer: number, payload: Uint8Array): void {
    const epoch = stringAfter(payload, EPOCH_FIELD);
    const lastSeq = numberAfter(payload, LAST_SEQ_FIELD) ?? 0;
    // A resume in the same epoch continues from the cursor; otherwise live frames follow last_seq.
    const since = this.cursor(peer);
    const continues = this.#resuming[peer] === 1 &&
      (since === 0 || epoch === this.#epochs[peer]);
    if (!continues) {
      this.#next[peer] = lastSeq + 1;
      this.#skipped[peer] = undefined;
    } else if (this.#next[peer] === 0) this.#next[peer] = 1;
    this.#epochs[peer] = epoch;
  }

  /** Checks a `message`, `gap` or `resume` frame; ignores the others. */
  frame(peer: number, payload: Uint8Array): void {
    if (startsWith(payload, MESSAGE)) {
      const seq = numberAfter(payload, SEQ_FIELD, MESSAGE.length);
      if (seq !== undefined) this.#seq(peer, seq);
    } else if (startsWith(payload, RESUME)) {
      this.#resuming[peer] = 0;
      if (indexOf(payload, COMPLETE) >= 0) this.resumesComplete++;
      else {
        const reason = stringAfter(payload, REASON_FIELD) ?? "none";
        this.incomplete.set(reason, (this.incomplete.get(reason) ?? 0) + 1);
      }
    } else if (startsWith(payload, GAP)) {
      this.gaps++;
      const to = numberAfter(payload, TO_SEQ_FIELD);
      if (to !== undefined) this.#next[peer] = to + 1;
    }
  }

  #seq(peer: number, seq: number): void {
    const next = this.#next[peer] ?? 0;
    if (next === 0 || seq === next) {
      this.#next[peer] = seq + 1;
    } else if (seq > next) {
      this.lost += seq - next;
      const skipped = this.#skipped[peer] ??= new Set();
      for (let missing = next; missing < seq && skipped.size < SKIPPED_LIMIT; missing++) {
        skipped.add(missing);
      }
      this.#next[peer] = seq + 1;
    } else if (this.#skipped[peer]?.delete(seq)) {
      this.lost--;
      this.reordered++;
    } else {
      this.duplicated++;
    }
  }
}

/** The JSON string value right after `field` (which ends with its opening quote). */
function stringAfter(payload: Uint8Array, field: Uint8Array): string | undefined {
  const at = indexOf(payload, field);
  if (at < 0) return undefined;
  const start = at + field.length;
  const end = payload.indexOf(QUOTE, start);
  return end < 0 ? undefined : new TextDecoder().decode(payload.subarray(start, end));
}

/**
 * `ws://host:port` or `ws://host:port/chat` → the `/chat` endpoint. Its room and user are dropped
 * (each peer names its own); other parameters (`batch=1`) stay for every peer.
 */
export function chatEndpoint(serverUrl: string): string {
  const url = new URL(serverUrl);
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/chat";
  url.searchParams.delete("r");
  url.searchParams.delete("u");
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
