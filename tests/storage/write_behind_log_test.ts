import assert from "node:assert/strict";
import { v7 } from "uuid";
import type { ChatMessage, MessageChange } from "../../chat/message.ts";
import { MemoryBudget } from "../../chat/memory_budget.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { tombstone } from "../../storage/message_state.ts";
import { heldBytes, WriteBehindLog } from "../../storage/write_behind_log.ts";
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
function openLog(queueLimit = 100, budget?: MemoryBudget) {
  const store = new MemoryStore({ maxPerRoom: 1_000, maxRooms: 10 });
  const log = new WriteBehindLog(store, { queueLimit, batchSize: 100, batchWaitMs: 0, budget });
  const batches = log.batches()[Symbol.asyncIterator]();
  const takeBatch = async () => {
    const { value, done } = await batches.next();
    assert.ok(!done, "the batches ended");
    return value;
  };
  const close = async () => {
    log.close();
    // Drain what is left as workers at a shutdown deadline would: each batch given up on, which
    // gives up the changes parked behind its messages too, so that the batches end.
    for (;;) {
      const { value, done } = await batches.next();
      if (done) break;
      log.settled(value, false);
    }
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

/** A change item of room "a" at `seq` by ann (an edit's content is `content`). */
function changeAt(seq: number, what: MessageChange, content = ""): ChatMessage {
  return {
    id: v7(),
    room: "a",
    seq,
    sender: "ann",
    content,
    timestamp: new Date(BASE_TIME + 60_000 + seq).toISOString(),
    change: what,
  };
}

const editOf = (target: number, seq: number, content = `edit ${seq}`) =>
  changeAt(seq, { kind: "edit", target }, content);
const deleteOf = (target: number, seq: number) => changeAt(seq, { kind: "delete", target });
const reactTo = (target: number, seq: number, on = true) =>
  changeAt(seq, { kind: "react", target, reaction: "👍", on });

/** `log.append()` of every item, failing if it refuses one. */
function appendAll(log: WriteBehindLog, ...items: ChatMessage[]): void {
  for (const item of items) assert.ok(log.append(item), `seq ${item.seq} refused`);
}

Deno.test(
  "WriteBehindLog.append() of a change hands it to the workers only once its target is stored",
  SANITIZERS,
  async () => {
    const { store, log, takeBatch, close } = openLog();
    await store.saveBatch([message("a", 1)]);
    hold(log, "a", 2);
    const [editOfStored, editOfHeld, reaction] = [editOf(1, 3), editOf(2, 4), reactTo(2, 5)];
    appendAll(log, editOfStored, editOfHeld, reaction);
    assert.deepEqual([log.queued, log.unstored], [4, 4], "parked changes count as queued");
    // The target 2 is held: its changes wait; the edit of the stored 1 goes at once.
    const first = await takeBatch();
    assert.deepEqual(seqsOf(first), [2, 3]);
    assert.deepEqual([log.queued, log.unstored], [2, 4]);
    await store.saveBatch(first);
    log.settled(first, true);
    const second = await takeBatch();
    assert.deepEqual(second, [editOfHeld, reaction], "in seq order, together");
    assert.deepEqual([log.queued, log.unstored], [0, 2]);
    // While they are on their way, a later change of the same target waits for them.
    const later = editOf(2, 6);
    appendAll(log, later, editOf(1, 7));
    assert.deepEqual(seqsOf(await takeBatch()), [7], "the edit of 1 has nothing in its way");
    await store.saveBatch(second);
    log.settled(second, true);
    assert.deepEqual(await takeBatch(), [later]);
    assert.deepEqual(await store.history("a", { limit: 10 }), [
      { ...message("a", 1), content: "edit 3", editedAt: editOfStored.timestamp },
      { ...message("a", 2), content: "edit 4", editedAt: editOfHeld.timestamp },
    ]);
    await close();
  },
);

Deno.test(
  "WriteBehindLog.settled() of a target given up on gives up its parked changes and tells the watcher",
  SANITIZERS,
  async () => {
    const { log, takeBatch, close } = openLog();
    const told: [number[], boolean][] = [];
    const stop = log.watch("a", (items, stored) => told.push([seqsOf(items), stored]));
    hold(log, "a", 1);
    appendAll(log, editOf(1, 2), reactTo(1, 3));
    const batch = await takeBatch();
    log.settled(batch, false); // the shutdown deadline passed
    assert.deepEqual(told, [[[1], false], [[2, 3], false]]);
    assert.deepEqual([log.queued, log.unstored], [0, 0]);
    assert.deepEqual(await log.history("a", { limit: 10, changes: true }), []);
    stop();
    await close();
  },
);

Deno.test(
  "WriteBehindLog reads apply held edits, deletes and reactions to stored and held messages",
  SANITIZERS,
  async () => {
    const { store, log, close } = openLog();
    const stored = [1, 2, 3].map((seq) => message("a", seq));
    const bobs = { ...reactTo(3, 4), sender: "bob" };
    await store.saveBatch([...stored, bobs]);
    const [e5, d6, r7] = [editOf(1, 5), deleteOf(2, 6), reactTo(3, 7)];
    const held7 = message("a", 8);
    const [e9, r10] = [editOf(8, 9), reactTo(8, 10)];
    appendAll(log, e5, d6, r7, held7, e9, r10);
    const edited = (m: ChatMessage, e: ChatMessage) => ({
      ...m,
      content: e.content,
      editedAt: e.timestamp,
    });
    const latest = [edited(at(stored, 0), e5), tombstone(at(stored, 1)), at(stored, 2)];
    const heldLatest = edited(held7, e9);
    assert.deepEqual(await log.history("a", { limit: 10 }), [...latest, heldLatest]);
    assert.deepEqual(
      await log.history("a", { limit: 2 }),
      [latest[2], heldLatest],
      "changes take no place in a page of messages",
    );
    const items = [...latest, bobs, e5, d6, r7, heldLatest, e9, r10];
    assert.deepEqual(await log.history("a", { limit: 20, changes: true }), items);
    assert.deepEqual(await log.history("a", { limit: 3, changes: true }), items.slice(-3));
    assert.deepEqual(
      await log.history("a", { limit: 3, afterSeq: 4, changes: true }),
      [e5, d6, r7],
    );
    const page = await log.historyPage("a", { limit: 10 });
    assert.deepEqual(page, { messages: [...latest, heldLatest], complete: true });
    assert.deepEqual(
      await log.reactionsTo("a", [1, 2, 3, 8]),
      new Map([[3, new Map([["👍", ["ann", "bob"]]])], [8, new Map([["👍", ["ann"]]])]]),
    );
    const off = reactTo(8, 11, false);
    appendAll(log, off);
    assert.deepEqual([...(await log.reactionsTo("a", [3, 8])).keys()], [3]);
    assert.deepEqual(await log.openRoom("a"), {
      epoch: (await store.roomSequence("a"))?.epoch,
      lastSeq: 11,
    });
    await close();
  },
);

Deno.test(
  "WriteBehindLog.unread() adds held messages of others that no held change deletes",
  SANITIZERS,
  async () => {
    const { store, log, close } = openLog();
    await store.saveBatch([1, 2, 3].map((seq) => message("a", seq))); // ann's
    await store.saveReadPosition("a", "bob", 1);
    await store.saveReadPosition("a", "ann", 1);
    hold(log, "a", 4, 5);
    appendAll(log, { ...message("a", 6), sender: "bob" }, deleteOf(5, 7), reactTo(4, 8));
    assert.deepEqual(await log.unread("bob"), [
      { room: "a", readSeq: 1, unread: 2 + 1, lastSeq: 8 }, // 2 and 3 stored, 4 held; 5 deleted
    ]);
    assert.deepEqual(await log.unread("ann", "a"), [
      { room: "a", readSeq: 1, unread: 1, lastSeq: 8 }, // bob's 6
    ]);
    assert.deepEqual(await log.unread("carol"), [], "no read position: not listed");
    await close();
  },
);

Deno.test(
  "WriteBehindLog counts parked changes against queueLimit and the budget",
  SANITIZERS,
  async () => {
    const budget = new MemoryBudget(1_000_000);
    const { log, takeBatch, close } = openLog(3, budget);
    hold(log, "a", 1);
    const edit = editOf(1, 2);
    appendAll(log, edit);
    assert.ok(log.hasRoomFor(1) && !log.hasRoomFor(2));
    assert.deepEqual(seqsOf(await takeBatch()), [1]);
    assert.equal(log.queued, 1, "the parked edit");
    appendAll(log, reactTo(1, 3), editOf(1, 4));
    assert.ok(!log.hasRoomFor(1));
    assert.equal(log.append(editOf(1, 5)), false, "full of parked changes");
    const reaction = reactTo(1, 3);
    const bigger = {
      ...reaction,
      change: { kind: "react", target: 1, reaction: "x".repeat(11), on: true },
    } as const;
    assert.equal(heldBytes(bigger) - heldBytes(reaction), 2 * 9, "reaction text is counted");
    const used = budget.used("unstored");
    assert.equal(used, heldBytes(message("a", 1)) + 2 * heldBytes(edit) + heldBytes(reaction));
    log.settled([message("a", 1)], false);
    assert.equal(budget.used("unstored"), 0, "given up on with their target");
    assert.deepEqual([log.queued, log.unstored], [0, 0]);
    await close();
  },
);

Deno.test(
  "WriteBehindLog.close() refuses new items; its batches end after the parked changes",
  SANITIZERS,
  async () => {
    const { store, log, takeBatch, close } = openLog();
    hold(log, "a", 1);
    const edit = editOf(1, 2);
    appendAll(log, edit);
    log.close();
    assert.equal(log.append(message("a", 3)), false);
    const first = await takeBatch();
    await store.saveBatch(first);
    log.settled(first, true);
    assert.deepEqual(await takeBatch(), [edit], "stored after the shutdown began");
    log.settled([edit], true);
    await close(); // the batches end: close() drains them to the end
  },
);

/**
 * A memory store whose reads answer as of their start, as a PostgreSQL statement does: the answer
 * is taken at once, handed back only after `during` ran (a batch stored and settled meanwhile).
 */
class SnapshotReads extends MemoryStore {
  during: () => Promise<void> = () => Promise.resolve();

  override async history(room: string, query: Parameters<MemoryStore["history"]>[1]) {
    const page = await super.history(room, query);
    await this.during();
    return page;
  }

  override async reactionsTo(room: string, seqs: readonly number[]) {
    const reactions = await super.reactionsTo(room, seqs);
    await this.during();
    return reactions;
  }
}

Deno.test(
  "WriteBehindLog reads miss no item settled while the store is read",
  SANITIZERS,
  async () => {
    const store = new SnapshotReads({ maxPerRoom: 1_000, maxRooms: 10 });
    const log = new WriteBehindLog(store, { queueLimit: 100, batchSize: 100, batchWaitMs: 0 });
    const batches = log.batches()[Symbol.asyncIterator]();
    await store.saveBatch([message("a", 1)]);
    hold(log, "a", 2);
    appendAll(log, editOf(1, 3));
    // The workers store and settle each batch while a read is at the store.
    let settledDuringRead = 0;
    const settleDuringRead = (batch: ChatMessage[]) => {
      store.during = async () => {
        if (log.unstored === 0) return;
        await store.saveBatch(batch);
        log.settled(batch, true);
        settledDuringRead++;
      };
    };
    const first = (await batches.next()).value as ChatMessage[];
    assert.deepEqual(seqsOf(first), [2, 3]);
    settleDuringRead(first);
    const page = await log.historyPage("a", { limit: 10 });
    assert.equal(settledDuringRead, 1);
    assert.deepEqual(seqsOf(page.messages), [1, 2]);
    assert.equal(page.messages[0]?.content, "edit 3");
    appendAll(log, reactTo(1, 4));
    const second = (await batches.next()).value as ChatMessage[];
    assert.deepEqual(seqsOf(second), [4]);
    settleDuringRead(second);
    assert.deepEqual(await log.reactionsTo("a", [1]), new Map([[1, new Map([["👍", ["ann"]]])]]));
    assert.equal(settledDuringRead, 2);
    log.close();
    await batches.next();
    await store.close();
  },
);
