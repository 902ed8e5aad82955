/**
 * Parses query parameters of `/chat` and `/history` into typed values, at the edge.
 *
 * @module
 */
import type { ResumeCursor } from "../chat/room_replays.ts";

/** A request parameter is missing or bad; answered with HTTP 400 and this code. */
export class BadRequestError extends Error {
  /** Stable code for the JSON error body. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "BadRequestError";
    this.code = code;
  }
}

/**
 * Protocol levels a connection may ask for with `v`: 0 for the clients of the Go server this one
 * replaces (message-shaped frames only), 2 the current protocol (1 is the same protocol, whose
 * id cursors `since=` are still served).
 */
export const PROTOCOL_LEVELS = [0, 1, 2] as const;
export type ProtocolLevel = typeof PROTOCOL_LEVELS[number];

/** What level 0 clients meant when they left `r` or `u` out. */
export const LEVEL_0_DEFAULTS = { room: "general", user: "Anonymous" } as const;

/** Who connects to which room. */
export interface ChatParams {
  readonly room: string;
  /** `u`, when given; a verified token's `sub` takes its place. */
  readonly user: string | undefined;
  /** Resume after this cursor: replay what came after it before live frames. */
  readonly cursor?: ResumeCursor;
  /** The protocol level: `v`, else the operator's `DEFAULT_PROTOCOL`. */
  readonly level: ProtocolLevel;
  /** `batch=1`: frames waiting together go out as one WebSocket frame, one JSON frame per line. */
  readonly batch?: boolean;
}

/** Which page of history to read. */
export interface HistoryParams {
  readonly room: string;
  readonly limit: number;
  readonly beforeSeq?: number;
  readonly afterSeq?: number;
  readonly before?: string;
  readonly after?: string;
  /** `changes=1`: change items too, as frames, in seq order with the messages. */
  readonly changes?: boolean;
}

/** Page size bounds of `/history`. */
export const HISTORY_LIMITS = { default: 50, max: 500 } as const;

const MAX_ROOM_CHARS = 64;
/**
 * Letters and marks of any script, digits, spaces and common punctuation, after NFC: `my room`,
 * `café crème`, `général` are rooms. Not `/` (API paths), `*` (token patterns' wildcard), nor
 * anything unprintable.
 */
const ROOM_PATTERN = new RegExp(
  `^[\\p{L}\\p{M}\\p{N} _.,:;!?'()&+@#~-]{1,${MAX_ROOM_CHARS}}$`,
  "u",
);
const MAX_USER_CHARS = 32;
// Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned code
// points, and line/paragraph separators: nothing a name needs, several things a spoofer wants.
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The rules for names as the page checks them in its form, from the patterns this module checks
 * with: one source of truth. Patterns are `RegExp` sources for the `u` flag.
 */
export const NAME_RULES = {
  room_pattern: ROOM_PATTERN.source,
  max_room_chars: MAX_ROOM_CHARS,
  max_user_chars: MAX_USER_CHARS,
  user_forbidden_pattern: NON_PRINTABLE.source,
} as const;

/**
 * @throws {BadRequestError} `invalid_room`, `invalid_user` or `invalid_cursor` (a bad `since`,
 * `since_seq` or `epoch`, `since_seq` above 0 without `epoch`, or both `since` and `since_seq`).
 */
export function parseChatParams(
  query: URLSearchParams,
  defaultLevel: ProtocolLevel = 2,
): ChatParams {
  const level = parseLevel(query.get("v"), defaultLevel);
  const defaults = level === 0 ? LEVEL_0_DEFAULTS : undefined;
  const raw = query.get("u") ?? defaults?.user ?? null;
  const user = raw === null ? undefined : parseUserName(raw);
  const cursor = parseResumeCursor(query);
  const batch = parseFlag(query, "batch");
  if (batch && level !== 2) {
    throw new BadRequestError("invalid_batch", "batch=1 needs protocol 2 (v=2)");
  }
  return {
    room: parseRoom(query, defaults?.room),
    user,
    level,
    ...(cursor && { cursor }),
    ...(batch && { batch }),
  };
}

function parseLevel(raw: string | null, fallback: ProtocolLevel): ProtocolLevel {
  if (raw === null) return fallback;
  const level = PROTOCOL_LEVELS.find((each) => String(each) === raw);
  if (level === undefined) {
    throw new BadRequestError("invalid_version", `v must be one of ${PROTOCOL_LEVELS.join(", ")}`);
  }
  return level;
}

/**
 * @throws {BadRequestError} `invalid_room`, `invalid_limit` or `invalid_cursor` (a bad cursor, or
 * seq and id cursors mixed).
 */
export function parseHistoryParams(
  query: URLSearchParams,
  defaultRoom?: string,
): HistoryParams {
  const room = parseRoom(query, defaultRoom);
  const limit = parseLimit(query.get("limit"), HISTORY_LIMITS);
  const beforeSeq = parseSeq(query, "before_seq");
  const afterSeq = parseSeq(query, "after_seq");
  const before = parseCursor(query, "before");
  const after = parseCursor(query, "after");
  if ((before || after) && (beforeSeq !== undefined || afterSeq !== undefined)) {
    throw new BadRequestError(
      "invalid_cursor",
      "use seq cursors (after_seq, before_seq) or id cursors (after, before), not both",
    );
  }
  const changes = parseFlag(query, "changes");
  if (changes && (before || after)) {
    throw new BadRequestError("invalid_cursor", "changes=1 takes seq cursors only");
  }
  return {
    ...(changes && { changes }),
    room,
    limit,
    ...(beforeSeq !== undefined && { beforeSeq }),
    ...(afterSeq !== undefined && { afterSeq }),
    ...(before && { before }),
    ...(after && { after }),
  };
}

/** `1`/`true` or `0`/`false`; absent is false. */
function parseFlag(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  if (value === null || value === "0" || value === "false") return false;
  if (value === "1" || value === "true") return true;
  throw new BadRequestError(`invalid_${name}`, `${name} must be 1 or 0`);
}

function parseResumeCursor(query: URLSearchParams): ResumeCursor | undefined {
  const sinceSeq = parseSeq(query, "since_seq");
  const sinceId = parseCursor(query, "since");
  const epoch = parseEpoch(query.get("epoch"));
  if (sinceSeq !== undefined && sinceId !== undefined) {
    throw new BadRequestError("invalid_cursor", "give since_seq (protocol 2) or since, not both");
  }
  if (sinceId !== undefined) return { sinceId };
  if (sinceSeq === undefined) return undefined;
  if (sinceSeq > 0 && epoch === undefined) {
    throw new BadRequestError("invalid_cursor", "since_seq needs the epoch it was seen in");
  }
  return { sinceSeq, epoch };
}

const SEQ_PATTERN = /^(0|[1-9][0-9]{0,15})$/;
const EPOCH_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

function parseSeq(
  query: URLSearchParams,
  name: "since_seq" | "after_seq" | "before_seq",
): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  const seq = SEQ_PATTERN.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new BadRequestError("invalid_cursor", `${name} must be a whole number (a seq)`);
  }
  return seq;
}

