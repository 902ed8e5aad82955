/**
 * A room's sequence across restarts of the real entry point (`deno task start`): after a clean
 * stop on PostgreSQL it goes on in the same epoch; after a restart of the in-memory store, or a
 * kill that lost messages clients had seen, it goes on in a new epoch, so that no
 * (room, epoch, seq) a client saw ever names another message.
 */
import assert from "node:assert/strict";
import { type ChildServer, startChildServer } from "../support/child_server.ts";
import { createDatabase, query, targetOf, viaPort } from "../support/postgres_schema.ts";
import { serviceGate } from "../support/services.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const ROOM = "restarts";

/**
 * The child servers of one test. `deno task` cannot pass SIGKILL on, so a kill goes to the
 * server process itself. Whatever still runs when the test ends is killed.
 */
class Servers {
  readonly #running = new Set<ChildServer>();

  /** Starts `deno task start` with `env`; never with the caller's DATABASE_URL or REDIS_URL. */
  async start(env: Record<string, string> = {}): Promise<ChildServer> {
    const child = await startChildServer({ DATABASE_URL: "", REDIS_URL: "", ...env });
    this.#running.add(child);
    return child;
  }

  /** Signals the server and waits for it to exit; returns its exit code. */
  async stop(child: ChildServer, signal: "SIGTERM" | "SIGKILL"): Promise<number> {
    if (signal === "SIGKILL") Deno.kill(await serverPid(child), "SIGKILL");
    else child.process.kill("SIGTERM");
    const { code } = await child.finished();
    this.#running.delete(child);
    return code;
  }

