import assert from "node:assert/strict";
import { connectionSpecs } from "../../bench/_scenarios.ts";
import { startTestServer } from "../support/test_server.ts";

const LOAD = new URL("../../bench/load.ts", import.meta.url).pathname;
const HEAP = new URL("../../bench/heap.ts", import.meta.url).pathname;

/** Runs `deno run <args>` to its end (at most a minute) and returns its stdout; it must exit 0. */
async function runDeno(args: string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
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
    for (const step of steps) {
      assert.equal(step.lost, 0);
      assert.equal(step.duplicated, 0);
      assert.equal(step.reordered, 0);
      assert.equal(step.delivered, step.expected);
      assert.equal(step.expected, (step.sent as number) * 5, "every member gets every message");
    }
    const summary = lines.find((line) => line.summary);
    assert.equal(summary?.sustainedOfferedPerSecond, 60);
    assert.equal(summary?.halfLoadOfferedPerSecond, 30);
  } finally {
    await server.close();
  }
});

/**
 * Broadcasts like a chat server but loses, doubles and swaps messages: the generator must see
 * each fault. Per room, of every 10 messages the 3rd is dropped, the 5th sent twice, and the
 * 7th held back until after the 8th.
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
      const frame = JSON.stringify({ type: "message", id: "x", room, sender: "s", content });
      const position = state.count++ % 10;
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
    const [step, ...rest] = lines.filter((line) => line.scenario === "fanout" && !line.summary);
    assert.equal(rest.length, 0, "no half-load step after the only rate failed");
    assert.equal(step?.pass, false);
    // 15 messages per room (60/s for 0.5 s, 2 rooms): faults at least once in each, seen by
    // each of the 10 members.
    assert.ok((step?.sent as number) >= 16, `sent ${step?.sent}`);
    assert.ok((step?.lost as number) >= 10, `lost ${step?.lost}`);
    assert.ok((step?.duplicated as number) >= 10, `duplicated ${step?.duplicated}`);
    assert.ok((step?.reordered as number) >= 10, `reordered ${step?.reordered}`);
  } finally {
    await server.shutdown();
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
