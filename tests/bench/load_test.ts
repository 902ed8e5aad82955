import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { connectionSpecs } from "../../bench/_scenarios.ts";
import { framer, layoutSpecs } from "../../bench/_traffic.ts";
import { serviceGate } from "../support/services.ts";
import { startTestServer } from "../support/test_server.ts";

const LOAD = new URL("../../bench/load.ts", import.meta.url).pathname;
const HEAP = new URL("../../bench/heap.ts", import.meta.url).pathname;
const CLUSTER = new URL("../../bench/cluster.ts", import.meta.url).pathname;
const COMPARE = new URL("../../bench/compare.ts", import.meta.url).pathname;
const PERSIST = new URL("../../bench/persist.ts", import.meta.url).pathname;
const redis = serviceGate("TEST_REDIS_URL", "Redis");
const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");

/**
 * Runs `deno run <args>` to its end (at most `timeoutMs`) and returns its stdout; it must exit 0.
 */
async function runDeno(
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    env: options.env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

/** Runs the load generator against `url` and returns its JSON lines. */
async function runLoad(url: string, args: string[]): Promise<Record<string, unknown>[]> {
  const stdout = await runDeno(["--allow-net", "--allow-run=cat,sh", LOAD, url, "--json", ...args]);
  return stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
}

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

/** Every message of a step reached each of a room's `members` once, in order, in seq order. */
function assertIntact(step: Record<string, unknown>, members: number): void {
  assert.equal(step.lost, 0);
  assert.equal(step.duplicated, 0);
  assert.equal(step.reordered, 0);
  assert.equal(step.seqBroken, 0, "each member saw the room seq go up by one");
  assert.equal(step.gaps, 0);
  assert.equal(step.delivered, step.expected);
  assert.equal(step.expected, (step.sent as number) * members, "every member gets every message");
  assert.equal(step.acked, step.sent, "every message acknowledged to its sender once");
}

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
      socket.send(JSON.stringify({ type: "welcome", protocol: 1, room, members: [] }));
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
