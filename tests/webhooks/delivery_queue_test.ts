import assert from "node:assert/strict";
import { DeliveryQueue } from "../../webhooks/delivery_queue.ts";

interface Entry {
  readonly name: string;
  readonly bytes: number;
}

const entry = (name: string, bytes: number): Entry => ({ name, bytes });

Deno.test("DeliveryQueue.push() drops the oldest entries to stay within its byte bound", async () => {
  const queue = new DeliveryQueue<Entry>(1_000);
  assert.equal(queue.push(entry("a", 400)), 0);
  assert.equal(queue.push(entry("b", 400)), 0);
  assert.equal(queue.bytes, 800);
  assert.equal(queue.push(entry("c", 300)), 1, "a goes: 1,100 bytes would not fit");
  assert.deepEqual([queue.length, queue.bytes], [2, 700]);
  assert.equal(
    queue.push(entry("d", 1_000)),
    2,
    "an entry of the whole bound leaves room for none",
  );
  assert.deepEqual([queue.length, queue.bytes], [1, 1_000]);
  assert.equal((await queue.take())?.name, "d");
  assert.deepEqual([queue.length, queue.bytes], [0, 0]);
});

Deno.test("DeliveryQueue.push() keeps the bound over many entries, oldest out first", async () => {
  const queue = new DeliveryQueue<Entry>(10_000);
  let dropped = 0;
  for (let i = 0; i < 5_000; i++) {
    dropped += queue.push(entry(String(i), 100 + (i % 7)));
    assert.ok(queue.bytes <= 10_000, `bound kept after ${i}`);
  }
  assert.equal(dropped + queue.length, 5_000, "every entry is queued or counted as dropped");
  const names: number[] = [];
  while (queue.length > 0) names.push(Number((await queue.take())?.name));
  assert.equal(names.at(-1), 4_999, "the newest stays");
  assert.deepEqual(names, [...names].sort((a, b) => a - b), "in order");
  assert.equal(names[0], 5_000 - names.length, "what stays is the newest run, without holes");
});

Deno.test("DeliveryQueue.fits() tells an entry larger than the bound; push() refuses it and pushes after close()", () => {
  const queue = new DeliveryQueue<Entry>(100);
  assert.equal(queue.fits(100), true);
  assert.equal(queue.fits(101), false);
  assert.throws(() => queue.push(entry("big", 101)), RangeError);
  queue.close();
  assert.throws(() => queue.push(entry("late", 1)), RangeError);
  assert.throws(() => new DeliveryQueue(0), RangeError);
});

Deno.test("DeliveryQueue.take() waits for a push, in order of waiting; close() ends the waits", async () => {
  const queue = new DeliveryQueue<Entry>(1_000);
  const first = queue.take();
  const second = queue.take();
  assert.equal(queue.push(entry("x", 10)), 0);
  assert.equal(queue.bytes, 0, "handed over, not queued");
  assert.equal((await first)?.name, "x");
  queue.push(entry("y", 10));
  assert.equal((await second)?.name, "y");
  const third = queue.take();
  queue.close();
  assert.equal(await third, undefined);
});

Deno.test("DeliveryQueue.close() lets takers drain what is left; clear() empties it", async () => {
  const queue = new DeliveryQueue<Entry>(1_000);
  queue.push(entry("a", 10));
  queue.push(entry("b", 10));
  queue.push(entry("c", 10));
  queue.close();
  assert.equal((await queue.take())?.name, "a");
  assert.equal(queue.clear(), 2);
  assert.deepEqual([queue.length, queue.bytes], [0, 0]);
  assert.equal(await queue.take(), undefined);
});
