/**
 * `deno task bench:heap [-- options]`: what an idle connection costs in JavaScript heap, by
 * constructor. Starts the server (or the baseline) with `--inspect`, snapshots its heap after a
 * garbage collection, opens idle connections, snapshots again, and prints the difference per
 * connection. RSS per connection is `deno task bench -- --scenario connections`; this says which
 * objects make up the heap part of it.
 *
 *     --target server|baseline   (default server: main.ts with the bench:compare environment)
 *     --connections N            (default 2000; snapshots grow with it)
 *     --room-size N              (default 10)
 *     --rows N                   groups printed (default 25)
 *
 * @module
 */
import { parseArgs } from "node:util";
import { heapGrowth, type HeapSummary, takeHeapSummary } from "./_heap_snapshot.ts";
import { chatEndpoint, PeerSet } from "./_peers.ts";
import { CLOSE_TIMEOUT_MS, connectionSpecs, tag } from "./_scenarios.ts";
import { BENCH_SERVER_ENV, freePort, startServer } from "./_server.ts";
import { formatTable } from "./_stats.ts";

const { values } = parseArgs({
  args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
  options: {
    target: { type: "string", default: "server" },
    connections: { type: "string", default: "2000" },
    "room-size": { type: "string", default: "10" },
    rows: { type: "string", default: "25" },
  },
});

function positive(name: "connections" | "room-size" | "rows"): number {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`bench:heap: --${name} must be a positive integer`);
    Deno.exit(2);
  }
  return value;
}

const count = positive("connections");
const roomSize = positive("room-size");
if (values.target !== "server" && values.target !== "baseline") {
  console.error("bench:heap: --target must be server or baseline");
  Deno.exit(2);
}
const root = new URL("..", import.meta.url);
const inspectorPort = freePort();
const server = await startServer({
  ...(values.target === "baseline"
    ? { entry: new URL("bench/baseline.ts", root).pathname, env: {} }
    : { entry: new URL("main.ts", root).pathname, env: BENCH_SERVER_ENV }),
  denoFlags: [`--inspect=127.0.0.1:${inspectorPort}`],
});
let idle: HeapSummary;
let loaded: HeapSummary;
try {
  idle = await takeHeapSummary(inspectorPort);
  const peers = new PeerSet(
    [chatEndpoint(server.url)],
    connectionSpecs(`heap-${tag()}`, count, roomSize),
  );
  const opened = await peers.open({ concurrency: 200, timeoutMs: 30_000 });
  if (opened.failed > 0) {
    throw new Error(`${opened.failed} connections failed: ${opened.firstError}`);
  }
  loaded = await takeHeapSummary(inspectorPort);
  await peers.closeAll(CLOSE_TIMEOUT_MS);
} finally {
  await server.stop();
}

const rows = heapGrowth(idle, loaded, count);
const total = rows.reduce((sum, row) => sum + row.bytes, 0);
console.log(JSON.stringify({
  target: values.target,
  connections: count,
  roomSize,
  heapBytesPerConnection: Math.round(total),
}));
console.log(`\n${values.target}: heap per idle connection, rooms of ${roomSize}, after GC`);
console.log(formatTable(
  ["bytes", "objects", "kind:constructor"],
  rows.slice(0, positive("rows")).map((row) => [
    row.bytes.toFixed(0),
    row.count.toFixed(2),
    row.key,
  ]),
));
console.log(`total: ${total.toFixed(0)} bytes per connection`);
