import assert from "node:assert/strict";
import type { ChatMessage } from "../../chat/message.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { WriteBehindLog } from "../../storage/write_behind_log.ts";
import { at, BASE_TIME, ids } from "./_contract_fixtures.ts";
import { SANITIZERS } from "./repository_contract.ts";

/** Ids in seq order: `idOf(seq)` is the id of message `seq` of any room here. */
const ID_BY_SEQ = ids(21);
const idOf = (seq: number) => at(ID_BY_SEQ, seq);

function message(room: string, seq: number): ChatMessage {
  return {
    id: idOf(seq),
    room,
    seq,
    sender: "ann",
    content: `${room} ${seq}`,
    timestamp: new Date(BASE_TIME + seq).toISOString(),
  };
}

const seqsOf = (page: readonly ChatMessage[]) => page.map((m) => m.seq);

/**
 * A log over a memory store; batches are handed out as soon as taken. Its batches are read
 * by hand here, as the persistence workers would.
 */
function openLog(queueLimit = 100) {
  const store = new MemoryStore({ maxPerRoom: 1_000, maxRooms: 10 });
  const log = new WriteBehindLog(store, { queueLimit, batchSize: 100, batchWaitMs: 0 });
  const batches = log.batches()[Symbol.asyncIterator]();
  const takeBatch = async () => {
    const { value, done } = await batches.next();
    assert.ok(!done, "the batches ended");
    return value;
  };
  const close = async () => {
    log.close();
    while (!(await batches.next()).done) { /* drain what is left, as the workers would */ }
    await store.close();
  };
  return { store, log, takeBatch, close };
}

/** Appends every seq to the log, failing if it refuses one. */
function hold(log: WriteBehindLog, room: string, ...seqs: number[]): void {
  for (const seq of seqs) assert.ok(log.append(message(room, seq)), `seq ${seq} refused`);
}

Deno.test(
  "WriteBehindLog.append() takes up to queueLimit, then refuses; hasRoomFor() says so first",
  SANITIZERS,
  async () => {
    const { log, takeBatch, close } = openLog(3);
    assert.ok(log.hasRoomFor(3));
    assert.ok(!log.hasRoomFor(4));
    hold(log, "a", 1);
    assert.ok(log.hasRoomFor(2));
    assert.ok(!log.hasRoomFor(3));
    hold(log, "a", 2, 3);
    assert.ok(!log.hasRoomFor(1));
    assert.equal(log.append(message("a", 4)), false, "the queue is full");
    assert.ok(log.append(message("a", 2)), "a copy of one taken already is not taken twice");
    assert.deepEqual([log.queued, log.unstored], [3, 3]);
    assert.deepEqual(seqsOf(await log.history("a", { limit: 10 })), [1, 2, 3], "4 is nowhere");

    // Taken by a worker, the messages leave the queue but are held until settled.
    assert.deepEqual(seqsOf(await takeBatch()), [1, 2, 3]);
    assert.deepEqual([log.queued, log.unstored], [0, 3]);
    assert.ok(log.hasRoomFor(3));
    hold(log, "a", 4);

    log.close();
    assert.equal(log.append(message("a", 5)), false, "closed: nothing more is taken");
    assert.ok(!log.hasRoomFor(1));
    assert.deepEqual(seqsOf(await takeBatch()), [4], "what was queued still reaches the workers");
    await close();
  },
);

