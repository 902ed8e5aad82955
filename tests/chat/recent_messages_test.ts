import assert from "node:assert/strict";
import { RecentMessages } from "../../chat/recent_messages.ts";

const id = (i: number) => `id-${String(i).padStart(4, "0")}`;

Deno.test("RecentMessages keeps the newest entries in order across wrap-around", () => {
  const recent = new RecentMessages(5);
  assert.equal(recent.covers(id(0)), false, "an empty buffer covers nothing");
  for (let i = 0; i < 12; i++) recent.add({ id: id(i), frame: `f${i}` });
  assert.equal(recent.size, 5);
  assert.deepEqual(recent.after(id(0)).map((m) => m.frame), ["f7", "f8", "f9", "f10", "f11"]);
  assert.deepEqual(recent.after(id(9)).map((m) => m.frame), ["f10", "f11"]);
  assert.deepEqual(recent.after(id(11)), []);
  assert.equal(recent.covers(id(6)), false, "id 6 was evicted: messages after it may be missing");
  assert.equal(recent.covers(id(7)), true);
  assert.equal(recent.covers(id(20)), true);
});

Deno.test("new RecentMessages() rejects a bad capacity", () => {
  assert.throws(() => new RecentMessages(0), RangeError);
});

Deno.test("RecentMessages places a slightly older id (from another instance) in order", () => {
  const recent = new RecentMessages(4);
  for (const i of [1, 2, 4, 5]) recent.add({ id: id(i), frame: `f${i}` });
  recent.add({ id: id(3), frame: "f3" }); // evicts 1, lands before 4
  assert.deepEqual(recent.after(id(0)).map((m) => m.frame), ["f2", "f3", "f4", "f5"]);
  recent.add({ id: id(0), frame: "f0" }); // older than everything held: not kept
  assert.deepEqual(recent.after(id(0)).map((m) => m.frame), ["f2", "f3", "f4", "f5"]);
});
