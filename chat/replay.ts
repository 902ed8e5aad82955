/**
 * Builds the frames a resuming client gets before live ones: every message after its cursor,
 * capped, followed by a `resume` frame that says whether the replay was complete.
 *
 * @module
 */
import type { ChatMessage, MessageRepository } from "../storage/repository.ts";
import { encodeFrame, encodeMessage } from "./protocol.ts";
import type { RecentMessage } from "./recent_messages.ts";

/** What a replay reads from when a room's buffer does not reach back far enough. */
export type ReplaySource = Pick<MessageRepository, "history">;

/**
 * Frames for messages that are all at hand (the room's buffer covered the cursor).
 *
 * @example
 * ```ts
 * client.endReplay(replayFrames(recent.after(since), 1000));
 * ```
 */
export function replayFrames(messages: readonly RecentMessage[], limit: number): string[] {
  const frames = messages.slice(0, limit).map((message) => message.frame);
  frames.push(resumeFrame(messages.length <= limit, frames.length));
  return frames;
}

/** Where a replay from the repository starts and stops. */
export interface StoredReplay {
  readonly room: string;
  /** The client's cursor: only messages after it. */
  readonly since: string;
  /** An id taken at join time: messages after it are live and reach the client anyway. */
  readonly boundary: string;
  /** Messages at most; beyond, the replay is marked incomplete. */
  readonly limit: number;
  /** The room's buffered messages after `since`: recent, maybe not yet stored. */
  readonly buffered: readonly RecentMessage[];
}

/**
 * Frames for a replay that reaches further back than the room's buffer: stored messages merged
 * with buffered ones (which may not be stored yet), without duplicates, in id order. A store
 * that fails gives what the buffer has, marked incomplete, so the client falls back to
 * `/history` instead of silently missing messages.
 *
 * @example
 * ```ts
 * const frames = await replayFromStore(repository, { room, since, boundary, limit, buffered });
 * ```
 */
export async function replayFromStore(
  source: ReplaySource,
  replay: StoredReplay,
): Promise<string[]> {
  let stored: ChatMessage[] = [];
  let failed = false;
  try {
    stored = await source.history(replay.room, {
      after: replay.since,
      before: replay.boundary,
      limit: replay.limit + 1,
    });
  } catch {
    failed = true; // the store is down: the resume frame tells the client to catch up later
  }
  const merged = mergeById(stored, replay.buffered);
  const frames = replayFrames(merged, replay.limit);
  if (failed) frames[frames.length - 1] = resumeFrame(false, frames.length - 1);
  return frames;
}

function mergeById(
  stored: readonly ChatMessage[],
  buffered: readonly RecentMessage[],
): RecentMessage[] {
  const byId = new Map<string, RecentMessage>();
  for (const message of stored) {
    byId.set(message.id, { id: message.id, frame: encodeMessage(message) });
  }
  for (const message of buffered) byId.set(message.id, message);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function resumeFrame(complete: boolean, replayed: number): string {
  return encodeFrame({ type: "resume", complete, replayed });
}
