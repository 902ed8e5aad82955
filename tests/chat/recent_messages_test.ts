import assert from "node:assert/strict";
import { RecentMessages } from "../../chat/recent_messages.ts";

const entry = (seq: number) => ({ seq, id: `id-${seq}`, frame: `f${seq}` });

Deno.test("RecentMessages.after() gives the newest entries after a seq, oldest first", () => {
  const recent = new RecentMessages(5);
  assert.equal(recent.oldestSeq, undefined);
  for (let seq = 1; seq <= 12; seq++) recent.add(entry(seq));
  assert.equal(recent.size, 5);
  assert.equal(recent.oldestSeq, 8);
  assert.deepEqual(recent.after(0).map((m) => m.frame), ["f8", "f9", "f10", "f11", "f12"]);
  assert.deepEqual(recent.after(10).map((m) => m.frame), ["f11", "f12"]);
  assert.deepEqual(recent.after(12), []);
  assert.equal(recent.seqOf("id-9"), 9);
  assert.equal(recent.seqOf("id-2"), undefined, "evicted");
});

Deno.test("RecentMessages.add() refuses a seq that is not greater than the newest", () => {
  const recent = new RecentMessages(3);
  recent.add(entry(4));
  recent.add(entry(7)); // a hole (a gap the cluster reported) is allowed
  assert.throws(() => recent.add(entry(7)), RangeError);
  assert.throws(() => recent.add(entry(5)), RangeError);
  assert.deepEqual(recent.after(4).map((m) => m.seq), [7]);
  recent.clear();
  assert.equal(recent.size, 0);
  recent.add(entry(1));
  assert.deepEqual(recent.after(0).map((m) => m.seq), [1]);
});
