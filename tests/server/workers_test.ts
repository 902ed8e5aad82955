/**
 * `WORKERS=n` (issue 19): n server threads of one `deno task start` process on one port, joined
 * through Redis, behaving as one server from the outside.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { runTask, startChildServer } from "../support/child_server.ts";
import { serviceGate } from "../support/services.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");

Deno.test("deno task start with WORKERS=2 and no REDIS_URL exits 2 with one line saying why", async () => {
  const { code, stdout, stderr } = await runTask("start", { WORKERS: "2", REDIS_URL: "" });
  assert.equal(code, 2);
  const lines = stderr.split("\n").filter((line) => line.trim());
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: WORKERS=2 needs REDIS_URL: /);
  assert.equal(stdout, "", "nothing started");
});

Deno.test({
  name: "deno task start with WORKERS=2 on a port in use exits 2 with one line saying so",
  ignore: redis.ignore,
  fn: async () => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const { code, stderr } = await runTask("start", {
        WORKERS: "2",
        REDIS_URL: redis.url ?? "",
        HOST: "127.0.0.1",
        PORT: String(taken.addr.port),
      });
      assert.equal(code, 2);
      const lines = stderr.split("\n").filter((line) => line.trim());
      assert.deepEqual(lines.length, 1, stderr);
      assert.match(lines[0] ?? "", new RegExp(`^error: port ${taken.addr.port} is already in use`));
    } finally {
      taken.close();
    }
  },
});

/** Parses Prometheus text exposition, refusing a family described twice or split up. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const described = new Set<string>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/;
  let family = "";
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (comment) {
      const key = `${comment[1]} ${comment[2]}`;
      assert.ok(!described.has(key), `one ${key} line`);
      described.add(key);
      family = comment[2] ?? "";
      continue;
    }
    const match = sample.exec(line);
    if (!match) throw new Error(`not Prometheus exposition: ${JSON.stringify(line)}`);
    assert.ok(match[1]?.startsWith(family), `${match[1]} under the family ${family}`);
    samples.set(`${match[1]}${match[2] ?? ""}`, Number(match[3]));
  }
  return samples;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  return parseExposition(await response.text());
}

/** Open connections per worker, from `/metrics`. */
async function connectionsByWorker(port: number): Promise<[number, number]> {
  const metrics = await scrape(port);
  return [
    metrics.get('chat_connections{worker="0"}') ?? NaN,
    metrics.get('chat_connections{worker="1"}') ?? NaN,
  ];
}

const CONNECTIONS = 20;
const MESSAGES_EACH = 25;