  /** Kills what still runs; a server whose process cannot be found is stopped by its task. */
  async killAll(): Promise<void> {
    for (const child of [...this.#running]) {
      await this.stop(child, "SIGKILL").catch(() => this.stop(child, "SIGTERM"));
    }
  }
}

/** The server process that `deno task start` runs: its only child. */
async function serverPid(child: ChildServer): Promise<number> {
  const { pid } = child.process;
  // Reading /proc would need --allow-all; the tests may already run processes.
  const output = await new Deno.Command("ps", { args: ["-o", "pid=", "--ppid", String(pid)] })
    .output();
  const children = new TextDecoder().decode(output.stdout).trim().split(/\s+/);
  assert.equal(children.length, 1, `deno task ${pid} has children ${children}`);
  return Number(children[0]);
}

/** Runs `test` with a fresh `Servers`, killing what it left running. */
async function withServers(test: (servers: Servers) => Promise<void>): Promise<void> {
  const servers = new Servers();
  try {
    await test(servers);
  } finally {
    await servers.killAll();
  }
}

function join(child: ChildServer, user: string, cursor = ""): Promise<TestSocket> {
  return TestSocket.open(`ws://127.0.0.1:${child.port}/chat?r=${ROOM}&u=${user}${cursor}`);
}

/** `welcome`, the messages replayed after it, and the `resume` frame that ends them. */
async function replayOf(socket: TestSocket) {
  const welcome = await socket.next();
  assert.equal(welcome.type, "welcome");
  const messages: Frame[] = [];
  for (;;) {
    const frame = await socket.next();
    if (frame.type === "resume") return { welcome, messages, resume: frame };
    assert.equal(frame.type, "message", "only messages come between welcome and resume");
    messages.push(frame);
  }
}

async function sendAll(sender: TestSocket, texts: readonly string[]): Promise<Frame[]> {
  for (const text of texts) sender.send(text);
  return await sender.collect("message", texts.length);
}

async function historyOf(child: ChildServer): Promise<{ epoch: string | null; page: Frame[] }> {
  const response = await fetch(`http://127.0.0.1:${child.port}/history?r=${ROOM}`);
  return { epoch: response.headers.get("x-chat-epoch"), page: await response.json() };
}

const withoutType = (frames: readonly Frame[]) => frames.map(({ type: _, ...message }) => message);
const seqsOf = (frames: readonly Frame[]) => frames.map((frame) => frame.seq);

Deno.test({
  name:
    "PostgreSQL: after SIGTERM and a restart the sequence goes on in the same epoch, and a resume gets exactly what it missed",
  ignore: database.ignore,
  fn: async () => {
    const scratch = await createDatabase(database.url ?? "");
    try {
      await withServers(async (servers) => {
        const first = await servers.start({ DATABASE_URL: scratch.url });
        const ann = await join(first, "ann");
        const { epoch, last_seq } = await ann.nextOfType("welcome");
        assert.equal(last_seq, 0);
        const bob = await join(first, "bob");
        await bob.nextOfType("welcome");
        const seenByBob = await sendAll(ann, ["one", "two", "three"]);
        assert.deepEqual(seqsOf(await bob.collect("message", 3)), [1, 2, 3]);
        await bob.close(); // bob's cursor: seq 3 of `epoch`
        const missed = await sendAll(ann, ["four", "five"]);

        assert.equal(await servers.stop(first, "SIGTERM"), 0);
        assert.equal((await ann.untilClosed()).close.code, 1001);

        const second = await servers.start({ DATABASE_URL: scratch.url });
        const cat = await join(second, "cat");
        const { limits: _, ...welcome } = await cat.nextOfType("welcome");
        assert.deepEqual(welcome, {
          type: "welcome",
          protocol: 2,
          room: ROOM,
          user: "cat",
          members: ["cat"],
          epoch,
          last_seq: 5,
        });
        const [six] = await sendAll(cat, ["six"]);
        assert.deepEqual([six?.seq, six?.content], [6, "six"], "the sequence goes on");

        const back = await join(second, "bob", `&since_seq=3&epoch=${epoch}`);
        const { messages, resume } = await replayOf(back);
        assert.deepEqual(messages, [...missed, six], "exactly what bob missed, across the restart");
        assert.deepEqual(resume, { type: "resume", complete: true, replayed: 3, epoch });
        const history = await historyOf(second);
        assert.equal(history.epoch, epoch);
        assert.deepEqual(history.page, withoutType([...seenByBob, ...missed, six as Frame]));

        await Promise.all([cat.close(), back.close()]);
        assert.equal(await servers.stop(second, "SIGTERM"), 0);
      });
    } finally {
      await scratch.drop();
    }
  },
});

Deno.test("In memory: a restart gives the room a new epoch, and resuming with the old one says epoch_changed", async () => {
  await withServers(async (servers) => {
    const first = await servers.start();
    const ann = await join(first, "ann");
    const { epoch: before } = await ann.nextOfType("welcome");
    await sendAll(ann, ["one", "two"]);
    assert.equal(await servers.stop(first, "SIGTERM"), 0);
    assert.equal((await ann.untilClosed()).close.code, 1001);

    const second = await servers.start();
    const bob = await join(second, "bob", `&since_seq=2&epoch=${before}`);
    const { welcome, messages, resume } = await replayOf(bob);
    assert.notEqual(welcome.epoch, before, "the history is gone: seq 1 will name another message");
    assert.equal(welcome.last_seq, 0);
    assert.deepEqual(messages, []);
    assert.deepEqual(resume, {
      type: "resume",
      complete: false,
      replayed: 0,
      epoch: welcome.epoch,
      reason: "epoch_changed",
    });
    const [first1] = await sendAll(bob, ["new one"]);
    assert.equal(first1?.seq, 1);
    await bob.close();
    assert.equal(await servers.stop(second, "SIGTERM"), 0);
  });
});

Deno.test({
  name:
    "PostgreSQL: after a SIGKILL that lost broadcast messages the room gets a new epoch, so no seq a client saw names another message",
  ignore: database.ignore,
  fn: async () => {
    const scratch = await createDatabase(database.url ?? "");
    // The first run reaches the database through a proxy, cut to keep messages from being stored.
    const proxy = TcpProxy.start(targetOf(scratch.url));
    const storedCount = async () => {
      const rows = await query(
        scratch.url,
        "public",
        (sql) => sql<{ count: number }[]>`select count(*)::int as count from messages`,
      );
      return rows[0]?.count ?? 0;
    };
    try {
      await withServers(async (servers) => {
        const first = await servers.start({
          DATABASE_URL: viaPort(scratch.url, proxy.port),
          DB_QUERY_TIMEOUT: "500ms",
        });
        const ann = await join(first, "ann");
        const { epoch: before } = await ann.nextOfType("welcome");
        const bob = await join(first, "bob");
        await bob.nextOfType("welcome");
        await sendAll(ann, ["stored 1", "stored 2", "stored 3"]);
        await waitFor(
          "three messages stored",
          async () => (await storedCount()) === 3 || undefined,
        );
        proxy.cut();
        await sendAll(ann, ["lost 4", "lost 5", "lost 6"]);
        const seenByBob = await bob.collect("message", 6);
        assert.deepEqual(seqsOf(seenByBob), [1, 2, 3, 4, 5, 6]);

        assert.equal(await servers.stop(first, "SIGKILL"), 137);
        await Promise.all([ann.closed, bob.closed]);
        assert.equal(await storedCount(), 3, "seqs 4 to 6 were seen but never stored");

        const second = await servers.start({ DATABASE_URL: scratch.url });
        const back = await join(second, "bob", `&since_seq=6&epoch=${before}`);
        const { welcome, messages, resume } = await replayOf(back);
        const after = welcome.epoch;
        assert.notEqual(after, before, "the killed run may have handed out seqs it never stored");
        assert.equal(welcome.last_seq, 3, "the new epoch goes on from the last stored seq");
        assert.deepEqual(messages, []);
        assert.deepEqual(resume, {
          type: "resume",
          complete: false,
          replayed: 0,
          epoch: after,
          reason: "epoch_changed",
        });
        const [next] = await sendAll(back, ["after the kill"]);
        assert.equal(next?.seq, 4, "seq 4 again, but in the new epoch");

        const history = await historyOf(second);
        assert.equal(history.epoch, after);
        assert.deepEqual(
          history.page.map((message) => message.content),
          ["stored 1", "stored 2", "stored 3", "after the kill"],
        );
        // Every (epoch, seq) bob was shown, live or by /history, names one message.
        const named = new Map<string, string>();
        const shown = [
          ...seenByBob.map((frame) => [before, frame] as const),
          [after, next as Frame] as const,
          ...history.page.map((message) => [after, message] as const),
        ];
        for (const [epoch, message] of shown) {
          const key = `${epoch}/${message.seq}`;
          assert.equal(named.get(key) ?? message.id, message.id, `${key} names two messages`);
          named.set(key, message.id);
        }
        await back.close();
        assert.equal(await servers.stop(second, "SIGTERM"), 0);
      });
    } finally {
      await proxy.close();
      await scratch.drop();
    }
  },
});
