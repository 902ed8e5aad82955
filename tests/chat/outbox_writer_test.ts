/** OutboxWriter: a flush per turn, or (joined frames) per event-loop iteration, paced when slow. */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { OutboxWriter, PACED_FLUSH_MIN_MS } from "../../chat/outbox_writer.ts";

/** A target that counts its flushes, optionally busy for a while in each. */
class CountingTarget {
  flushes = 0;
  constructor(readonly busyMs = 0, readonly throws = false) {}

  flush(): void {
    this.flushes++;
    const until = performance.now() + this.busyMs;
    while (performance.now() < until) { /* a flush that costs CPU, as a large fan-out does */ }
    if (this.throws) throw new Error("flush failed");
  }
}

const nextIteration = () => new Promise<void>((resolve) => setImmediate(resolve));

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !condition(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(condition(), "never happened");
}

Deno.test("OutboxWriter.schedule flushes every target scheduled in a turn, at its end", async () => {
  const writer = new OutboxWriter();
  const first = new CountingTarget();
  const second = new CountingTarget();
  writer.schedule(first);
  writer.schedule(second);
  assert.equal(first.flushes + second.flushes, 0, "not within the task that scheduled them");
  await Promise.resolve();
  assert.deepEqual([first.flushes, second.flushes], [1, 1]);
  writer.schedule(first);
  await Promise.resolve();
  assert.equal(first.flushes, 2, "the next turn flushes again, without waiting for the loop");
});

Deno.test("OutboxWriter.scheduleAtIdle joins the turns of one event-loop iteration in one flush", async () => {
  const writer = new OutboxWriter();
  const target = new CountingTarget();
  const flushes: number[] = [];
  // Two turns of the same iteration (as two socket events ready together): one flush after both.
  writer.scheduleAtIdle(target);
  await Promise.resolve();
  flushes.push(target.flushes);
  writer.scheduleAtIdle(target);
  await Promise.resolve();
  flushes.push(target.flushes);
  await nextIteration();
  flushes.push(target.flushes);
  assert.deepEqual(flushes, [0, 0, 2]);
});

Deno.test("OutboxWriter.scheduleAtIdle waits after a slow flush as long as it took, then flushes", async () => {
  const writer = new OutboxWriter();
  const slowMs = Math.max(200, 100 * PACED_FLUSH_MIN_MS);
  const slow = new CountingTarget(slowMs);
  writer.scheduleAtIdle(slow);
  await nextIteration();
  assert.equal(slow.flushes, 1, "the first flush runs at once: nothing was slow before it");

  const next = new CountingTarget();
  const scheduled = performance.now();
  writer.scheduleAtIdle(next);
  await nextIteration();
  await nextIteration();
  assert.equal(next.flushes, 0, "a flush right after a slow one waits");
  await until(() => next.flushes === 1);
  // The wait is measured from the end of the slow flush, which came just before `scheduled`.
  assert.ok(performance.now() - scheduled >= slowMs / 2, "waited about as long as the flush took");

  // A short flush lets the one after it run at the next iteration again.
  const quick = new CountingTarget();
  writer.scheduleAtIdle(quick);
  await nextIteration();
  assert.equal(quick.flushes, 1);
});

Deno.test("OutboxWriter: a flush that throws is reported; the others of its turn still flush", async () => {
  const errors: unknown[] = [];
  const writer = new OutboxWriter((error) => errors.push(error));
  const failing = new CountingTarget(0, true);
  const healthy = new CountingTarget();
  writer.schedule(failing);
  writer.schedule(healthy);
  writer.scheduleAtIdle(failing);
  writer.scheduleAtIdle(healthy);
  await nextIteration();
  assert.equal(healthy.flushes, 2);
  assert.equal(failing.flushes, 2);
  assert.equal(errors.length, 2);
});
