/**
 * Protocol 2: the frames the server sends, and the one table of error and close codes.
 * See docs/protocol.md for the wire format.
 *
 * @module
 */
import type { ChatMessage, MessageChange } from "./message.ts";

/** Protocol version announced in `welcome`. */
export const PROTOCOL_VERSION = 2;

/**
 * Every `error` frame code with its human-readable message. A client that gets one of these
 * stays connected.
 */
export const PROTOCOL_ERRORS = {
  binary_frame: "binary frames are not supported; send text",
  invalid_frame: 'a JSON object frame needs "type":"message" and a string "content"',
  unknown_type:
    'unknown frame type; client frames are "message", "edit", "delete", "react", "typing" and "read"',
  empty_content: "message content is empty after trimming",
  content_too_long: "message content is longer than the server allows",
  invalid_text: "message content contains a NUL character or invalid Unicode",
  invalid_client_id: "client_id must be 1 to 64 characters of A-Z a-z 0-9 _ -",
  invalid_reply_to: "reply_to must be the seq of a message already in this room",
  invalid_read: 'a "read" frame needs "seq", a whole number from 1',
  invalid_target: '"seq" must be the seq of a message (not deleted) in this room',
  invalid_reaction:
    '"reaction" must be one emoji or a short token (1 to 32 of a-z 0-9 _ + -), and "on" a boolean',
  not_author:
    "only the author of a message may edit it, and only the author or a moderator delete it",
  edit_window_passed: "the message is older than the server lets its author edit or delete it",
  too_many_reactions: "the message has as many different reactions as the server allows",
  room_busy: "the room is receiving more messages than it can process; try again shortly",
  backlog: "the server cannot store more messages right now; the message was not sent",
  shutting_down: "the server is shutting down; the message was not sent",
  unavailable:
    "the room's shared sequence (Redis) cannot be reached; the message was not sent, try again shortly",
  rate_limited: "too many frames; slow down (the frame was dropped)",
} as const;

/** A stable `error` frame code. */
export type ErrorCode = keyof typeof PROTOCOL_ERRORS;

/** WebSocket close codes the server uses, with the reason text sent along. */
export const CLOSE_CODES = {
  /** The server is shutting down. */
  goingAway: { code: 1001, reason: "server shutting down" },
  /** The client did not read its frames fast enough. */
  slowConsumer: { code: 1013, reason: "slow consumer: too many frames waiting to be sent" },
  /** The client kept sending past its rate limit. */
  rateLimited: { code: 1008, reason: "rate limit exceeded" },
  /** The client sent a frame larger than `MAX_FRAME_BYTES`. */
  frameTooLarge: { code: 1009, reason: "frame too large" },
  /** The client's token expired while it was connected. */
  tokenExpired: { code: 4001, reason: "token expired" },
  /**
   * The server failed at serving this connection or its room (a bug, contained): the room is
   * replaced, so reconnecting (with resume) works.
   */
  internalError: { code: 1011, reason: "internal error: reconnect" },
  /** The room's shared sequence was reset (Redis lost it): resume to learn the new epoch. */
  epochChanged: { code: 4002, reason: "room sequence reset: reconnect and resume" },
} as const;

/** A close the server initiates. */
export type CloseCode = typeof CLOSE_CODES[keyof typeof CLOSE_CODES];

/** A frame the client sent, already validated at the edge. */
export type InboundFrame = { readonly type: "message"; readonly content: string };

/** Presence event kinds. */
export type PresenceEvent = "join" | "leave";

/** Why a `resume` frame says `complete: false`. */
export type IncompleteReason = "limit" | "unavailable" | "epoch_changed";

/**
 * What one connection may send, announced in `welcome` so that a client can say a limit before
 * the server refuses it.
 */
export interface ClientLimits {
  /** Longest `content`, in characters after trimming (`content_too_long` beyond). */
  readonly max_content_chars: number;
  /** Largest frame, in bytes of UTF-8 (close 1009 beyond). */
  readonly max_frame_bytes: number;
  /** Sustained frames per second (`rate_limited` beyond). */
  readonly rate_per_second: number;
  /** Frames allowed at once above the sustained rate. */
  readonly rate_burst: number;
}

