import assert from "node:assert/strict";
import { Client, type ClientOwner, type Transport } from "../../chat/client.ts";
import { OutboxWriter } from "../../chat/outbox_writer.ts";
import { CLOSE_CODES, type CloseCode, type ErrorCode } from "../../chat/protocol.ts";

/** A transport double: records every `send` call (one batch per turn shows as one run of them). */
class RecordingTransport implements Transport {
  readonly sent: string[] = [];
  closedWith: number | undefined;
  bufferedAmount = 0;

  send(frame: string): void {
    this.sent.push(frame);
  }

  close(code: number): Promise<void> {
    this.closedWith = code;
    return Promise.resolve();
  }
}

/** An owner double that records releases and refusals. */
class RecordingOwner implements ClientOwner {
  readonly released: (CloseCode | undefined)[] = [];
  readonly refusals: ErrorCode[] = [];

  submit(): ErrorCode | undefined {
    return undefined;
  }

  change(): ErrorCode | undefined {
    return undefined;
  }

  refused(code: ErrorCode): void {
    this.refusals.push(code);
  }

  release(_client: Client, close: CloseCode | undefined): void {
    this.released.push(close);
  }

  faulted(): void {}

  typing(): void {}

  read(): void {}
}

function newClient(limits = { frames: 4, bytes: 1_000, replayFrames: 10 }) {
  const transport = new RecordingTransport();
  const owner = new RecordingOwner();
  const writer = new OutboxWriter();
  const client = new Client({ id: 1, room: "r", user: "ann" }, transport, {
    owner,
    limits,
    writer,
  });
  return { client, transport, owner };
}

/** One microtask turn: the writer's flush runs. */
const nextTurn = () => Promise.resolve();

Deno.test("Client.offer() queues frames that are written together once the current task ends", async () => {
  const { client, transport } = newClient();
  assert.ok(client.offer("a"));
  assert.ok(client.offer("b"));
  assert.deepEqual(transport.sent, [], "nothing is written inside the turn");
  await nextTurn();
  assert.deepEqual(transport.sent, ["a", "b"]);
  assert.ok(client.offer("c"));
  await nextTurn();
  assert.deepEqual(transport.sent, ["a", "b", "c"]);
});

Deno.test("Client.offer() refuses a live frame beyond the outbox bound within one turn", async () => {
  const { client, transport } = newClient();
  for (const frame of ["1", "2", "3", "4"]) assert.ok(client.offer(frame));
  assert.equal(client.offer("5"), false);
  await nextTurn();
  assert.deepEqual(transport.sent, ["1", "2", "3", "4"]);
  assert.ok(client.offer("5"), "the bound applies to what waits, and the outbox was written");
});

Deno.test("Client.endReplay() frames do not count against the live bound", async () => {
  const { client, transport } = newClient();
  client.beginReplay();
  assert.ok(client.offer("live1"));
  const replay = Array.from({ length: 10 }, (_, i) => `old${i}`);
  client.endReplay(replay);
  // In the same turn: four live frames still fit, although ten replayed ones wait too.
  for (const frame of ["live2", "live3", "live4"]) assert.ok(client.offer(frame));
  assert.equal(client.offer("live5"), false);
  await nextTurn();
  assert.deepEqual(transport.sent, [...replay, "live1", "live2", "live3", "live4"]);
});

Deno.test("Client.flush() reads the buffered bytes once per eighth of the bound written, and cuts off a peer over it", async () => {
  const { client, transport, owner } = newClient(); // 1,000 bytes: read every 125 written
  client.offer("a");
  await nextTurn();
  transport.bufferedAmount = 1_001; // the peer stopped reading
  client.offer("b".repeat(124));
  await nextTurn();
  assert.equal(transport.sent.length, 2, "125 characters written since the last read: not yet");
  client.offer("c");
  await nextTurn();
  assert.equal(transport.sent.length, 2, "read before this batch: over the bound, not written");
  assert.equal(transport.closedWith, 1013);
  assert.deepEqual(owner.released, [CLOSE_CODES.slowConsumer]);
  assert.equal(client.connected, false);
});

Deno.test("Client.flush() keeps writing to a peer that is under the bound when read", async () => {
  const { client, transport } = newClient();
  transport.bufferedAmount = 1_000; // at the bound, not over it
  for (let i = 0; i < 20; i++) {
    client.offer("x".repeat(100));
    await nextTurn();
  }
  assert.equal(transport.sent.length, 20);
  assert.equal(transport.closedWith, undefined);
});

Deno.test("Client.disconnect() writes what is queued, then closes, and releases once", async () => {
  const { client, transport, owner } = newClient();
  client.offer("last");
  client.disconnect(CLOSE_CODES.goingAway);
  assert.deepEqual(transport.sent, ["last"]);
  assert.equal(transport.closedWith, 1001);
  client.disconnect(CLOSE_CODES.goingAway);
  client.transportClosed();
  await nextTurn();
  assert.deepEqual(transport.sent, ["last"], "the scheduled flush finds the client gone");
  assert.deepEqual(owner.released, [CLOSE_CODES.goingAway]);
  assert.ok(client.offer("dropped"), "a gone client accepts and drops frames");
});

Deno.test("Client.disconnect() of a peer that stopped reading closes with 1013 instead", () => {
  const { client, transport, owner } = newClient();
  client.offer("queued");
  transport.bufferedAmount = 5_000;
  client.disconnect(CLOSE_CODES.goingAway);
  assert.deepEqual(transport.sent, []);
  assert.equal(transport.closedWith, 1013);
  assert.deepEqual(owner.released, [CLOSE_CODES.slowConsumer]);
});

Deno.test("Client.transportClosed() drops what is queued and starts no close", async () => {
  const { client, transport, owner } = newClient();
  client.offer("unsent");
  client.transportClosed();
  await nextTurn();
  assert.deepEqual(transport.sent, []);
  assert.equal(transport.closedWith, undefined);
  assert.deepEqual(owner.released, [undefined]);
});

Deno.test("OutboxWriter.schedule() flushes every target once per turn, in order, with one microtask", async () => {
  const writer = new OutboxWriter();
  const flushed: string[] = [];
  const late = { flush: () => flushed.push("late") };
  const first = {
    flush: () => {
      flushed.push("first");
      writer.schedule(late); // scheduled during the run: joins it
    },
  };
  writer.schedule(first);
  writer.schedule({ flush: () => flushed.push("second") });
  assert.equal(flushed.length, 0, "nothing runs inside the turn");
  await nextTurn();
  assert.deepEqual([...flushed], ["first", "second", "late"]);
  writer.schedule({ flush: () => flushed.push("next turn") });
  await nextTurn();
  assert.deepEqual(flushed, ["first", "second", "late", "next turn"]);
});
