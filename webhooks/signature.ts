/**
 * The `X-Chat-Signature` header: `sha256=<hex HMAC-SHA256 of the raw body, keyed by
 * WEBHOOK_SECRET>`.
 *
 * @module
 */

/** The header that carries the signature. */
export const SIGNATURE_HEADER = "X-Chat-Signature";

const encoder = new TextEncoder();

/**
 * Signs webhook bodies with one secret; the key is imported once.
 *
 * @example
 * ```ts
 * const signer = new WebhookSigner("a secret of at least 32 bytes .....");
 * const header = await signer.sign('{"id":"..."}'); // "sha256=5d1c..."
 * await signer.verify('{"id":"..."}', header); // true
 * ```
 */
export class WebhookSigner {
  readonly #key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.#key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  }

  /**
   * The header value for `body` (the exact string sent, encoded as UTF-8).
   *
   * @throws never in practice: WebCrypto refuses only keys and algorithms, fixed here.
   */
  async sign(body: string): Promise<string> {
    const mac = await crypto.subtle.sign("HMAC", await this.#key, encoder.encode(body));
    return `sha256=${toHex(new Uint8Array(mac))}`;
  }

  /**
   * Whether `header` is the signature of `body`, compared in constant time (WebCrypto's verify).
   * What a receiver does with the raw body before parsing it.
   *
   * @throws never: a malformed header is `false`.
   */
  async verify(body: string, header: string | null): Promise<boolean> {
    const hex = /^sha256=([0-9a-f]{64})$/.exec(header ?? "")?.[1];
    if (hex === undefined) return false;
    return await crypto.subtle.verify("HMAC", await this.#key, fromHex(hex), encoder.encode(body));
  }
}

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}