/** Frames the server sends, tagged by `type`. */
export type ServerFrame =
  | {
    readonly type: "welcome";
    readonly protocol: number;
    readonly room: string;
    readonly user: string;
    readonly members: readonly string[];
    readonly epoch: string;
    readonly last_seq: number;
    readonly read_seq?: number;
    readonly unread?: number;
    readonly limits?: ClientLimits;
  }
  | {
    readonly type: "message";
    readonly id: string;
    readonly room: string;
    readonly seq: number;
    readonly sender: string;
    readonly content: string;
    readonly timestamp: string;
    readonly client_id?: string;
  }
  | {
    readonly type: "ack";
    readonly client_id?: string;
    readonly id: string;
    readonly seq: number;
  }
  | {
    readonly type: "presence";
    readonly event: PresenceEvent;
    readonly room: string;
    readonly user: string;
  }
  | {
    readonly type: "error";
    readonly code: ErrorCode;
    readonly message: string;
    readonly client_id?: string;
  }
  | {
    readonly type: "resume";
    readonly complete: boolean;
    readonly replayed: number;
    readonly epoch: string;
    readonly reason?: IncompleteReason;
  }
  | {
    readonly type: "gap";
    readonly room: string;
    readonly epoch: string;
    readonly from_seq: number;
    readonly to_seq: number;
  }
  | {
    readonly type: "typing";
    readonly room: string;
    readonly user: string;
  }
  | {
    readonly type: "read";
    readonly room: string;
    readonly user: string;
    readonly seq: number;
  }
  /** A change to the message at `seq`, itself at `event_seq` of the room's sequence. */
  | {
    readonly type: "edit" | "delete" | "react";
    readonly id: string;
    readonly room: string;
    readonly event_seq: number;
    readonly user: string;
    readonly seq: number;
    readonly content?: string;
    readonly reaction?: string;
    readonly on?: boolean;
    readonly timestamp: string;
    readonly client_id?: string;
  };

/** Encodes a server frame; called once per broadcast, never per recipient. */
export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/**
 * Encodes an item of the room's sequence as its frame: a `message` frame (in its latest state:
 * `edited_at`, or `deleted: true` without `content`), or a change's `edit`, `delete` or `react`
 * frame.
 */
export function encodeMessage(message: ChatMessage): string {
  const [head, tail] = encodeMessageParts(message);
  return head + message.seq + tail;
}

/**
 * An item's frame in two parts, around its own seq: `head + seq + tail` is the frame. A shared
 * sequencer that hands out the seq can finish the frame without parsing it. A change's own seq
 * is its `event_seq` (its `seq` names the message it changes).
 */
export function encodeMessageParts(message: Omit<ChatMessage, "seq">): [string, string] {
  const { change } = message;
  if (change !== undefined) {
    const head = JSON.stringify({ type: change.kind, id: message.id, room: message.room });
    const tail = JSON.stringify({
      user: message.sender,
      seq: change.target,
      ...(change.kind === "edit" && { content: message.content }),
      ...(change.kind === "react" && { reaction: change.reaction, on: change.on }),
      timestamp: message.timestamp,
      ...(message.clientId !== undefined && { client_id: message.clientId }),
    });
    return [head.slice(0, -1) + ',"event_seq":', "," + tail.slice(1)];
  }
  const head = JSON.stringify({ type: "message", id: message.id, room: message.room });
  const tail = JSON.stringify({
    sender: message.sender,
    ...(message.deleted !== true && { content: message.content }),
    timestamp: message.timestamp,
    ...(message.clientId !== undefined && { client_id: message.clientId }),
    ...(message.replyTo !== undefined && { reply_to: message.replyTo }),
    ...(message.editedAt !== undefined && { edited_at: message.editedAt }),
    ...(message.deleted === true && { deleted: true }),
  });
  return [head.slice(0, -1) + ',"seq":', "," + tail.slice(1)];
}

/**
 * An item's frame (as {@linkcode encodeMessage} made it) back into the item; `undefined` for
 * any other frame or text.
 *
 * @example
 * ```ts
 * decodeItemFrame(encodeMessage(message)); // deep-equal to message
 * ```
 */
