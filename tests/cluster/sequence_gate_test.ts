/**
 * Property tests of SequenceGate: seeded random deliveries (out of order, duplicated, dropped)
 * against a fake stream that lacks some seqs; what comes out must be the exact sequence.
 */
import assert from "node:assert/strict";
import type { SequencedMessage } from "../../chat/cluster.ts";
import type { RoomSequence } from "../../chat/message.ts";
import { type GateOutput, SequenceGate } from "../../cluster/sequence_gate.ts";
import { prng } from "./_prng.ts";

const EPOCH = "e1";
const ITERATIONS = 300;

function message(seq: number, epoch = EPOCH): SequencedMessage {
  const body = {
    id: `${epoch}-${seq}`,
    room: "r",
    seq,
    sender: "s",
    content: `c${seq}`,
    timestamp: "t",
  };
  return { message: body, frame: JSON.stringify({ type: "message", ...body }) };
}

/** What the gate let out, in order. */
type Out =
  | { kind: "messages"; seqs: number[]; epochs: string[] }
  | { kind: "gap"; from: number; to: number }
  | { kind: "reset"; sequence: RoomSequence };

class Recorder implements GateOutput {
  readonly out: Out[] = [];
  messages(messages: readonly SequencedMessage[]): void {
    assert.ok(messages.length > 0, "never an empty batch");
    this.out.push({
      kind: "messages",
      seqs: messages.map((m) => m.message.seq),
      epochs: messages.map((m) => m.message.id.split("-")[0] ?? ""),
    });
  }
  gap(from: number, to: number): void {
    this.out.push({ kind: "gap", from, to });
  }
  reset(sequence: RoomSequence): void {
    this.out.push({ kind: "reset", sequence });
  }
}

/**
 * The room's stream as a map; a fill answers after a random number of microtasks, in random
 * order, and (when `failRate` > 0) sometimes fails.
 */
class FakeStream {
  readonly entries = new Map<number, SequencedMessage>();
  readonly calls: [number, number][] = [];
  /** Seqs that were in a failed fill's range. */
  readonly failed = new Set<number>();
  pending = 0;
  /** The share of fills that fail (the stream does not answer). */
  failRate: number;
  readonly #random: () => number;

  constructor(random: () => number, failRate = 0) {
    this.#random = random;
    this.failRate = failRate;
  }

