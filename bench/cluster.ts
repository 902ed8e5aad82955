/**
 * `deno task bench:cluster [-- options]`: fan-out through the shared sequencer (issue 13) next to
 * one instance's, measured in the same run, on the same machine, with the same load shape.
 *
 * The load generator's fanout scenario (bench/_fanout.ts: `--rooms` x `--members`, one sender per
 * room, the offered load stepped up until a rate fails after its retries, then one step at half
 * load) runs in this process, first against one instance on its own (`main.ts`, no Redis), then
 * against `--instances` instances sharing one Redis. There each room's members, its sender
 * included, are spread over the instances, so every message takes one script call on Redis (its
 * seq), comes back over pub/sub to every instance (the sender's own included) and is fanned out
 * there. The cluster's half-load step runs at one instance's half load, so that the two p99s are
 * taken at the same offered load.
 *
 *     --instances 2         instances in the cluster
 *     --rooms 10 --members 100 --rates 200,500,800,... --step-ms 3000 --retries 1
 *     --budget-s 75         no new ladder step after this long, per ladder
 *     --p99-ms 100 --half-p99-ms 25    what a ladder step and the half-load step must meet
 *     --target-ratio 0.5    the cluster's sustained deliveries/s over one instance's
 *     --short               a smoke run of seconds: 2 rooms x 5 members, 60 msg/s, 0.5 s steps
 *     --json                JSON lines only (the verdict is one too)
 *     --time-limit-s 300    the whole run stops by itself after this long (exit 1)
 *
 * Prints one JSON line per step and per summary (`target`: "one" or "cluster"), then tables and
 * one verdict line. Exits 0 once both are measured, whatever the verdict; 1 on a failure or at
 * the time limit. Redis: BENCH_REDIS_URL, else TEST_REDIS_URL, else redis://127.0.0.1:6379; it
 * must be on this machine, like the servers (127.0.0.1). Its keys get a fresh REDIS_PREFIX and
 * are deleted at the end. The file limit (`ulimit -n`) must exceed the sockets.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { fanout, type FanoutSummary } from "./_fanout.ts";
import { openFileLimit } from "./_proc.ts";
import type { Report, Target } from "./_scenarios.ts";
import { BENCH_SERVER_ENV, type RunningServer, startServer } from "./_server.ts";
import { clusterVerdict, printClusterTables, type RunFacts } from "./_cluster_report.ts";

/**
 * Offered msg/s in total. One instance tops out at 1,000-1,800 here, two at 2,000 or more (then
 * the generator's one thread is close to full): about 10% apart where either may stop.
 */
const DEFAULT_RATES = "200,500,800,1000,1200,1400,1600,1800,2000,2200,2400,2700,3000,3500";
const SHORT = { rooms: 2, members: 5, rates: "60", stepMs: 500, retries: 0, budgetS: 20 };
/** How long the instances may take to report `"cluster":"ok"` on `/readyz`. */
const CLUSTER_READY_MS = 10_000;
const CLEANUP_TIMEOUT_MS = 5_000;
const LOOPBACK = ["127.0.0.1", "localhost", "[::1]"];

const { values } = parseArgs({
  // `deno task bench:cluster -- ...` passes the `--` on; it would end option parsing here.
  args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
  options: {
    instances: { type: "string", default: "2" },
    rooms: { type: "string" },
    members: { type: "string" },
    rates: { type: "string" },
    "step-ms": { type: "string" },
    retries: { type: "string" },
    "budget-s": { type: "string" },
    "p99-ms": { type: "string", default: "100" },
    "half-p99-ms": { type: "string", default: "25" },
    "target-ratio": { type: "string", default: "0.5" },
    short: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    "time-limit-s": { type: "string", default: "300" },
  },
});

function usage(message: string): never {
  console.error(`bench:cluster: ${message}`);
  Deno.exit(2);
}

/** A positive number from an option, else from the short or default run. */
function positive(name: keyof typeof values, fallback: number, integer = true): number {
  const raw = values[name];
  const value = typeof raw === "string" ? Number(raw) : fallback;
  if (!(value > 0) || (integer && !Number.isInteger(value))) {
    usage(`--${name} takes a positive ${integer ? "integer" : "number"}`);
  }
  return value;
}

const short = values.short ?? false;
const instances = positive("instances", 2);
const rooms = positive("rooms", short ? SHORT.rooms : 10);
const members = positive("members", short ? SHORT.members : 100);
const rates = (values.rates ?? (short ? SHORT.rates : DEFAULT_RATES)).split(",").map(Number);
if (rates.some((rate) => !(rate > 0))) usage("--rates takes positive numbers");
const fanoutOptions = {
  rooms,
  members,
  rates,
  stepMs: positive("step-ms", short ? SHORT.stepMs : 3000),
  retries: values.retries === undefined ? (short ? SHORT.retries : 1) : Number(values.retries),
  budgetMs: positive("budget-s", short ? SHORT.budgetS : 75, false) * 1000,
  p99LimitMs: positive("p99-ms", 100, false),
  halfP99LimitMs: positive("half-p99-ms", 25, false),
};
const targetRatio = positive("target-ratio", 0.5, false);
const timeLimitMs = positive("time-limit-s", 300, false) * 1000;
const redisUrl = Deno.env.get("BENCH_REDIS_URL") || Deno.env.get("TEST_REDIS_URL") ||
  "redis://127.0.0.1:6379";
