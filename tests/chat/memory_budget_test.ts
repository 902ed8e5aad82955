import assert from "node:assert/strict";
import { MemoryBudget } from "../../chat/memory_budget.ts";
import { recentBytes, RecentMessages } from "../../chat/recent_messages.ts";

const frame = (seq: number, chars = 1_000) => ({ seq, id: `id-${seq}`, frame: "x".repeat(chars) });

Deno.test("MemoryBudget refuses what does not fit, once the recent buffers gave back what they hold", () => {
  const budget = new MemoryBudget(100_000);
  const turns: string[] = [];
  budget.listen({
    exhausted: () => turns.push("exhausted"),
    recovered: () => turns.push("recovered"),
  });
  const big = new RecentMessages(1_000, budget);
  const small = new RecentMessages(1_000, budget);
  for (let seq = 1; seq <= 30; seq++) big.add(frame(seq));
  small.add(frame(1));
  assert.equal(budget.used("recent"), big.bytes + small.bytes);
  assert.equal(budget.usedBytes, 31 * recentBytes(frame(1)));

  // 60 KB of unstored messages: the largest recent buffer is trimmed, oldest first.
  assert.equal(budget.tryTake("unstored", 60_000), true);
  assert.ok(budget.usedBytes <= budget.limitBytes);
  assert.equal(small.size, 1, "the largest buffer goes first");
  assert.ok(big.size < 30 && big.size > 0, `${big.size} left`);
  assert.equal(big.after(0).at(-1)?.seq, 30, "the newest stay");

  // Nothing left to trim that would make room: refused, told once.
  assert.equal(budget.tryTake("unstored", 60_000), false);
  assert.equal(budget.tryTake("unstored", 60_000), false);
  assert.equal(budget.refusals, 2);
  assert.deepEqual(turns, ["exhausted"]);

  budget.give("unstored", 60_000);
  assert.equal(budget.tryTake("unstored", 1_000), true);
  assert.deepEqual(turns, ["exhausted", "recovered"]);

  big.clear();
  small.clear();
  assert.equal(budget.used("recent"), 0);
  assert.equal(budget.usedBytes, 1_000);
});

Deno.test("RecentMessages keeps its capacity, its order and its byte count through trimming", () => {
  const budget = new MemoryBudget(1 << 30);
  const recent = new RecentMessages(5, budget);
  for (let seq = 1; seq <= 12; seq++) recent.add(frame(seq, seq));
  assert.deepEqual(recent.after(0).map((entry) => entry.seq), [8, 9, 10, 11, 12]);
  assert.equal(
    recent.bytes,
    [8, 9, 10, 11, 12].reduce((sum, seq) => sum + recentBytes(frame(seq, seq)), 0),
  );
  assert.equal(recent.reclaim(1), recentBytes(frame(8, 8)));
  assert.deepEqual(recent.after(9).map((entry) => entry.seq), [10, 11, 12]);
  assert.equal(recent.oldestSeq, 9);
  assert.equal(recent.seqOf("id-11"), 11);
  assert.equal(recent.seqOf("id-8"), undefined);
  assert.equal(budget.used("recent"), recent.bytes);
});
