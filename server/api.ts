/**
 * The server API for application backends: `/api/*`. Publish into a room as a named sender, list
 * a room's members, delete a message for moderation; described by `/api/openapi.json`.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { type ChatMessage, type Submission, timeOfUuidv7 } from "../chat/message.ts";
import { type ErrorCode, historyItem } from "../chat/protocol.ts";
import { AuthError, roomMatches, type TokenVerifier } from "./auth.ts";
import { parseSubmission } from "./client_frame.ts";
import { jsonError, jsonResponse } from "./http_response.ts";
import { API_DESCRIPTION } from "./openapi.ts";
import { BadRequestError, parseRoomName, parseUserName } from "./request_params.ts";
import type { RequestRate } from "./request_rate.ts";

/** What the API does with a validated request. */
export interface ApiDeps {
  /** `API_KEYS`: each opens every room. */
  readonly keys: readonly string[];
  /** Verifies JWTs (`AUTH_SECRET`); one with the `api` scope opens the rooms of its `rooms`. */
  readonly verifier: TokenVerifier | undefined;
  /** Publishes a validated message: its id and seq once acknowledged, or the refusal. */
  readonly publish: (
    room: string,
    sender: string,
    submission: Submission,
  ) => Promise<{ readonly id: string; readonly seq: number } | { readonly refused: ErrorCode }>;
  /** The room's members across instances, sorted. */
  readonly members: (room: string) => Promise<readonly string[]>;
  /**
   * Deletes the message at `seq` as moderator `user`: a `delete` change, sent to the members
   * and stored. Its id and own seq (`event_seq`) once acknowledged, or the refusal.
   */
  readonly remove: (
    room: string,
    seq: number,
    user: string,
  ) => Promise<{ readonly id: string; readonly seq: number } | { readonly refused: ErrorCode }>;
  /** A published message as `/history` shows it (`undefined` if it cannot be read back now). */
  readonly messageAt: (room: string, seq: number) => Promise<ChatMessage | undefined>;
  readonly maxContentChars: number;
  /** Largest request body, in bytes (`MAX_FRAME_BYTES`, as for a socket's frame). */
  readonly maxBodyBytes: number;
  /** Requests per credential (`RATE_LIMIT_PER_SECOND`). */
  readonly rate: RequestRate;
}

/** What a request's credential opens. */
interface ApiCaller {
  /** A stable name for rate limiting (never the secret). */
  readonly id: string;
  /** Room patterns it may act on; `["*"]` for a server key. */
  readonly rooms: readonly string[];
  /** Who its deletes are made by: the token's user, or `api` for a server key. */
  readonly user: string;
}

/** The user a server key's deletes are made by. */
export const API_USER = "api";

/** Methods by route, for the 405 answer and CORS preflights. */
export const API_METHODS: Readonly<Record<string, readonly string[]>> = {
  messages: ["POST"],
  message: ["DELETE"],
  members: ["GET", "HEAD"],
  openapi: ["GET", "HEAD"],
};

/** The route of an `/api/` path and the room it names, or `undefined` if none matches. */
export function apiRoute(
  pathname: string,
): { kind: keyof typeof API_METHODS; room?: string; seq?: string } | undefined {
  if (pathname === "/api/openapi.json") return { kind: "openapi" };
  const match = pathname.match(/^\/api\/rooms\/([^/]+)\/(messages|members)(?:\/([^/]+))?$/);
  if (!match) return undefined;
  const [, encodedRoom, what, seq] = match;
  let room: string;
  try {
    room = decodeURIComponent(encodedRoom as string);
  } catch {
    throw new BadRequestError("invalid_room", "the room in the path is not valid percent-encoding");
  }
  if (what === "members") return seq === undefined ? { kind: "members", room } : undefined;
  return seq === undefined ? { kind: "messages", room } : { kind: "message", room, seq };
}

/**
 * Answers an `/api/` request; `undefined` for a path that is not an API route (404).
 *
 * @throws {BadRequestError} for bad input; {@linkcode AuthError} for a bad credential or room.
 */
export async function handleApi(
  request: Request,
  url: URL,
  deps: ApiDeps,
): Promise<Response | undefined> {
  const route = apiRoute(url.pathname);
  if (!route) return undefined;
  const methods = API_METHODS[route.kind] as readonly string[];
  if (!methods.includes(request.method)) {
    const response = jsonError(405, "method_not_allowed", `use ${methods.join(" or ")}`);
    response.headers.set("allow", methods.join(", "));
    return response;
  }
  if (route.kind === "openapi") return jsonResponse(API_DESCRIPTION);
  const caller = await authenticate(request, deps);
  const room = parseRoomName(route.room ?? null);
  if (!caller.rooms.some((pattern) => roomMatches(pattern, room))) {
    throw new AuthError(403, "room_forbidden", `this credential does not open room ${room}`);
  }
  if (!deps.rate.take(caller.id)) {
    const response = jsonError(429, "rate_limited", "too many API requests; slow down");
    response.headers.set("retry-after", String(deps.rate.retryAfterSeconds));
    return response;
  }
  switch (route.kind) {
    case "members":
      return jsonResponse({ room, members: await deps.members(room) });
    case "messages":
      return await publish(request, room, deps);
    case "message":
      return await remove(room, route.seq as string, caller.user, deps);
  }
}

