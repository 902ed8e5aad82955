/**
 * `deno task bench:persist [-- options]`: how many messages per second the server stores in
 * PostgreSQL while broadcasting them, and how long a message takes from send to its echo at the
 * sender, in each `PERSIST_MODE`, in the same run. For each mode the real server (`main.ts`)
 * starts as a child process on a fresh scratch database, clients drive it over real WebSockets on
 * 127.0.0.1, and the run has two phases:
 *
 * - **saturated**: each client, in a room of its own, sends as fast as it is answered (at most
 *   `--window` unanswered; an answer is the message's echo, or an `error` frame refusing it);
 *   rows are counted until every accepted message is stored: persisted messages/s.
 * - **paced**: the same clients, in new rooms, send `--paced-rate` messages/s in total for
 *   `--paced-ms`: the send -> echo p99 at a load the server keeps up with (in durable mode it
 *   holds the batch wait and the commit; the saturated p99 is mostly queueing in the window).
 *
 * Options:
 *
 *     --mode async|durable|both   (default both: async, then durable)
 *     --messages N     saturated phase, in total (default 100000)
 *     --clients N      default 20, one room each
 *     --window N       unanswered messages per client in the saturated phase (default 200;
 *                      the server's OUTBOX_LIMIT is raised to 4 x N, since every message is
 *                      answered with two frames, its echo and its ack)
 *     --paced-rate N   messages/s in total in the paced phase (default 2000; 0 skips it)
 *     --paced-ms N     default 5000
 *     --client-id      every message is a JSON frame with a `client_id` unique per message (as a
 *                      retrying client sends it); default: the bare text
 *     --json           JSON lines only, no table
 *
 * Database: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test
 * (only used to create and drop the scratch databases). The whole run stops by itself after
 * 150 s per mode.
 *
 * @module
 */
import postgres from "postgres";
import { parseArgs } from "node:util";
import { commandCpuSeconds, sampleProc, usageSince } from "./_proc.ts";
import {
  BENCH_SERVER_ENV,
  createScratchDatabase,
  type RunningServer,
  type ScratchDatabase,
  startServer,
} from "./_server.ts";
import { formatTable, LatencyHistogram, type LatencySummary, round2 } from "./_stats.ts";

