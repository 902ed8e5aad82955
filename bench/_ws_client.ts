/**
 * A lean RFC 6455 client for the load generator, over `Deno.connect` with TCP_NODELAY.
 *
 * Why not Deno's `WebSocket`: its client turns TCP_NODELAY off (seen with strace:
 * `setsockopt(TCP_NODELAY, 0)`), so the senders' small frames wait on Nagle's algorithm and the
 * measured latency includes the generator's own TCP stack; and it dispatches one event per
 * frame, which made the generator, not the server, the bottleneck. This client reads whole TCP
 * chunks and hands each text frame's payload bytes to one callback, without decoding them.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const OPCODE = { continuation: 0x0, text: 0x1, close: 0x8, ping: 0x9, pong: 0xa } as const;
/** First read buffer; doubled whenever a read fills it, up to {@linkcode MAX_READ_BYTES}. */
const INITIAL_READ_BYTES = 4 * 1024;
const MAX_READ_BYTES = 256 * 1024;
const HEAD_END = encoder.encode("\r\n\r\n");
const NEWLINE = 0x0a;

/** The server answered the upgrade with something other than 101. */
export class UpgradeRefusedError extends Error {
  readonly code = "upgrade_refused";
  constructor(readonly statusLine: string) {
    super(`upgrade refused: ${statusLine}`);
    this.name = "UpgradeRefusedError";
  }
}

/** Called with each text frame's payload; the view is valid only during the call. */
export type TextHandler = (payload: Uint8Array) => void;

/**
 * One client connection.
 *
 * @example
 * ```ts
 * const url = new URL("ws://127.0.0.1:8080/chat?r=a&u=b");
 * const socket = await BenchSocket.open(url, (bytes) => console.log(bytes.length), 10_000);
 * socket.sendText("hello");
 * await socket.close();
 * ```
 */
export class BenchSocket {
  /**
   * Text frames every socket of this process received, a batched frame once: set against the
   * messages they held, it says how much batching joined.
   */
  static textFramesReceived = 0;
  /** Resolves with the close code once the connection has ended (1006: no close frame). */
  readonly ended: Promise<number>;
  onText: TextHandler;
  readonly #conn: Deno.TcpConn;
  #pending: Uint8Array[] = [];
  #writing = false;
  #open = true;
  #fragments: Uint8Array[] | undefined;
  #closeCode = 1006;
  #connClosed = false;

  private constructor(conn: Deno.TcpConn, onText: TextHandler, leftover: Uint8Array) {
    this.#conn = conn;
    this.onText = onText;
    this.ended = this.#read(leftover);
  }

