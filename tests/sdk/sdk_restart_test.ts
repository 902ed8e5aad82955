/**
 * The client SDK across a restart of the real entry point (`deno task start`) on PostgreSQL:
 * a room that was away while the server stopped and came back resumes without a gap and without
 * a duplicate, and what it sent meanwhile goes out once.
 */
import assert from "node:assert/strict";
import { connect } from "../../static/sdk/chat.js";
import { type ChildServer, startChildServer } from "../support/child_server.ts";
import { createDatabase } from "../support/postgres_schema.ts";
import { serviceGate } from "../support/services.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { TestSocket } from "../support/test_socket.ts";
import { Recorder, seqsUpTo } from "./_recorder.ts";

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const ROOM = "restarts";

/** Starts `deno task start` on `databaseUrl` (and `port`: a restart keeps the address). */
function startServer(databaseUrl: string, port = 0): Promise<ChildServer> {
  return startChildServer({ DATABASE_URL: databaseUrl, REDIS_URL: "", PORT: String(port) });
}

/** SIGTERM, and the exit code. */
async function stopServer(child: ChildServer): Promise<number> {
  child.process.kill("SIGTERM");
  return (await child.finished()).code;
}

async function join(child: ChildServer, user: string): Promise<TestSocket> {
  const socket = await TestSocket.open(`ws://127.0.0.1:${child.port}/chat?r=${ROOM}&u=${user}`);
  await socket.nextOfType("welcome");
  return socket;
}

Deno.test({
  name:
    "Room resumes across a server restart on PostgreSQL: every message once, in order, and its own send once",
  ignore: database.ignore,
  fn: async () => {
    const scratch = await createDatabase(database.url ?? "");
    const running = new Set<ChildServer>();
    // Ann reaches the server through a proxy, cut to keep her away while it restarts.
    let proxy: TcpProxy | undefined;
    try {
      const first = await startServer(scratch.url);
      running.add(first);
      proxy = TcpProxy.start({ hostname: "127.0.0.1", port: first.port });
      const room = await connect({
        url: `http://127.0.0.1:${proxy.port}`,
        room: ROOM,
        user: "ann",
        backoff: { baseMs: 50, maxMs: 300 },
      });
      const seen = new Recorder(room);
      try {
        const epoch = room.epoch;
        const bob = await join(first, "bob");
        for (const text of ["one", "two", "three"]) bob.send(text);
        await seen.untilMessages(3);

        proxy.cut();
        await seen.untilState("reconnecting");
        const sent = room.send("written while away");
        sent.catch(() => {}); // awaited below; a failed assertion before must not leave it unhandled
        bob.send("four");
        bob.send("five");
        await bob.collect("message", 5);
        assert.equal(await stopServer(first), 0);
        running.delete(first);
        assert.equal((await bob.untilClosed()).close.code, 1001);

        const second = await startServer(scratch.url, first.port);
        running.add(second);
        const cat = await join(second, "cat");
        cat.send("six");
        await cat.nextOfType("message");
        proxy.restore();

        const ack = await sent;
        assert.equal(ack.seq, 7, "sent once, after what was missed");
        await seen.untilMessages(7);
        assert.deepEqual(seen.seqs, seqsUpTo(7));
        assert.deepEqual(seen.contents, [
          "one",
          "two",
          "three",
          "four",
          "five",
          "six",
          "written while away",
        ]);
        assert.equal(room.epoch, epoch, "a clean restart on PostgreSQL keeps the epoch");
        assert.deepEqual(seen.epochs, []);
        assert.deepEqual(seen.errors, []);
        const seenByCat = await cat.collect("message", 1);
        assert.deepEqual(seenByCat.map((m) => [m.seq, m.content]), [[7, "written while away"]]);
        const history = await (await fetch(`http://127.0.0.1:${second.port}/history?r=${ROOM}`))
          .json();
        assert.deepEqual(history.map((m: { seq: number }) => m.seq), seqsUpTo(7));
        await cat.close();
      } finally {
        seen.stop();
        await room.close();
      }
    } finally {
      for (const child of running) await stopServer(child);
      await proxy?.close();
      await scratch.drop();
    }
  },
});
