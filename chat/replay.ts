/**
 * Builds the frames a resuming client gets before live ones: every item (message or change)
 * after its cursor, capped, followed by a `resume` frame that says whether the replay was
 * complete and why not.
 *
 * Seqs are dense (1, 2, 3, ... per epoch), so completeness is checked, not assumed: a replay
 * is the unbroken run of seqs after the cursor, and it is complete only if that run reaches the
 * room's last seq at join time.
 *
 * @module
 */
import type { ChatMessage, MessageLog } from "./message.ts";
import { encodeFrame, encodeMessage, type IncompleteReason } from "./protocol.ts";
import type { RecentMessage } from "./recent_messages.ts";

/** What to replay. */
export interface ReplayRange {
  readonly room: string;
  /** The room's epoch, sent in the `resume` frame. */
  readonly epoch: string;
  /** The client's cursor: only messages after it. */
  readonly sinceSeq: number;
  /** The room's last seq when the client joined: later ones reach it live. */
  readonly lastSeq: number;
  /** Messages at most; beyond, the replay is marked incomplete (`limit`). */
  readonly limit: number;
}

/**
 * Frames for a replay from `recent` alone, or `undefined` if `recent` does not hold every seq
 * the replay needs (then use {@linkcode replayFromLog}).
 *
 * @example
 * ```ts
 * const frames = replayFromRecent(range, recent.after(range.sinceSeq));
 * if (frames) client.endReplay(frames);
 * ```
 */
export function replayFromRecent(
  range: ReplayRange,
  recent: readonly RecentMessage[],
): string[] | undefined {
  const run = unbrokenRun(range, recent);
  const wanted = Math.min(range.lastSeq - range.sinceSeq, range.limit);
  return run.length === wanted ? replayFrames(range, run) : undefined;
}

/**
 * Frames for a replay reaching past the room's buffer: the log's messages (stored or queued)
 * merged with the buffer's. A log that fails gives what the buffer has, marked incomplete.
 *
 * @example
 * ```ts
 * const frames = await replayFromLog(log, range, recent.after(range.sinceSeq));
 * ```
 */
export async function replayFromLog(
  log: Pick<MessageLog, "history">,
  range: ReplayRange,
  recent: readonly RecentMessage[],
): Promise<string[]> {
  let stored: ChatMessage[] = [];
  try {
    stored = await log.history(range.room, {
      afterSeq: range.sinceSeq,
      beforeSeq: range.lastSeq + 1,
      limit: range.limit,
      changes: true, // every item of the sequence: a change fills its seq as a message does
    });
  } catch {
    // The store is down: the unbroken run stops at the first seq only it had, and the resume
    // frame says so.
  }
  const bySeq = new Map<number, RecentMessage>();
  for (const message of stored) {
    bySeq.set(message.seq, { seq: message.seq, id: message.id, frame: encodeMessage(message) });
  }
  for (const message of recent) bySeq.set(message.seq, message);
  const merged = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  return replayFrames(range, unbrokenRun(range, merged));
}

/** The `resume` frame telling a client its cursor is from another epoch; nothing is replayed. */
export function epochChangedFrame(epoch: string): string {
  return encodeFrame({
    type: "resume",
    complete: false,
    replayed: 0,
    epoch,
    reason: "epoch_changed",
  });
}

/** The messages of `sorted` (ascending seqs) forming the run sinceSeq+1, +2, ..., capped. */
function unbrokenRun(range: ReplayRange, sorted: readonly RecentMessage[]): RecentMessage[] {
  const run: RecentMessage[] = [];
  let next = range.sinceSeq + 1;
  for (const message of sorted) {
    if (message.seq < next) continue;
    if (message.seq !== next || message.seq > range.lastSeq || run.length === range.limit) break;
    run.push(message);
    next++;
  }
  return run;
}

function replayFrames(range: ReplayRange, run: readonly RecentMessage[]): string[] {
  const frames = run.map((message) => message.frame);
  const reached = range.sinceSeq + run.length;
  const reason: IncompleteReason | undefined = reached >= range.lastSeq
    ? undefined
    : run.length === range.limit
    ? "limit"
    : "unavailable";
  frames.push(encodeFrame({
    type: "resume",
    complete: reason === undefined,
    replayed: run.length,
    epoch: range.epoch,
    ...(reason && { reason }),
  }));
  return frames;
}
