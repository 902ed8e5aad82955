/**
 * `deno task bench:compare [-- options]`: the chat server against bench/baseline.ts, the
 * smallest correct broadcast server, on the same machine with the same load generator
 * (bench/load.ts, a separate process). Each scenario runs against each server in turn, A B A B,
 * every run on a freshly started server, and the report gives server / baseline ratios.
 *
 *     --rounds N        runs of each scenario against each server (default 2)
 *     --scenarios LIST  comma list of fanout, chatty, connections (default all three)
 *     --database        also run fanout on the server with PostgreSQL (a scratch database;
 *                       BENCH_DATABASE_URL, else TEST_DATABASE_URL, else
 *                       postgres://postgres@127.0.0.1:5432/test)
 *     --client-id       every target sends every message as JSON with a `client_id` unique per
 *                       message (the baseline ignores it)
 *     --compare-client-id
 *                       instead of the baseline: the real server with a `client_id` on every
 *                       message (`server+cid`) against the same server without (`server`, the
 *                       same JSON frames minus the `client_id`), A B A B; fanout only unless
 *                       --scenarios says otherwise; with --database, also both on PostgreSQL
 *                       (`server+pg+cid`, `server+pg`). Target (5) of issue 14: with >= 90% of
 *                       without. About 5 minutes in memory, 10 with --database.
 *     --compare-mix     instead of the baseline: the real server with plain JSON messages
 *                       (`server`) against the same with the conversation mix (`server+mix`: of
 *                       every 10 frames a sender sends, one is a `typing` frame or a reaction, in
 *                       turn; bench/_mix.ts), A B A B; fanout only unless --scenarios says
 *                       otherwise; with --database, also both on PostgreSQL (`server+pg`,
 *                       `server+pg+mix`). Deliveries are messages plus reactions received. Item 5
 *                       of issue 18: the mix's fanout sustained deliveries/s >= 90% of plain's.
 *                       About 5 minutes in memory.
 *     --batch           also the real server with members asking for batched frames
 *                       (`server+batch`, `batch=1`: one WebSocket frame for the frames waiting
 *                       together; issue 19), next to `server` (one frame per message) and the
 *                       baseline
 *     --workers N       also the real server joined through Redis (BENCH_REDIS_URL, else
 *                       TEST_REDIS_URL, else redis://127.0.0.1:6379) with `WORKERS=1`
 *                       (`server+redis`) and with `WORKERS=N` (`server+workers`), one frame per
 *                       message; fanout only (issue 19: what more threads of one host add)
 *     --step-ms N --rates LIST --budget-s N --chatty-ms N --connections N --room-size N
 *                       passed to bench/load.ts (defaults: 3000, a ladder from 500 to 2500,
 *                       60, 6000, 10000, 10)
 *     --batch-rates LIST the fanout ladder of `server+batch` instead of --rates (default from
 *                       500 to 10000 in coarser steps)
 *     --time-limit-s N  the whole run stops by itself after this long (default 600, 780 with
 *                       --database)
 *
 * The real server runs with `main.ts` defaults (in-memory store, persistence on) except for the
 * client-facing limits, lifted so that they do not distort a benchmark.
 *
 * Prints one JSON line per step (with `round` and `target`), then tables, ratios and targets.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Line, printReport, type TargetName } from "./_compare_report.ts";
import type { FrameStyle } from "./_traffic.ts";
import {
  BENCH_SERVER_ENV,
  createScratchDatabase,
  type RunningServer,
  startServer,
} from "./_server.ts";

const { values } = parseArgs({
  // `deno task bench -- ...` passes the `--` on; it would end option parsing here.
  args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
  options: {
    rounds: { type: "string", default: "2" },
    scenarios: { type: "string" },
    database: { type: "boolean", default: false },
    "client-id": { type: "boolean", default: false },
    "compare-client-id": { type: "boolean", default: false },
    "compare-mix": { type: "boolean", default: false },
    batch: { type: "boolean", default: false },
    workers: { type: "string" },
    "step-ms": { type: "string", default: "3000" },
    rates: {
      type: "string",
      default: "500,700,900,1000,1100,1200,1300,1400,1500,1600,1800,2000,2200,2500",
    },
    // Batched frames carry several times the messages: a ladder in coarser steps reaches its
    // limit within the same time budget.
    "batch-rates": {
      type: "string",
      default: "500,1000,1500,2000,2500,3000,3500,4000,5000,6000,7000,8000,10000",
    },
    "budget-s": { type: "string", default: "60" },
    "chatty-ms": { type: "string", default: "6000" },
    connections: { type: "string", default: "10000" },
    "room-size": { type: "string", default: "10" },
    "time-limit-s": { type: "string" },
  },
});

const root = new URL("..", import.meta.url);
const adminUrl = Deno.env.get("BENCH_DATABASE_URL") || Deno.env.get("TEST_DATABASE_URL") ||
  "postgres://postgres@127.0.0.1:5432/test";
const redisUrl = Deno.env.get("BENCH_REDIS_URL") || Deno.env.get("TEST_REDIS_URL") ||
  "redis://127.0.0.1:6379";
const workers = values.workers === undefined ? undefined : Number(values.workers);
if (workers !== undefined && !(Number.isInteger(workers) && workers >= 2 && workers <= 64)) {
  console.error("bench:compare: --workers takes a whole number from 2 to 64");
  Deno.exit(2);
}
const rounds = Math.max(1, Number(values.rounds) || 2);
const compareClientId = values["compare-client-id"] ?? false;
const compareMix = values["compare-mix"] ?? false;
/** The server against itself with one thing changed: the suffix of the changed side's target. */
const changed = compareClientId ? "+cid" : compareMix ? "+mix" : undefined;
const scenarios = (values.scenarios ?? (changed ? "fanout" : "fanout,chatty,connections"))
  .split(",").filter((name) => name.length > 0);
