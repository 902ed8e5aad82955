/**
 * Which browser origins may open sockets: the defence against cross-site WebSocket hijacking.
 *
 * @module
 */

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * Decides on the `Origin` header of an upgrade. Requests without one do not come from a browser
 * page and are allowed (a token still guards them when auth is on).
 *
 * @example
 * ```ts
 * const policy = new OriginPolicy(undefined); // same host and localhost
 * policy.allows(request.headers.get("origin"), request.headers.get("host"));
 * ```
 */
export class OriginPolicy {
  readonly #allowed: ReadonlySet<string> | undefined;

  /** `allowed`: exact origins such as `https://chat.example.com`, or `*`; unset: the defaults. */
  constructor(allowed: readonly string[] | undefined) {
    this.#allowed = allowed && new Set(allowed.map((origin) => origin.replace(/\/+$/, "")));
  }

  allows(origin: string | null, host: string | null): boolean {
    if (origin === null) return true;
    if (this.#allowed) return this.#allowed.has("*") || this.#allowed.has(origin);
    if (!URL.canParse(origin)) return false;
    const parsed = new URL(origin);
    // Same host as the request (scheme aside: TLS is often terminated in front of us).
    return parsed.host === host || LOCAL_HOSTS.has(parsed.hostname);
  }
}
