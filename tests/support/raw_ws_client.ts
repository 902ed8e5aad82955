/**
 * A WebSocket client over a bare TCP connection that reads only when told to: the way to make a
 * peer that stops reading, which a browser-style WebSocket cannot be. It can also send what no
 * well-behaved client would: any opcode, invalid UTF-8, lying lengths, bytes that are no frame.
 */

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Opcodes of RFC 6455. */
export const OPCODES = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** A frame as it came off the wire (server frames are never masked). */
export interface RawFrame {
  readonly opcode: number;
  readonly payload: Uint8Array;
}

/** How a connection ended, as the client saw it. */
export type RawEnding =
  /** A close frame arrived (1005 when it carried no code). */
  | { readonly kind: "close"; readonly code: number; readonly reason: string }
  /** The TCP connection ended (EOF) without a close frame. */
  | { readonly kind: "eof" }
  /** The TCP connection was reset without a close frame. */
  | { readonly kind: "reset" };

/** Options of {@linkcode encodeClientFrame}. */
export interface FrameOptions {
  /** FIN bit; `false` starts or continues a fragmented message. Default `true`. */
  readonly fin?: boolean;
  /** The payload length to declare, when it should differ from the payload's (a lie). */
  readonly declaredLength?: number;
}

/** Options of {@linkcode RawWebSocket.open}. */
export interface RawOpenOptions {
  /** Extra request headers (for example `Origin`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Answer the server's pings with pongs whenever frames are read. Default `false`. */
  readonly answerPings?: boolean;
}

/** The server answered the upgrade request with something other than 101. */
export class UpgradeRefusedError extends Error {
  /** HTTP status of the answer. */
  readonly status: number;
  /** The answer's body (as far as its `content-length` says). */
  readonly body: string;

  constructor(status: number, statusLine: string, body: string) {
    super(`upgrade refused: ${statusLine}`);
    this.name = "UpgradeRefusedError";
    this.status = status;
    this.body = body;
  }
}

/**
 * Encodes one masked client frame. The mask is fixed (tests need no secrecy, and a fixed mask
 * lets a flood reuse one encoded buffer).
 *
 * @example
 * ```ts
 * const frame = encodeClientFrame(OPCODES.text, new TextEncoder().encode("hi"));
 * ```
 */
export function encodeClientFrame(
  opcode: number,
  payload: Uint8Array,
  options: FrameOptions = {},
): Uint8Array<ArrayBuffer> {
  const length = options.declaredLength ?? payload.length;
  const extended = length < 126 ? 0 : length < 0x10000 ? 2 : 8;
  const head = 2 + extended;
  const frame = new Uint8Array(head + 4 + payload.length);
  const view = new DataView(frame.buffer);
  frame[0] = (options.fin === false ? 0 : 0x80) | (opcode & 0x0f);
  if (extended === 0) frame[1] = 0x80 | length;
  else if (extended === 2) {
    frame[1] = 0x80 | 126;
    view.setUint16(2, length);
  } else {
    frame[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(length));
  }
  const mask = [0x37, 0xfa, 0x21, 0x3d];
  frame.set(mask, head);
  for (let i = 0; i < payload.length; i++) {
    frame[head + 4 + i] = (payload[i] as number) ^ (mask[i & 3] as number);
  }
  return frame;
}

