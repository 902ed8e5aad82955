import assert from "node:assert/strict";
import { estimatedBytes, MemoryStore } from "../../storage/memory_store.ts";
import type { ChatMessage } from "../../chat/message.ts";
import { repositoryContract, SANITIZERS } from "./repository_contract.ts";
import { BASE_TIME, change, messages } from "./_contract_fixtures.ts";

repositoryContract("MemoryStore", () => {
  const repository = new MemoryStore({ maxPerRoom: 10_000, maxRooms: 100 });
  return Promise.resolve({ repository, dispose: () => repository.close() });
});

Deno.test(
  "MemoryStore.saveBatch() keeps only the newest maxPerRoom messages of a room",
  SANITIZERS,
  async () => {
    const store = new MemoryStore({ maxPerRoom: 5, maxRooms: 10 });
    const saved = messages("a", 12);
    await store.saveBatch(saved.slice(0, 8));
    await store.saveBatch(saved.slice(8));
    assert.deepEqual(await store.history("a", { limit: 100 }), saved.slice(-5));
    // A late message older than everything kept is forgotten at once, not kept instead of a newer.
    await store.saveBatch(saved.slice(0, 1));
    assert.deepEqual(await store.history("a", { limit: 100 }), saved.slice(-5));
    const other = messages("b", 3);
    await store.saveBatch(other);
    assert.deepEqual(await store.history("b", { limit: 100 }), other, "the bound is per room");
    await store.close();
  },
);

Deno.test(
  "MemoryStore.saveBatch() forgets the least recently written room beyond maxRooms",
  SANITIZERS,
  async () => {
    const store = new MemoryStore({ maxPerRoom: 100, maxRooms: 2 });
    const [a, b, c] = [messages("a", 2), messages("b", 2), messages("c", 2)];
    await store.saveBatch(a.slice(0, 1));
    await store.saveBatch(b);
    await store.saveBatch(a.slice(1)); // a is now written more recently than b
    await store.saveBatch(c);
    assert.deepEqual(await store.history("b", { limit: 100 }), [], "b was written least recently");
    assert.deepEqual(await store.history("a", { limit: 100 }), a);
    assert.deepEqual(await store.history("c", { limit: 100 }), c);
    await store.close();
  },
);

Deno.test(
  "MemoryStore.prune() of a large store lets writes in between rooms",
  SANITIZERS,
  async () => {
    const store = new MemoryStore({ maxPerRoom: 100_000, maxRooms: 10 });
    const rooms = ["a", "b", "c", "d"].map((room) => messages(room, 20_000));
    await store.saveBatch(rooms.flat());
    // It yields once it has examined 50,000 messages: after rooms a, b and c, before d.
    const pruning = store.prune({ maxPerRoom: 10 });
    const late = messages("d", 50);
    await store.saveBatch(late); // runs during that pause, so d is trimmed with it
    assert.equal(await pruning, 3 * 19_990 + 20_040);
    for (const [i, room] of ["a", "b", "c"].entries()) {
      assert.deepEqual(await store.history(room, { limit: 100 }), rooms[i]?.slice(-10));
    }
    assert.deepEqual(await store.history("d", { limit: 100 }), late.slice(-10));
    await store.close();
  },
);

const bytesOf = (kept: readonly ChatMessage[]) =>
  kept.reduce((sum, message) => sum + estimatedBytes(message), 0);

Deno.test(
  "MemoryStore.saveBatch() beyond maxBytes forgets the oldest messages of the least recently written rooms",
  SANITIZERS,
  async () => {
    const [a, b] = [messages("a", 6), messages("b", 11)];
    // Room for 10 messages: a's 6 and b's first 4, then b's 11 alone do not fit.
    const maxBytes = bytesOf(a) + bytesOf(b.slice(0, 4));
    const store = new MemoryStore({ maxPerRoom: 100, maxRooms: 10, maxBytes });
    await store.saveBatch(a);
    await store.saveBatch(b.slice(0, 6));
    // Over by two of b's messages: a, written least recently, loses its two oldest.
    assert.deepEqual(await store.history("a", { limit: 100 }), a.slice(2));
    assert.deepEqual(await store.history("b", { limit: 100 }), b.slice(0, 6));
    assert.ok(store.bytes <= maxBytes);
    await store.saveBatch(b.slice(6));
    assert.deepEqual(await store.history("a", { limit: 100 }), [], "a is forgotten entirely");
    const kept = await store.history("b", { limit: 100 });
    assert.deepEqual(kept, b.slice(b.length - kept.length), "b keeps its newest");
    assert.equal(store.bytes, bytesOf(kept));
    assert.ok(store.bytes <= maxBytes && bytesOf(b.slice(b.length - kept.length - 1)) > maxBytes);
    await store.close();
  },
);

