/**
 * Parses what a client sends over its socket into a validated message, at the edge.
 *
 * @module
 */
import type { ChangeRequest, Submission } from "../chat/message.ts";
import type { ErrorCode } from "../chat/protocol.ts";

/**
 * A frame turned into a submission, or the `error` code to answer it with (and the frame's
 * client id, when it had a valid one, so the client can tell which message was refused).
 */
export type ParsedFrame =
  | ParsedSubmission
  /** `{"type":"typing"}`: the sender is typing (ephemeral). */
  | { readonly ok: true; readonly typing: true }
  /** `{"type":"read","seq":n}`: the sender has read the room up to `seq`. */
  | { readonly ok: true; readonly read: number }
  /** `edit`, `delete` or `react` of the message at a seq. */
  | { readonly ok: true; readonly change: ChangeRequest; readonly clientId?: string };

/** A message's content and client id, checked, or why they are refused. */
export type ParsedSubmission =
  | { readonly ok: true; readonly submission: Submission }
  | { readonly ok: false; readonly code: ErrorCode; readonly clientId?: string };

const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

// Postgres text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8: refuse both
// here, so a message that was broadcast can always be stored.
const NUL = "\u0000";

/**
 * Parses one WebSocket frame. A text frame that is a JSON object must be
 * `{"type":"message","content":"..."}` (optional `client_id`, `reply_to`), `typing`, `read`,
 * `edit`, `delete` or `react`; any other text is the content itself.
 *
 * @example
 * ```ts
 * parseClientFrame("hello", 4000); // { ok: true, submission: { content: "hello" } }
 * parseClientFrame('{"type":"nope"}', 4000); // { ok: false, code: "unknown_type" }
 * ```
 */
export function parseClientFrame(
  data: unknown,
  maxContentChars: number,
  plainText = false,
): ParsedFrame {
  if (typeof data !== "string") return { ok: false, code: "binary_frame" };
  // Only frames that look like an object pay for JSON parsing (none at level 0: every frame
  // there is a message's text, whatever it looks like).
  if (!plainText && data.trimStart().startsWith("{")) {
    const object = parseObject(data);
    if (object) {
      if (typeof object.type !== "string") return { ok: false, code: "invalid_frame" };
      if (object.type === "typing") return { ok: true, typing: true };
      if (object.type === "read") {
        const seq = object.seq;
        return Number.isSafeInteger(seq) && (seq as number) >= 1
          ? { ok: true, read: seq as number }
          : { ok: false, code: "invalid_read" };
      }
      if (object.type in CHANGE_KINDS) return parseChange(object, maxContentChars);
      if (object.type !== "message") return { ok: false, code: "unknown_type" };
      return parseSubmission(object.content, object.client_id, maxContentChars, object.reply_to);
    }
  }
  return parseSubmission(data, undefined, maxContentChars);
}

/**
 * A message's content and optional client id, checked as every way into a room checks them
 * (a socket frame, the server API's body).
 *
 * @example
 * ```ts
 * parseSubmission("hello", "c-1", 4000); // { ok: true, submission: { content: "hello", clientId: "c-1" } }
 * ```
 */
export function parseSubmission(
  content: unknown,
  rawClientId: unknown,
  maxContentChars: number,
  rawReplyTo?: unknown,
): ParsedSubmission {
  let clientId: string | undefined;
  if (rawClientId !== undefined) {
    if (typeof rawClientId !== "string" || !CLIENT_ID_PATTERN.test(rawClientId)) {
      return { ok: false, code: "invalid_client_id" };
    }
    clientId = rawClientId;
  }
  const refuse = (code: ErrorCode): ParsedSubmission => ({
    ok: false,
    code,
    ...(clientId !== undefined && { clientId }),
  });
  if (typeof content !== "string") return refuse("invalid_frame");
  const replyTo = rawReplyTo ?? undefined;
  if (replyTo !== undefined && !(Number.isSafeInteger(replyTo) && (replyTo as number) >= 1)) {
    return refuse("invalid_reply_to");
  }
  const checked = validateContent(content, maxContentChars);
  if (typeof checked !== "string") return refuse(checked.code);
  return {
    ok: true,
    submission: {
      content: checked,
      ...(clientId !== undefined && { clientId }),
      ...(replyTo !== undefined && { replyTo: replyTo as number }),
    },
  };
}

