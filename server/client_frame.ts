/**
 * Parses what a client sends over its socket into a validated message, at the edge.
 *
 * @module
 */
import type { ErrorCode } from "../chat/protocol.ts";

/** A frame turned into message content, or the `error` code to answer it with. */
export type ParsedFrame =
  | { readonly ok: true; readonly content: string }
  | { readonly ok: false; readonly code: ErrorCode };

// Postgres text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8: refuse both
// here, so a message that was broadcast can always be stored.
const NUL = "\u0000";

/**
 * Parses one WebSocket frame. A text frame that is a JSON object must be
 * `{"type":"message","content":"..."}`; any other text is the content itself.
 *
 * @example
 * ```ts
 * parseClientFrame("hello", 4000); // { ok: true, content: "hello" }
 * parseClientFrame('{"type":"nope"}', 4000); // { ok: false, code: "unknown_type" }
 * ```
 */
export function parseClientFrame(data: unknown, maxContentChars: number): ParsedFrame {
  if (typeof data !== "string") return { ok: false, code: "binary_frame" };
  let content: unknown = data;
  // Only frames that look like an object pay for JSON parsing.
  if (data.trimStart().startsWith("{")) {
    const object = parseObject(data);
    if (object) {
      if (typeof object.type !== "string") return { ok: false, code: "invalid_frame" };
      if (object.type !== "message") return { ok: false, code: "unknown_type" };
      content = object.content;
    }
  }
  if (typeof content !== "string") return { ok: false, code: "invalid_frame" };
  return validateContent(content, maxContentChars);
}

function parseObject(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) return undefined; // not JSON: plain text content
    throw error;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

function validateContent(raw: string, maxContentChars: number): ParsedFrame {
  const content = raw.trim();
  if (content.length === 0) return { ok: false, code: "empty_content" };
  // UTF-16 length bounds the code point count from above, so most frames skip the count.
  if (content.length > maxContentChars && codePoints(content) > maxContentChars) {
    return { ok: false, code: "content_too_long" };
  }
  if (content.includes(NUL) || !content.isWellFormed()) return { ok: false, code: "invalid_text" };
  return { ok: true, content };
}

function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}
