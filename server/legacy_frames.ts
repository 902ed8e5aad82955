/**
 * Protocol level 0: what the clients of the Go server this one replaces understand. Every frame
 * they get is a message object `{sender, room, content, timestamp}`; joins, leaves and errors are
 * messages from `SYSTEM`.
 *
 * @module
 */

/** The sender of level 0's system lines, as the Go server named it. */
export const SYSTEM_SENDER = "SYSTEM";

/** A frame of the current protocol, as far as level 0 reads it. */
interface Frame {
  readonly type?: unknown;
  readonly room?: unknown;
  readonly sender?: unknown;
  readonly content?: unknown;
  readonly timestamp?: unknown;
  readonly event?: unknown;
  readonly user?: unknown;
  readonly message?: unknown;
  readonly deleted?: unknown;
}

// A room's frame goes to every level 0 member in turn: the last translation is reused.
let lastFrame = "";
let lastRoom = "";
let lastLegacy: string | undefined;

/**
 * Turns one frame of the current protocol into level 0, or `undefined` for a frame level 0 has
 * no use for (acks, resume and gap frames). A `welcome` becomes the newcomer's own "entered"
 * line, as the Go server broadcast it to everyone, the newcomer included.
 *
 * @example
 * ```ts
 * legacyFrame('{"type":"presence","event":"join","room":"r","user":"bob"}', "r");
 * // '{"sender":"SYSTEM","room":"r","content":"User bob entered the chat","timestamp":"..."}'
 * ```
 */
export function legacyFrame(frame: string, room: string): string | undefined {
  if (frame === lastFrame && room === lastRoom) return lastLegacy;
  const legacy = translate(JSON.parse(frame) as Frame, room);
  lastFrame = frame;
  lastRoom = room;
  lastLegacy = legacy;
  return legacy;
}

function translate(frame: Frame, room: string): string | undefined {
  switch (frame.type) {
    case "message":
      if (frame.deleted === true) return undefined; // a tombstone has nothing to show
      return JSON.stringify({
        sender: frame.sender,
        room: frame.room,
        content: frame.content,
        timestamp: frame.timestamp,
      });
    case "welcome":
      return systemLine(room, `User ${frame.user} entered the chat`);
    case "presence":
      return systemLine(
        room,
        `User ${frame.user} ${frame.event === "join" ? "entered" : "left"} the chat`,
      );
    case "error":
      return systemLine(room, `Error: ${frame.message}`);
    default:
      return undefined;
  }
}

function systemLine(room: string, content: string): string {
  return JSON.stringify({
    sender: SYSTEM_SENDER,
    room,
    content,
    timestamp: new Date().toISOString(),
  });
}
