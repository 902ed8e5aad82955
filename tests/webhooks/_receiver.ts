/**
 * A webhook endpoint for tests: Deno.serve on 127.0.0.1 and a free port, recording every request
 * (retries included) with its raw body and whether its signature verifies, recomputed here with
 * WebCrypto rather than with the server's own signer. Tests await what arrives, bounded by a
 * timeout.
 */

/** One request the endpoint received. */
export interface Received {
  readonly id: string;
  readonly type: string;
  readonly time: string;
  // deno-lint-ignore no-explicit-any
  readonly data: Record<string, any>;
  /** The body exactly as received. */
  readonly raw: string;
  readonly signature: string | null;
  /** Whether `signature` is `sha256=<hex HMAC-SHA256(secret, raw)>`. */
  readonly verified: boolean;
  /** `performance.now()` at arrival. */
  readonly at: number;
}

/** How the endpoint answers one request: a status, or `"hang"` (until the receiver closes). */
export type Answer = number | "hang";

interface Waiter {
  readonly check: () => boolean;
  readonly resolve: () => void;
}

const encoder = new TextEncoder();

/** The secret tests sign with: 32 bytes, as WEBHOOK_SECRET requires. */
export const TEST_SECRET = "test-webhook-secret-of-32-bytes!";

export class WebhookReceiver {
  /** Every request so far, in arrival order. */
  readonly requests: Received[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #key: Promise<CryptoKey>;
  readonly #waiters = new Set<Waiter>();
  /** Ends every hanging answer when the receiver closes. */
  readonly #closing = new AbortController();
  /** Decides each answer; 204 by default. */
  answer: (received: Received) => Answer = () => 204;

  private constructor(secret: string) {
    this.#key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
  }

  static start(secret: string = TEST_SECRET): WebhookReceiver {
    return new WebhookReceiver(secret);
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/hook`;
  }

  /** Requests of one type, optionally about one user or room (`data.user` or `data.room`). */
  of(type: string, name?: string): Received[] {
    return this.requests.filter((received) =>
      received.type === type &&
      (name === undefined || received.data.user === name || received.data.room === name)
    );
  }

  /** Resolves once `check` holds over what arrived; rejects after `timeoutMs`. */
  until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    const signal = AbortSignal.timeout(timeoutMs);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        check,
        resolve: () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Resolves once `count` requests of `type` (about `name`) arrived. */
  untilCount(type: string, count: number, name?: string, timeoutMs?: number): Promise<void> {
    const about = name === undefined ? "" : ` about ${name}`;
    return this.until(
      `${count} ${type}${about}`,
      () => this.of(type, name).length >= count,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    this.#closing.abort();
    await this.#server.shutdown();
  }

  async #handle(request: Request): Promise<Response> {
    const raw = await request.text();
    const signature = request.headers.get("x-chat-signature");
    const mac = await crypto.subtle.sign("HMAC", await this.#key, encoder.encode(raw));
    const expected = "sha256=" + [...new Uint8Array(mac)]
      .map((byte) => byte.toString(16).padStart(2, "0")).join("");
    const body = JSON.parse(raw);
    const received: Received = {
      ...body,
      raw,
      signature,
      verified: signature === expected,
      at: performance.now(),
    };
    this.requests.push(received);
    for (const waiter of [...this.#waiters]) {
      if (waiter.check()) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
    const answer = this.answer(received);
    if (answer === "hang") {
      // Until the receiver closes: the client gives up long before (request.signal would say
      // when, but Deno warns of its legacy semantics).
      const closing = this.#closing.signal;
      await new Promise((resolve) => closing.addEventListener("abort", resolve, { once: true }));
      return new Response(null, { status: 503 });
    }
    return new Response(null, { status: answer });
  }
}
