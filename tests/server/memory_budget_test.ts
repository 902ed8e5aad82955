/**
 * MEMORY_BUDGET end to end: the real server with PostgreSQL cut off behind a proxy, flooded
 * with the costliest messages a client can send, stops taking them at its budget, stays within
 * it in resident memory, and stores every message it took once the database is back.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startChildServer } from "../support/child_server.ts";
import { createDatabase, targetOf, viaPort } from "../support/postgres_schema.ts";
import { ServedProcess } from "../support/served_process.ts";
import { serviceGate } from "../support/services.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const BUDGET_MIB = 64;
/**
 * What the process holds besides the budget: Deno and V8 (about 95 MiB with a PostgreSQL pool
 * and two sockets, measured here), garbage not yet collected, the young generation. The budget's
 * estimates count two bytes per character where V8 mostly stores one. Measured: 188 MiB at the
 * peak with a 64 MiB budget (297 MiB without a heap limit: V8 then collects lazily).
 */
const OVERHEAD_MIB = 160;
/** V8's old space: the budget and what the runtime itself keeps there. */
const HEAP_HEADROOM_MIB = 96;
/** 4,000 control characters: each becomes six in the JSON frame (`\u0001`). */
const CONTENT = Array.from({ length: 4_000 }, (_, i) => String.fromCharCode(1 + (i % 8))).join("");
const BATCH = 20;
/** Stops the flood if the budget never refuses (the test then fails). */
const MAX_MESSAGES = 40_000;

Deno.test({
  name:
    "MEMORY_BUDGET: a flood while the store is down stops at the budget with backlog; RSS stays under it plus overhead; nothing taken is lost",
  ignore: database.ignore,
  fn: async () => {
    const scratch = await createDatabase(database.url ?? "");
    const proxy = TcpProxy.start(targetOf(scratch.url));
    const child = await startChildServer({
      DATABASE_URL: viaPort(scratch.url, proxy.port),
      MEMORY_BUDGET: `${BUDGET_MIB}MiB`,
      PERSIST_QUEUE_LIMIT: "1000000",
      RATE_LIMIT_PER_SECOND: "100000",
      RATE_LIMIT_BURST: "100000",
      DB_QUERY_TIMEOUT: "2s",
      MAX_FRAME_BYTES: "65536",
      // As in a container (the image sets DENO_USE_CGROUPS): V8's heap sized to the memory
      // there is, not to this machine's 24 GiB, else garbage is left to grow for lack of need.
      DENO_V8_FLAGS: `--max-old-space-size=${BUDGET_MIB + HEAP_HEADROOM_MIB}`,
    });
    const url = (path: string) => `ws://127.0.0.1:${child.port}${path}`;
    const sockets: TestSocket[] = [];
    try {
      const served = await ServedProcess.of(child.process.pid);
      const reader = await TestSocket.open(url("/chat?r=flood&u=reader"));
      const flooder = await TestSocket.open(url("/chat?r=flood&u=flooder"));
      sockets.push(reader, flooder);
      await flooder.nextOfType("welcome");
      // The reader drops what it reads: it only keeps the socket drained.
      reader.socket.onmessage = () => {};
      proxy.cut();

      const acked = new Map<string, number>();
      let refused = 0;
      let peakMiB = 0;
      for (let sent = 0; refused < 3 * BATCH && sent < MAX_MESSAGES;) {
        const ids: string[] = [];
        for (let i = 0; i < BATCH; i++, sent++) {
          ids.push(`m${sent}`);
          flooder.send(
            JSON.stringify({ type: "message", content: CONTENT, client_id: `m${sent}` }),
          );
        }
        for (const answer of await answersFor(flooder, ids.length)) {
          if (answer.type === "ack") acked.set(answer.client_id, answer.seq);
          else {
            assert.equal(answer.code, "backlog", JSON.stringify(answer));
            refused++;
          }
        }
        peakMiB = Math.max(peakMiB, (await served.memory()).rssMiB);
      }
      assert.ok(refused > 0, `no refusal after ${acked.size} messages`);
      assert.ok(acked.size > 1_000, `only ${acked.size} taken before the budget refused`);
      console.error(
        `  ${acked.size} taken, then backlog; peak RSS ${peakMiB.toFixed(0)} MiB ` +
          `(budget ${BUDGET_MIB} MiB + overhead ${OVERHEAD_MIB} MiB)`,
      );
      assert.ok(peakMiB < BUDGET_MIB + OVERHEAD_MIB, `RSS peaked at ${peakMiB.toFixed(0)} MiB`);
      const metrics = await (await fetch(`http://127.0.0.1:${child.port}/metrics`)).text();
      assert.match(metrics, /^chat_memory_budget_refusals_total [1-9]/m);
      assert.match(metrics, /^chat_memory_bytes\{use="unstored"\} [1-9]/m);

      // The database is back: every message taken is stored, none twice, no other.
      proxy.restore();
      const sql = postgres(scratch.url, { max: 1, onnotice: () => {} });
      try {
        const stored = await waitFor("every taken message stored", async () => {
          const rows = await sql<{ seq: number; client_id: string }[]>`
            select seq, client_id from messages where room = 'flood'`;
          return rows.length >= acked.size ? rows : undefined;
        }, 60_000);
        assert.deepEqual(
          new Map(stored.map((row) => [row.client_id, Number(row.seq)])),
          acked,
        );
      } finally {
        await sql.end({ timeout: 5 });
      }
      // And the room takes messages again.
      flooder.send(JSON.stringify({ type: "message", content: "after", client_id: "after" }));
      const [answer] = await answersFor(flooder, 1);
      assert.equal(answer?.type, "ack");
    } finally {
      await Promise.all(sockets.map((socket) => socket.close()));
      child.process.kill("SIGTERM");
      await child.finished();
      await proxy.close();
      await scratch.drop();
    }
  },
});

/** The next `count` acks and errors of `socket` (its own messages' echoes are skipped). */
async function answersFor(socket: TestSocket, count: number): Promise<Frame[]> {
  const answers: Frame[] = [];
  while (answers.length < count) {
    const frame = await socket.next(30_000);
    if (frame.type === "ack" || frame.type === "error") answers.push(frame);
  }
  return answers;
}
