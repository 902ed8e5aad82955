/**
 * `deno task bench:persist`: how many messages per second the server stores in PostgreSQL while
 * broadcasting them. Starts the real server as a child process on a fresh database, drives it
 * over real WebSockets on 127.0.0.1, and counts rows until every message is stored.
 *
 * Options: --messages N (total, default 100000) --clients N (default 20, one room each)
 *          --window N (unacknowledged messages per client, default 200)
 * Database: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test
 * (only used to create and drop a scratch database).
 */
import postgres from "postgres";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "100000" },
    clients: { type: "string", default: "20" },
    window: { type: "string", default: "200" },
  },
});
/** The whole run stops by itself after this long. */
const TIME_LIMIT_MS = 120_000;
const totalMessages = Number(values.messages);
const clientCount = Number(values.clients);
const window = Number(values.window);
const perClient = Math.ceil(totalMessages / clientCount);
const adminUrl = Deno.env.get("BENCH_DATABASE_URL") || Deno.env.get("TEST_DATABASE_URL") ||
  "postgres://postgres@127.0.0.1:5432/test";

const database = `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin`create database ${admin(database)}`;
const benchUrl = new URL(adminUrl);
benchUrl.pathname = `/${database}`;

const server = new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-net", "--allow-env", new URL("../main.ts", import.meta.url).pathname],
  env: {
    DATABASE_URL: benchUrl.toString(),
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    // The load generator is one client per room sending as fast as it is answered.
    RATE_LIMIT_PER_SECOND: "100000",
    RATE_LIMIT_BURST: "100000",
  },
  stdout: "piped",
  stderr: "inherit",
}).spawn();

const watchdog = setTimeout(() => {
  console.error(`bench: no result after ${TIME_LIMIT_MS} ms, stopping`);
  server.kill("SIGKILL");
  Deno.exit(1);
}, TIME_LIMIT_MS);

try {
  const port = await listeningPort(server);
  const counter = postgres(benchUrl.toString(), { max: 1, onnotice: () => {} });
  const started = performance.now();
  const outcomes = await Promise.all(
    Array.from({ length: clientCount }, (_, i) => drive(port, `bench-${i}`, perClient)),
  );
  const broadcastMs = performance.now() - started;
  // Messages refused with `backlog` (the persistence queue was full) were never broadcast and
  // are not stored; the rows to wait for are the accepted ones.
  const refused = outcomes.reduce((sum, outcome) => sum + outcome.refused, 0);
  const sent = perClient * clientCount - refused;
  let stored = 0;
  while (stored < sent) {
    const [row] = await counter`select count(*)::int as n from messages`;
    stored = row?.n ?? 0;
    if (stored < sent) await new Promise((resolve) => setTimeout(resolve, 20));
    if (performance.now() - started > TIME_LIMIT_MS) {
      throw new Error(`only ${stored}/${sent} stored`);
    }
  }
  const storedMs = performance.now() - started;
  await counter.end();
  const result = {
    scenario: "persist",
    messages: sent,
    clients: clientCount,
    refusedBacklog: refused,
    broadcastSeconds: round(broadcastMs / 1000),
    storedSeconds: round(storedMs / 1000),
    broadcastPerSecond: Math.round(sent / (broadcastMs / 1000)),
    persistedPerSecond: Math.round(sent / (storedMs / 1000)),
  };
  console.log(JSON.stringify(result));
  console.log(
    `persisted ${sent} messages in ${result.storedSeconds} s: ${result.persistedPerSecond} msg/s ` +
      `(broadcast done after ${result.broadcastSeconds} s: ${result.broadcastPerSecond} msg/s; ` +
      `${refused} refused with backlog)`,
  );
} finally {
  clearTimeout(watchdog);
  server.kill("SIGTERM");
  await server.status;
  await admin`drop database if exists ${admin(database)} with (force)`;
  await admin.end();
}

/**
 * One client in its own room: sends `count` messages, at most `window` unanswered (an answer is
 * the message's broadcast, or an `error` frame refusing it).
 */
async function drive(
  port: number,
  room: string,
  count: number,
): Promise<{ delivered: number; refused: number }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/chat?r=${room}&u=bench`);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let sent = 0;
  let delivered = 0;
  let refused = 0;
  const content = "x".repeat(100);
  return await new Promise((resolve, reject) => {
    const pump = () => {
      while (sent < count && sent - delivered - refused < window) {
        socket.send(`${sent++} ${content}`);
      }
    };
    socket.onmessage = (event) => {
      const frame = event.data as string;
      if (frame.startsWith('{"type":"message"')) delivered++;
      else if (frame.startsWith('{"type":"error","code":"backlog"')) refused++;
      else if (frame.startsWith('{"type":"error"')) return reject(new Error(frame));
      else return;
      if (delivered + refused === count) {
        socket.onclose = () => resolve({ delivered, refused });
        socket.close();
      } else pump();
    };
    socket.onclose = (event) => reject(new Error(`closed early: ${event.code} ${event.reason}`));
    pump();
  });
}

async function listeningPort(child: Deno.ChildProcess): Promise<number> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("server exited before listening");
    buffered += value;
    const match = /"event":"server.listening"[^\n]*"port":(\d+)/.exec(buffered);
    if (match) {
      // Keep draining its output so the child never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done);
      })();
      return Number(match[1]);
    }
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