const { values } = parseArgs({
  // `deno task bench:persist -- ...` passes the `--` on; it would end option parsing here.
  args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
  options: {
    mode: { type: "string", default: "both" },
    messages: { type: "string", default: "100000" },
    clients: { type: "string", default: "20" },
    window: { type: "string", default: "200" },
    "paced-rate": { type: "string", default: "2000" },
    "paced-ms": { type: "string", default: "5000" },
    "client-id": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

type Mode = "async" | "durable";

function usage(message: string): never {
  console.error(`bench:persist: ${message}`);
  Deno.exit(2);
}

function count(name: keyof typeof values, allowZero = false): number {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    usage(`--${name} must be a ${allowZero ? "non-negative" : "positive"} integer`);
  }
  return value;
}

const modes: Mode[] = values.mode === "both"
  ? ["async", "durable"]
  : values.mode === "async" || values.mode === "durable"
  ? [values.mode]
  : usage("--mode must be async, durable or both");
const totalMessages = count("messages");
const clientCount = count("clients");
const window = count("window");
const pacedRate = count("paced-rate", true);
const pacedMs = count("paced-ms");
const clientIds = values["client-id"] ?? false;
const perClient = Math.ceil(totalMessages / clientCount);
const adminUrl = Deno.env.get("BENCH_DATABASE_URL") || Deno.env.get("TEST_DATABASE_URL") ||
  "postgres://postgres@127.0.0.1:5432/test";
/** Every mode's runs stop by themselves after this long. */
const TIME_LIMIT_MS = 150_000 * modes.length;
/** The paced phase waits at most this long for the last echoes. */
const PACED_DRAIN_MS = 10_000;
const CONTENT = "x".repeat(100);

let server: RunningServer | undefined;
const watchdog = setTimeout(() => {
  console.error(`bench:persist: not done after ${TIME_LIMIT_MS / 1000} s, stopping`);
  if (server) Deno.kill(server.pid, "SIGKILL");
  Deno.exit(1);
}, TIME_LIMIT_MS);

const results: Record<string, unknown>[] = [];

/** Both phases against a server in `mode` on a fresh database. */
async function runMode(mode: Mode): Promise<Record<string, unknown>> {
  const database: ScratchDatabase = await createScratchDatabase(adminUrl);
  try {
    server = await startServer({
      entry: new URL("../main.ts", import.meta.url).pathname,
      env: {
        ...BENCH_SERVER_ENV,
        DATABASE_URL: database.url,
        PERSIST_MODE: mode,
        // Each message is answered twice (its echo and its `ack`): a window of 200 unanswered
        // messages may leave up to 400 frames waiting for a client, more than the default
        // OUTBOX_LIMIT of 256, and the server would cut the client off as a slow consumer.
        OUTBOX_LIMIT: String(Math.max(256, 4 * window)),
      },
    });
    const counter = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      const saturated = await saturatedPhase(server, counter);
      const paced = pacedRate > 0 ? await pacedPhase(server) : undefined;
      return {
        scenario: "persist",
        mode,
        frames: clientIds ? "client-id" : "text",
        clients: clientCount,
        ...saturated,
        ...(paced ?? {}),
      };
    } finally {
      await counter.end();
    }
  } finally {
    await server?.stop();
    server = undefined;
    await database.drop();
  }
}

/** As fast as answered; then counts rows until every accepted message is stored. */
async function saturatedPhase(
  target: RunningServer,
  counter: postgres.Sql,
): Promise<Record<string, unknown>> {
  const latency = new LatencyHistogram();
  const sockets = await Promise.all(
    Array.from({ length: clientCount }, (_, i) => connect(target, `flood-${i}`)),
  );
  const [serverBefore, dbBefore] = await Promise.all([
    sampleProc(target.pid),
    commandCpuSeconds("postgres"),
  ]);
  const begun = performance.now();
  const outcomes = await Promise.all(sockets.map((socket) => flood(socket, perClient, latency)));
  const broadcastMs = performance.now() - begun;
  // Messages refused with `backlog` (the persistence queue was full) were never broadcast and
  // are not stored; the rows to wait for are the accepted ones.
  const refused = outcomes.reduce((sum, outcome) => sum + outcome.refused, 0);
  const accepted = perClient * clientCount - refused;
  let stored = 0;
  while (stored < accepted) {
    const [row] = await counter`select count(*)::int as n from messages`;
    stored = row?.n ?? 0;
    if (stored < accepted) await new Promise((resolve) => setTimeout(resolve, 20));
    if (performance.now() - begun > TIME_LIMIT_MS) {
      throw new Error(`only ${stored}/${accepted} stored`);
    }
  }
  const storedMs = performance.now() - begun;
  const [serverUsage, dbAfter] = await Promise.all([
    usageSince(target.pid, serverBefore),
    commandCpuSeconds("postgres"),
  ]);
  await Promise.all(sockets.map(close));
  const summary = latency.summary();
  return {
    messages: accepted,
    refusedBacklog: refused,
    broadcastSeconds: round2(broadcastMs / 1000),
    storedSeconds: round2(storedMs / 1000),
    broadcastPerSecond: Math.round(accepted / (broadcastMs / 1000)),
    persistedPerSecond: Math.round(accepted / (storedMs / 1000)),
    saturatedP50Ms: summary.p50,
    saturatedP99Ms: summary.p99,
    serverCpuPercent: round2(serverUsage.cpuPercent),
    postgresCpuPercent: round2(((dbAfter - dbBefore) / (storedMs / 1000)) * 100),
  };
}

/** `pacedRate` messages/s in total for `pacedMs`; send -> echo latency of each. */
async function pacedPhase(target: RunningServer): Promise<Record<string, unknown>> {
  const latency = new LatencyHistogram();
  const sockets = await Promise.all(
    Array.from({ length: clientCount }, (_, i) => connect(target, `paced-${i}`)),
  );
  const perClientPerMs = pacedRate / clientCount / 1000;
  const due = Math.round(perClientPerMs * pacedMs);
  const streams = sockets.map((socket) => new Stream(socket, due, latency));
  const begun = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = Math.min(performance.now() - begun, pacedMs);
      streams.forEach((stream, i) => {
        // Clients are spread over the period so that they do not all send at once.
        const phase = i / streams.length;
        stream.sendUpTo(Math.min(due, Math.floor(elapsed * perClientPerMs + 1 - phase)));
      });
      if (elapsed >= pacedMs) {
        for (const stream of streams) stream.sendUpTo(due);
        clearInterval(interval);
        resolve();
      }
    };
    const interval = setInterval(tick, 2);
    tick();
  });
  const deadline = performance.now() + PACED_DRAIN_MS;
  while (
    streams.some((stream) => !stream.done && !stream.failure) && performance.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const failure = streams.find((stream) => stream.failure)?.failure;
  if (failure) throw failure;
  const answered = streams.reduce((sum, stream) => sum + stream.answered, 0);
  const refused = streams.reduce((sum, stream) => sum + stream.refused, 0);
  await Promise.all(sockets.map(close));
  const summary: LatencySummary = latency.summary();
  return {
    pacedOfferedPerSecond: pacedRate,
    pacedSent: due * clientCount,
    pacedUnanswered: due * clientCount - answered,
    pacedRefused: refused,
    pacedP50Ms: summary.p50,
    pacedP99Ms: summary.p99,
    pacedMaxMs: summary.max,
  };
}

/**
 * One client's messages: numbered from 0, framed as text or JSON with a client id, their send
 * times kept to take the latency of each echo.
 */
class Stream {
  readonly #socket: WebSocket;
  readonly #sentAt: Float64Array;
  readonly #latency: LatencyHistogram;
  readonly #error: Promise<never>;
  sent = 0;
  echoed = 0;
  refused = 0;
  /** Why the stream failed: a refusal other than `backlog`, or the socket closed. */
  failure: Error | undefined;
  #reject: (error: Error) => void = () => {};
  /** Called after each answer. */
  onAnswer: () => void = () => {};