  /**
   * Connects and upgrades.
   *
   * @throws {UpgradeRefusedError} when the answer is not 101 or takes longer than `timeoutMs`;
   * connection errors as they come.
   */
  static async open(url: URL, onText: TextHandler, timeoutMs: number): Promise<BenchSocket> {
    const port = Number(url.port || (url.protocol === "wss:" ? 443 : 80));
    const conn = await Deno.connect({ hostname: url.hostname, port });
    // A server that accepts but never answers: closing the connection fails the handshake read.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, timeoutMs);
    try {
      conn.setNoDelay(true);
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await writeAll(
        conn,
        encoder.encode(
          `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
            `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
            "Sec-WebSocket-Version: 13\r\n\r\n",
        ),
      );
      const { head, rest } = await readHead(conn);
      const statusLine = head.slice(0, head.indexOf("\r\n"));
      if (!/^HTTP\/1\.1 101 /.test(statusLine)) throw new UpgradeRefusedError(statusLine);
      return new BenchSocket(conn, onText, rest);
    } catch (error) {
      if (timedOut) {
        throw new UpgradeRefusedError(`no answer to the upgrade within ${timeoutMs} ms`);
      }
      conn.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether frames may still be sent. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Queues a text frame; frames queued while a write is in flight go out in the next one. */
  sendText(text: string): void {
    if (this.#open) this.#queue(encodeFrame(OPCODE.text, encoder.encode(text)));
  }

  /** Sends a close frame and resolves once the server has ended the connection. */
  close(code = 1000): Promise<number> {
    if (this.#open) {
      this.#queue(encodeFrame(OPCODE.close, new Uint8Array([code >> 8, code & 0xff])));
      this.#open = false;
    }
    return this.ended;
  }

  /** Drops the TCP connection without a close handshake (for a peer that stopped answering). */
  abort(): Promise<number> {
    this.#open = false;
    this.#closeConn();
    return this.ended;
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    this.#conn.close();
  }

  #queue(frame: Uint8Array): void {
    this.#pending.push(frame);
    if (!this.#writing) this.#flush();
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#pending.length > 0) {
        const chunk = concat(this.#pending);
        this.#pending = [];
        await writeAll(this.#conn, chunk);
      }
    } catch (error) {
      // The peer is gone; the read loop reports how the connection ended.
      if (!isConnectionGone(error)) throw error;
      this.#pending = [];
    } finally {
      this.#writing = false;
    }
  }

  async #read(leftover: Uint8Array): Promise<number> {
    let buffer = new Uint8Array(Math.max(INITIAL_READ_BYTES, leftover.length * 2));
    buffer.set(leftover);
    let filled = leftover.length;
    let lastReadFilled = false;
    try {
      for (;;) {
        const used = this.#parse(buffer, filled);
        if (used < 0) break; // a close frame
        buffer.copyWithin(0, used, filled);
        filled -= used;
        // Grow for a frame larger than the buffer, or while reads keep filling it (a busy peer).
        if (filled === buffer.length || (lastReadFilled && buffer.length < MAX_READ_BYTES)) {
          const bigger = new Uint8Array(buffer.length * 2);
          bigger.set(buffer.subarray(0, filled));
          buffer = bigger;
        }
        const n = await this.#conn.read(buffer.subarray(filled));
        if (n === null) break;
        filled += n;
        lastReadFilled = filled === buffer.length;
      }
    } catch (error) {
      if (!isConnectionGone(error)) throw error;
    }
    this.#open = false;
    this.#closeConn();
    return this.#closeCode;
  }

  /** Handles every complete frame in `buffer[0, filled)`. @returns bytes used, or -1 on close. */
  #parse(buffer: Uint8Array, filled: number): number {
    let at = 0;
    while (filled - at >= 2) {
      const first = buffer[at] ?? 0;
      let length = (buffer[at + 1] ?? 0) & 0x7f;
      let head = 2;
      if (length === 126) {
        if (filled - at < 4) break;
        length = ((buffer[at + 2] ?? 0) << 8) | (buffer[at + 3] ?? 0);
        head = 4;
      } else if (length === 127) {
        if (filled - at < 10) break;
        length = Number(new DataView(buffer.buffer, buffer.byteOffset + at + 2, 8).getBigUint64(0));
        head = 10;
      }
      if (filled - at < head + length) break;
      const payload = buffer.subarray(at + head, at + head + length);
      at += head + length;
      if (!this.#frame(first & 0x80, first & 0x0f, payload)) return -1;
    }
    return at;
  }

  /** @returns `false` once a close frame arrived. */
  #frame(fin: number, opcode: number, payload: Uint8Array): boolean {
    if (opcode === OPCODE.text || opcode === OPCODE.continuation) {
      if (!fin) {
        (this.#fragments ??= []).push(payload.slice());
        return true;
      }
      const whole = this.#fragments ? concat([...this.#fragments, payload]) : payload;
      this.#fragments = undefined;
      BenchSocket.textFramesReceived++;
      // A batched frame (batch=1) holds several frames, one per line: each is handed on alone,
      // so that what is counted is messages, not WebSocket frames. JSON has no raw newline.
      let start = 0;
      for (let end = whole.indexOf(NEWLINE); end >= 0; end = whole.indexOf(NEWLINE, start)) {
        this.onText(whole.subarray(start, end));
        start = end + 1;
      }
      this.onText(start === 0 ? whole : whole.subarray(start));
    } else if (opcode === OPCODE.ping) {
      if (this.#open) this.#queue(encodeFrame(OPCODE.pong, payload.slice()));
    } else if (opcode === OPCODE.close) {
      this.#closeCode = payload.length >= 2 ? ((payload[0] ?? 0) << 8) | (payload[1] ?? 0) : 1005;
      if (this.#open) this.close(this.#closeCode);
      return false;
    }
    return true;
  }
}

/** Reads up to the end of the HTTP head; returns it and whatever bytes followed it. */
async function readHead(conn: Deno.TcpConn): Promise<{ head: string; rest: Uint8Array }> {
  let buffer: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(chunk);
    if (n === null) throw new UpgradeRefusedError("connection closed during the handshake");
    buffer = concat([buffer, chunk.subarray(0, n)]);
    const end = indexOf(buffer, HEAD_END);
    if (end >= 0) {
      return {
        head: decoder.decode(buffer.subarray(0, end)),
        rest: buffer.slice(end + HEAD_END.length),
      };
    }
    if (buffer.length > 65_536) throw new UpgradeRefusedError("oversized response head");
  }
}

/** A masked client frame (mask key from Math.random: masking needs no secrecy here). */
function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const extended = payload.length < 126 ? 0 : payload.length < 0x10000 ? 2 : 8;
  const head = 2 + extended;
  const frame = new Uint8Array(head + 4 + payload.length);
  frame[0] = 0x80 | opcode;
  if (extended === 0) frame[1] = 0x80 | payload.length;
  else if (extended === 2) {
    frame[1] = 0x80 | 126;
    frame[2] = payload.length >> 8;
    frame[3] = payload.length & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(payload.length));
  }
  const mask = (Math.random() * 0x100000000) >>> 0;
  const maskBytes = [mask >>> 24, (mask >>> 16) & 0xff, (mask >>> 8) & 0xff, mask & 0xff];
  frame.set(maskBytes, head);
  for (let i = 0; i < payload.length; i++) {
    frame[head + 4 + i] = (payload[i] ?? 0) ^ (maskBytes[i & 3] ?? 0);
  }
  return frame;
}

/** The errors of a connection that the peer (or our own close) ended. */
function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Index of `needle` in `haystack` from `from`, or -1. */
export function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    if (haystack[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** Whether `bytes` starts with `prefix`. */
export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/**
 * The unsigned integer right after the first `field` (e.g. `"seq":`) at or after `from`, or
 * `undefined` if there is none.
 *
 * @example
 * ```ts
 * numberAfter(new TextEncoder().encode('{"seq":42}'), new TextEncoder().encode('"seq":')); // 42
 * ```
 */
export function numberAfter(payload: Uint8Array, field: Uint8Array, from = 0): number | undefined {
  const at = indexOf(payload, field, from);
  if (at < 0) return undefined;
  let position = at + field.length;
  let digit = payload[position] ?? 0;
  if (digit < 48 || digit > 57) return undefined;
  let value = 0;
  while (digit >= 48 && digit <= 57) {
    value = value * 10 + digit - 48;
    digit = payload[++position] ?? 0;
  }
  return value;
}
