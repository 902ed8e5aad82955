/**
 * A WebSocket client over a bare TCP connection that reads only when told to: the way to make a
 * peer that stops reading, which a browser-style WebSocket cannot be.
 */

const decoder = new TextDecoder();

/** A frame as it came off the wire (server frames are never masked). */
export interface RawFrame {
  readonly opcode: number;
  readonly payload: Uint8Array;
}

export class RawWebSocket {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects and completes the upgrade handshake, then reads nothing until asked. */
  static async open(port: number, path: string): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const client = new RawWebSocket(conn);
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n";
    await conn.write(new TextEncoder().encode(request));
    const head = await client.#readHead();
    if (!head.startsWith("HTTP/1.1 101")) {
      conn.close();
      throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
    }
    return client;
  }

  /** Reads frames until a close frame arrives; returns its code and the text frames before it. */
  async readUntilClose(signal: AbortSignal): Promise<{ code: number; texts: string[] }> {
    const texts: string[] = [];
    for (;;) {
      const frame = await this.#readFrame(signal);
      if (frame.opcode === 0x8) {
        const view = new DataView(frame.payload.buffer, frame.payload.byteOffset);
        return { code: frame.payload.length >= 2 ? view.getUint16(0) : 1005, texts };
      }
      if (frame.opcode === 0x1) texts.push(decoder.decode(frame.payload));
    }
  }

  close(): void {
    this.#conn.close();
  }

  async #readHead(): Promise<string> {
    for (;;) {
      const text = decoder.decode(this.#buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#buffer = this.#buffer.slice(new TextEncoder().encode(text.slice(0, end + 4)).length);
        return text.slice(0, end);
      }
      await this.#fill();
    }
  }

  async #readFrame(signal: AbortSignal): Promise<RawFrame> {
    for (;;) {
      signal.throwIfAborted();
      const frame = this.#parseFrame();
      if (frame) return frame;
      await this.#fill();
    }
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

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(1 << 16);
    const read = await this.#conn.read(chunk);
    if (read === null) throw new Error("connection closed before a close frame");
    const merged = new Uint8Array(this.#buffer.length + read);
    merged.set(this.#buffer);
    merged.set(chunk.subarray(0, read), this.#buffer.length);
    this.#buffer = merged;
  }
}
