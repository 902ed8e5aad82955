import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { compareToIdle, type HeapSnapshotSummary } from "../../bench/_heap_snapshot.ts";
import { chatEndpoint, CursorLedger } from "../../bench/_peers.ts";
import { connectionSpecs } from "../../bench/_scenarios.ts";
import { leastSquaresSlope, medianSlope } from "../../bench/_stats.ts";
import { framer, layoutSpecs } from "../../bench/_traffic.ts";
import { serviceGate } from "../support/services.ts";
import { startTestServer } from "../support/test_server.ts";
import { assertIntact, runDeno, runLoad } from "./_run.ts";

const HEAP = new URL("../../bench/heap.ts", import.meta.url).pathname;
const CLUSTER = new URL("../../bench/cluster.ts", import.meta.url).pathname;
const COMPARE = new URL("../../bench/compare.ts", import.meta.url).pathname;
const PERSIST = new URL("../../bench/persist.ts", import.meta.url).pathname;
const redis = serviceGate("TEST_REDIS_URL", "Redis");
const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");

// Small and quick: 2 rooms of 5, 60 then 30 messages/s in total, half-second steps. The test
// process is the server, so its pid is the server's and its CPU is not counted as noise.
const SMALL_FANOUT = [
  "--scenario=fanout",
  "--rooms=2",
  "--members=5",
  "--rates=60",
  "--step-ms=500",
  "--retries=0",
  `--pid=${Deno.pid}`,
];

Deno.test("bench/load.ts fanout against the server: every message once, in order, and a half-load step", async () => {
  const server = startTestServer();
  try {
    const lines = await runLoad(`ws://127.0.0.1:${server.port}`, SMALL_FANOUT);
    const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
    assert.deepEqual(steps.map((step) => step.phase), ["ladder", "half"]);
    for (const step of steps) assertIntact(step, 5);
    const summary = lines.find((line) => line.summary);
    assert.equal(summary?.sustainedOfferedPerSecond, 60);
    assert.equal(summary?.halfLoadOfferedPerSecond, 30);
  } finally {
    await server.close();
  }
});

Deno.test("bench/load.ts --client-id: JSON frames with a client_id each, every one acked and delivered once", async () => {
  const server = startTestServer();
  try {
    const lines = await runLoad(`ws://127.0.0.1:${server.port}`, [...SMALL_FANOUT, "--client-id"]);
    const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
    assert.deepEqual(steps.map((step) => step.phase), ["ladder", "half"]);
    for (const step of steps) {
      assert.equal(step.frames, "client-id");
      assertIntact(step, 5);
    }
  } finally {
    await server.close();
  }
});

Deno.test("bench/load.ts --batch: members ask for batched frames; each line counts as its message", async () => {
  const server = startTestServer();
  try {
    const lines = await runLoad(`ws://127.0.0.1:${server.port}`, [...SMALL_FANOUT, "--batch"]);
    const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
    assert.deepEqual(steps.map((step) => step.phase), ["ladder", "half"]);
    for (const step of steps) {
      assertIntact(step, 5);
      const frames = step.framesReceived as number;
      assert.ok(frames > 0 && frames <= (step.delivered as number), `${frames} frames`);
    }
  } finally {
    await server.close();
  }
});