Deno.test(
  "MemoryStore.bytes follows every way a message goes: per-room bound, room eviction, prune, duplicates",
  SANITIZERS,
  async () => {
    const store = new MemoryStore({ maxPerRoom: 5, maxRooms: 2 });
    const [a, b, c] = [messages("a", 8), messages("b", 3), messages("c", 4)];
    await store.saveBatch([...a, ...a.slice(0, 2)]); // 5 kept; the repeats are ignored
    assert.equal(store.bytes, bytesOf(a.slice(3)));
    await store.saveBatch(b);
    await store.saveBatch(c); // a, written least recently, is evicted
    assert.equal(store.bytes, bytesOf([...b, ...c]));
    assert.equal(await store.prune({ maxPerRoom: 2 }), 3);
    assert.equal(store.bytes, bytesOf([...b.slice(1), ...c.slice(2)]));
    await store.close();
    assert.equal(store.bytes, 0);
  },
);

Deno.test(
  "MemoryStore gives a room it forgot whole a new epoch, and the next run new epochs for all",
  SANITIZERS,
  async () => {
    const store = new MemoryStore({ maxPerRoom: 100, maxRooms: 2 });
    const a = await store.openRoom("a");
    const saved = messages("a", 3);
    await store.saveBatch(saved);
    await store.openRoom("b");
    await store.openRoom("c"); // a third room: a, written least recently, is forgotten
    assert.equal(await store.roomSequence("a"), undefined);
    const reopened = await store.openRoom("a");
    assert.notEqual(reopened.epoch, a.epoch, "its seqs would otherwise name lost messages");
    assert.equal(reopened.lastSeq, 0);

    // Nothing survives a restart, so no seq of the last run may be taken for one of this run.
    const next = new MemoryStore({ maxPerRoom: 100, maxRooms: 2 });
    assert.notEqual((await next.openRoom("a")).epoch, reopened.epoch);
    await Promise.all([store.close(), next.close()]);
  },
);

Deno.test(
  "MemoryStore maxPerRoom counts change items: the oldest items go first",
  SANITIZERS,
  async () => {
    const store = new MemoryStore({ maxPerRoom: 4, maxRooms: 10 });
    const saved = messages("bounded", 3);
    const edits = saved.map((message) =>
      change("bounded", message.sender, { kind: "edit", target: message.seq }, "edited")
    );
    await store.saveBatch([...saved, ...edits]);
    const items = await store.history("bounded", { limit: 100, changes: true });
    assert.deepEqual(items.map((item) => item.seq), [saved[2], ...edits].map((item) => item?.seq));
    assert.equal(items[0]?.content, "edited", "the kept message is in its latest state");
    await store.close();
  },
);

Deno.test(
  "MemoryStore.bytes follows edits, deletes and reactions, and drops to 0 when all is pruned",
  SANITIZERS,
  async () => {
    const store = new MemoryStore({ maxPerRoom: 100, maxRooms: 10 });
    const [first, second] = messages("bytes", 2) as [ChatMessage, ChatMessage];
    await store.saveBatch([first, second]);
    const all = () => store.history("bytes", { limit: 100, changes: true });
    const edit = change("bytes", "ann", { kind: "edit", target: first.seq }, "x".repeat(500));
    await store.saveBatch([edit]);
    assert.equal(store.bytes, bytesOf(await all()), "the edit, and the message's new content");
    await store.saveBatch([change("bytes", "ann", { kind: "delete", target: first.seq })]);
    assert.equal(store.bytes, bytesOf(await all()), "the content of both is gone");
    assert.ok(bytesOf(await all()) < bytesOf([first, second, edit]));
    const before = store.bytes;
    const reaction = { kind: "react", target: second.seq, reaction: "👍", on: true } as const;
    await store.saveBatch([change("bytes", "bob", reaction)]);
    assert.ok(store.bytes > bytesOf(await all()), "the reaction itself costs bytes");
    assert.ok(store.bytes > before);
    await store.prune({ olderThan: new Date(BASE_TIME + 86_400_000) });
    assert.equal(store.bytes, 0);
    await store.close();
  },
);