async function publish(request: Request, room: string, deps: ApiDeps): Promise<Response> {
  const body = await readJson(request, deps.maxBodyBytes);
  const sender = parseUserName(typeof body.sender === "string" ? body.sender : null);
  const parsed = parseSubmission(body.content, body.client_id, deps.maxContentChars, body.reply_to);
  if (!parsed.ok) throw new BadRequestError(parsed.code, refusalText(parsed.code));
  const placed = await deps.publish(room, sender, parsed.submission);
  if ("refused" in placed) return refusal(placed.refused);
  const stored = await deps.messageAt(room, placed.seq).catch(() => undefined);
  // Read back when it can be (a re-send answers with the first message as it was); else built
  // from the request, which is what was published.
  const message = stored?.id === placed.id ? stored : undefined;
  const item = message ? historyItem(message) : {
    id: placed.id,
    room,
    seq: placed.seq,
    sender,
    content: parsed.submission.content,
    // The time a message was taken is the time in its id (docs/protocol.md).
    timestamp: new Date(timeOfUuidv7(placed.id)).toISOString(),
    ...(parsed.submission.clientId !== undefined && { client_id: parsed.submission.clientId }),
    ...(parsed.submission.replyTo !== undefined && { reply_to: parsed.submission.replyTo }),
  };
  return jsonResponse(item, 201);
}

async function remove(
  room: string,
  rawSeq: string,
  user: string,
  deps: ApiDeps,
): Promise<Response> {
  const seq = /^[1-9][0-9]{0,15}$/.test(rawSeq) ? Number(rawSeq) : NaN;
  if (!Number.isSafeInteger(seq)) {
    throw new BadRequestError("invalid_cursor", "the seq in the path must be a whole number");
  }
  const removed = await deps.remove(room, seq, user);
  if ("refused" in removed) {
    if (removed.refused === "invalid_target") {
      return jsonError(404, "not_found", `room ${room} has no message ${seq} (or it is deleted)`);
    }
    return refusal(removed.refused);
  }
  return jsonResponse({
    type: "delete",
    id: removed.id,
    room,
    event_seq: removed.seq,
    user,
    seq,
    timestamp: new Date(timeOfUuidv7(removed.id)).toISOString(),
  });
}

/** A server key in `Authorization: Bearer`, or a JWT with the `api` scope. */
async function authenticate(request: Request, deps: ApiDeps): Promise<ApiCaller> {
  const presented = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
  if (presented === undefined) {
    throw new AuthError(401, "api_unauthorized", "send Authorization: Bearer <API key or token>");
  }
  const digest = sha256(presented);
  // Every key is compared, in constant time per key, so the answer's time says nothing.
  let matched = -1;
  deps.keys.forEach((key, index) => {
    if (timingSafeEqual(sha256(key), digest)) matched = index;
  });
  if (matched >= 0) return { id: `key:${matched}`, rooms: ["*"], user: API_USER };
  if (deps.verifier && presented.split(".").length === 3) {
    const identity = await deps.verifier.verify(presented).catch((error) => {
      if (error instanceof AuthError) {
        throw new AuthError(401, "api_unauthorized", error.message, { cause: error });
      }
      throw error;
    });
    if (!identity.scopes.includes("api")) {
      throw new AuthError(403, "api_forbidden", 'the token has no "api" scope');
    }
    return { id: `sub:${identity.user}`, rooms: identity.rooms, user: identity.user };
  }
  throw new AuthError(401, "api_unauthorized", "the API key or token is not valid");
}

/** The body as a JSON object, read at most `maxBytes` far. */
async function readJson(request: Request, maxBytes: number): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new BadRequestError("invalid_body", "send the body as application/json");
  }
  const bytes = await readAtMost(request, maxBytes);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new BadRequestError("invalid_body", "the body is not valid UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BadRequestError("invalid_body", "the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

async function readAtMost(request: Request, maxBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body ?? []) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      throw new BadRequestError("body_too_large", `the body may be at most ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** The HTTP answer to a room's refusal of a published message. */
function refusal(code: ErrorCode): Response {
  const status = code === "room_busy" || code === "backlog" || code === "rate_limited"
    ? 429
    : code === "shutting_down" || code === "unavailable"
    ? 503
    : 400;
  const response = jsonError(status, code, refusalText(code));
  if (status !== 400) response.headers.set("retry-after", "1");
  return response;
}

function refusalText(code: ErrorCode): string {
  return `the message was refused: ${code}`;
}

function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}