Deno.test(
  "WriteBehindLog.history() merges held messages into the store's page under the same window",
  SANITIZERS,
  async () => {
    const { store, log, close } = openLog();
    await store.saveBatch([1, 2, 3, 5, 7, 8].map((seq) => message("a", seq)));
    hold(log, "a", 4, 6, 9, 10); // a failed batch (4, 6) and the newest, not stored yet
    hold(log, "b", 11);
    const page = async (query: Parameters<WriteBehindLog["history"]>[1]) =>
      seqsOf(await log.history("a", query));

    assert.deepEqual(await page({ limit: 4 }), [7, 8, 9, 10], "the newest page");
    assert.deepEqual(await page({ limit: 100 }), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(await page({ limit: 3, afterSeq: 2 }), [3, 4, 5]);
    assert.deepEqual(await page({ limit: 10, afterSeq: 10 }), []);
    assert.deepEqual(await page({ limit: 3, beforeSeq: 8 }), [5, 6, 7]);
    assert.deepEqual(await page({ limit: 10, afterSeq: 3, beforeSeq: 9 }), [4, 5, 6, 7, 8]);
    assert.deepEqual(await page({ limit: 2, afterSeq: 3, beforeSeq: 9 }), [4, 5]);
    // Protocol 1: the same windows by id.
    assert.deepEqual(await page({ limit: 3, after: idOf(2) }), [3, 4, 5]);
    assert.deepEqual(await page({ limit: 10, before: idOf(7) }), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(await page({ limit: 2, after: idOf(3), before: idOf(9) }), [4, 5]);
    assert.deepEqual(await page({ limit: 2, before: idOf(20) }), [9, 10]);

    // A batch stored and not yet settled is in both: it is read once.
    await store.saveBatch([message("a", 9)]);
    assert.deepEqual(await page({ limit: 3 }), [8, 9, 10]);
    const everything = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((seq) => message("a", seq));
    assert.deepEqual(await log.history("a", { limit: 100 }), everything, "whole messages");
    assert.deepEqual(seqsOf(await log.history("b", { limit: 10 })), [11], "rooms apart");
    assert.deepEqual(await log.history("c", { limit: 10 }), []);
    await close();
  },
);

Deno.test(
  "WriteBehindLog.openRoom() and roomSequence() raise the store's last seq to the newest held",
  SANITIZERS,
  async () => {
    const { store, log, close } = openLog();
    const { epoch } = await log.openRoom("a");
    await store.saveBatch([1, 2].map((seq) => message("a", seq)));
    hold(log, "a", 3, 4, 5);
    // A room that empties and opens again continues after what is held, not after the store.
    assert.deepEqual(await log.openRoom("a"), { epoch, lastSeq: 5 });
    assert.deepEqual(await log.roomSequence("a"), { epoch, lastSeq: 5 });
    assert.deepEqual(await store.roomSequence("a"), { epoch, lastSeq: 2 });
    hold(log, "b", 1);
    assert.deepEqual((await log.openRoom("b")).lastSeq, 1);

    assert.equal(await log.roomSequence("unknown"), undefined);
    assert.equal(await store.roomSequence("unknown"), undefined, "roomSequence() creates nothing");
    await close();
  },
);

Deno.test(
  "WriteBehindLog.settled() forgets what the workers stored or gave up on",
  SANITIZERS,
  async () => {
    const { store, log, takeBatch, close } = openLog();
    const { epoch } = await log.openRoom("a");
    hold(log, "a", 1, 2, 3);
    hold(log, "b", 1);
    const batch = await takeBatch();
    assert.equal(batch.length, 4);

    // Stored: the reads now come from the store alone, the same as before.
    const stored = batch.filter((m) => m.room === "a" && m.seq < 3);
    await store.saveBatch(stored);
    log.settled(stored, true);
    assert.equal(log.unstored, 2);
    assert.deepEqual(seqsOf(await log.history("a", { limit: 10 })), [1, 2, 3]);

    // Given up on (shutdown deadline): no longer read, and no longer raising the last seq.
    log.settled(batch.filter((m) => !stored.includes(m)), true);
    assert.equal(log.unstored, 0);
    assert.deepEqual(seqsOf(await log.history("a", { limit: 10 })), [1, 2]);
    assert.deepEqual(await log.history("b", { limit: 10 }), []);
    assert.deepEqual(await log.roomSequence("a"), { epoch, lastSeq: 2 });

    log.settled(batch, true); // settling again, or what was never held, changes nothing
    log.settled([message("c", 1)], true);
    assert.equal(log.unstored, 0);
    hold(log, "a", 3); // the seq is free again in the log (the room loop never reuses it)
    assert.equal(log.unstored, 1);
    await close();
  },
);

Deno.test(
  "WriteBehindLog.deleteMessage() hides a held message at once and deletes it once it is written",
  SANITIZERS,
  async () => {
    const { store, log, takeBatch, close } = openLog();
    await store.saveBatch([message("a", 1)]);
    hold(log, "a", 2, 3);
    assert.equal((await log.deleteMessage("a", 2))?.seq, 2, "held");
    assert.equal(await log.deleteMessage("a", 2), undefined, "deleted already");
    assert.equal((await log.deleteMessage("a", 1))?.seq, 1, "stored");
    assert.equal(await log.deleteMessage("a", 9), undefined, "none");
    assert.deepEqual(seqsOf(await log.history("a", { limit: 10 })), [3]);

    // The workers write the batch, the deleted one with it; settling removes it from the store.
    const batch = await takeBatch();
    await store.saveBatch(batch);
    log.settled(batch, true);
    for (let i = 0; i < 20; i++) await Promise.resolve();
    assert.deepEqual(seqsOf(await store.history("a", { limit: 10 })), [3]);
    assert.deepEqual(seqsOf(await log.history("a", { limit: 10 })), [3]);
    await close();
  },
);
