/**
 * The retention cases of the store contract: `prune()` removes the same messages on every
 * store. Registered by `repositoryContract`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChatMessage } from "../../chat/message.ts";
import { type MessageRepository, RetentionPolicyError } from "../../storage/repository.ts";
import { BASE_TIME, change, messages } from "./_contract_fixtures.ts";
import type { ContractCase } from "./repository_contract.ts";

const LIMIT = 10_000;

/** Every message of `room`, ascending by id. */
function all(repository: MessageRepository, room: string): Promise<ChatMessage[]> {
  return repository.history(room, { limit: LIMIT });
}

/** `saved` with timestamps `BASE_TIME + offsets(i)` milliseconds. */
function retimed(saved: readonly ChatMessage[], offset: (i: number) => number): ChatMessage[] {
  return saved.map((message, i) => ({
    ...message,
    timestamp: new Date(BASE_TIME + offset(i)).toISOString(),
  }));
}

/** Registers the retention cases with `test`. */
export function pruneContract(test: ContractCase): void {
  test("prune({ olderThan }) removes messages timestamped before it", async (repository) => {
    const a = messages("a", 30); // BASE_TIME + i
    // Timestamps run backwards against ids: a store cutting by id instead of time fails here.
    const b = retimed(messages("b", 10), (i) => 19 - 2 * i); // 19, 17, ..., 1
    const c = retimed(messages("c", 3), (i) => 1_000 + i);
    const gone = retimed(messages("gone", 4), (i) => -60_000 + i);
    await repository.saveBatch([...a, ...b, ...c, ...gone]);

    const removed = await repository.prune({ olderThan: new Date(BASE_TIME + 10) });

    assert.equal(removed, 10 + 5 + 0 + 4);
    assert.deepEqual(await all(repository, "a"), a.slice(10), "one exactly at the cut-off stays");
    assert.deepEqual(await all(repository, "b"), b.slice(0, 5));
    assert.deepEqual(await all(repository, "c"), c);
    assert.deepEqual(await all(repository, "gone"), []);
    await repository.saveBatch(gone.slice(0, 1)); // an emptied room takes messages again
    assert.deepEqual(await all(repository, "gone"), gone.slice(0, 1));
  });

  test("prune({ maxPerRoom }) keeps the newest ids of every room", async (repository) => {
    const a = messages("a", 30);
    const b = messages("b", 5);
    // Newest by id, not by time: here the newest ids carry the oldest timestamps.
    const c = retimed(messages("c", 12), (i) => -i * 1_000);
    await repository.saveBatch([...a, ...b, ...c]);

    assert.equal(await repository.prune({ maxPerRoom: 10 }), 20 + 0 + 2);

    assert.deepEqual(await all(repository, "a"), a.slice(-10));
    assert.deepEqual(await all(repository, "b"), b);
    assert.deepEqual(await all(repository, "c"), c.slice(-10));
    assert.equal(await repository.prune({ maxPerRoom: 10 }), 0, "a second run finds nothing");
  });

  test("prune({ maxPerRoom }) trims each of many rooms", async (repository) => {
    // 80: the contract's memory store keeps 100 rooms.
    const rooms = Array.from({ length: 80 }, (_, i) => messages(`room-${i}`, 3));
    await repository.saveBatch(rooms.flat());

    assert.equal(await repository.prune({ maxPerRoom: 1 }), 80 * 2);

    for (const [i, saved] of rooms.entries()) {
      assert.deepEqual(await all(repository, `room-${i}`), saved.slice(-1));
    }
  });

  test("prune({ olderThan, maxPerRoom }) applies the age, then the count", async (repository) => {
    // The five newest ids are timestamped long ago: the age rule removes them, and the count
    // then keeps the five newest of the rest. Counting first would keep nothing.
    const a = retimed(messages("a", 20), (i) => (i < 15 ? i : -100_000 - i));
    const b = messages("b", 3);
    await repository.saveBatch([...a, ...b]);

    const removed = await repository.prune({ olderThan: new Date(BASE_TIME), maxPerRoom: 5 });

    assert.equal(removed, 5 + 10);
    assert.deepEqual(await all(repository, "a"), a.slice(10, 15));
    assert.deepEqual(await all(repository, "b"), b);
  });

  test("prune() removes the changes and reactions of the messages it removes, and old changes", async (repository) => {
    const [m1, m2, m3] = retimed(messages("a", 3), (i) => (i === 0 ? -60_000 : 60_000 + i)) as [
      ChatMessage,
      ChatMessage,
      ChatMessage,
    ];
    const react = (target: ChatMessage) =>
      change("a", "bob", { kind: "react", target: target.seq, reaction: "👍", on: true });
    const edit = (target: ChatMessage, offset: number) => ({
      ...change("a", target.sender, { kind: "edit", target: target.seq }, `edited ${offset}`),
      timestamp: new Date(BASE_TIME + offset).toISOString(),
    });
    const [e1, r1, e2, r2, e3] = [
      edit(m1, 1_000),
      react(m1),
      edit(m2, -1_000),
      react(m2),
      edit(m3, 1_000),
    ];
    await repository.saveBatch([m1, m2, m3, e1, r1, e2, r2, e3]);

    assert.equal(await repository.prune({ olderThan: new Date(BASE_TIME) }), 1, "messages only");

    const edited = (message: ChatMessage, edit: ChatMessage) => ({
      ...message,
      content: edit.content,
      editedAt: edit.timestamp,
    });
    // m1 went with its changes; e2 is old (its effect stays); r2 and e3 stay.
    const left = [edited(m2, e2), edited(m3, e3)];
    assert.deepEqual(await repository.history("a", { limit: 100, changes: true }), [
      ...left,
      r2,
      e3,
    ]);
    const seqs = [m1.seq, m2.seq, m3.seq];
    assert.deepEqual([...(await repository.reactionsTo("a", seqs)).keys()], [m2.seq]);

    assert.equal(await repository.prune({ maxPerRoom: 1 }), 1);
    assert.deepEqual(await repository.history("a", { limit: 100, changes: true }), [left[1], e3]);
    assert.deepEqual(await repository.reactionsTo("a", seqs), new Map());
  });

  test("prune() returns 0 and keeps everything when nothing is due", async (repository) => {
    const cutoff = new Date(BASE_TIME);
    assert.equal(await repository.prune({ olderThan: cutoff, maxPerRoom: 1 }), 0, "empty store");
    const saved = messages("a", 10);
    await repository.saveBatch(saved);
    assert.equal(await repository.prune({}), 0, "no limit set");
    assert.equal(await repository.prune({ olderThan: cutoff }), 0, "none older");
    assert.equal(await repository.prune({ maxPerRoom: 10 }), 0, "exactly at the limit");
    assert.equal(await repository.prune({ olderThan: cutoff, maxPerRoom: 50 }), 0);
    assert.deepEqual(await all(repository, "a"), saved);
  });

  test("prune() with an aborted signal removes nothing", async (repository) => {
    const saved = messages("a", 10);
    await repository.saveBatch(saved);
    const policy = { olderThan: new Date(BASE_TIME + 5), maxPerRoom: 2 };
    assert.equal(await repository.prune(policy, AbortSignal.abort()), 0);
    assert.deepEqual(await all(repository, "a"), saved);
  });

  test("prune() rejects a policy out of range and removes nothing", async (repository) => {
    const saved = messages("a", 10);
    await repository.saveBatch(saved);
    const rejects = async (policy: Parameters<MessageRepository["prune"]>[0], setting: string) => {
      await assert.rejects(repository.prune(policy), (error: unknown) => {
        assert.ok(error instanceof RetentionPolicyError, `got ${error}`);
        assert.equal(error.code, "invalid_retention_policy");
        assert.equal(error.setting, setting);
        return true;
      });
    };
    for (const maxPerRoom of [0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await rejects({ maxPerRoom }, "maxPerRoom");
    }
    await rejects({ olderThan: new Date(Number.NaN) }, "olderThan");
    await rejects({ olderThan: new Date(BASE_TIME + 5), maxPerRoom: 0 }, "maxPerRoom");
    assert.deepEqual(await all(repository, "a"), saved);
  });
}