Deno.test({
  name:
    "WORKERS=2: connections spread over both workers, messages cross them once each in seq order, /metrics and /readyz speak for both, SIGTERM stops both",
  ignore: redis.ignore,
  fn: async () => {
    const prefix = `test:${crypto.randomUUID()}:`;
    const probe = new Redis(redis.url ?? "");
    const child = await startChildServer({
      WORKERS: "2",
      REDIS_URL: redis.url ?? "",
      REDIS_PREFIX: prefix,
      LOG_LEVEL: "info",
      PRESENCE_LEAVE_GRACE: "0",
      RATE_LIMIT_PER_SECOND: "100000",
      RATE_LIMIT_BURST: "100000",
    });
    const sockets: TestSocket[] = [];
    let exit: ReturnType<typeof child.finished> | undefined;
    const stop = () => {
      if (exit === undefined) {
        child.process.kill("SIGTERM");
        exit = child.finished();
      }
      return exit;
    };
    try {
      const { port } = child;
      const listening = child.logs.filter((line) => line.event === "server.listening");
      assert.equal(listening.length, 1, "one server.listening");
      assert.equal(listening[0]?.workers, 2);
      for (const line of child.logs.filter((line) => line.event !== "server.listening")) {
        assert.ok(line.worker === 0 || line.worker === 1, `worker in ${JSON.stringify(line)}`);
      }
      const clusterIds = child.logs.filter((line) => line.event === "cluster.enabled")
        .map((line) => line.instance);
      assert.equal(new Set(clusterIds).size, 2, "each worker is an instance of its own");
      await waitFor("both workers' cluster ok", async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`);
        const body = await response.json();
        return response.status === 200 && body.cluster === "ok" || undefined;
      });
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      const body = await response.json();
      assert.deepEqual(body.workers.map((worker: Frame) => [worker.worker, worker.status]), [
        [0, "ready"],
        [1, "ready"],
      ]);
      await waitFor("both workers' heartbeats", async () => {
        const keys = clusterIds.map((id) => `${prefix}instance:${id}`);
        return (await probe.exists(...keys)) === keys.length || undefined;
      });

      // Which worker each socket landed on, from the count that went up.
      const workerOf = new Map<TestSocket, number>();
      for (let i = 0; i < CONNECTIONS; i++) {
        const before = await connectionsByWorker(port);
        const socket = await TestSocket.open(`ws://127.0.0.1:${port}/chat?r=spread&u=u${i}`);
        sockets.push(socket);
        await socket.nextOfType("welcome");
        const after = await waitFor(`u${i} counted`, async () => {
          const now = await connectionsByWorker(port);
          return now[0] + now[1] === before[0] + before[1] + 1 ? now : undefined;
        });
        workerOf.set(socket, after[0] > before[0] ? 0 : 1);
      }
      const [onZero, onOne] = await connectionsByWorker(port);
      assert.equal(onZero + onOne, CONNECTIONS);
      assert.ok(onZero > 0 && onOne > 0, `connections on both workers: ${onZero} and ${onOne}`);

      // One sender on each worker, sending at once: everyone gets every message once, in one
      // seq order.
      const senders = [0, 1].map((worker) =>
        sockets.find((socket) => workerOf.get(socket) === worker) as TestSocket
      );
      for (let k = 0; k < MESSAGES_EACH; k++) {
        for (const [worker, sender] of senders.entries()) sender.send(`from ${worker}: ${k}`);
      }
      const received = await Promise.all(
        sockets.map((socket) => socket.collect("message", 2 * MESSAGES_EACH)),
      );
      const reference = received[0]?.map((frame) => [frame.seq, frame.content]);
      const seqs = reference?.map(([seq]) => seq);
      const first = seqs?.[0] ?? 0;
      assert.deepEqual(
        seqs,
        Array.from({ length: 2 * MESSAGES_EACH }, (_, i) => first + i),
        "consecutive seqs",
      );
      for (const [i, frames] of received.entries()) {
        assert.deepEqual(
          frames.map((frame) => [frame.seq, frame.content]),
          reference,
          `u${i} on worker ${workerOf.get(sockets[i] as TestSocket)}`,
        );
      }
      for (const worker of [0, 1]) {
        const contents = reference?.map(([, content]) => content)
          .filter((content) => content.startsWith(`from ${worker}: `));
        assert.deepEqual(
          contents,
          Array.from({ length: MESSAGES_EACH }, (_, k) => `from ${worker}: ${k}`),
          `worker ${worker}'s sender's messages once each, in its order`,
        );
      }
      const metrics = await scrape(port);
      assert.equal(metrics.get('chat_messages_received_total{worker="0"}'), MESSAGES_EACH);
      assert.equal(metrics.get('chat_messages_received_total{worker="1"}'), MESSAGES_EACH);

      const exited = stop();
      for (const socket of sockets) {
        assert.equal((await socket.untilClosed(10_000)).close.code, 1001);
      }
      const { code, stderr } = await exited;
      assert.equal(code, 0, stderr);
      const stopped = child.logs.filter((line) => line.event === "worker.stopped");
      assert.deepEqual(stopped.map((line) => line.worker).sort(), [0, 1]);
      assert.equal(child.logs.at(-1)?.event, "server.stopped");
      assert.equal(child.logs.at(-1)?.unsaved, 0);
      // Both left the cluster cleanly: only the room's sequence and stream stay.
      const left = (await probe.keys(`${prefix}*`)).map((key) => key.slice(prefix.length));
      assert.deepEqual(left.filter((key) => !/^(seq|stream):/.test(key)), []);
    } finally {
      await stop();
      await Promise.all(sockets.map((socket) => socket.close()));
      const keys = await probe.keys(`${prefix}*`);
      if (keys.length > 0) await probe.del(...keys);
      await probe.quit();
    }
  },
});
