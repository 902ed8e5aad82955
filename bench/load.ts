/**
 * `deno task bench -- [<ws-url>] [options]`: the load generator. Drives a chat server over real
 * WebSockets from this (separate) process and prints one JSON line per step, then a table.
 * Without a URL it starts `main.ts` itself (in-memory store, the limits of bench:compare lifted;
 * for soak with `--inspect`, and `MEMORY_MAX_ROOMS` at twice the soak's rooms) and stops it at the
 * end.
 *
 *     --scenario fanout|chatty|connections|all|storm|soak   (default all: the first three)
 *     --pid N            the server's pid, for its CPU % and RSS (from /proc); omit if unknown
 *     --label TEXT       added to every JSON line (bench:compare names the server this way)
 *     --json             JSON lines only, no table
 *     --sut-command NAME processes of this command name are part of the system under test (e.g.
 *                        postgres): their CPU is reported apart and not counted as noise
 *     --frames text|json|client-id|mix   how fanout and chatty senders frame a message
 *                        (default text: the bare content; json: {"type":"message","content":..};
 *                        client-id: json with a "client_id" unique per message; mix: json, and
 *                        one frame in ten a typing frame or a reaction, in turn: bench/_mix.ts)
 *     --client-id        the same as --frames client-id
 *     --batch            members connect with `batch=1`: frames waiting together come as one
 *                        WebSocket frame (issue 19); each line still counts as its message
 *   fanout:      --rooms 10 --members 100 --rates 200,500,1000,... (msg/s in total)
 *                --step-ms 5000 --retries 1 --p99-ms 100
 *                --budget-s 75 (no new ladder step after this long)
 *                --half-p99-ms 25 (what the step at half the sustained load must meet)
 *   chatty:      --chatty-rooms 200 --chatty-members 5 --chatty-rate 1 (msg/s per member)
 *                --chatty-ms 10000
 *   connections: --connections 10000 --room-size 10 --concurrency 200 (sockets opening at once)
 *   storm:       --storm-members 2000 --storm-spread-ms 1000 (all drop, then reconnect over it)
 *                --storm-rate 50 (msg/s of the pair in the other room) --storm-p99-ms 50
 *                --storm-room-rate 2 (msg/s in the storm room, replayed by the resumes)
 *                --storm-tail-ms 6000 (window kept open after the last resume)
 *                --storm-presence-bytes 256 (presence bytes a member may get, per member of
 *                the room: O(N) per member)
 *   soak:        --minutes 10 (fractions allowed) --soak-warmup-s 60 --soak-sample-s 60
 *                --soak-rooms 40 --soak-room-size 10 --soak-rate 200 (msg/s in total)
 *                --soak-room-life-s 30 --soak-churn 5 (leaves and as many resumes per second)
 *                --soak-idle-s 5 (idle after everyone left, then the end sample and snapshot)
 *                --soak-idle-max-s 40 (snapshots again every 5 s until the heap is back, this long)
 *                --inspect-port N (the server's inspector, when given a URL)
 *     --time-limit-s N   the whole run stops by itself after this long (default 140 s per
 *                        scenario; soak: its minutes plus 300 s)
 *
 * Permissions: --allow-net --allow-run=cat,sh (Deno 2.9 reads nothing under /proc without
 * --allow-all, so CPU and memory figures are read through `cat`); without a URL also
 * --allow-read --allow-run (to start the server; soak reads the server's class names).
 *
 * A step is client-bound when this process used >= 90% of a core: it is then flagged, and a
 * warning is printed on stderr. A step is noisy when other tasks on the machine (not the server,
 * not this process) used >= 20% of a core meanwhile; a noisy failing fanout step is retried.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fanout } from "./_fanout.ts";
import { Inspector } from "./_heap_snapshot.ts";
import {
  chatty,
  CLIENT_BOUND_CPU_PERCENT,
  connections,
  type Report,
  type Target,
} from "./_scenarios.ts";
import { serverClassNames, soak, soakTable } from "./_soak.ts";
import { formatTable } from "./_stats.ts";
import { stepTable } from "./_step_table.ts";
import { storm, stormTable } from "./_storm.ts";
import { FRAME_STYLES, type FrameStyle } from "./_traffic.ts";

const SCENARIOS = ["fanout", "chatty", "connections", "storm", "soak"] as const;
/** What `--scenario all` runs. */
const ALL = ["fanout", "chatty", "connections"];
/** Soak: time allowed beyond its minutes (start, snapshots, everyone leaving, idle). */
const SOAK_EXTRA_S = 300;
/** Fine (about 10%) where both servers of this project top out on a 2-core machine. */
const DEFAULT_RATES = "200,500,700,800,900,1000,1100,1200,1300,1400,1500,1700,2000,2500,3000,4000";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  // `deno task bench -- ...` passes the `--` on; it would end option parsing here.
  args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
  options: {
    scenario: { type: "string", default: "all" },
    pid: { type: "string" },
    label: { type: "string" },
    json: { type: "boolean", default: false },
    "sut-command": { type: "string" },
    frames: { type: "string" },
    "client-id": { type: "boolean", default: false },
    batch: { type: "boolean", default: false },
    rooms: { type: "string", default: "10" },
    members: { type: "string", default: "100" },
    rates: { type: "string", default: DEFAULT_RATES },
    "step-ms": { type: "string", default: "5000" },
    retries: { type: "string", default: "1" },
    "budget-s": { type: "string", default: "75" },
    "half-p99-ms": { type: "string", default: "25" },
    "p99-ms": { type: "string", default: "100" },
    "chatty-rooms": { type: "string", default: "200" },
    "chatty-members": { type: "string", default: "5" },
    "chatty-rate": { type: "string", default: "1" },
    "chatty-ms": { type: "string", default: "10000" },
    connections: { type: "string", default: "10000" },
    "room-size": { type: "string", default: "10" },
    concurrency: { type: "string", default: "200" },
    "time-limit-s": { type: "string" },
    "storm-members": { type: "string", default: "2000" },
    "storm-spread-ms": { type: "string", default: "1000" },
    "storm-rate": { type: "string", default: "50" },
    "storm-room-rate": { type: "string", default: "2" },
    "storm-tail-ms": { type: "string", default: "6000" },
    "storm-p99-ms": { type: "string", default: "50" },
    "storm-presence-bytes": { type: "string", default: "256" },
    minutes: { type: "string", default: "10" },
    "soak-warmup-s": { type: "string", default: "60" },
    "soak-sample-s": { type: "string", default: "60" },
    "soak-rooms": { type: "string", default: "40" },
    "soak-room-size": { type: "string", default: "10" },
    "soak-rate": { type: "string", default: "200" },
    "soak-room-life-s": { type: "string", default: "30" },
    "soak-churn": { type: "string", default: "5" },
    "soak-idle-s": { type: "string", default: "5" },
    "soak-idle-max-s": { type: "string", default: "40" },
    "inspect-port": { type: "string" },
  },
});