  constructor(socket: WebSocket, count: number, latency: LatencyHistogram) {
    this.#socket = socket;
    this.#sentAt = new Float64Array(count);
    this.#latency = latency;
    this.#error = new Promise<never>((_, reject) => this.#reject = reject);
    this.#error.catch(() => {}); // awaited by flood; a paced run reads `done` instead
    socket.onmessage = (event) => this.#frame(String(event.data));
    socket.onclose = (event) =>
      this.#fail(new Error(`closed early: ${event.code} ${event.reason}`));
  }

  #fail(error: Error): void {
    this.failure ??= error;
    this.#reject(error);
  }

  get answered(): number {
    return this.echoed + this.refused;
  }

  get done(): boolean {
    return this.answered >= this.#sentAt.length;
  }

  /** Rejects when the server refuses a message for another reason than `backlog`. */
  get failed(): Promise<never> {
    return this.#error;
  }

  sendUpTo(n: number): void {
    for (; this.sent < n; this.sent++) {
      this.#sentAt[this.sent] = performance.now();
      const content = `${this.sent} ${CONTENT}`;
      this.#socket.send(
        clientIds
          ? `{"type":"message","content":"${content}","client_id":"m${this.sent}"}`
          : content,
      );
    }
  }

  #frame(frame: string): void {
    if (frame.startsWith('{"type":"message"')) {
      const at = frame.indexOf('"content":"');
      const n = at < 0 ? NaN : parseInt(frame.slice(at + 11, at + 22), 10);
      const sentAt = this.#sentAt[n];
      if (sentAt !== undefined) this.#latency.record(performance.now() - sentAt);
      this.echoed++;
    } else if (frame.startsWith('{"type":"error","code":"backlog"')) this.refused++;
    else if (frame.startsWith('{"type":"error"')) return this.#fail(new Error(frame));
    else return; // welcome, presence, ack
    this.onAnswer();
  }
}

/** Sends `count` messages, at most `window` unanswered. */
async function flood(
  socket: WebSocket,
  count: number,
  latency: LatencyHistogram,
): Promise<{ refused: number }> {
  const stream = new Stream(socket, count, latency);
  const finished = new Promise<void>((resolve) => {
    stream.onAnswer = () => {
      if (stream.done) resolve();
      else stream.sendUpTo(Math.min(count, stream.answered + window));
    };
  });
  stream.sendUpTo(Math.min(count, window));
  await Promise.race([finished, stream.failed]);
  return { refused: stream.refused };
}

async function connect(target: RunningServer, room: string): Promise<WebSocket> {
  const socket = new WebSocket(`${target.url}/chat?r=${room}&u=bench`);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`${room}: could not connect`));
  });
  return socket;
}

async function close(socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.close();
  await closed;
}

function printTable(seconds: number): void {
  const cell = (value: unknown) => value === undefined ? "-" : String(value);
  console.log(
    `\nbench:persist: ${clientCount} clients, ${
      clientIds ? "client_id on every message" : "text frames"
    }, ` +
      `${round2(seconds)} s`,
  );
  const columns: [string, string][] = [
    ["mode", "mode"],
    ["messages", "messages"],
    ["stored s", "storedSeconds"],
    ["persisted/s", "persistedPerSecond"],
    ["broadcast/s", "broadcastPerSecond"],
    ["refused", "refusedBacklog"],
    ["sat. p50 ms", "saturatedP50Ms"],
    ["sat. p99 ms", "saturatedP99Ms"],
    ["srv CPU%", "serverCpuPercent"],
    ["pg CPU%", "postgresCpuPercent"],
    ["paced/s", "pacedOfferedPerSecond"],
    ["paced p50 ms", "pacedP50Ms"],
    ["paced p99 ms", "pacedP99Ms"],
    ["paced max ms", "pacedMaxMs"],
    ["unanswered", "pacedUnanswered"],
  ];
  console.log(formatTable(
    columns.map(([name]) => name),
    results.map((result) => columns.map(([, key]) => cell(result[key]))),
  ));
  const [async, durable] = ["async", "durable"].map((mode) =>
    results.find((result) => result.mode === mode)
  );
  if (async && durable) {
    const ratio = (key: string) => round2(Number(durable[key]) / Number(async[key]));
    console.log(
      `\ndurable / async: persisted/s ${ratio("persistedPerSecond")}, ` +
        `paced p99 ${durable.pacedP99Ms} / ${async.pacedP99Ms} ms, ` +
        `saturated p99 ${durable.saturatedP99Ms} / ${async.saturatedP99Ms} ms`,
    );
  }
}

// Last, so that the class above is initialised before it is used.
const started = performance.now();
for (const mode of modes) {
  const result = await runMode(mode);
  results.push(result);
  console.log(JSON.stringify(result));
}
clearTimeout(watchdog);
if (!values.json) printTable((performance.now() - started) / 1000);
