/**
 * Resumes in one room: what a reconnecting client gets between `welcome` and live frames.
 *
 * @module
 */
import type { Client } from "./client.ts";
import type { MessageLog } from "./message.ts";
import type { RecentMessages } from "./recent_messages.ts";
import { epochChangedFrame, replayFromLog, replayFromRecent, type ReplayRange } from "./replay.ts";

/**
 * Where a resuming client stands: after a seq of an epoch (protocol 2), or after a message id
 * (protocol 1). `sinceSeq: 0` asks for everything, whatever the epoch.
 */
export type ResumeCursor =
  | { readonly sinceSeq: number; readonly epoch: string | undefined }
  | { readonly sinceId: string };

/** The room as a replay starts from it, at the client's join. */
export interface RoomView {
  readonly name: string;
  readonly epoch: string;
  readonly lastSeq: number;
  readonly recent: RecentMessages;
}

const NIL_UUID = "00000000-0000-0000-0000-000000000000";

/**
 * Starts replays: from the room's recent messages at once when they cover the cursor, else from
 * the log without holding up the room (live frames wait in the client meanwhile).
 *
 * @example
 * ```ts
 * const replays = new RoomReplays(log, 1000);
 * const ahead = replays.start(client, { sinceSeq: 41, epoch }, room);
 * await replays.settled(); // when the room closes
 * ```
 */
export class RoomReplays {
  readonly #log: Pick<MessageLog, "history">;
  readonly #limit: number;
  /** Replays read from the log and not yet queued; made on the first one. */
  #pending: Set<Promise<void>> | undefined;

  /** `limit`: messages one replay sends at most. */
  constructor(log: Pick<MessageLog, "history">, limit: number) {
    this.#log = log;
    this.#limit = limit;
  }

  /**
   * Sends `client` what came after `cursor`, then a `resume` frame.
   *
   * @returns the cursor when it is past the room's last seq (this instance is behind the one
   * the client came from): the room must not send it the messages up to there.
   */
  start(client: Client, cursor: ResumeCursor, room: RoomView): number | undefined {
    if ("sinceId" in cursor) return this.#startById(client, cursor.sinceId, room);
    if (cursor.sinceSeq > 0 && cursor.epoch !== room.epoch) {
      client.endReplay([epochChangedFrame(room.epoch)]);
      return undefined;
    }
    if (cursor.sinceSeq > room.lastSeq) {
      client.endReplay(replayFromRecent(this.#range(room, room.lastSeq), []) ?? []);
      return cursor.sinceSeq;
    }
    const range = this.#range(room, cursor.sinceSeq);
    const frames = replayFromRecent(range, room.recent.after(range.sinceSeq));
    if (frames) client.endReplay(frames);
    else this.#later(client, room, () => Promise.resolve(range));
    return undefined;
  }

  /** Resolves once every replay started has been queued. */
  async settled(): Promise<void> {
    while (this.#pending && this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  #startById(client: Client, sinceId: string, room: RoomView): undefined {
    const known = room.recent.seqOf(sinceId);
    if (known !== undefined) {
      this.start(client, { sinceSeq: known, epoch: room.epoch }, room);
      return undefined;
    }
    const range = this.#range(room, 0);
    this.#later(client, room, () => this.#seqAfterId(sinceId, range));
    return undefined;
  }

  #later(client: Client, room: RoomView, resolve: () => Promise<ReplayRange>): void {
    client.beginReplay();
    const recent = room.recent.after(0);
    const replay = resolve()
      .then((range) => replayFromLog(this.#log, range, recent))
      .then((frames) => client.endReplay(frames));
    const pending = this.#pending ??= new Set();
    pending.add(replay);
    const forget = () => pending.delete(replay);
    replay.then(forget, forget);
  }

  /** Protocol 1: the cursor is the seq before the first message after the id, in id order. */
  async #seqAfterId(sinceId: string, range: ReplayRange): Promise<ReplayRange> {
    if (sinceId === NIL_UUID) return range;
    try {
      const [next] = await this.#log.history(range.room, { after: sinceId, limit: 1 });
      return { ...range, sinceSeq: next ? Math.min(next.seq - 1, range.lastSeq) : range.lastSeq };
    } catch {
      return range; // the log's failure shows as an incomplete replay
    }
  }

  #range(room: RoomView, sinceSeq: number): ReplayRange {
    const { name, epoch, lastSeq } = room;
    return { room: name, epoch, sinceSeq, lastSeq, limit: this.#limit };
  }
}