Deno.test("bench chatEndpoint: the /chat endpoint without room and user, batch=1 kept for every peer", () => {
  assert.equal(chatEndpoint("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/chat");
  assert.equal(
    chatEndpoint("ws://127.0.0.1:8080/chat?r=lobby&u=ann&batch=1"),
    "ws://127.0.0.1:8080/chat?batch=1",
  );
});

Deno.test("bench framer: text, JSON, and JSON with a client_id unique per sender, step and message", () => {
  assert.equal(framer("text")(3, 2, 7, 99), "3 2 7 99");
  assert.deepEqual(JSON.parse(framer("json")(3, 2, 7, 99)), {
    type: "message",
    content: "3 2 7 99",
  });
  const frames = [framer("client-id")(3, 2, 7, 99), framer("client-id")(3, 2, 8, 99)].map((text) =>
    JSON.parse(text)
  );
  assert.equal(frames[0].content, "3 2 7 99");
  assert.match(frames[0].client_id, /^[A-Za-z0-9_-]{1,64}$/);
  assert.notEqual(frames[0].client_id, frames[1].client_id);
  assert.notEqual(framer("client-id")(3, 3, 7, 99), framer("client-id")(3, 2, 7, 99));
});

Deno.test("bench/compare.ts --compare-client-id (tiny): with and without client_id, acked, a ratio and target (5)", async () => {
  const stdout = await runDeno([
    "--allow-net",
    "--allow-env",
    "--allow-run",
    "--allow-read",
    COMPARE,
    "--compare-client-id",
    "--rounds=1",
    "--rates=100",
    "--step-ms=500",
    "--budget-s=5",
    "--time-limit-s=100",
  ], { timeoutMs: 120_000 });
  const lines: Record<string, unknown>[] = stdout.split("\n").filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
  const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
  assert.deepEqual([...new Set(steps.map((step) => step.target))], ["server", "server+cid"]);
  for (const step of steps) {
    assert.equal(step.frames, step.target === "server+cid" ? "client-id" : "json");
    assertIntact(step, 100);
  }
  assert.match(stdout, /with client_id \/ without/);
  assert.match(stdout, /\(5\) fanout with client_id >= 90% of without \(in memory\)/);
});

Deno.test({
  name:
    "bench/persist.ts --mode both (tiny): async then durable on fresh databases, persisted/s and p99 each",
  ignore: database.ignore,
  fn: async () => {
    const stdout = await runDeno([
      "--allow-net",
      "--allow-env",
      "--allow-run",
      "--allow-read",
      PERSIST,
      "--messages=400",
      "--clients=4",
      "--paced-rate=100",
      "--paced-ms=500",
      "--client-id",
      "--json",
    ], { timeoutMs: 90_000, env: { BENCH_DATABASE_URL: database.url ?? "" } });
    const results = stdout.split("\n").filter((line) => line.startsWith("{")).map((line) =>
      JSON.parse(line)
    );
    assert.deepEqual(results.map((result) => result.mode), ["async", "durable"]);
    for (const result of results) {
      assert.equal(result.frames, "client-id");
      assert.equal(result.messages + result.refusedBacklog, 400);
      assert.ok(result.persistedPerSecond > 0, stdout);
      assert.ok(result.saturatedP99Ms > 0, stdout);
      // 100 msg/s for 0.5 s over 4 clients: 12.5 each, rounded per client.
      assert.equal(result.pacedSent, 4 * Math.round(100 / 4 / 1000 * 500));
      assert.equal(result.pacedUnanswered, 0, stdout);
      assert.ok(result.pacedP99Ms > 0, stdout);
    }
  },
});

/**
 * Broadcasts like a chat server but loses, doubles and swaps messages: the generator must see
 * each fault. Per room, of every 10 messages the 3rd is dropped (its seq taken), the 5th sent
 * twice, and the 7th held back until after the 8th.
 */
function startFaultyServer(): Deno.HttpServer<Deno.NetAddr> {
  const rooms = new Map<string, { sockets: Set<WebSocket>; count: number; held?: string }>();
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (request) => {
    const room = new URL(request.url).searchParams.get("r") ?? "";
    const { socket, response } = Deno.upgradeWebSocket(request);
    const state = rooms.get(room) ?? { sockets: new Set<WebSocket>(), count: 0 };
    rooms.set(room, state);
    const broadcast = (frame: string) => {
      for (const member of state.sockets) member.send(frame);
    };
    socket.onopen = () => {
      state.sockets.add(socket);
      const welcome = { type: "welcome", protocol: 1, room, members: [], last_seq: state.count };
      socket.send(JSON.stringify(welcome));
    };
    socket.onmessage = (event) => {
      const text = String(event.data);
      const content = text.startsWith("{") ? JSON.parse(text).content : text;
      const seq = ++state.count;
      const frame = JSON.stringify({ type: "message", id: "x", room, seq, sender: "s", content });
      const position = (seq - 1) % 10;
      if (position === 2) return;
      if (position === 6) return void (state.held = frame);
      broadcast(frame);
      if (position === 4) broadcast(frame);
      if (position === 7 && state.held) broadcast(state.held);
    };
    socket.onclose = () => state.sockets.delete(socket);
    return response;
  });
}

Deno.test("bench/load.ts fanout reports loss, duplication and reordering, and fails the step", async () => {
  const server = startFaultyServer();
  try {
    const lines = await runLoad(`ws://127.0.0.1:${server.addr.port}`, SMALL_FANOUT);
    const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
    // A failing step on a busy machine is tried again (phase "ladder retry"); each one fails.
    assert.deepEqual(steps.filter((line) => line.phase === "half"), [], "no half-load step");
    assert.ok(steps.every((line) => line.pass === false));
    const step = steps[0];
    // 15 messages per room (60/s for 0.5 s, 2 rooms): faults at least once in each, seen by
    // each of the 10 members.
    assert.ok((step?.sent as number) >= 16, `sent ${step?.sent}`);
    assert.ok((step?.lost as number) >= 10, `lost ${step?.lost}`);
    assert.ok((step?.duplicated as number) >= 10, `duplicated ${step?.duplicated}`);
    assert.ok((step?.reordered as number) >= 10, `reordered ${step?.reordered}`);
    // Seqs: a skip where one was dropped, a repeat, and the held one out of turn.
    assert.ok((step?.seqBroken as number) >= 30, `seqBroken ${step?.seqBroken}`);
  } finally {
    await server.shutdown();
  }
});