  readonly fill = async (from: number, to: number): Promise<SequencedMessage[]> => {
    this.calls.push([from, to]);
    this.pending++;
    // Read when asked, as XRANGE is: what the stream holds later is not seen.
    const found = [...this.entries.values()].filter((m) =>
      m.message.seq >= from && m.message.seq <= to
    );
    try {
      await microtasks(Math.floor(this.#random() * 6));
      if (this.#random() < this.failRate) {
        for (let seq = from; seq <= to; seq++) this.failed.add(seq);
        throw new Error("stream unreachable");
      }
      return shuffle(found, this.#random);
    } finally {
      this.pending--;
    }
  };

  /**
   * Yields until no fill is in flight and none was asked for in a while: the gate has handled
   * the last answer (a short fill can start and end between two looks, so both are checked).
   */
  async settle(): Promise<void> {
    for (let quiet = 0, spins = 0, calls = -1; quiet < 5; spins++) {
      assert.ok(spins < 10_000, "the gate settles");
      quiet = this.pending === 0 && this.calls.length === calls ? quiet + 1 : 0;
      calls = this.calls.length;
      await microtasks(1);
    }
  }
}

async function microtasks(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await Promise.resolve();
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/**
 * Walks the output from `start`: message seqs and gap ranges must tile start+1..end exactly once,
 * in order. @returns the seqs reported in gaps.
 */
function assertExactSequence(out: readonly Out[], start: number, end: number, seed: number) {
  let next = start + 1;
  const gapped = new Set<number>();
  for (const event of out) {
    if (event.kind === "messages") {
      for (const seq of event.seqs) {
        assert.equal(seq, next, `seed ${seed}: message ${seq} where ${next} was due`);
        next++;
      }
    } else if (event.kind === "gap") {
      assert.equal(event.from, next, `seed ${seed}: gap from ${event.from} where ${next} was due`);
      assert.ok(event.to >= event.from, `seed ${seed}: gap ${event.from}..${event.to} is empty`);
      for (let seq = event.from; seq <= event.to; seq++) gapped.add(seq);
      next = event.to + 1;
    } else assert.fail(`seed ${seed}: unexpected reset`);
  }
  assert.equal(next - 1, end, `seed ${seed}: accounted up to ${next - 1}, expected ${end}`);
  return gapped;
}

/** Publish order with drops, duplicates and (when `disorder`) local reordering, in batches. */
function deliveries(count: number, random: () => number, disorder: boolean): number[][] {
  const arrivals: number[] = [];
  for (let seq = 1; seq <= count; seq++) {
    if (random() < 0.15) continue; // dropped
    arrivals.push(seq);
    if (random() < 0.1) arrivals.push(seq); // duplicated at once
    const stale = seq - Math.floor(random() * 10);
    if (random() < 0.05 && arrivals.includes(stale)) arrivals.push(stale); // a late copy
  }
  if (disorder) {
    for (let i = 0; i + 1 < arrivals.length; i++) {
      if (random() < 0.2) {
        const j = Math.min(arrivals.length - 1, i + 1 + Math.floor(random() * 4));
        [arrivals[i], arrivals[j]] = [arrivals[j] as number, arrivals[i] as number];
      }
    }
  }
  const batches: number[][] = [];
  for (let i = 0; i < arrivals.length;) {
    const size = 1 + Math.floor(random() * 4);
    batches.push(arrivals.slice(i, i + size));
    i += size;
  }
  return batches;
}

/** Runs one random case: returns what the gate let out and what the stream held. */
async function runCase(seed: number, options: { disorder: boolean; failRate: number }) {
  const random = prng(seed);
  const count = 5 + Math.floor(random() * 150);
  const start = random() < 0.3 ? Math.floor(random() * 50) : 0;
  const stream = new FakeStream(random, options.failRate);
  for (let seq = start + 1; seq <= start + count; seq++) {
    if (random() < 0.8) stream.entries.set(seq, message(seq));
  }
  const recorder = new Recorder();
  const gate = new SequenceGate({ epoch: EPOCH, lastSeq: start }, recorder, stream.fill);
  const arrived = new Set<number>();
  for (const batch of deliveries(count, random, options.disorder)) {
    const seqs = batch.map((seq) => seq + start);
    for (const seq of seqs) arrived.add(seq);
    gate.push(EPOCH, seqs.map((seq) => message(seq)));
    await microtasks(Math.floor(random() * 4));
  }
  await stream.settle();
  // The heartbeats: Redis says the sequence stands at the last seq handed out. A failed fill
  // is read again at each, until one answers.
  for (let beat = 0; gate.lastSeq < start + count && beat < 50; beat++) {
    gate.catchUp({ epoch: EPOCH, lastSeq: start + count });
    await stream.settle();
  }
  assert.equal(gate.lastSeq, start + count, `seed ${seed}: caught up`);
  const gapped = assertExactSequence(recorder.out, start, start + count, seed);
  return { gapped, stream, arrived };
}

Deno.test("SequenceGate.push() lets out every seq once, in order, or in exactly one gap (random order, duplicates, drops)", async () => {
  let fills = 0;
  let gaps = 0;
  for (let seed = 1; seed <= ITERATIONS; seed++) {
    const { gapped, stream } = await runCase(seed, { disorder: true, failRate: 0 });
    fills += stream.calls.length;
    gaps += gapped.size;
    for (const seq of gapped) {
      assert.ok(!stream.entries.has(seq), `seed ${seed}: ${seq} was in the stream, yet gapped`);
    }
  }
  assert.ok(fills > ITERATIONS && gaps > ITERATIONS, `the cases exercise fills and gaps`);
});

Deno.test("SequenceGate.push() loses nothing that arrived in publish order (drops and duplicates only)", async () => {
  for (let seed = 1; seed <= ITERATIONS; seed++) {
    const { gapped, stream, arrived } = await runCase(seed, { disorder: false, failRate: 0 });
    // Pub/sub keeps publish order: a seq that arrived is never reported lost, and a seq the
    // stream has is found; only seqs missing from both are gaps.
    for (const seq of gapped) {
      assert.ok(!arrived.has(seq), `seed ${seed}: ${seq} arrived, yet gapped`);
      assert.ok(!stream.entries.has(seq), `seed ${seed}: ${seq} was in the stream, yet gapped`);
    }
  }
});

Deno.test("SequenceGate.catchUp() reads a hole again after a failed fill: no answer is not a gap", async () => {
  let failures = 0;
  for (let seed = 1; seed <= ITERATIONS; seed++) {
    const { gapped, stream } = await runCase(seed, { disorder: true, failRate: 0.3 });
    failures += stream.failed.size;
    for (const seq of gapped) {
      assert.ok(!stream.entries.has(seq), `seed ${seed}: ${seq} was in the stream, yet gapped`);
    }
  }
  assert.ok(failures > ITERATIONS, "fills failed");
});

Deno.test("SequenceGate.push() holds arrivals behind an unreadable hole, up to a bound", async () => {
  const stream = new FakeStream(prng(17), 1); // the stream never answers
  const recorder = new Recorder();
  const gate = new SequenceGate({ epoch: EPOCH, lastSeq: 0 }, recorder, stream.fill);
  gate.push(EPOCH, [message(1), message(3), message(4)]);
  await stream.settle();
  assert.equal(gate.lastSeq, 1, "3 and 4 wait for 2");
  gate.catchUp({ epoch: EPOCH, lastSeq: 5 });
  await stream.settle();
  assert.deepEqual(stream.calls, [[2, 2], [2, 5]], "read again, up to where Redis stands");
  assert.equal(gate.lastSeq, 1, "still waiting");
  stream.entries.set(2, message(2));
  stream.failRate = 0;
  gate.catchUp({ epoch: EPOCH, lastSeq: 5 });
  await stream.settle();
  assert.deepEqual(recorder.out, [
    { kind: "messages", seqs: [1], epochs: [EPOCH] },
    { kind: "messages", seqs: [2, 3, 4], epochs: [EPOCH, EPOCH, EPOCH] }, // 3, 4 as they arrived
    { kind: "gap", from: 5, to: 5 },
  ]);
  // Beyond 10,000 held arrivals the hole is given up, so a dead stream cannot grow memory.
  stream.failRate = 1;
  gate.push(EPOCH, [message(7)]);
  await stream.settle();
  const later = Array.from({ length: 9_999 }, (_, i) => message(8 + i));
  gate.push(EPOCH, later.slice(0, 9_998));
  assert.equal(gate.lastSeq, 5, "still holding");
  gate.push(EPOCH, later.slice(9_998));
  assert.equal(gate.lastSeq, 7 + 9_999);
  assert.deepEqual(recorder.out[3], { kind: "gap", from: 6, to: 6 });
  assert.deepEqual(
    recorder.out.slice(4).flatMap((event) => event.kind === "messages" ? event.seqs : []),
    seqs(7, 7 + 9_999),
  );
});

function seqs(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

Deno.test("SequenceGate.catchUp() finds trailing losses that no later message revealed", async () => {
  const stream = new FakeStream(prng(7));
  for (const seq of [6, 7, 9]) stream.entries.set(seq, message(seq));
  const recorder = new Recorder();
  const gate = new SequenceGate({ epoch: EPOCH, lastSeq: 0 }, recorder, stream.fill);
  gate.push(EPOCH, [1, 2, 3, 4, 5].map((seq) => message(seq)));
  // 6..10 were published, but the subscription dropped them: nothing reveals the loss.
  gate.catchUp({ epoch: EPOCH, lastSeq: 5 });
  await stream.settle();
  assert.deepEqual(stream.calls, [], "no fill when nothing is missing");
  gate.catchUp({ epoch: EPOCH, lastSeq: 10 });
  // A resync while the fill is in flight does nothing (the next heartbeat looks again).
  gate.catchUp({ epoch: EPOCH, lastSeq: 11 });
  await stream.settle();
  assert.deepEqual(stream.calls, [[6, 10]]);
  assert.deepEqual(recorder.out, [
    { kind: "messages", seqs: [1, 2, 3, 4, 5], epochs: Array(5).fill(EPOCH) },
    { kind: "messages", seqs: [6, 7], epochs: [EPOCH, EPOCH] },
    { kind: "gap", from: 8, to: 8 },
    { kind: "messages", seqs: [9], epochs: [EPOCH] },
    { kind: "gap", from: 10, to: 10 },
  ]);
  assert.equal(gate.lastSeq, 10);
  gate.catchUp({ epoch: EPOCH, lastSeq: 11 });
  await stream.settle();
  assert.deepEqual(recorder.out.at(-1), { kind: "gap", from: 11, to: 11 });
  // Late copies of what was filled are dropped.
  gate.push(EPOCH, [message(7), message(11)]);
  assert.equal(recorder.out.length, 6);
});

Deno.test("SequenceGate: an epoch change resets the gate, and the new epoch's seqs follow", async () => {
  const stream = new FakeStream(prng(11));
  const recorder = new Recorder();
  const gate = new SequenceGate({ epoch: EPOCH, lastSeq: 3 }, recorder, stream.fill);
  gate.push(EPOCH, [message(4)]);
  // Redis lost the room and seeded a new epoch continuing the store's last seq (2).
  gate.push("e2", [message(3, "e2"), message(4, "e2")]);
  assert.equal(gate.lastSeq, 4);
  // A resync that finds another epoch resets to where it stands, without reading the stream.
  gate.catchUp({ epoch: "e3", lastSeq: 20 });
  gate.push("e3", [message(20, "e3"), message(21, "e3")]);
  await stream.settle();
  assert.deepEqual(stream.calls, []);
  assert.deepEqual(recorder.out, [
    { kind: "messages", seqs: [4], epochs: [EPOCH] },
    { kind: "reset", sequence: { epoch: "e2", lastSeq: 2 } },
    { kind: "messages", seqs: [3, 4], epochs: ["e2", "e2"] },
    { kind: "reset", sequence: { epoch: "e3", lastSeq: 20 } },
    { kind: "messages", seqs: [21], epochs: ["e3"] },
  ]);
});

Deno.test("SequenceGate: messages held during a fill keep their order across an epoch change", async () => {
  const stream = new FakeStream(prng(13));
  stream.entries.set(2, message(2));
  const recorder = new Recorder();
  const gate = new SequenceGate({ epoch: EPOCH, lastSeq: 0 }, recorder, stream.fill);
  gate.push(EPOCH, [message(1), message(3)]); // 2 is read from the stream
  gate.push(EPOCH, [message(4)]);
  gate.push("e2", [message(1, "e2")]);
  gate.push("e2", [message(3, "e2")]); // a jump in the new epoch: filled in turn
  // Seeding the new epoch emptied the stream; it now holds the new epoch's messages.
  stream.entries.clear();
  stream.entries.set(2, message(2, "e2"));
  await stream.settle();
  assert.deepEqual(stream.calls, [[2, 2], [2, 2]]);
  assert.deepEqual(recorder.out, [
    { kind: "messages", seqs: [1], epochs: [EPOCH] },
    { kind: "messages", seqs: [2], epochs: [EPOCH] },
    { kind: "messages", seqs: [3], epochs: [EPOCH] },
    { kind: "messages", seqs: [4], epochs: [EPOCH] },
    { kind: "reset", sequence: { epoch: "e2", lastSeq: 0 } },
    { kind: "messages", seqs: [1], epochs: ["e2"] },
    { kind: "messages", seqs: [2], epochs: ["e2"] },
    { kind: "messages", seqs: [3], epochs: ["e2"] },
  ]);
});

Deno.test("SequenceGate.push() drops a late payload of an epoch it left; catchUp() may name it again", async () => {
  const stream = new FakeStream(prng(19));
  const recorder = new Recorder();
  const gate = new SequenceGate({ epoch: EPOCH, lastSeq: 4 }, recorder, stream.fill);
  gate.catchUp({ epoch: "e2", lastSeq: 4 }); // the room moved on (a rebase)
  // Published in the old epoch just before: it must not take the room back.
  gate.push(EPOCH, [message(5)]);
  gate.push("e2", [message(5, "e2")]);
  assert.equal(gate.hasLeft(EPOCH), true);
  // Redis is the authority: if it names the old epoch again, the gate follows (the cluster
  // moves such a room on to a new epoch first, see RedisCluster).
  gate.catchUp({ epoch: EPOCH, lastSeq: 9 });
  assert.equal(gate.hasLeft(EPOCH), false);
  assert.equal(gate.hasLeft("e2"), true);
  await stream.settle();
  assert.deepEqual(stream.calls, []);
  assert.deepEqual(recorder.out, [
    { kind: "reset", sequence: { epoch: "e2", lastSeq: 4 } },
    { kind: "messages", seqs: [5], epochs: ["e2"] },
    { kind: "reset", sequence: { epoch: EPOCH, lastSeq: 9 } },
  ]);
});
