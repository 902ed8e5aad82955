/**
 * `deno task bench:cluster`: how many messages per second cross from one instance to another
 * through Redis, and how late. Two real servers (`main.ts`) run as child processes sharing one
 * Redis under a fresh key prefix. In each of `--rooms` rooms one sender on instance A sends at an
 * offered rate (open loop, each message carrying its send time) and `--receivers` members on
 * instance B receive; the rate is stepped up. Every step gets fresh sockets and rooms.
 *
 *     --rates 1000,2000,5000,10000,15000,20000,25000,30000   offered msg/s in total, a step each
 *     --step-ms 4000 --rooms 10 --receivers 2 --json (JSON lines only)
 *
 * Redis: BENCH_REDIS_URL, else TEST_REDIS_URL, else redis://127.0.0.1:6379. Prints one JSON line
 * per step, then a table; stops by itself after two minutes at most; deletes its keys.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { type ProcSample, sampleProc, usageSince } from "./_proc.ts";
import { type RunningServer, startServer } from "./_server.ts";
import { formatTable, LatencyHistogram, round2 } from "./_stats.ts";
import { BenchSocket, startsWith } from "./_ws_client.ts";

const TIME_LIMIT_MS = 115_000;
/** After the load stops, how long accepted messages may take to arrive before counting as lost. */
const DRAIN_MS = 5_000;
/** How long a step's rooms may take to be joined and subscribed on both instances. */
const SETUP_MS = 10_000;
const TICK_MS = 2;

const { values } = parseArgs({
  options: {
    rates: { type: "string", default: "1000,2000,5000,10000,15000,20000,25000,30000" },
    "step-ms": { type: "string", default: "4000" },
    rooms: { type: "string", default: "10" },
    receivers: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
  },
});
const rates = (values.rates ?? "").split(",").map(Number);
const stepMs = Number(values["step-ms"]);
const roomCount = Number(values.rooms);
const receiversPerRoom = Number(values.receivers);
for (const value of [...rates, stepMs, roomCount, receiversPerRoom]) {
  if (!Number.isInteger(value) || value <= 0) {
    console.error("bench:cluster: --rates, --step-ms, --rooms, --receivers take positive integers");
    Deno.exit(2);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MESSAGE = encoder.encode('{"type":"message"');
const ERROR = encoder.encode('{"type":"error"');

/** One room of a step: a sender on A, receivers on B, and what each saw. */
class RoomLoad {
  readonly sender: BenchSocket;
  readonly receivers: BenchSocket[];
  sent = 0;
  readonly refused = new Map<string, number>();
  /** Per sequence number: 1 once echoed to the sender (accepted and broadcast). */
  readonly accepted: Uint8Array;
  readonly received: Uint8Array[];
  readonly highest: number[];
  warmed = 0;
  echoed = 0;
  delivered = 0;
  duplicated = 0;
  reordered = 0;
  lastDeliveryAt = 0;

  private constructor(sender: BenchSocket, receivers: BenchSocket[], capacity: number) {
    this.sender = sender;
    this.receivers = receivers;
    this.accepted = new Uint8Array(capacity);
    this.received = receivers.map(() => new Uint8Array(capacity));
    this.highest = receivers.map(() => -1);
  }

  static async open(
    urls: { a: string; b: string },
    room: string,
    context: { capacity: number; latency: LatencyHistogram },
  ): Promise<RoomLoad> {
    const receivers = await Promise.all(
      Array.from(
        { length: receiversPerRoom },
        (_, i) => BenchSocket.open(new URL(`${urls.b}/chat?r=${room}&u=rx${i}`), ignore, SETUP_MS),
      ),
    );
    const sender = await BenchSocket.open(
      new URL(`${urls.a}/chat?r=${room}&u=tx`),
      ignore,
      SETUP_MS,
    );
    const load = new RoomLoad(sender, receivers, context.capacity);
    sender.onText = (payload) => load.#onSenderFrame(payload);
    receivers.forEach((socket, i) => {
      socket.onText = (payload) => load.#onReceiverFrame(i, payload, context.latency);
    });
    return load;
  }

  /** Sends the next message, stamped with its send time. */
  send(): void {
    if (this.sent < this.accepted.length) {
      this.sender.sendText(`${this.sent++} ${performance.now().toFixed(3)}`);
    }
  }

  get warm(): boolean {
    return this.warmed === this.receivers.length;
  }

  /** Every sent message answered, and every accepted one delivered to every receiver. */
  get settled(): boolean {
    const answered = this.echoed + [...this.refused.values()].reduce((sum, n) => sum + n, 0);
    return answered === this.sent && this.delivered === this.echoed * this.receivers.length;
  }

  get lost(): number {
    let lost = 0;
    for (const received of this.received) {
      for (let seq = 0; seq < this.sent; seq++) {
        if (this.accepted[seq] === 1 && received[seq] !== 1) lost++;
      }
    }
    return lost;
  }

  /** Closes every socket. @returns the close codes other than 1000 (1013: cut off as slow). */
  async close(): Promise<number[]> {
    const codes = await Promise.all([this.sender, ...this.receivers].map((s) => s.close()));
    return codes.filter((code) => code !== 1000);
  }

  #onSenderFrame(payload: Uint8Array): void {
    if (startsWith(payload, MESSAGE)) {
      const seq = parseInt(contentOf(payload), 10);
      if (seq >= 0 && this.accepted[seq] === 0) {
        this.accepted[seq] = 1;
        this.echoed++;
      }
    } else if (startsWith(payload, ERROR)) {
      const frame = JSON.parse(decoder.decode(payload));
      this.refused.set(frame.code, (this.refused.get(frame.code) ?? 0) + 1);
    }
  }

  #onReceiverFrame(i: number, payload: Uint8Array, latency: LatencyHistogram): void {
    if (!startsWith(payload, MESSAGE)) return;
    const now = performance.now();
    const content = contentOf(payload);
    const space = content.indexOf(" ");
    if (space < 0) {
      if (content === "warm" && this.warmed < this.receivers.length) this.warmed++;
      return;
    }
    const seq = Number(content.slice(0, space));
    latency.record(now - Number(content.slice(space + 1)));
    const received = this.received[i];
    if (!received) return;
    if (received[seq] === 1) this.duplicated++;
    received[seq] = 1;
    if (seq < (this.highest[i] ?? -1)) this.reordered++;
    else this.highest[i] = seq;
    this.delivered++;
    this.lastDeliveryAt = now;
  }
}

