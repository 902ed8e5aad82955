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