Deno.test({
  name:
    "bench/cluster.ts --short: one instance, then two over Redis, every message once in seq order, and a verdict",
  ignore: redis.ignore,
  fn: async () => {
    const stdout = await runDeno([
      "--allow-net",
      "--allow-env",
      "--allow-run",
      CLUSTER,
      "--short",
      "--json",
    ], {
      // Noisy steps wait for a quiet machine (10 s at most each) and may be retried.
      timeoutMs: 150_000,
      env: { BENCH_REDIS_URL: redis.url ?? "" },
    });
    const lines: Record<string, unknown>[] = stdout.split("\n").filter((line) =>
      line.startsWith("{")
    )
      .map((line) => JSON.parse(line));
    const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
    assert.deepEqual([...new Set(steps.map((step) => step.target))], ["one", "cluster"]);
    for (const step of steps) assertIntact(step, 5);
    assert.ok(steps.some((step) => step.target === "cluster" && step.instances === 2));
    const verdict = lines.find((line) => "verdict" in line);
    assert.ok(verdict, stdout);
    assert.ok(["met", "not met"].includes(verdict.verdict as string));
    // Both half-load steps ran at one instance's half load: the p99s compare like for like.
    const halves = steps.filter((step) => step.phase === "half");
    assert.equal(new Set(halves.map((step) => step.offeredPerSecond)).size, 1);
    const client = new Redis(redis.url ?? "", { lazyConnect: true });
    try {
      await client.connect();
      const left = await client.keys(`${verdict.redisPrefix}*`);
      assert.deepEqual(left, [], "the run deleted its keys");
    } finally {
      // quit() waits for Redis to close the connection; disconnect() would leave ioredis's
      // close timer running past the test (a leak the sanitizer sometimes catches).
      await client.quit();
    }
  },
});

Deno.test("bench layoutSpecs spreads each room's members, senders included, over the instances", () => {
  const specs = layoutSpecs("run", { rooms: 3, members: 4, senders: 1 }, 2);
  const senders = specs.filter((spec) => spec.user === "m0").map((spec) => spec.instance);
  assert.deepEqual(senders, [0, 1, 0]);
  for (const room of Map.groupBy(specs, (spec) => spec.room).values()) {
    assert.deepEqual(room.map((spec) => spec.instance).sort(), [0, 0, 1, 1]);
  }
});

Deno.test("bench connections scenario puts roomSize peers in each room", () => {
  const specs = connectionSpecs("conn-run", 25, 10);
  const rooms = Map.groupBy(specs, (spec) => spec.room);
  assert.deepEqual([...rooms.keys()], ["conn-run-0", "conn-run-1", "conn-run-2"]);
  assert.deepEqual([...rooms.values()].map((members) => members.length), [10, 10, 5]);
  assert.equal(new Set(rooms.get("conn-run-0")?.map((spec) => spec.user)).size, 10);
});

Deno.test("bench/heap.ts reports the heap an idle connection costs, by constructor", async () => {
  const stdout = await runDeno([
    "--allow-net",
    "--allow-env",
    "--allow-run",
    "--allow-read",
    HEAP,
    "--connections=100",
    "--rows=500",
  ]);
  const summary = JSON.parse(stdout.split("\n")[0] ?? "");
  assert.equal(summary.connections, 100);
  // Deno's own WebSocket, request and listeners alone are several KB; nothing is near 100 KB.
  assert.ok(summary.heapBytesPerConnection > 2_000, stdout);
  assert.ok(summary.heapBytesPerConnection < 100_000, stdout);
  assert.match(stdout, /object:WebSocket$/m, "one WebSocket per connection is in the table");
});

// Tiny: 50 members, their reconnects over 200 ms, the pair at 50 msg/s, a short tail.
const SMALL_STORM = [
  "--scenario=storm",
  "--storm-members=50",
  "--storm-spread-ms=200",
  "--storm-tail-ms=200",
  `--pid=${Deno.pid}`,
];

