/**
 * The embedded browser client, served with the server's own rules for names and messages, so
 * that its form checks what the server checks (one source of truth).
 *
 * @module
 */
import clientHtml from "../static/client.html" with { type: "text" };
import { NAME_RULES } from "./request_params.ts";
import { contentSecurityPolicy } from "./security_headers.ts";

/** The data block the page reads its rules from; the server fills it in. */
const RULES_PLACEHOLDER = '<script id="chat-rules" type="application/json">null</script>';

/** What the page is told about the rules; names as on the wire. */
export interface PageRules {
  readonly room_pattern: string;
  readonly max_room_chars: number;
  readonly max_user_chars: number;
  readonly user_forbidden_pattern: string;
  readonly max_content_chars: number;
}

/** The client page, and the headers it is served with. */
export interface ClientPage {
  readonly html: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Builds the page once, with `maxContentChars` from the configuration, framable by
 * `frameAncestors` (`FRAME_ANCESTORS`; none by default).
 */
export function clientPage(
  maxContentChars: number,
  frameAncestors: readonly string[] = [],
): ClientPage {
  const rules: PageRules = { ...NAME_RULES, max_content_chars: maxContentChars };
  if (!clientHtml.includes(RULES_PLACEHOLDER)) {
    throw new Error("static/client.html has lost its chat-rules placeholder");
  }
  // `<` escaped: nothing in the data block can close the script element.
  const json = JSON.stringify(rules).replaceAll("<", "\\u003c");
  const html = clientHtml.replace(
    RULES_PLACEHOLDER,
    `<script id="chat-rules" type="application/json">${json}</script>`,
  );
  return {
    html,
    headers: {
      "content-type": "text/html; charset=utf-8",
      // Hashes of the page as served: the data block is one of its inline scripts. 'self': the
      // page's module script imports the SDK from /sdk/chat.js.
      "content-security-policy": contentSecurityPolicy(html, {
        frameAncestors,
        scriptSources: ["'self'"],
      }),
    },
  };
}