export class RawWebSocket {
  readonly #conn: Deno.TcpConn;
  readonly #answerPings: boolean;
  #buffer = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.TcpConn, answerPings: boolean) {
    this.#conn = conn;
    this.#answerPings = answerPings;
  }

  /**
   * Connects and completes the upgrade handshake, then reads nothing until asked.
   *
   * @throws {UpgradeRefusedError} when the answer is not 101 (the connection is closed).
   */
  static async open(
    port: number,
    path: string,
    options: RawOpenOptions = {},
  ): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const client = new RawWebSocket(conn, options.answerPings ?? false);
    const extra = Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      `Sec-WebSocket-Version: 13\r\n${extra}\r\n`;
    try {
      await client.write(encoder.encode(request));
      const head = await client.#readHead();
      const statusLine = head.split("\r\n")[0] ?? "";
      if (!statusLine.startsWith("HTTP/1.1 101")) {
        const status = Number(statusLine.split(" ")[1]);
        const body = await client.#readBody(head);
        throw new UpgradeRefusedError(status, statusLine, body);
      }
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Writes bytes as they are: frames, parts of frames, or garbage. */
  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  /** Sends one masked frame (see {@linkcode encodeClientFrame}). */
  sendFrame(opcode: number, payload: Uint8Array, options?: FrameOptions): Promise<void> {
    return this.write(encodeClientFrame(opcode, payload, options));
  }

  /** Sends a text frame. */
  sendText(text: string): Promise<void> {
    return this.sendFrame(OPCODES.text, encoder.encode(text));
  }

  /** Sends a close frame with `code` (the connection stays open to read the answer). */
  sendClose(code: number): Promise<void> {
    const payload = new Uint8Array(2);
    new DataView(payload.buffer).setUint16(0, code);
    return this.sendFrame(OPCODES.close, payload);
  }

  /**
   * The next frame, or `undefined` at EOF. Pings are answered first when the socket was opened
   * with `answerPings`. An abort closes the connection (a pending read cannot be cancelled
   * otherwise) and rejects with the signal's reason.
   *
   * @throws {Deno.errors.ConnectionReset} when the peer reset the connection.
   */
  async readFrame(signal: AbortSignal): Promise<RawFrame | undefined> {
    for (;;) {
      signal.throwIfAborted();
      const frame = this.#parseFrame();
      if (frame) {
        if (frame.opcode === OPCODES.ping && this.#answerPings && !this.#closed) {
          await this.sendFrame(OPCODES.pong, frame.payload);
        }
        return frame;
      }
      if (!(await this.#fill(signal))) return undefined;
    }
  }

  /** Reads frames until a close frame arrives; returns its code and the text frames before it. */
  async readUntilClose(signal: AbortSignal): Promise<{ code: number; texts: string[] }> {
    const { ending, texts } = await this.readUntilEnd(signal);
    if (ending.kind !== "close") {
      throw new Error(`connection ended (${ending.kind}) before a close frame`);
    }
    return { code: ending.code, texts };
  }

  /** Reads frames until a close frame, EOF or a reset; returns how it ended and the texts. */
  async readUntilEnd(signal: AbortSignal): Promise<{ ending: RawEnding; texts: string[] }> {
    const texts: string[] = [];
    for (;;) {
      let frame: RawFrame | undefined;
      try {
        frame = await this.readFrame(signal);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) {
          return { ending: { kind: "reset" }, texts };
        }
        throw error;
      }
      if (frame === undefined) return { ending: { kind: "eof" }, texts };
      if (frame.opcode === OPCODES.close) return { ending: closeOf(frame.payload), texts };
      if (frame.opcode === OPCODES.text) texts.push(decoder.decode(frame.payload));
    }
  }

  /** Closes the TCP connection (no close frame); calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }

  async #readHead(): Promise<string> {
    for (;;) {
      const end = indexOfHeadEnd(this.#buffer);
      if (end >= 0) {
        const head = decoder.decode(this.#buffer.subarray(0, end));
        this.#buffer = this.#buffer.slice(end + 4);
        return head;
      }
      if (!(await this.#fill(undefined))) throw new Error("connection closed during the handshake");
    }
  }

  async #readBody(head: string): Promise<string> {
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    while (this.#buffer.length < length) {
      if (!(await this.#fill(undefined))) break;
    }
    return decoder.decode(this.#buffer.subarray(0, length));
  }

  #parseFrame(): RawFrame | undefined {
    const bytes = this.#buffer;
    if (bytes.length < 2) return undefined;
    const opcode = (bytes[0] as number) & 0x0f;
    let length = (bytes[1] as number) & 0x7f;
    let offset = 2;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (length === 126) {
      if (bytes.length < 4) return undefined;
      length = view.getUint16(2);
      offset = 4;
    } else if (length === 127) {
      if (bytes.length < 10) return undefined;
      length = Number(view.getBigUint64(2));
      offset = 10;
    }
    if (bytes.length < offset + length) return undefined;
    const payload = bytes.slice(offset, offset + length);
    this.#buffer = bytes.slice(offset + length);
    return { opcode, payload };
  }

  /** Reads more bytes into the buffer; `false` at EOF. */
  async #fill(signal: AbortSignal | undefined): Promise<boolean> {
    const chunk = new Uint8Array(1 << 16);
    const onAbort = () => this.close();
    signal?.addEventListener("abort", onAbort, { once: true });
    let read: number | null;
    try {
      read = await this.#conn.read(chunk);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    if (read === null) return false;
    const merged = new Uint8Array(this.#buffer.length + read);
    merged.set(this.#buffer);
    merged.set(chunk.subarray(0, read), this.#buffer.length);
    this.#buffer = merged;
    return true;
  }
}

function closeOf(payload: Uint8Array): RawEnding {
  if (payload.length < 2) return { kind: "close", code: 1005, reason: "" };
  const code = new DataView(payload.buffer, payload.byteOffset).getUint16(0);
  return { kind: "close", code, reason: decoder.decode(payload.subarray(2)) };
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
