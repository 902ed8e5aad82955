import assert from "node:assert/strict";
import { PostgresStore } from "../../storage/postgres_store.ts";
import { silentLogger } from "../../log/logger.ts";
import { type ChildServer, startChildServer } from "../support/child_server.ts";
import {
  createDatabase,
  dropSchema,
  freshSchemaName,
  query,
  targetOf,
  viaPort,
} from "../support/postgres_schema.ts";
import { serviceGate } from "../support/services.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");

async function storedIds(url: string, schema: string): Promise<string[]> {
  const rows = await query(
    url,
    schema,
    (sql) => sql<{ id: string }[]>`select id::text from messages order by id`,
  );
  return rows.map((row) => row.id);
}

interface OutageFixture {
  readonly url: string;
  readonly schema: string;
  /** Cut it to simulate the outage; every store connection goes through it. */
  readonly proxy: TcpProxy;
  readonly store: PostgresStore;
}

/** Runs `test` with a store on a fresh schema behind a proxy, then drops both. */
async function withStoreBehindProxy(test: (fixture: OutageFixture) => Promise<void>) {
  const url = database.url ?? "";
  const schema = freshSchemaName();
  const proxy = TcpProxy.start(targetOf(url));
  try {
    const store = await PostgresStore.connect(viaPort(url, proxy.port), {
      connectTimeoutMs: 5_000,
      batchTimeoutMs: 1_000,
      schema,
      logger: silentLogger,
    });
    await test({ url, schema, proxy, store });
  } finally {
    await proxy.close();
    await dropSchema(url, schema);
  }
}

async function readyStatus(url: string): Promise<number> {
  const response = await fetch(url);
  await response.body?.cancel();
  return response.status;
}

Deno.test({
  name: "Postgres: messages survive a server restart and read back in order",
  ignore: database.ignore,
  fn: async () => {
    const url = database.url ?? "";
    const schema = freshSchemaName();
    const open = () =>
      PostgresStore.connect(url, {
        connectTimeoutMs: 5_000,
        batchTimeoutMs: 5_000,
        schema,
        logger: silentLogger,
      });
    try {
      const first = startTestServer({}, await open());
      const ann = await TestSocket.open(first.chatUrl("restart", "ann"));
      await ann.nextOfType("welcome");
      const texts = ["one", "'); DROP TABLE messages; --", "ünïcødé 😀 مرحبا", "line\nbreak"];
      for (const text of texts) ann.send(text);
      const sent = await ann.collect("message", texts.length);
      await first.close(); // drains the pipeline into the database, closes ann with 1001
      assert.equal((await ann.closed).code, 1001);

      const second = startTestServer({}, await open());
      const history = await (await fetch(second.url("/history?r=restart"))).json();
      assert.deepEqual(history, sent.map(({ type: _, ...message }) => message));
      await second.close();
    } finally {
      await dropSchema(url, schema);
    }
  },
});

Deno.test({
  name:
    "Postgres outage: broadcasts go on, /readyz says 503, and afterwards every message is stored once",
  ignore: database.ignore,
  fn: async () => {
    await withStoreBehindProxy(async ({ url, schema, proxy, store }) => {
      const app = startTestServer({ PERSIST_BATCH_WAIT_MS: "5" }, store);
      const ann = await TestSocket.open(app.chatUrl("outage", "ann"));
      const bob = await TestSocket.open(app.chatUrl("outage", "bob"));
      await ann.nextOfType("welcome");
      await bob.nextOfType("welcome");
      const seenByBob: Frame[] = [];
      const send = async (label: string, count: number) => {
        for (let i = 0; i < count; i++) ann.send(`${label} ${i}`);
        seenByBob.push(...await bob.collect("message", count));
      };

      await send("before", 20);
      await waitFor(
        "the first messages to be stored",
        async () => (await storedIds(url, schema)).length === 20 || undefined,
      );
      assert.equal(await readyStatus(app.url("/readyz")), 200);

      proxy.cut();
      // Clients keep sending through the cut; every message is still broadcast at once.
      const cutStarted = Date.now();
      let round = 0;
      while (Date.now() - cutStarted < 3_000) {
        await send(`during-${round++}`, 10);
        await new Promise((resolve) => setTimeout(resolve, 100)); // pacing the load, not syncing
      }
      assert.equal(
        await waitFor(
          "/readyz to report the outage",
          async () => (await readyStatus(app.url("/readyz"))) === 503 || undefined,
        ),
        true,
      );
      const duringCount = seenByBob.length - 20;
      assert.ok(duringCount >= 100, `only ${duringCount} messages were broadcast during the cut`);

      proxy.restore();
      await send("after", 20);
      const expected = seenByBob.map((frame) => frame.id as string).sort();
      const stored = await waitFor("the backlog to be written", async () => {
        const ids = await storedIds(url, schema);
        return ids.length >= expected.length ? ids : undefined;
      }, 20_000);
      assert.deepEqual(stored, expected, "every broadcast message stored exactly once");
      await waitFor(
        "/readyz to recover",
        async () => (await readyStatus(app.url("/readyz"))) === 200 || undefined,
      );

      await Promise.all([ann.close(), bob.close()]);
      await app.close();
    });
  },
});