function usage(message: string): never {
  console.error(
    `bench: ${message}\nusage: deno task bench -- [ws://127.0.0.1:8080] [--scenario ...]`,
  );
  Deno.exit(2);
}

function positive(name: keyof typeof values): number {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value <= 0) usage(`--${name} must be a positive number`);
  return value;
}

const given = positionals[0];
if (given !== undefined && !/^wss?:\/\//.test(given)) usage(`not a ws:// URL: ${given}`);
const chosen = values.scenario === "all" ? ALL : [values.scenario];
for (const name of chosen) {
  if (!SCENARIOS.some((known) => known === name)) usage(`unknown scenario ${name}`);
}
const rates = (values.rates ?? "").split(",").map(Number);
if (rates.some((rate) => !(rate > 0))) usage("--rates must be positive numbers");

const framesOption = values.frames ?? (values["client-id"] ? "client-id" : "text");
const frames = FRAME_STYLES.find((style) => style === framesOption) ??
  usage(`--frames must be one of ${FRAME_STYLES.join(", ")}`);
if (values["client-id"] && frames !== "client-id") usage("--client-id contradicts --frames");

const steps: Record<string, unknown>[] = [];
const summaries: Record<string, unknown>[] = [];
const label = {
  ...(values.label === undefined ? {} : { label: values.label }),
  frames: frames satisfies FrameStyle,
};
const report: Report = {
  step(line) {
    steps.push(line);
    console.log(JSON.stringify({ ...label, ...line }));
    if (line.clientBound === true) {
      report.warn(
        `${line.scenario} step ${line.step}: the generator used ${line.clientCpuPercent}% of a ` +
          `core (>= ${CLIENT_BOUND_CPU_PERCENT}%): this result is bounded by the client`,
      );
    }
  },
  summary(line) {
    summaries.push(line);
    console.log(JSON.stringify({ ...label, summary: true, ...line }));
  },
  warn(text) {
    console.error(`WARNING: ${text}`);
  },
};
const soakRooms = positive("soak-rooms");
const minutes = positive("minutes");
const own = given === undefined ? await startOwnServer() : undefined;
const url = withBatch(given ?? own?.server.url ?? "", values.batch ?? false);
const pid = values.pid === undefined ? own?.server.pid : positive("pid");
const target: Target = {
  urls: [url],
  serverPids: pid === undefined ? [] : [pid],
  sutCommand: values["sut-command"],
  concurrency: positive("concurrency"),
  report,
  frames,
};

const defaultLimitS = chosen.reduce(
  (sum, name) => sum + (name === "soak" ? minutes * 60 + SOAK_EXTRA_S : 140),
  0,
);
const timeLimitMs = (Number(values["time-limit-s"]) || defaultLimitS) * 1000;
const watchdog = setTimeout(() => {
  console.error(`bench: not done after ${timeLimitMs / 1000} s, stopping`);
  Deno.exit(1);
}, timeLimitMs);

try {
  for (const name of chosen) {
    if (name === "fanout") {
      await fanout(target, {
        rooms: positive("rooms"),
        members: positive("members"),
        rates,
        stepMs: positive("step-ms"),
        retries: Number(values.retries) || 0,
        budgetMs: positive("budget-s") * 1000,
        halfP99LimitMs: positive("half-p99-ms"),
        p99LimitMs: positive("p99-ms"),
      });
    } else if (name === "chatty") {
      await chatty(target, {
        rooms: positive("chatty-rooms"),
        members: positive("chatty-members"),
        perMemberPerSecond: positive("chatty-rate"),
        durationMs: positive("chatty-ms"),
        p99LimitMs: positive("p99-ms"),
      });
    } else if (name === "connections") {
      await connections(target, {
        count: positive("connections"),
        roomSize: positive("room-size"),
      });
    } else if (name === "storm") {
      await storm(target, {
        members: positive("storm-members"),
        spreadMs: positive("storm-spread-ms"),
        ratePerSecond: positive("storm-rate"),
        roomRatePerSecond: positive("storm-room-rate"),
        tailMs: positive("storm-tail-ms"),
        p99LimitMs: positive("storm-p99-ms"),
        presenceBytesPerPeerLimit: positive("storm-presence-bytes"),
      });
    } else {
      await runSoak();
    }
  }
} finally {
  clearTimeout(watchdog);
  await own?.server.stop();
}
if (!values.json) printTables();
Deno.exit(0);

/** Starts main.ts on a free port (with its inspector for soak). */
async function startOwnServer() {
  const { BENCH_SERVER_ENV, freePort, startServer } = await import("./_server.ts");
  const soaks = chosen.includes("soak");
  const inspectorPort = soaks ? freePort() : undefined;
  const server = await startServer({
    entry: new URL("../main.ts", import.meta.url).pathname,
    // The in-memory store keeps the newest rooms: twice those of the soak open at once, so that
    // it is full after the warm-up and its growth does not pass for a leak.
    env: { ...BENCH_SERVER_ENV, ...(soaks && { MEMORY_MAX_ROOMS: String(2 * soakRooms) }) },
    denoFlags: inspectorPort === undefined ? [] : [`--inspect=127.0.0.1:${inspectorPort}`],
  });
  return { server, inspectorPort };
}

async function runSoak(): Promise<void> {
  const port = values["inspect-port"] === undefined ? own?.inspectorPort : positive("inspect-port");
  const inspector = port === undefined ? undefined : await Inspector.connect(port);
  try {
    await soak(target, {
      durationMs: minutes * 60_000,
      warmupMs: positive("soak-warmup-s") * 1000,
      sampleMs: positive("soak-sample-s") * 1000,
      rooms: soakRooms,
      roomSize: positive("soak-room-size"),
      ratePerSecond: positive("soak-rate"),
      roomLifeMs: positive("soak-room-life-s") * 1000,
      churnPerSecond: positive("soak-churn"),
      idleMs: positive("soak-idle-s") * 1000,
      idleMaxMs: positive("soak-idle-max-s") * 1000,
      inspector,
      serverClasses: await serverClassNames(),
    });
  } finally {
    inspector?.close();
  }
}

function printTables(): void {
  const cell = (value: unknown) => value === undefined ? "-" : String(value);
  const traffic = steps.filter((line) => line.scenario === "fanout" || line.scenario === "chatty");
  if (traffic.length > 0) {
    console.log(`\n${values.label ?? url}: traffic (latency in ms)`);
    console.log(stepTable(traffic));
  }
  const ramps = steps.filter((line) => line.scenario === "connections");
  if (ramps.length > 0) {
    console.log(`\n${values.label ?? url}: connections`);
    console.log(formatTable(
      [
        "room size",
        "opened",
        "failed",
        "connect s",
        "conn/s",
        "srv idle MiB",
        "srv loaded MiB",
        "KiB/conn",
      ],
      ramps.map((line) =>
        [
          line.roomSize,
          line.opened,
          line.failed,
          line.connectSeconds,
          line.connectsPerSecond,
          typeof line.serverIdleRssKiB === "number"
            ? (line.serverIdleRssKiB / 1024).toFixed(1)
            : undefined,
          typeof line.serverLoadedRssKiB === "number"
            ? (line.serverLoadedRssKiB / 1024).toFixed(1)
            : undefined,
          line.serverKiBPerConnection,
        ].map(cell)
      ),
    ));
  }
  const storms = steps.filter((line) => line.scenario === "storm");
  if (storms.length > 0) {
    console.log(`\n${values.label ?? url}: reconnect storm (latency of the other room, in ms)`);
    console.log(stormTable(storms));
  }
  const soaks = steps.filter((line) => line.scenario === "soak");
  if (soaks.length > 0) {
    console.log(`\n${values.label ?? url}: soak (latency of each interval, in ms)`);
    console.log(soakTable(soaks));
  }
  for (const line of summaries) {
    console.log(`\n${line.scenario} summary: ${JSON.stringify(line)}`);
  }
}

/** The chat URL with `batch=1` when asked for: the server joins frames that wait together. */
function withBatch(url: string, batch: boolean): string {
  if (!batch || url === "") return url;
  const batched = new URL(url);
  batched.searchParams.set("batch", "1");
  return batched.toString();
}