/** Frames before a socket's handler is set (its welcome) matter to no one. */
function ignore(_payload: Uint8Array): void {}

function contentOf(payload: Uint8Array): string {
  const frame: { content?: unknown } = JSON.parse(decoder.decode(payload));
  return typeof frame.content === "string" ? frame.content : "";
}

/** Opens a step's rooms, and sends `warm` until every receiver has one (B subscribed). */
async function openRooms(
  urls: { a: string; b: string },
  step: number,
  context: { capacity: number; latency: LatencyHistogram },
): Promise<RoomLoad[]> {
  const rooms = await Promise.all(
    Array.from({ length: roomCount }, (_, i) => RoomLoad.open(urls, `s${step}-r${i}`, context)),
  );
  const deadline = performance.now() + SETUP_MS;
  while (!rooms.every((room) => room.warm)) {
    if (performance.now() > deadline) throw new Error(`step ${step}: rooms not linked in time`);
    for (const room of rooms) if (!room.warm) room.sender.sendText("warm");
    await delay(100);
  }
  return rooms;
}

/** Sends at `rate` msg/s in total, round-robin over the rooms, for `stepMs`. */
async function offer(rooms: RoomLoad[], rate: number): Promise<number> {
  const started = performance.now();
  let sent = 0;
  for (let now = started; now - started < stepMs; now = performance.now()) {
    const due = Math.floor((rate * (now - started)) / 1000);
    for (; sent < due; sent++) rooms[sent % rooms.length]?.send();
    await delay(TICK_MS);
  }
  return started;
}

async function runStep(
  servers: { a: RunningServer; b: RunningServer; redisPid: number | undefined },
  step: number,
  rate: number,
): Promise<Record<string, unknown>> {
  const latency = new LatencyHistogram();
  const capacity = Math.ceil((rate / roomCount) * (stepMs / 1000) * 1.2) + 16;
  const rooms = await openRooms({ a: servers.a.url, b: servers.b.url }, step, {
    capacity,
    latency,
  });
  const pids = [servers.a.pid, servers.b.pid, servers.redisPid, Deno.pid];
  const before = await Promise.all(pids.map((pid) => procSample(pid)));
  const started = await offer(rooms, rate);
  const drainUntil = performance.now() + DRAIN_MS;
  while (!rooms.every((room) => room.settled) && performance.now() < drainUntil) await delay(20);
  const cpu = await Promise.all(pids.map((pid, i) => cpuPercent(pid, before[i])));
  const sum = (pick: (room: RoomLoad) => number) => rooms.reduce((n, room) => n + pick(room), 0);
  const lastDelivery = Math.max(...rooms.map((room) => room.lastDeliveryAt));
  const seconds = Math.max(stepMs, lastDelivery - started) / 1000;
  const refused: Record<string, number> = {};
  for (const room of rooms) {
    for (const [code, n] of room.refused) refused[code] = (refused[code] ?? 0) + n;
  }
  const result = {
    scenario: "cluster",
    offered: rate,
    sent: sum((room) => room.sent),
    accepted: sum((room) => room.echoed),
    crossMessagesPerSecond: Math.round(sum((room) => room.delivered) / receiversPerRoom / seconds),
    deliveriesPerSecond: Math.round(sum((room) => room.delivered) / seconds),
    latencyMs: latency.summary(),
    lost: sum((room) => room.lost),
    duplicated: sum((room) => room.duplicated),
    reordered: sum((room) => room.reordered),
    refused,
    closed: {} as Record<string, number>,
    cpuPercent: { a: cpu[0], b: cpu[1], redis: cpu[2], generator: cpu[3] },
  };
  for (const code of (await Promise.all(rooms.map((room) => room.close()))).flat()) {
    result.closed[code] = (result.closed[code] ?? 0) + 1;
  }
  return result;
}

