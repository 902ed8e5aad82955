/**
 * Cross-origin reads of the HTTP API (`/history`, `/api/*`) for the origins the operator lists.
 *
 * @module
 */

/** Headers a cross-origin page may read: the cursors' epoch, completeness, when to retry. */
const EXPOSED = "x-chat-epoch, x-chat-incomplete, retry-after";
const ALLOWED_HEADERS = "authorization, content-type";
/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * CORS for `ALLOWED_ORIGINS`: an allowed origin gets itself back in
 * `Access-Control-Allow-Origin` (with `Vary: Origin`), `*` allows any origin (as the Go server
 * this one replaces did). Unset: no CORS headers at all, so only same-origin pages read the API.
 * No credentials mode: tokens travel as Bearer headers or `?token=`, never as cookies.
 *
 * @example
 * ```ts
 * const cors = new CorsPolicy(["https://app.example.com"]);
 * const headers = cors.headersFor(request.headers.get("origin"));
 * ```
 */
export class CorsPolicy {
  readonly #any: boolean;
  readonly #allowed: ReadonlySet<string>;

  constructor(allowed: readonly string[] | undefined) {
    this.#any = allowed?.includes("*") ?? false;
    this.#allowed = new Set((allowed ?? []).map((origin) => origin.replace(/\/+$/, "")));
  }

  /** The CORS headers of an answer to `origin`; none if it is not allowed (or absent). */
  headersFor(origin: string | null): Record<string, string> {
    if (origin === null) return {};
    if (this.#any) {
      return { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED };
    }
    if (!this.#allowed.has(origin)) return {};
    return {
      "access-control-allow-origin": origin,
      "access-control-expose-headers": EXPOSED,
      vary: "Origin",
    };
  }

  /** The answer to a preflight (`OPTIONS`) for a route taking `methods`. */
  preflight(origin: string | null, methods: readonly string[]): Response {
    const headers = this.headersFor(origin);
    if (headers["access-control-allow-origin"] !== undefined) {
      headers["access-control-allow-methods"] = methods.join(", ");
      headers["access-control-allow-headers"] = ALLOWED_HEADERS;
      headers["access-control-max-age"] = String(PREFLIGHT_MAX_AGE_S);
    }
    return new Response(null, { status: 204, headers });
  }
}