const CHANGE_KINDS = { edit: true, delete: true, react: true } as const;

/** A reaction named by a short token: `thumbs_up`, `+1`. */
const REACTION_TOKEN = /^[a-z0-9_+-]{1,32}$/;
/** What an emoji grapheme is made of: pictographs, their modifiers, joiners, flags, keycaps, tags. */
const EMOJI_PARTS = /^[\p{Extended_Pictographic}\p{Emoji_Component}\u200d\ufe0f\u20e3]+$/u;
/** What makes a grapheme of those parts an emoji rather than a digit or `#`. */
const EMOJI_CORE = /\p{Extended_Pictographic}|^\p{RI}\p{RI}$|\u20e3/u;
const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * Whether `reaction` is one emoji (a single grapheme of at most 32 UTF-16 units) or a short
 * token of `a-z 0-9 _ + -`.
 *
 * @example
 * ```ts
 * isReaction("👍"); // true
 * isReaction("👍👍"); // false: two graphemes
 * ```
 */
export function isReaction(reaction: unknown): reaction is string {
  if (typeof reaction !== "string" || reaction.length === 0 || reaction.length > 32) return false;
  if (REACTION_TOKEN.test(reaction)) return true;
  if (!EMOJI_PARTS.test(reaction) || !EMOJI_CORE.test(reaction)) return false;
  let graphemes = 0;
  for (const _ of GRAPHEMES.segment(reaction)) if (++graphemes > 1) return false;
  return true;
}

/** `{"type":"edit"|"delete"|"react","seq":n,...}` into a change request, or why it is refused. */
function parseChange(object: Record<string, unknown>, maxContentChars: number): ParsedFrame {
  const rawClientId = object.client_id;
  let clientId: string | undefined;
  if (rawClientId !== undefined) {
    if (typeof rawClientId !== "string" || !CLIENT_ID_PATTERN.test(rawClientId)) {
      return { ok: false, code: "invalid_client_id" };
    }
    clientId = rawClientId;
  }
  const refuse = (code: ErrorCode): ParsedFrame => ({
    ok: false,
    code,
    ...(clientId !== undefined && { clientId }),
  });
  const target = object.seq;
  if (!(Number.isSafeInteger(target) && (target as number) >= 1)) return refuse("invalid_target");
  const seq = target as number;
  let change: ChangeRequest;
  switch (object.type as keyof typeof CHANGE_KINDS) {
    case "edit": {
      if (typeof object.content !== "string") return refuse("invalid_frame");
      const checked = validateContent(object.content, maxContentChars);
      if (typeof checked !== "string") return refuse(checked.code);
      change = { kind: "edit", target: seq, content: checked };
      break;
    }
    case "delete":
      change = { kind: "delete", target: seq };
      break;
    case "react": {
      const on = object.on ?? true;
      if (!isReaction(object.reaction) || typeof on !== "boolean") {
        return refuse("invalid_reaction");
      }
      change = { kind: "react", target: seq, reaction: object.reaction, on };
      break;
    }
  }
  return { ok: true, change, ...(clientId !== undefined && { clientId }) };
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

/** The trimmed content, or why it is refused. */
function validateContent(raw: string, maxContentChars: number): string | { code: ErrorCode } {
  const content = raw.trim();
  if (content.length === 0) return { code: "empty_content" };
  // UTF-16 length bounds the code point count from above, so most frames skip the count.
  if (content.length > maxContentChars && codePoints(content) > maxContentChars) {
    return { code: "content_too_long" };
  }
  if (content.includes(NUL) || !content.isWellFormed()) return { code: "invalid_text" };
  return content;
}

function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}