async function procSample(pid: number | undefined): Promise<ProcSample | undefined> {
  return pid === undefined ? undefined : await sampleProc(pid);
}

async function cpuPercent(
  pid: number | undefined,
  before: ProcSample | undefined,
): Promise<number | undefined> {
  if (pid === undefined || before === undefined) return undefined;
  return round2((await usageSince(pid, before)).cpuPercent);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function untilClusterOk(server: RunningServer): Promise<void> {
  const url = `${server.url.replace(/^ws/, "http")}/readyz`;
  const deadline = performance.now() + SETUP_MS;
  for (;;) {
    const body = await (await fetch(url)).json();
    if (body.cluster === "ok") return;
    if (performance.now() > deadline) throw new Error(`${url}: cluster ${body.cluster}`);
    await delay(50);
  }
}

/** Redis's own pid when it runs on this machine (its CPU is part of the cost), else undefined. */
async function localRedisPid(redis: Redis, url: string): Promise<number | undefined> {
  if (!["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname)) return undefined;
  const match = /^process_id:(\d+)/m.exec(await redis.info("server"));
  return match ? Number(match[1]) : undefined;
}

function printTable(results: readonly Record<string, unknown>[]): void {
  const header = ["offered/s", "accepted/s", "crossed/s", "deliveries/s", "p50 ms", "p99 ms"];
  header.push("max ms", "lost", "dup", "reord", "refused", "closed", "cpu A/B/redis/gen %");
  const rows = results.map((result) => {
    const latency = result.latencyMs as { p50: number; p99: number; max: number };
    const cpu = Object.values(result.cpuPercent as Record<string, number | undefined>);
    return [
      String(result.offered),
      String(Math.round(Number(result.accepted) / (stepMs / 1000))),
      String(result.crossMessagesPerSecond),
      String(result.deliveriesPerSecond),
      String(latency.p50),
      String(latency.p99),
      String(latency.max),
      String(result.lost),
      String(result.duplicated),
      String(result.reordered),
      JSON.stringify(result.refused),
      JSON.stringify(result.closed),
      cpu.map((value) => value === undefined ? "-" : String(Math.round(value))).join("/"),
    ];
  });
  console.log(`\n${formatTable(header, rows)}`);
}

async function main(): Promise<void> {
  const redisUrl = Deno.env.get("BENCH_REDIS_URL") || Deno.env.get("TEST_REDIS_URL") ||
    "redis://127.0.0.1:6379";
  const prefix = `bench:${crypto.randomUUID()}:`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const env = {
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    LOG_LEVEL: "warn",
    RATE_LIMIT_PER_SECOND: "100000",
    RATE_LIMIT_BURST: "100000",
    MAX_CONNECTIONS_PER_IP: "10000",
  };
  const entry = new URL("../main.ts", import.meta.url).pathname;
  const servers: RunningServer[] = [];
  const watchdog = setTimeout(() => {
    console.error(`bench:cluster: not done after ${TIME_LIMIT_MS} ms, stopping`);
    Promise.all(servers.map((server) => server.stop())).finally(() => Deno.exit(1));
  }, TIME_LIMIT_MS);
  try {
    const [a, b] = await Promise.all([startServer({ entry, env }), startServer({ entry, env })]);
    servers.push(a, b);
    await Promise.all([untilClusterOk(a), untilClusterOk(b)]);
    const redisPid = await localRedisPid(redis, redisUrl);
    const results = [];
    for (const [step, rate] of rates.entries()) {
      const result = await runStep({ a, b, redisPid }, step, rate);
      console.log(JSON.stringify({ ...result, rooms: roomCount, receiversPerRoom, stepMs }));
      results.push(result);
    }
    if (!values.json) printTable(results);
  } finally {
    clearTimeout(watchdog);
    await Promise.all(servers.map((server) => server.stop()));
    const left = await redis.keys(`${prefix}*`);
    if (left.length > 0) {
      console.error(`bench:cluster: deleting ${left.length} keys the servers left`);
      await redis.del(...left);
    }
    await redis.quit();
  }
}

if (import.meta.main) await main();
