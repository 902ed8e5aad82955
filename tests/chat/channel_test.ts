import assert from "node:assert/strict";
import { Channel, ChannelClosedError } from "../../chat/channel.ts";

/** Lets pending promise callbacks run; never a timer. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

Deno.test("Channel.receive() returns values in FIFO order, across ring wrap-around", async () => {
  const channel = new Channel<number>(3);
  const received: number[] = [];
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 3; i++) assert.equal(channel.trySend(round * 3 + i), true);
    received.push(await channel.receive());
    assert.equal(channel.trySend(round * 3 + 100), true);
    while (channel.size > 0) received.push(await channel.receive());
  }
  const expected = [];
  for (let round = 0; round < 5; round++) {
    expected.push(round * 3, round * 3 + 1, round * 3 + 2, round * 3 + 100);
  }
  assert.deepEqual(received, expected);
});

Deno.test("Channel.send() waits while full and resumes when a value is received", async () => {
  const channel = new Channel<string>(1);
  await channel.send("a");
  let sent = false;
  const pending = channel.send("b").then(() => sent = true);
  await settle();
  assert.equal(sent, false, "send must wait while the buffer is full");
  assert.equal(await channel.receive(), "a");
  await pending;
  assert.equal(sent, true);
  assert.equal(await channel.receive(), "b");
});

Deno.test("Channel.trySend() returns false when full or closed", () => {
  const channel = new Channel<number>(2);
  assert.equal(channel.trySend(1), true);
  assert.equal(channel.trySend(2), true);
  assert.equal(channel.trySend(3), false);
  assert.equal(channel.size, 2);
  channel.close();
  assert.equal(channel.trySend(4), false);
});

Deno.test("Channel.trySend() refuses while senders wait, keeping their order", async () => {
  const channel = new Channel<number>(1);
  channel.trySend(1);
  const waiting = channel.send(2);
  assert.equal(channel.trySend(3), false);
  assert.equal(await channel.receive(), 1);
  await waiting;
  assert.equal(await channel.receive(), 2);
});

Deno.test("Channel async iteration ends on close after draining buffered values", async () => {
  const channel = new Channel<number>(10);
  for (let i = 0; i < 4; i++) channel.trySend(i);
  channel.close();
  const received = [];
  for await (const value of channel) received.push(value);
  assert.deepEqual(received, [0, 1, 2, 3]);
});

Deno.test("Channel async iteration ends when closed while waiting", async () => {
  const channel = new Channel<number>(1);
  const received: number[] = [];
  const consumer = (async () => {
    for await (const value of channel) received.push(value);
  })();
  await channel.send(1);
  await settle();
  channel.close();
  await consumer;
  assert.deepEqual(received, [1]);
});

Deno.test("Channel.close() releases pending receivers with ChannelClosedError", async () => {
  const channel = new Channel<number>(1);
  const first = channel.receive();
  const second = channel.receive();
  channel.close();
  await assert.rejects(first, ChannelClosedError);
  await assert.rejects(second, ChannelClosedError);
  await assert.rejects(channel.receive(), ChannelClosedError);
});

Deno.test("Channel.close() refuses waiting senders with their unsent value", async () => {
  const channel = new Channel<string>(1);
  channel.trySend("kept");
  const refused = channel.send("refused");
  channel.close();
  await assert.rejects(
    refused,
    (error) => error instanceof ChannelClosedError && error.value === "refused",
  );
  await assert.rejects(
    channel.send("late"),
    (error) => error instanceof ChannelClosedError && error.value === "late",
  );
  assert.equal(await channel.receive(), "kept");
});

Deno.test("Channel.trySend() hands a value straight to a waiting receiver", async () => {
  const channel = new Channel<number>(0);
  assert.equal(channel.trySend(1), false, "unbuffered with no receiver");
  const receiving = channel.receive();
  assert.equal(channel.trySend(2), true);
  assert.equal(await receiving, 2);
});

Deno.test("Channel with capacity 0 hands off from a waiting sender", async () => {
  const channel = new Channel<number>(0);
  const sending = channel.send(5);
  assert.equal(await channel.receive(), 5);
  await sending;
});

Deno.test("Channel.drainInto() moves at most max buffered values, including waiting senders'", async () => {
  const channel = new Channel<number>(3);
  for (let i = 0; i < 3; i++) channel.trySend(i);
  const waiting = channel.send(3);
  const target: number[] = [];
  assert.equal(channel.drainInto(target, 2), 2);
  assert.deepEqual(target, [0, 1]);
  assert.equal(channel.drainInto(target, Infinity), 2);
  await waiting;
  assert.deepEqual(target, [0, 1, 2, 3]);
  assert.equal(channel.drainInto(target, Infinity), 0);
});

Deno.test("Channel never buffers more than its capacity", async () => {
  const channel = new Channel<number>(4);
  let accepted = 0;
  for (let i = 0; i < 100; i++) if (channel.trySend(i)) accepted++;
  assert.equal(accepted, 4);
  assert.equal(channel.size, 4);
  await channel.receive();
  assert.equal(channel.trySend(100), true);
  assert.equal(channel.trySend(101), false);
});

Deno.test("new Channel() rejects a bad capacity", () => {
  assert.throws(() => new Channel(-1), RangeError);
  assert.throws(() => new Channel(1.5), RangeError);
});
