/**
 * The sequence cases of the store contract: seq-cursor pages, and each room's epoch and last seq
 * (`openRoom`, `roomSequence`, `releaseRooms`) behave the same on every store within one run.
 * Registered by `repositoryContract`; what differs between runs is tested per store.
 *
 * @module
 */
import assert from "node:assert/strict";
import { v7 } from "uuid";
import type { ChatMessage, RoomSequence } from "../../chat/message.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import { at, BASE_TIME, ids, messages } from "./_contract_fixtures.ts";
import type { ContractCase } from "./repository_contract.ts";

/** What protocol 2 lets a client send back as an epoch. */
const EPOCH_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The seq of the last of `saved`. */
function lastSeqOf(saved: readonly ChatMessage[]): number {
  return at(saved, saved.length - 1).seq;
}

/** Fails unless the room has exactly this sequence, by both reads. */
async function assertSequence(
  repository: MessageRepository,
  room: string,
  expected: RoomSequence,
): Promise<void> {
  assert.deepEqual(await repository.roomSequence(room), expected, "roomSequence()");
  assert.deepEqual(await repository.openRoom(room), expected, "openRoom()");
}

/** Registers the sequence cases with `test`. */
export function sequenceContract(test: ContractCase): void {
  test("history({ afterSeq }) returns the oldest limit messages with a greater seq", async (repository) => {
    const saved = messages("a", 30);
    await repository.saveBatch(saved);
    const after = (index: number, limit: number) =>
      repository.history("a", { limit, afterSeq: at(saved, index).seq });
    assert.deepEqual(await after(9, 5), saved.slice(10, 15));
    assert.deepEqual(await after(26, 5), saved.slice(27));
    assert.deepEqual(await after(29, 5), []);
    assert.deepEqual(await repository.history("a", { limit: 4, afterSeq: 0 }), saved.slice(0, 4));

    const forward: ChatMessage[] = [];
    let cursor = 0;
    for (;;) {
      const page = await repository.history("a", { limit: 8, afterSeq: cursor });
      if (page.length === 0) break;
      forward.push(...page);
      cursor = lastSeqOf(page);
    }
    assert.deepEqual(forward, saved);
  });

  test("history({ beforeSeq }) returns the newest limit messages with a lower seq", async (repository) => {
    const saved = messages("a", 30);
    await repository.saveBatch(saved);
    const before = (index: number, limit: number) =>
      repository.history("a", { limit, beforeSeq: at(saved, index).seq });
    assert.deepEqual(await before(20, 5), saved.slice(15, 20));
    assert.deepEqual(await before(3, 5), saved.slice(0, 3));
    assert.deepEqual(await before(0, 5), []);
    const beyond = lastSeqOf(saved) + 100; // a seq not stored (yet) still bounds the page
    assert.deepEqual(
      await repository.history("a", { limit: 4, beforeSeq: beyond }),
      saved.slice(-4),
    );

    const pages: ChatMessage[][] = [];
    let cursor: number | undefined;
    for (;;) {
      const page = await repository.history("a", { limit: 8, beforeSeq: cursor });
      if (page.length === 0) break;
      pages.unshift(page);
      cursor = at(page, 0).seq;
    }
    assert.deepEqual(pages.map((page) => page.length), [6, 8, 8, 8]);
    assert.deepEqual(pages.flat(), saved);
  });

  test("history({ afterSeq, beforeSeq }) returns the range between them, oldest first", async (repository) => {
    const saved = messages("a", 30);
    await repository.saveBatch(saved);
    const range = (after: number, before: number, limit: number) =>
      repository.history("a", {
        limit,
        afterSeq: at(saved, after).seq,
        beforeSeq: at(saved, before).seq,
      });
    assert.deepEqual(await range(4, 20, 100), saved.slice(5, 20));
    assert.deepEqual(await range(4, 20, 3), saved.slice(5, 8), "the page starts at afterSeq");
    assert.deepEqual(await range(4, 5, 10), []);
    assert.deepEqual(await range(20, 4, 10), []);
  });

  test("history() pages by seq, and id cursors by id, when ids are not in seq order", async (repository) => {
    // Two instances' clocks: each one's ids increase, but seq order interleaves them.
    const [i0, i1, i2, i3, i4, i5] = ids(6).map((id, i) => ({ id, i }));
    const bySeq = [i1, i0, i3, i2, i5, i4].map((entry, n) => {
      assert.ok(entry !== undefined);
      return {
        id: entry.id,
        room: "mixed",
        seq: n + 1,
        sender: "ann",
        content: `id rank ${entry.i}`,
        timestamp: new Date(BASE_TIME + n).toISOString(),
      };
    });
    const byId = [...bySeq].sort((a, b) => (a.id < b.id ? -1 : 1));
    await repository.saveBatch([...bySeq].reverse());
    assert.deepEqual(await repository.history("mixed", { limit: 100 }), bySeq);
    assert.deepEqual(await repository.history("mixed", { limit: 2 }), bySeq.slice(-2));
    assert.deepEqual(
      await repository.history("mixed", { limit: 3, afterSeq: 2 }),
      bySeq.slice(2, 5),
    );
    assert.deepEqual(
      await repository.history("mixed", { limit: 2, beforeSeq: 5 }),
      bySeq.slice(2, 4),
    );
    const after = await repository.history("mixed", { limit: 100, after: at(byId, 0).id });
    assert.deepEqual(after, byId.slice(1), "protocol 1: id order");
    const before = await repository.history("mixed", { limit: 2, before: at(byId, 5).id });
    assert.deepEqual(before, byId.slice(3, 5), "protocol 1: the newest ids before the cursor");
  });

  test("openRoom() gives a new room an epoch and lastSeq 0; opening it again keeps both", async (repository) => {
    const first = await repository.openRoom("a");
    assert.match(first.epoch, EPOCH_PATTERN);
    assert.equal(first.lastSeq, 0);
    assert.deepEqual(await repository.openRoom("a"), first);
    assert.deepEqual(await repository.roomSequence("a"), first);
    const other = await repository.openRoom("b");
    assert.match(other.epoch, EPOCH_PATTERN);
    assert.equal(other.lastSeq, 0);
    assert.deepEqual(await repository.history("a", { limit: 10 }), [], "opening stores nothing");
  });

  test("openRoom() and roomSequence() follow the highest seq saveBatch() stored", async (repository) => {
    const { epoch } = await repository.openRoom("a");
    const saved = messages("a", 10);
    await repository.saveBatch(saved.slice(0, 4));
    await assertSequence(repository, "a", { epoch, lastSeq: at(saved, 3).seq });
    await repository.saveBatch(saved.slice(7)); // a later batch first (workers race)
    await assertSequence(repository, "a", { epoch, lastSeq: lastSeqOf(saved) });
    await repository.saveBatch(saved.slice(4, 7)); // the earlier one never lowers it
    await assertSequence(repository, "a", { epoch, lastSeq: lastSeqOf(saved) });
    assert.deepEqual(await repository.history("a", { limit: 100 }), saved);
    const b = messages("b", 3);
    await repository.saveBatch(b);
    assert.equal((await repository.roomSequence("b"))?.lastSeq, lastSeqOf(b), "rooms apart");
    assert.deepEqual(await repository.roomSequence("a"), { epoch, lastSeq: lastSeqOf(saved) });
  });

  test("saveBatch() of another message under a stored (room, seq) changes nothing", async (repository) => {
    const { epoch } = await repository.openRoom("a");
    const saved = messages("a", 3);
    await repository.saveBatch(saved);
    // Another instance's message that was given the same seq: the first stored keeps it.
    const impostor = { ...at(saved, 1), id: v7(), sender: "mallory", content: "impostor" };
    await repository.saveBatch([impostor]);
    await repository.saveBatch([{ ...impostor, id: v7() }, ...saved]);
    assert.deepEqual(await repository.history("a", { limit: 100 }), saved);
    await assertSequence(repository, "a", { epoch, lastSeq: lastSeqOf(saved) });
    // The same seq in another room is another message.
    const elsewhere = { ...impostor, room: "b" };
    await repository.saveBatch([elsewhere]);
    assert.deepEqual(await repository.history("b", { limit: 100 }), [elsewhere]);
  });

  test("roomSequence() of an unknown room is undefined and creates nothing", async (repository) => {
    assert.equal(await repository.roomSequence("nobody-here"), undefined);
    assert.equal(await repository.roomSequence("nobody-here"), undefined, "still unknown");
    assert.deepEqual(await repository.history("nobody-here", { limit: 10 }), []);
    await repository.saveBatch(messages("somebody", 2));
    assert.equal(await repository.roomSequence("nobody-here"), undefined);
    const opened = await repository.openRoom("nobody-here");
    assert.deepEqual(await repository.roomSequence("nobody-here"), opened);
  });

  test("saveBatch() to a room never opened gives it an epoch that openRoom() then keeps", async (repository) => {
    const saved = messages("a", 4);
    await repository.saveBatch(saved);
    const sequence = await repository.roomSequence("a");
    assert.ok(sequence !== undefined);
    assert.match(sequence.epoch, EPOCH_PATTERN);
    assert.equal(sequence.lastSeq, lastSeqOf(saved));
    assert.deepEqual(await repository.openRoom("a"), sequence);
  });

  test("releaseRooms() keeps every room's epoch and last seq", async (repository) => {
    await repository.releaseRooms(); // nothing opened yet: nothing to release
    const a = await repository.openRoom("a");
    const b = await repository.openRoom("b");
    const saved = messages("a", 3);
    await repository.saveBatch(saved);
    await repository.releaseRooms();
    await repository.releaseRooms(); // twice is harmless
    assert.deepEqual(await repository.roomSequence("b"), b);
    await assertSequence(repository, "a", { epoch: a.epoch, lastSeq: lastSeqOf(saved) });
    assert.deepEqual(await repository.openRoom("b"), b);
    assert.deepEqual(await repository.history("a", { limit: 100 }), saved);
  });

  test("prune() of every message of a room keeps its sequence", async (repository) => {
    const { epoch } = await repository.openRoom("a");
    const saved = messages("a", 5);
    await repository.saveBatch(saved);
    const removed = await repository.prune({ olderThan: new Date(BASE_TIME + 86_400_000) });
    assert.equal(removed, saved.length);
    assert.deepEqual(await repository.history("a", { limit: 100 }), []);
    // The next seq continues after the pruned ones: a pruned seq is never handed out again.
    await assertSequence(repository, "a", { epoch, lastSeq: lastSeqOf(saved) });
  });
}
