/**
 * `deno task bench -- <ws-url> [options]`: the load generator. Drives a running chat server over
 * real WebSockets from this (separate) process and prints one JSON line per step, then a table.
 *
 *     --scenario fanout|chatty|connections|all   (default all)
 *     --pid N            the server's pid, for its CPU % and RSS (from /proc); omit if unknown
 *     --label TEXT       added to every JSON line (bench:compare names the server this way)
 *     --json             JSON lines only, no table
 *     --sut-command NAME processes of this command name are part of the system under test (e.g.
 *                        postgres): their CPU is reported apart and not counted as noise
 *     --frames text|json|client-id   how fanout and chatty senders frame a message (default
 *                        text: the bare content; json: {"type":"message","content":..};
 *                        client-id: json with a "client_id" unique per message)
 *     --client-id        the same as --frames client-id
 *   fanout:      --rooms 10 --members 100 --rates 200,500,1000,... (msg/s in total)
 *                --step-ms 5000 --retries 1 --p99-ms 100
 *                --budget-s 75 (no new ladder step after this long)
 *                --half-p99-ms 25 (what the step at half the sustained load must meet)
 *   chatty:      --chatty-rooms 200 --chatty-members 5 --chatty-rate 1 (msg/s per member)
 *                --chatty-ms 10000
 *   connections: --connections 10000 --room-size 10 --concurrency 200 (sockets opening at once)
 *     --time-limit-s N   the whole run stops by itself after this long (default 140 per scenario)
 *
 * Permissions: --allow-net --allow-run=cat,sh (Deno 2.9 reads nothing under /proc without
 * --allow-all, so CPU and memory figures are read through `cat`).
 *
 * A step is client-bound when this process used >= 90% of a core: it is then flagged, and a
 * warning is printed on stderr. A step is noisy when other tasks on the machine (not the server,
 * not this process) used >= 20% of a core meanwhile; a noisy failing fanout step is retried.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fanout } from "./_fanout.ts";
import {
  chatty,
  CLIENT_BOUND_CPU_PERCENT,
  connections,
  type Report,
  type Target,
} from "./_scenarios.ts";
import { formatTable } from "./_stats.ts";
import { stepTable } from "./_step_table.ts";
import { FRAME_STYLES, type FrameStyle } from "./_traffic.ts";

const SCENARIOS = ["fanout", "chatty", "connections"] as const;
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
  },
});

function usage(message: string): never {
  console.error(
    `bench: ${message}\nusage: deno task bench -- ws://127.0.0.1:8080 [--scenario ...]`,
  );
  Deno.exit(2);
}

function positive(name: keyof typeof values): number {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value <= 0) usage(`--${name} must be a positive number`);
  return value;
}

const url = positionals[0] ?? usage("the server's ws:// URL is required");
if (!/^wss?:\/\//.test(url)) usage(`not a ws:// URL: ${url}`);
const chosen = values.scenario === "all" ? [...SCENARIOS] : [values.scenario];
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
const target: Target = {
  urls: [url],
  serverPids: values.pid === undefined ? [] : [positive("pid")],
  sutCommand: values["sut-command"],
  concurrency: positive("concurrency"),
  report,
  frames,
};

const timeLimitMs = (Number(values["time-limit-s"]) || 140 * chosen.length) * 1000;
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
    } else {
      await connections(target, {
        count: positive("connections"),
        roomSize: positive("room-size"),
      });
    }
  }
} finally {
  clearTimeout(watchdog);
}
if (!values.json) printTables();
Deno.exit(0);

function printTables(): void {
  const cell = (value: unknown) => value === undefined ? "-" : String(value);
  const traffic = steps.filter((line) => line.scenario !== "connections");
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
  for (const line of summaries) {
    console.log(`\n${line.scenario} summary: ${JSON.stringify(line)}`);
  }
}