Deno.test({
  name:
    "Postgres outage with a full persistence queue: the overflow message gets backlog and appears nowhere",
  ignore: database.ignore,
  fn: async () => {
    await withStoreBehindProxy(async ({ url, schema, proxy, store }) => {
      const app = startTestServer({
        PERSIST_QUEUE_LIMIT: "5",
        PERSIST_WORKERS: "1",
        PERSIST_BATCH_SIZE: "1",
        PERSIST_BATCH_WAIT_MS: "0",
      }, store);
      const ann = await TestSocket.open(app.chatUrl("backlog", "ann"));
      const bob = await TestSocket.open(app.chatUrl("backlog", "bob"));
      await ann.nextOfType("welcome");
      await bob.nextOfType("welcome");

      proxy.cut();
      ann.send("held by the worker");
      assert.equal((await bob.nextOfType("message")).content, "held by the worker");
      await waitFor(
        "the worker to be retrying",
        async () => (await readyStatus(app.url("/readyz"))) === 503 || undefined,
      );
      for (let i = 0; i < 5; i++) ann.send(`queued ${i}`);
      const queued = await bob.collect("message", 5);
      ann.send("overflow");
      const refusal = await ann.nextOfType("error");
      assert.equal(refusal.code, "backlog");

      proxy.restore();
      const stored = await waitFor("the queue to be written", async () => {
        const ids = await storedIds(url, schema);
        return ids.length >= 6 ? ids : undefined;
      }, 20_000);
      ann.send("after");
      // bob's next message is "after": the overflow message was never broadcast.
      assert.equal((await bob.nextOfType("message")).content, "after");
      const rows = await query(
        url,
        schema,
        (sql) => sql<{ content: string }[]>`select content from messages order by id`,
      );
      assert.equal(stored.length, 6);
      assert.ok(
        !rows.some((row) => row.content === "overflow"),
        "the refused message was not stored",
      );
      assert.deepEqual(
        rows.slice(1, 6).map((row) => row.content),
        queued.map((frame) => frame.content),
      );

      await Promise.all([ann.close(), bob.close()]);
      await app.close();
    });
  },
});

/**
 * Runs `deno task start` on a scratch database behind a proxy, has `unstorable` messages broadcast
 * after the proxy was cut, then sends SIGTERM and waits for the clients' 1001: the server is then
 * shutting down with those messages unstored, and `test` sees how it ends.
 */
async function withShutdownDuringOutage(
  options: { shutdownTimeout: string; unstorable: number },
  test: (child: ChildServer) => Promise<void>,
): Promise<void> {
  const scratch = await createDatabase(database.url ?? "");
  const proxy = TcpProxy.start(targetOf(scratch.url));
  try {
    const child = await startChildServer({
      DATABASE_URL: viaPort(scratch.url, proxy.port),
      SHUTDOWN_TIMEOUT: options.shutdownTimeout,
      DB_QUERY_TIMEOUT: "500ms",
    });
    const ann = await TestSocket.open(`ws://127.0.0.1:${child.port}/chat?r=lost&u=ann`);
    await ann.nextOfType("welcome");
    proxy.cut();
    for (let i = 0; i < options.unstorable; i++) ann.send(`unstorable ${i}`);
    await ann.collect("message", options.unstorable);
    child.process.kill("SIGTERM");
    assert.equal((await ann.untilClosed(10_000)).close.code, 1001);
    await test(child);
  } finally {
    await proxy.close();
    await scratch.drop();
  }
}

Deno.test({
  name: "Shutdown during an outage reports the messages it could not store on stderr and exits 1",
  ignore: database.ignore,
  fn: () =>
    withShutdownDuringOutage({ shutdownTimeout: "1s", unstorable: 7 }, async (child) => {
      const { code, stderr } = await child.finished();
      assert.equal(code, 1);
      assert.match(stderr, /^error: 7 messages could not be stored before shutdown$/m);
      assert.equal(child.logs.at(-1)?.event, "server.stopped");
      assert.equal(child.logs.at(-1)?.unsaved, 7);
    }),
});

Deno.test({
  name:
    "A second signal during a stalled shutdown exits 1 at once, saying how many messages were not stored",
  ignore: database.ignore,
  // A shutdown timeout far longer than this test may take: only the second signal ends it.
  fn: () =>
    withShutdownDuringOutage({ shutdownTimeout: "120s", unstorable: 4 }, async (child) => {
      await waitFor(
        "the shutdown to be waiting for the store",
        () => child.logs.some((line) => line.event === "server.stopping") || undefined,
      );
      child.process.kill("SIGTERM");
      const { code, stderr } = await child.finished();
      assert.equal(code, 1);
      assert.match(
        stderr,
        /^error: second signal: exiting before shutdown finished; 4 messages were not stored$/m,
      );
      assert.ok(!child.logs.some((line) => line.event === "server.stopped"));
    }),
});