Deno.test("bench/load.ts storm (tiny): everyone dropped, re-welcomed and resumed complete, the other room intact, presence per member", async () => {
  const server = startTestServer();
  try {
    // A p99 limit no step can miss within this test's timeout: the verdict follows the checks.
    const lines = await runLoad(`ws://127.0.0.1:${server.port}`, [
      ...SMALL_STORM,
      "--storm-p99-ms=60000",
    ]);
    const step = lines.find((line) => line.scenario === "storm" && !line.summary);
    assert.ok(step, JSON.stringify(lines));
    assert.equal(step.members, 50);
    assert.equal(step.rewelcomed, 50);
    assert.equal(step.reconnectsFailed, 0);
    assert.equal(step.resumes, 50);
    assert.equal(step.resumesComplete, 50, "every resume said complete: true");
    assert.equal(step.closed1013, 0);
    assert.deepEqual(step.serverCloses, {});
    assert.deepEqual(step.roomSeq, { lost: 0, duplicated: 0, reordered: 0, gaps: 0 });
    const otherRoom = step.otherRoom as { sent: number; delivered: number; lost: number };
    assert.ok(otherRoom.sent > 0);
    assert.equal(otherRoom.delivered, 2 * otherRoom.sent, "both of the pair got every message");
    assert.equal(otherRoom.lost, 0);
    for (const field of ["presenceBytesPerMember", "presenceFramesPerMember", "framesPerMember"]) {
      const figures = step[field] as { max: number; mean: number };
      assert.deepEqual(Object.keys(figures).sort(), ["max", "maxPerN", "mean", "meanPerN"]);
      assert.ok(figures.max >= figures.mean, field);
    }
    // At least its welcome and its resume frame each.
    assert.ok((step.framesPerMember as { mean: number }).mean >= 2);
    assert.equal(typeof (step.latencyMs as Record<string, number>).p99, "number");
    assert.equal(typeof step.allWelcomedSeconds, "number");
    assert.equal(step.pass, true);
    const summary = lines.find((line) => line.summary);
    assert.equal(summary?.scenario, "storm");
    assert.equal(summary?.closed1013, 0);
  } finally {
    await server.close();
  }
});

Deno.test("bench/load.ts storm fails its step when the other room misses its p99 target", async () => {
  const server = startTestServer();
  try {
    // No delivery takes less than 1 µs: the target is missed, everything else holds.
    const lines = await runLoad(`ws://127.0.0.1:${server.port}`, [
      ...SMALL_STORM,
      "--storm-p99-ms=0.001",
    ]);
    const step = lines.find((line) => line.scenario === "storm" && !line.summary);
    assert.equal(step?.resumesComplete, 50);
    assert.equal(step?.pass, false);
    assert.equal(lines.find((line) => line.summary)?.pass, false);
  } finally {
    await server.close();
  }
});

// Tiny: 4 rooms of 3 for 9 s, samples every 3 s, rooms living 3 s.
const SMALL_SOAK = [
  "--scenario=soak",
  "--minutes=0.15",
  "--soak-warmup-s=3",
  "--soak-sample-s=3",
  "--soak-rooms=4",
  "--soak-room-size=3",
  "--soak-rate=20",
  "--soak-room-life-s=3",
  "--soak-churn=1",
  "--soak-idle-s=1",
  "--soak-idle-max-s=1",
];

Deno.test("bench/load.ts soak (tiny, its own server): samples heap and RSS, slopes, and the heap back at idle by class", async () => {
  const lines = await runLoad(undefined, SMALL_SOAK, 120_000);
  const samples = lines.filter((line) => line.scenario === "soak" && !line.summary);
  const phases = samples.map((line) => line.phase);
  assert.deepEqual(phases.slice(0, 4), ["idle", "warm-up", "load", "load"], phases.join());
  assert.equal(phases.at(-1), "end");
  for (const sample of samples) {
    assert.equal(typeof sample.heapUsedMiB, "number");
    assert.equal(typeof sample.rssMiB, "number");
  }
  const last = samples.at(-1) ?? {};
  assert.ok((last.roomsOpened as number) > 4, "rooms closed and new ones opened");
  assert.ok((last.resumes as number) > 0, "members resumed");
  assert.equal(last.connections, 0, "everyone left at the end");
  const summary = lines.find((line) => line.summary) ?? {};
  assert.equal(summary.correct, true, JSON.stringify(summary));
  assert.equal(typeof summary.heapSlopeMiBPerMinute, "number");
  assert.equal(typeof summary.rssSlopeMiBPerMinute, "number");
  assert.equal(typeof summary.returnedToIdle, "boolean");
  const watched = summary.watched as Record<string, Record<string, number>>;
  assert.ok(watched.Room && watched.Client && watched.Map && watched.Set);
  assert.ok((watched.Client?.loaded ?? 0) > (watched.Client?.idle ?? 0), "clients while loaded");
});