if (!LOOPBACK.includes(new URL(redisUrl).hostname)) {
  usage(`Redis must be on this machine (127.0.0.1), not ${new URL(redisUrl).host}`);
}
const prefix = `bench:cluster:${crypto.randomUUID()}:`;
const entry = new URL("../main.ts", import.meta.url).pathname;
const running = new Set<RunningServer>();
const lines: Record<string, unknown>[] = [];

/** Prints a line (JSON, tagged with the target) and keeps it for the report. */
function reportFor(target: "one" | "cluster"): Report {
  const print = (line: Record<string, unknown>) => {
    const tagged = { target, instances: target === "one" ? 1 : instances, ...line };
    lines.push(tagged);
    console.log(JSON.stringify(tagged));
  };
  return {
    step: print,
    summary: (line) => print({ summary: true, ...line }),
    warn: (text) => console.error(`WARNING (${target}): ${text}`),
  };
}

/** Starts `count` servers with `env`, runs the fanout ladder over them, stops them. */
async function measure(
  target: "one" | "cluster",
  count: number,
  options: { env: Record<string, string>; halfRate?: number },
): Promise<FanoutSummary> {
  const servers: RunningServer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = await startServer({ entry, env: options.env });
      running.add(server);
      servers.push(server);
    }
    if (target === "cluster") await Promise.all(servers.map(untilClusterOk));
    const fanoutTarget: Target = {
      urls: servers.map((server) => server.url),
      serverPids: servers.map((server) => server.pid),
      // Redis does the sequencing: its CPU is the system's, not other tasks' noise.
      sutCommand: target === "cluster" ? "redis-server" : undefined,
      concurrency: 200,
      report: reportFor(target),
    };
    return await fanout(fanoutTarget, { ...fanoutOptions, halfRate: options.halfRate });
  } finally {
    await Promise.all(servers.map(async (server) => {
      await server.stop();
      running.delete(server);
    }));
  }
}

async function untilClusterOk(server: RunningServer): Promise<void> {
  const url = `${server.url.replace(/^ws/, "http")}/readyz`;
  const deadline = performance.now() + CLUSTER_READY_MS;
  for (;;) {
    const body = await (await fetch(url)).json();
    if (body.cluster === "ok") return;
    if (performance.now() > deadline) throw new Error(`${url}: cluster ${body.cluster}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Deletes every key under the run's prefix. @returns how many there were. */
async function deleteKeys(redis: Redis): Promise<number> {
  let deleted = 0;
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== "0");
  return deleted;
}

async function main(): Promise<void> {
  const sockets = rooms * members;
  const limit = await openFileLimit();
  if (limit < sockets + 256) usage(`ulimit -n is ${limit}, ${sockets + 256} needed; raise it`);
  const started = performance.now();
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  const watchdog = setTimeout(() => {
    console.error(`bench:cluster: not done after ${timeLimitMs / 1000} s, stopping`);
    for (const server of running) Deno.kill(server.pid, "SIGKILL");
    const cleanup = deleteKeys(redis).catch(() => 0);
    const giveUp = new Promise((resolve) => setTimeout(resolve, CLEANUP_TIMEOUT_MS));
    Promise.race([cleanup, giveUp]).finally(() => Deno.exit(1));
  }, timeLimitMs);
  try {
    await redis.connect();
    const one = await measure("one", 1, { env: BENCH_SERVER_ENV });
    const cluster = await measure("cluster", instances, {
      env: { ...BENCH_SERVER_ENV, REDIS_URL: redisUrl, REDIS_PREFIX: prefix },
      halfRate: one.halfLoadOfferedPerSecond,
    });
    const run: RunFacts = {
      lines,
      instances,
      rooms,
      members,
      targetRatio,
      seconds: (performance.now() - started) / 1000,
      prefix,
    };
    const { line, text } = clusterVerdict(one, cluster, run);
    console.log(JSON.stringify(line));
    if (!values.json) {
      printClusterTables(one, cluster, run);
      console.log(`\n${text}`);
    }
  } finally {
    clearTimeout(watchdog);
    await Promise.all([...running].map((server) => server.stop()));
    if (redis.status === "ready") await deleteKeys(redis);
    redis.disconnect();
  }
}

if (import.meta.main) await main();