export function decodeItemFrame(frame: string): ChatMessage | undefined {
  let value;
  try {
    value = JSON.parse(frame);
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
  if (typeof value?.id !== "string" || typeof value.room !== "string") return undefined;
  const common = {
    id: value.id as string,
    room: value.room as string,
    timestamp: String(value.timestamp),
    ...(typeof value.client_id === "string" && { clientId: value.client_id as string }),
  };
  if (value.type === "message") {
    if (typeof value.seq !== "number") return undefined;
    return {
      ...common,
      seq: value.seq,
      sender: String(value.sender),
      content: typeof value.content === "string" ? value.content : "",
      ...(typeof value.reply_to === "number" && { replyTo: value.reply_to as number }),
      ...(typeof value.edited_at === "string" && { editedAt: value.edited_at as string }),
      ...(value.deleted === true && { deleted: true as const }),
    };
  }
  if (typeof value.event_seq !== "number" || typeof value.seq !== "number") return undefined;
  const target = value.seq as number;
  const change: MessageChange | undefined = value.type === "edit" || value.type === "delete"
    ? { kind: value.type, target }
    : value.type === "react"
    ? { kind: "react", target, reaction: String(value.reaction), on: value.on === true }
    : undefined;
  if (change === undefined) return undefined;
  return {
    ...common,
    seq: value.event_seq,
    sender: String(value.user),
    content: typeof value.content === "string" ? value.content : "",
    change,
  };
}

/**
 * A `message` frame as the tombstone of the message once deleted: without `content`, with
 * `deleted: true`; any other frame as it is.
 */
export function tombstoneFrame(frame: string): string {
  const value = JSON.parse(frame);
  if (value?.type !== "message") return frame;
  delete value.content;
  delete value.edited_at;
  value.deleted = true;
  return JSON.stringify(value);
}

/**
 * An `edit` frame of the message at `target` without its content (`""`), the message being
 * deleted; `undefined` for any other frame.
 */
export function scrubbedEdit(frame: string, target: number): string | undefined {
  if (!frame.startsWith('{"type":"edit"')) return undefined;
  const value = JSON.parse(frame);
  if (value.seq !== target || value.content === "") return undefined;
  value.content = "";
  return JSON.stringify(value);
}

/** `error` frames, encoded once at start-up since they never vary. */
export const ERROR_FRAMES: Readonly<Record<ErrorCode, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(PROTOCOL_ERRORS).map(([code, message]) => [
      code,
      encodeFrame({ type: "error", code: code as ErrorCode, message }),
    ]),
  ) as Record<ErrorCode, string>,
);

/** The `error` frame for `code`, naming the message it refuses when the client gave an id. */
export function errorFrame(code: ErrorCode, clientId: string | undefined): string {
  if (clientId === undefined) return ERROR_FRAMES[code];
  return encodeFrame({ type: "error", code, message: PROTOCOL_ERRORS[code], client_id: clientId });
}

/** The `ack` frame telling a sender its message is in the room at `seq`. */
export function ackFrame(clientId: string | undefined, id: string, seq: number): string {
  return encodeFrame({
    type: "ack",
    ...(clientId !== undefined && { client_id: clientId }),
    id,
    seq,
  });
}

/** A reaction's count on a message and whether the reader is among those who reacted. */
export interface ReactionSummary {
  readonly count: number;
  readonly me: boolean;
}

/**
 * A message as `/history` lists it: the `message` frame without `type` (in its latest state),
 * with `reactions` (reaction → count and whether `reader` reacted) when it has any.
 */
export function historyItem(
  message: ChatMessage,
  reactions?: ReadonlyMap<string, readonly string[]>,
  reader?: string,
): Record<string, unknown> {
  const { id, room, seq, sender, content, timestamp, clientId, replyTo, editedAt, deleted } =
    message;
  let summary: Record<string, ReactionSummary> | undefined;
  for (const [reaction, users] of reactions ?? []) {
    if (users.length === 0) continue;
    (summary ??= {})[reaction] = {
      count: users.length,
      me: reader !== undefined && users.includes(reader),
    };
  }
  return {
    id,
    room,
    seq,
    sender,
    ...(deleted !== true && { content }),
    timestamp,
    ...(clientId !== undefined && { client_id: clientId }),
    ...(replyTo !== undefined && { reply_to: replyTo }),
    ...(editedAt !== undefined && { edited_at: editedAt }),
    ...(deleted === true && { deleted: true }),
    ...(summary !== undefined && { reactions: summary }),
  };
}