/**
 * An epoch as a client sends it back: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
 *
 * @throws {BadRequestError} `invalid_cursor`.
 */
export function parseEpoch(raw: string | null): string | undefined {
  if (raw === null) return undefined;
  if (!EPOCH_PATTERN.test(raw)) {
    throw new BadRequestError(
      "invalid_cursor",
      "epoch must be 1 to 64 characters of A-Z a-z 0-9 _ -",
    );
  }
  return raw;
}

function parseRoom(query: URLSearchParams, fallback?: string): string {
  return parseRoomName(query.get("r") ?? fallback ?? null);
}

/**
 * A room name: trimmed, in NFC, 1 to 64 letters, digits, spaces and common punctuation.
 *
 * @throws {BadRequestError} `invalid_room`.
 */
export function parseRoomName(raw: string | null): string {
  const room = raw?.trim().normalize("NFC") ?? "";
  if (!ROOM_PATTERN.test(room)) {
    throw new BadRequestError(
      "invalid_room",
      `r must be 1 to ${MAX_ROOM_CHARS} letters, digits, spaces or _ . , : ; ! ? ' ( ) & + @ # ~ -`,
    );
  }
  return room;
}

/**
 * A user name: 1 to 32 printable characters after trimming, in NFC (the same name typed on two
 * keyboards is one name).
 *
 * @throws {BadRequestError} `invalid_user`.
 */
export function parseUserName(raw: string | null): string {
  const user = raw?.trim().normalize("NFC") ?? "";
  let length = 0;
  for (const _ of user) length++;
  if (length < 1 || length > MAX_USER_CHARS || NON_PRINTABLE.test(user)) {
    throw new BadRequestError(
      "invalid_user",
      `u must be 1 to ${MAX_USER_CHARS} printable characters after trimming`,
    );
  }
  return user;
}

function parseLimit(raw: string | null, bounds: { default: number; max: number }): number {
  if (raw === null) return bounds.default;
  const limit = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(limit >= 1 && limit <= bounds.max)) {
    throw new BadRequestError("invalid_limit", `limit must be an integer from 1 to ${bounds.max}`);
  }
  return limit;
}

function parseCursor(
  query: URLSearchParams,
  name: "before" | "after" | "since",
): string | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!UUID_PATTERN.test(raw)) {
    throw new BadRequestError("invalid_cursor", `${name} must be a message id (a UUID)`);
  }
  return raw.toLowerCase();
}

/** Page size bounds of `/rooms`. */
export const ROOMS_LIMITS = { default: 100, max: 1000 } as const;

/**
 * @throws {BadRequestError} `invalid_limit`.
 */
export function parseRoomsLimit(query: URLSearchParams): number {
  return parseLimit(query.get("limit"), ROOMS_LIMITS);
}
