import assert from "node:assert/strict";
import type { ChatMessage, HistoryQuery } from "../../chat/message.ts";
import { encodeMessage } from "../../chat/protocol.ts";
import { replayFromLog, replayFromRecent, type ReplayRange } from "../../chat/replay.ts";

const message = (seq: number): ChatMessage => ({
  id: `00000000-0000-7000-8000-${String(seq).padStart(12, "0")}`,
  room: "r",
  seq,
  sender: "ann",
  content: `m${seq}`,
  timestamp: new Date(0).toISOString(),
});
const recent = (...seqs: number[]) =>
  seqs.map((seq) => ({ seq, id: message(seq).id, frame: encodeMessage(message(seq)) }));
const range = (sinceSeq: number, lastSeq: number, limit = 100): ReplayRange => ({
  room: "r",
  epoch: "e1",
  sinceSeq,
  lastSeq,
  limit,
});
/** A log holding `seqs`; reads fail when `failing`. */
const log = (seqs: number[], failing = false) => ({
  history(_room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    if (failing) return Promise.reject(new Error("store down"));
    const after = query.afterSeq ?? 0;
    const before = query.beforeSeq ?? Infinity;
    return Promise.resolve(
      seqs.filter((seq) => seq > after && seq < before).slice(0, query.limit).map(message),
    );
  },
});
const parse = (frames: string[]) => frames.map((frame) => JSON.parse(frame));
const seqsOf = (frames: string[]) =>
  parse(frames).filter((f) => f.type === "message").map((f) => f.seq);
const resumeOf = (frames: string[]) => parse(frames).at(-1);

Deno.test("replayFromRecent() serves a cursor the buffer covers, and declines one it does not", () => {
  const frames = replayFromRecent(range(3, 6), recent(2, 3, 4, 5, 6));
  assert.ok(frames);
  assert.deepEqual(seqsOf(frames), [4, 5, 6]);
  assert.deepEqual(resumeOf(frames), { type: "resume", complete: true, replayed: 3, epoch: "e1" });
  assert.equal(replayFromRecent(range(1, 6), recent(3, 4, 5, 6)), undefined, "seq 2 is not held");
  assert.equal(replayFromRecent(range(3, 6), recent(4, 6)), undefined, "a hole in the buffer");
  const none = replayFromRecent(range(6, 6), recent(5, 6));
  assert.deepEqual(none && resumeOf(none), {
    type: "resume",
    complete: true,
    replayed: 0,
    epoch: "e1",
  });
});

Deno.test("replayFromLog() merges store and buffer into the unbroken run, capped with reason limit", async () => {
  const full = await replayFromLog(log([1, 2, 3, 4]), range(0, 8), recent(5, 6, 7, 8));
  assert.deepEqual(seqsOf(full), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(resumeOf(full).complete, true);
  const capped = await replayFromLog(log([1, 2, 3, 4]), range(0, 8, 3), recent(5, 6, 7, 8));
  assert.deepEqual(seqsOf(capped), [1, 2, 3]);
  assert.deepEqual(resumeOf(capped), {
    type: "resume",
    complete: false,
    replayed: 3,
    epoch: "e1",
    reason: "limit",
  });
});

Deno.test("replayFromLog() stops at a hole and never says complete; a failing store gives the buffer's run", async () => {
  const holed = await replayFromLog(log([1, 2, 4]), range(0, 6), recent(5, 6));
  assert.deepEqual(
    seqsOf(holed),
    [1, 2],
    "nothing after the hole, so the client's cursor stays before it",
  );
  assert.equal(resumeOf(holed).reason, "unavailable");
  const down = await replayFromLog(log([1, 2, 3], true), range(0, 5), recent(1, 2, 3, 4, 5));
  assert.deepEqual(seqsOf(down), [1, 2, 3, 4, 5], "the buffer alone was enough");
  assert.equal(resumeOf(down).complete, true);
  const downShort = await replayFromLog(log([1, 2], true), range(0, 5), recent(3, 4, 5));
  assert.deepEqual(seqsOf(downShort), []);
  assert.equal(resumeOf(downShort).reason, "unavailable");
});

Deno.test("replayFromLog() ignores copies and messages past the join's last seq", async () => {
  const frames = await replayFromLog(log([1, 2, 3, 4, 5]), range(1, 3), recent(2, 3, 4, 5));
  assert.deepEqual(seqsOf(frames), [2, 3]);
  assert.equal(resumeOf(frames).complete, true);
});