for (const name of scenarios) {
  if (!["fanout", "chatty", "connections"].includes(name)) {
    console.error(`bench:compare: unknown scenario ${name}`);
    Deno.exit(2);
  }
}
const exclusive = ["client-id", "compare-client-id", "compare-mix"] as const;
if (exclusive.filter((name) => values[name]).length > 1) {
  console.error(`bench:compare: --${exclusive.join(", --")} exclude each other`);
  Deno.exit(2);
}
const children = new Set<number>();

const timeLimitMs = (Number(values["time-limit-s"]) ||
  (values.database ? (changed ? 900 : 780) : 600)) * 1000;
const watchdog = setTimeout(() => {
  console.error(`bench:compare: not done after ${timeLimitMs / 1000} s, stopping`);
  for (const pid of children) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error; // exited meanwhile
    }
  }
  Deno.exit(1);
}, timeLimitMs);

const lines: Line[] = [];
const started = performance.now();
for (let round = 1; round <= rounds; round++) {
  for (const scenario of scenarios) {
    for (const target of targetsOf(scenario)) {
      lines.push(...await runOnce(round, scenario, target));
    }
  }
}
clearTimeout(watchdog);
printReport(lines, {
  rounds,
  scenarios,
  database: values.database ?? false,
  seconds: (performance.now() - started) / 1000,
  targets: [...new Set(scenarios.flatMap(targetsOf))],
  compare: compareClientId ? "client-id" : compareMix ? "mix" : "baseline",
});

/** The servers a scenario runs against, in the order of a round. */
function targetsOf(scenario: string): TargetName[] {
  const database = scenario === "fanout" && values.database;
  if (changed) {
    const pairs = database ? ["server", "server+pg"] : ["server"];
    return pairs.flatMap((plain) => [plain, `${plain}${changed}`] as TargetName[]);
  }
  const batch: TargetName[] = values.batch ? ["server+batch"] : [];
  const threads: TargetName[] = workers !== undefined && scenario === "fanout"
    ? ["server+redis", "server+workers"]
    : [];
  return database
    ? ["baseline", "server", ...batch, ...threads, "server+pg"]
    : ["baseline", "server", ...batch, ...threads];
}

/** The environment of a target joined through Redis: a key prefix of its own per run. */
function clusterEnv(target: TargetName): Record<string, string> {
  if (target !== "server+redis" && target !== "server+workers") return {};
  return {
    REDIS_URL: redisUrl,
    REDIS_PREFIX: `bench:${crypto.randomUUID()}:`,
    WORKERS: target === "server+workers" ? String(workers) : "1",
  };
}

/** How the generator frames messages for `target`. */
function framesOf(target: TargetName): FrameStyle {
  if (target.endsWith("+cid") || values["client-id"]) return "client-id";
  if (target.endsWith("+mix")) return "mix";
  // The unchanged side of a comparison: the same JSON frames, so that only the client_id (or
  // the typing frames and reactions) differ.
  return changed ? "json" : "text";
}

/** One scenario against one freshly started server. */
async function runOnce(round: number, scenario: string, target: TargetName): Promise<Line[]> {
  const postgres = target.startsWith("server+pg");
  const database = postgres ? await createScratchDatabase(adminUrl) : undefined;
  let server: RunningServer | undefined;
  try {
    server = await startServer(
      target === "baseline" ? { entry: new URL("bench/baseline.ts", root).pathname, env: {} } : {
        entry: new URL("main.ts", root).pathname,
        env: {
          ...BENCH_SERVER_ENV,
          DATABASE_URL: database?.url ?? "",
          ...clusterEnv(target),
        },
        // As `deno task start`: the workers' threads load the server's modules, and share the
        // port with reusePort.
        denoFlags: target === "server+workers" ? ["--unstable-net", "--allow-read"] : [],
      },
    );
    children.add(server.pid);
    return await generate(server, { round, scenario, target });
  } finally {
    if (server) {
      await server.stop();
      children.delete(server.pid);
    }
    await database?.drop();
  }
}

/** Runs bench/load.ts against `server`; prints its JSON lines, tagged, as they come. */
async function generate(
  server: RunningServer,
  tags: { round: number; scenario: string; target: TargetName },
): Promise<Line[]> {
  const args = [
    "run",
    "--allow-net",
    "--allow-run=cat,sh",
    new URL("bench/load.ts", root).pathname,
    server.url,
    "--json",
    `--scenario=${tags.scenario}`,
    `--pid=${server.pid}`,
    `--label=${tags.target}`,
    `--step-ms=${values["step-ms"]}`,
    `--rates=${tags.target === "server+batch" ? values["batch-rates"] : values.rates}`,
    `--budget-s=${values["budget-s"]}`,
    `--chatty-ms=${values["chatty-ms"]}`,
    `--connections=${values.connections}`,
    `--room-size=${values["room-size"]}`,
    `--frames=${framesOf(tags.target)}`,
    ...(tags.target === "server+batch" ? ["--batch"] : []),
    ...(tags.target.startsWith("server+pg") ? ["--sut-command=postgres"] : []),
  ];
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
    .spawn();
  children.add(child.pid);
  const out: Line[] = [];
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
      const text = pending.slice(0, end).trim();
      pending = pending.slice(end + 1);
      if (!text.startsWith("{")) continue;
      const line: Line = { round: tags.round, target: tags.target, ...JSON.parse(text) };
      console.log(JSON.stringify(line));
      out.push(line);
    }
  }
  const status = await child.status;
  children.delete(child.pid);
  if (!status.success) throw new Error(`bench/load.ts failed (${status.code}) on ${tags.target}`);
  return out;
}
