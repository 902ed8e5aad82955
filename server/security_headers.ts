/**
 * Security headers for every HTTP response, and a strict Content-Security-Policy for the page.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Headers every response carries. */
const COMMON_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

/** Options of {@linkcode contentSecurityPolicy}. */
export interface PolicyOptions {
  /** Who may frame the page (`FRAME_ANCESTORS`); none by default. */
  readonly frameAncestors?: readonly string[];
  /**
   * Script sources allowed besides the inline blocks' hashes, e.g. `'self'` for a page whose
   * module script imports `/sdk/chat.js`; none by default.
   */
  readonly scriptSources?: readonly string[];
}

/**
 * The policy for an HTML page with inline `<script>` and `<style>` blocks: nothing may load but
 * those exact blocks (by hash), the script sources named, and connections to this server. No
 * external requests at all.
 *
 * @example
 * ```ts
 * const csp = contentSecurityPolicy(clientHtml, { scriptSources: ["'self'"] });
 * ```
 * @throws never.
 */
export function contentSecurityPolicy(html: string, options: PolicyOptions = {}): string {
  const { frameAncestors = [], scriptSources = [] } = options;
  const scripts = [...scriptSources, ...inlineHashes(html, "script")].join(" ");
  const styles = inlineHashes(html, "style").join(" ");
  return [
    "default-src 'none'",
    `script-src ${scripts || "'none'"}`,
    `style-src ${styles || "'none'"}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors.length > 0 ? frameAncestors.join(" ") : "'none'"}`,
  ].join("; ");
}

/** Adds the common security headers (and `extra`) to a response, returning it. */
export function withSecurityHeaders(
  response: Response,
  extra: Record<string, string> = {},
): Response {
  // Upgrade (101) responses have immutable headers in Deno; they carry no body to protect.
  if (response.status === 101) return response;
  // A page whose policy lets listed origins frame it must not be denied framing by the older
  // header (browsers that know frame-ancestors ignore it, older ones would not).
  const framable = /frame-ancestors (?!'none')/.test(
    response.headers.get("content-security-policy") ?? "",
  );
  for (const [name, value] of Object.entries({ ...COMMON_HEADERS, ...extra })) {
    if (name === "x-frame-options" && framable) continue;
    response.headers.set(name, value);
  }
  return response;
}

function inlineHashes(html: string, tag: "script" | "style"): string[] {
  const pattern = new RegExp(`<${tag}\\b[^>]*>([\\s\\S]*?)</${tag}>`, "g");
  return [...html.matchAll(pattern)]
    .map((match) => `'sha256-${createHash("sha256").update(match[1] ?? "").digest("base64")}'`);
}