Deno.test("bench/load.ts soak reports what a faulty server loses, doubles and reorders, and fails", async () => {
  const server = startFaultyServer();
  try {
    // It sends no ack and no resume frame: no leaves and resumes, to spare the waits for them.
    const lines = await runLoad(`ws://127.0.0.1:${server.addr.port}`, [
      ...SMALL_SOAK,
      "--soak-churn=0.001",
    ], 120_000);
    const summary = lines.find((line) => line.summary) ?? {};
    assert.equal(summary.pass, false);
    assert.equal(summary.correct, false);
    const last = lines.filter((line) => line.scenario === "soak" && !line.summary).at(-1) ?? {};
    assert.ok((last.lost as number) > 0, `lost ${last.lost}`);
    assert.ok((last.duplicated as number) > 0, `duplicated ${last.duplicated}`);
    assert.ok((last.reordered as number) > 0, `reordered ${last.reordered}`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("CursorLedger.frame() checks the room seq across a resume: gaps, late and doubled seqs", () => {
  const ledger = new CursorLedger(1);
  const frame = (text: string) => new TextEncoder().encode(text);
  const message = (seq: number) => frame(`{"type":"message","room":"r","seq":${seq}}`);
  ledger.welcome(0, frame('{"type":"welcome","epoch":"e1","last_seq":4}'));
  for (const seq of [5, 6, 8, 7, 7]) ledger.frame(0, message(seq));
  assert.deepEqual([ledger.lost, ledger.reordered, ledger.duplicated], [0, 1, 1]);
  assert.equal(ledger.cursor(0), 8);
  assert.deepEqual(ledger.resumeParams(0), { since_seq: "8", epoch: "e1" });
  assert.equal(ledger.replaying(0), true);
  // The replay continues from the cursor, whatever the room's last seq now is.
  ledger.welcome(0, frame('{"type":"welcome","epoch":"e1","last_seq":10}'));
  for (const seq of [9, 11]) ledger.frame(0, message(seq));
  ledger.frame(0, frame('{"type":"resume","complete":true,"replayed":2,"epoch":"e1"}'));
  assert.equal(ledger.replaying(0), false);
  assert.deepEqual([ledger.lost, ledger.resumes, ledger.resumesComplete], [1, 1, 1]);
  ledger.resumeParams(0);
  ledger.frame(0, frame('{"type":"resume","complete":false,"reason":"limit"}'));
  assert.deepEqual(Object.fromEntries(ledger.incomplete), { limit: 1 });
});

Deno.test("leastSquaresSlope() and medianSlope() fit a line; compareToIdle() names what stayed after the load", () => {
  assert.equal(leastSquaresSlope([{ x: 1, y: 10 }, { x: 2, y: 13 }, { x: 3, y: 16 }]), 3);
  assert.ok(Number.isNaN(leastSquaresSlope([{ x: 1, y: 1 }])));
  // One high first sample: the median of pairwise slopes keeps the trend of the rest.
  const settling = [50, 12, 14, 16, 18].map((y, i) => ({ x: i + 1, y }));
  assert.equal(medianSlope(settling), 2);
  assert.ok(leastSquaresSlope(settling) < 0);
  const summary = (
    counts: Record<string, number>,
    references: number,
  ): HeapSnapshotSummary => ({
    groups: new Map(
      Object.entries(counts).map(([name, count]) => [`object:${name}`, { count, bytes: 0 }]),
    ),
    collections: [{ id: 7, kind: "Map", owner: "Hub.#rooms", references, tableBytes: 0 }],
  });
  const idle = summary({ Room: 0, Promise: 10, Object: 5 }, 0);
  const loaded = summary({ Room: 40, Promise: 900, Object: 5000 }, 80);
  const back = compareToIdle(idle, loaded, summary({ Room: 0, Promise: 14, Object: 900 }, 0), {
    exact: ["Room"],
    collectionSlack: 10,
  });
  assert.deepEqual(back, { retained: [], grownCollections: [] });
  const leaked = compareToIdle(idle, loaded, summary({ Room: 1, Promise: 40, Object: 5 }, 30), {
    exact: ["Room"],
    collectionSlack: 10,
  });
  assert.deepEqual(leaked.retained.map((row) => row.key), ["object:Promise", "object:Room"]);
  assert.deepEqual(leaked.grownCollections, [
    { owner: "Hub.#rooms", kind: "Map", before: 0, after: 30 },
  ]);
});
