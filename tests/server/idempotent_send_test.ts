/**
 * Sends that can be retried (issue 14) on one instance: a message frame with a `client_id` is
 * acknowledged with `{"type":"ack","client_id","id","seq"}`, and a re-send of it by the same
 * user in the same room (same connection, after a reconnect, after a restart on PostgreSQL) is
 * neither broadcast nor stored again: the sender gets the first ack again.
 *
 * "Nothing more was broadcast" is proved with a marker: the room's loop handles a connection's
 * frames in order, so once a member receives the marker sent after the re-sends, any broadcast
 * of a re-send would have reached it first.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log/logger.ts";
import { PROTOCOL_ERRORS } from "../../chat/protocol.ts";
import { PostgresStore } from "../../storage/postgres_store.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import { prng } from "../cluster/_prng.ts";
import { type ChildServer, startChildServer } from "../support/child_server.ts";
import { createDatabase, dropSchema, freshSchemaName, query } from "../support/postgres_schema.ts";
import {
  framesUntil,
  isAckOf,
  isMessageOf,
  messageFrame,
  resend,
  sendThenDestroy,
} from "../support/retried_sends.ts";
import { serviceGate } from "../support/services.ts";
import { startTestServer, type TestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const ROOM = "retries";

/** A row of the messages table (or a message the memory store saved). */
interface StoredRow {
  readonly id: string;
  readonly seq: number;
  readonly sender: string;
  readonly content: string;
  readonly client_id: string | null;
}

/** Where a test's server stores its messages. */
interface Backend {
  readonly name: string;
  readonly ignore: boolean;
  /**
   * Runs `body` on a server over a fresh store, shuts the server down (so every message it
   * accepted is stored) and returns what was stored, in seq order.
   */
  run(
    env: Record<string, string>,
    body: (app: TestServer<MessageRepository>) => Promise<void>,
  ): Promise<StoredRow[]>;
}

const MEMORY: Backend = {
  name: "memory",
  ignore: false,
  async run(env, body) {
    const app = startTestServer(env);
    try {
      await body(app);
    } finally {
      await app.close();
    }
    // Every saved batch is recorded: a message saved twice would be listed twice.
    return app.repository.saved
      .map(({ id, seq, sender, content, clientId }) => ({
        id,
        seq,
        sender,
        content,
        client_id: clientId ?? null,
      }))
      .sort((a, b) => a.seq - b.seq);
  },
};

const POSTGRES: Backend = {
  name: "PostgreSQL",
  ignore: database.ignore,
  async run(env, body) {
    const url = database.url ?? "";
    const schema = freshSchemaName("test_idem");
    try {
      const store = await PostgresStore.connect(url, {
        connectTimeoutMs: 5_000,
        batchTimeoutMs: 5_000,
        schema,
        logger: silentLogger,
      });
      const app = startTestServer(env, store);
      try {
        await body(app);
      } finally {
        await app.close();
      }
      return await tableRows(url, schema);
    } finally {
      await dropSchema(url, schema);
    }
  },
};

async function tableRows(url: string, schema: string): Promise<StoredRow[]> {
  const rows = await query(url, schema, (sql) =>
    sql<(Omit<StoredRow, "seq"> & { seq: string })[]>`
      select id::text, seq, sender, content, client_id from messages order by seq`);
  return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

async function join(url: string): Promise<TestSocket> {
  const socket = await TestSocket.open(url);
  assert.equal((await socket.next()).type, "welcome");
  return socket;
}

function rowsOf(rows: readonly StoredRow[], sender: string, clientId: string): StoredRow[] {
  return rows.filter((row) => row.sender === sender && row.client_id === clientId);
}

Deno.test("An accepted message is acknowledged after its echo; the ack names its client_id when it had one", async () => {
  const rows = await MEMORY.run({}, async (app) => {
    const ann = await join(app.chatUrl(ROOM, "ann"));
    ann.send(messageFrame("a-1", "hello"));
    const [echo, ack] = await framesUntil(ann, isAckOf("a-1"));
    assert.deepEqual(echo, {
      type: "message",
      id: echo?.id,
      room: ROOM,
      seq: 1,
      sender: "ann",
      content: "hello",
      timestamp: echo?.timestamp,
      client_id: "a-1",
    });
    assert.deepEqual(ack, { type: "ack", client_id: "a-1", id: echo?.id, seq: 1 });

    ann.send("plain text has no client id");
    const plain = await ann.next();
    assert.equal(plain.type, "message");
    assert.equal("client_id" in plain, false);
    assert.deepEqual(await ann.next(), { type: "ack", id: plain.id, seq: 2 });

    ann.send(JSON.stringify({ type: "message", content: "an object without one" }));
    const object = await ann.next();
    assert.deepEqual(await ann.next(), { type: "ack", id: object.id, seq: 3 });
    await ann.close();
  });
  assert.deepEqual(rows.map((row) => [row.seq, row.client_id]), [[1, "a-1"], [2, null], [3, null]]);
});

Deno.test("A refused message's error names its client_id; a bad client_id is refused as invalid_client_id", async () => {
  const rows = await MEMORY.run({ MAX_CONTENT_CHARS: "10" }, async (app) => {
    const ann = await join(app.chatUrl(ROOM, "ann"));
    const bob = await join(app.chatUrl(ROOM, "bob"));
    const refusedWithId: [string, string][] = [
      [JSON.stringify({ type: "message", content: "   ", client_id: "e-1" }), "empty_content"],
      [
        JSON.stringify({ type: "message", content: "x".repeat(11), client_id: "e-2" }),
        "content_too_long",
      ],
      [JSON.stringify({ type: "message", content: 7, client_id: "e-3" }), "invalid_frame"],
    ];
    for (const [frame, code] of refusedWithId) {
      ann.send(frame);
      const clientId = JSON.parse(frame).client_id;
      assert.deepEqual(
        await ann.nextOfType("error"),
        {
          type: "error",
          code,
          message: PROTOCOL_ERRORS[code as keyof typeof PROTOCOL_ERRORS],
          client_id: clientId,
        },
      );
    }
    const badIds: unknown[] = ["", "has space", "x".repeat(65), "ü", "a/b", "a.b", 42, null, ["a"]];
    for (const clientId of badIds) {
      ann.send(JSON.stringify({ type: "message", content: "hi", client_id: clientId }));
      assert.deepEqual(
        await ann.nextOfType("error"),
        { type: "error", code: "invalid_client_id", message: PROTOCOL_ERRORS.invalid_client_id },
        `client_id ${JSON.stringify(clientId)}`,
      );
    }
    const longest = "Az09_-".repeat(10) + "abcd"; // 64 characters, every kind allowed
    assert.equal(longest.length, 64);
    ann.send(messageFrame(longest, "fits"));
    const ack = await ann.nextOfType("ack");
    assert.deepEqual([ack.client_id, ack.seq], [longest, 1], "refusals took no seq");
    // bob saw the one accepted message and nothing of the refused ones.
    const seen = await framesUntil(bob, isMessageOf(longest));
    assert.deepEqual(seen.map((frame) => frame.type), ["message"]);
    await Promise.all([ann.close(), bob.close()]);
  });
  assert.equal(rows.length, 1);
});

Deno.test("The same client_id from another sender or in another room is another message", async () => {
  const rows = await MEMORY.run({}, async (app) => {
    const ann = await join(app.chatUrl(ROOM, "ann"));
    const bob = await join(app.chatUrl(ROOM, "bob"));
    const annElsewhere = await join(app.chatUrl("elsewhere", "ann"));
    ann.send(messageFrame("same"));
    const annAck = (await framesUntil(ann, isAckOf("same"))).at(-1);
    bob.send(messageFrame("same"));
    const bobAck = (await framesUntil(bob, isAckOf("same"))).at(-1);
    annElsewhere.send(messageFrame("same"));
    const elsewhereAck = (await framesUntil(annElsewhere, isAckOf("same"))).at(-1);
    assert.deepEqual([annAck?.seq, bobAck?.seq, elsewhereAck?.seq], [1, 2, 1]);
    assert.equal(new Set([annAck?.id, bobAck?.id, elsewhereAck?.id]).size, 3);
    await Promise.all([ann.close(), bob.close(), annElsewhere.close()]);
  });
  assert.equal(rows.length, 3);
});

for (const backend of [MEMORY, POSTGRES]) {
  Deno.test({
    name:
      `${backend.name}: re-sends on the same connection get the first ack again and are broadcast once`,
    ignore: backend.ignore,
    fn: async () => {
      const rows = await backend.run({}, async (app) => {
        const ann = await join(app.chatUrl(ROOM, "ann"));
        const bob = await join(app.chatUrl(ROOM, "bob"));
        // Three copies back to back (most likely one turn of the room), then one more later.
        for (let i = 0; i < 3; i++) ann.send(messageFrame("twice"));
        const frames = await framesUntil(ann, (frame) => frame.type === "ack");
        const [echo, first] = frames;
        assert.deepEqual(frames.map((frame) => frame.type), ["message", "ack"]);
        const original = { type: "ack", client_id: "twice", id: echo?.id, seq: echo?.seq };
        assert.deepEqual(first, original);
        assert.deepEqual(await ann.next(), original, "the second copy's ack");
        assert.deepEqual(await ann.next(), original, "the third copy's ack");
        assert.deepEqual(await resend(ann, "twice"), original, "a later copy's ack");

        ann.send(messageFrame("marker"));
        const seen = await framesUntil(bob, isMessageOf("marker"));
        assert.deepEqual(seen.map((frame) => frame.client_id), ["twice", "marker"]);
        await Promise.all([ann.close(), bob.close()]);
      });
      assert.equal(rowsOf(rows, "ann", "twice").length, 1, "stored once");
      assert.deepEqual(rows.map((row) => row.seq), [1, 2]);
    },
  });

  Deno.test({
    name:
      `${backend.name}: a send whose socket was destroyed before the ack, re-sent after a reconnect, is broadcast and stored once, with the same ack`,
    ignore: backend.ignore,
    fn: async () => {
      let original: Frame | undefined;
      const rows = await backend.run({}, async (app) => {
        const bob = await join(app.chatUrl(ROOM, "bob"));
        await sendThenDestroy(
          app.port,
          `/chat?r=${ROOM}&u=ann`,
          messageFrame("lost-ack", "did this go out?"),
        );
        // It did go out: bob saw it. ann never saw its ack.
        const [echo] = await framesUntil(bob, (frame) => frame.type === "message");
        assert.equal(echo?.client_id, "lost-ack");
        original = { type: "ack", client_id: "lost-ack", id: echo?.id, seq: echo?.seq };

        const ann = await TestSocket.open(app.chatUrl(ROOM, "ann"));
        const welcome = await ann.next();
        assert.equal(welcome.last_seq, 1);
        assert.deepEqual(await resend(ann, "lost-ack"), original, "the ack of the first send");
        assert.deepEqual(await resend(ann, "lost-ack"), original, "and again");

        ann.send(messageFrame("marker"));
        const seen = await framesUntil(bob, isMessageOf("marker"));
        assert.deepEqual(seen.map((frame) => frame.client_id), ["marker"], "bob saw it once");
        await Promise.all([ann.close(), bob.close()]);
      });
      const stored = rowsOf(rows, "ann", "lost-ack");
      assert.equal(stored.length, 1, "one stored row");
      assert.deepEqual([stored[0]?.id, stored[0]?.seq], [original?.id, original?.seq]);
      assert.equal(rows.length, 2);
    },
  });
}

/** Acceptance 2: the size of the storm of re-sends. */
const STORM = {
  seed: 14,
  users: 20,
  messagesPerUser: 50,
  /** Sends of each message: the first and two re-sends, in random order among the user's. */
  copies: 3,
  maxDelayMs: 3,
} as const;

/** What one socket of the storm received. */
class Tally {
  readonly messages: Frame[] = [];
  readonly acks: Frame[] = [];
  readonly errors: Frame[] = [];
  sends = 0;

  constructor(readonly user: string, readonly socket: TestSocket) {}

  /** Reads frames until `done` holds, keeping messages, acks and errors. */
  async readUntil(done: (frame: Frame | undefined) => boolean): Promise<void> {
    let frame: Frame | undefined;
    while (!done(frame)) {
      frame = await this.socket.next(15_000);
      if (frame.type === "message") this.messages.push(frame);
      else if (frame.type === "ack") this.acks.push(frame);
      else if (frame.type === "error") this.errors.push(frame);
    }
  }
}

function shuffled<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const backend of [MEMORY, POSTGRES]) {
  Deno.test({
    name:
      `${backend.name}: 1,000 concurrent sends, each sent three times at random delays over two sockets per user, reach every member and the store exactly once`,
    ignore: backend.ignore,
    fn: async () => {
      const { seed, users, messagesPerUser, copies, maxDelayMs } = STORM;
      const tallies: Tally[] = [];
      const acked = new Map<string, string>(); // "user client_id" -> "id seq"
      const rows = await backend.run({}, async (app) => {
        for (let u = 0; u < users; u++) {
          const user = `u${u}`;
          for (let s = 0; s < 2; s++) {
            tallies.push(new Tally(user, await join(app.chatUrl(ROOM, user))));
          }
        }
        const started = performance.now();
        await Promise.all(Array.from({ length: users }, async (_, u) => {
          // One generator per user: its plan and delays replay from the seed, whatever the
          // interleaving of the users.
          const random = prng(seed * 1_000 + u);
          const mine = tallies.filter((tally) => tally.user === `u${u}`);
          const plan = shuffled(
            Array.from({ length: messagesPerUser * copies }, (_, i) => i % messagesPerUser),
            random,
          );
          for (const k of plan) {
            const tally = mine[Math.floor(random() * mine.length)] as Tally;
            // Every user uses the same client ids: they are scoped by sender.
            tally.socket.send(messageFrame(`m${k}`, `u${u} says ${k}`));
            tally.sends++;
            await pause(Math.floor(random() * (maxDelayMs + 1)));
          }
        }));
        // Every send is answered on its own socket before the marker goes out.
        await Promise.all(
          tallies.map((tally) => tally.readUntil(() => tally.acks.length >= tally.sends)),
        );
        (tallies[0] as Tally).socket.send(messageFrame("end"));
        await Promise.all(
          tallies.map((tally) =>
            tally.readUntil((frame) => frame?.type === "message" && frame.client_id === "end")
          ),
        );
        console.log(
          `${backend.name}: ${
            users * messagesPerUser * copies
          } sends over ${tallies.length} sockets answered in ${
            Math.round(performance.now() - started)
          } ms`,
        );
        await Promise.all(tallies.map((tally) => tally.socket.close()));
      });

      const expected = users * messagesPerUser;
      for (const tally of tallies) {
        assert.deepEqual(tally.errors, [], `${tally.user}: no send was refused`);
        const broadcast = tally.messages.filter((frame) => frame.client_id !== "end");
        const keys = broadcast.map((frame) => `${frame.sender} ${frame.client_id}`);
        assert.equal(new Set(keys).size, expected, `${tally.user} saw every message`);
        assert.equal(keys.length, expected, `${tally.user} saw each message once`);
        for (const frame of broadcast) {
          assert.equal(frame.content, `${frame.sender} says ${frame.client_id.slice(1)}`);
          acked.set(`${frame.sender} ${frame.client_id}`, `${frame.id} ${frame.seq}`);
        }
        assert.equal(tally.acks.length, tally.sends);
      }
      for (const tally of tallies) {
        for (const ack of tally.acks) {
          assert.equal(
            `${ack.id} ${ack.seq}`,
            acked.get(`${tally.user} ${ack.client_id}`),
            `every copy of ${tally.user} ${ack.client_id} is acknowledged as the message broadcast`,
          );
        }
      }
      const stored = rows.filter((row) => row.client_id !== "end");
      assert.equal(stored.length, expected, "the store holds each message once");
      assert.equal(new Set(stored.map((row) => `${row.sender} ${row.client_id}`)).size, expected);
      for (const row of stored) {
        assert.equal(acked.get(`${row.sender} ${row.client_id}`), `${row.id} ${row.seq}`);
      }
      assert.deepEqual(
        rows.map((row) => row.seq),
        Array.from({ length: expected + 1 }, (_, i) => i + 1),
        "no seq was taken by a copy",
      );
    },
  });
}

Deno.test({
  name:
    "PostgreSQL: a send whose socket was destroyed before the ack, re-sent after a SIGTERM and a restart, gets the original ack; the table has one row",
  ignore: database.ignore,
  fn: async () => {
    const scratch = await createDatabase(database.url ?? "");
    const running = new Set<ChildServer>();
    const start = async () => {
      const child = await startChildServer({
        DATABASE_URL: scratch.url,
        REDIS_URL: "",
        RATE_LIMIT_PER_SECOND: "1000",
        RATE_LIMIT_BURST: "1000",
      });
      running.add(child);
      return child;
    };
    const stop = async (child: ChildServer) => {
      child.process.kill("SIGTERM");
      const exit = await child.finished();
      running.delete(child);
      return exit;
    };
    const chatUrl = (child: ChildServer, user: string) =>
      `ws://127.0.0.1:${child.port}/chat?r=${ROOM}&u=${user}`;
    try {
      const first = await start();
      const bob = await join(chatUrl(first, "bob"));
      await sendThenDestroy(
        first.port,
        `/chat?r=${ROOM}&u=ann`,
        messageFrame("restart-1", "before the restart"),
      );
      const [echo] = await framesUntil(bob, (frame) => frame.type === "message");
      assert.equal(echo?.client_id, "restart-1");
      const original = { type: "ack", client_id: "restart-1", id: echo?.id, seq: echo?.seq };

      const { code, stderr } = await stop(first);
      assert.equal(code, 0, stderr);
      assert.equal((await bob.closed).code, 1001);

      const second = await start();
      const ann = await TestSocket.open(chatUrl(second, "ann"));
      const welcome = await ann.next();
      assert.equal(welcome.last_seq, 1, "the same room, on from where it was");
      const watcher = await join(chatUrl(second, "cat"));
      assert.deepEqual(await resend(ann, "restart-1"), original, "the ack of the first run");
      ann.send(messageFrame("marker"));
      const seen = await framesUntil(watcher, isMessageOf("marker"));
      assert.deepEqual(seen.map((frame) => [frame.client_id, frame.seq]), [["marker", 2]]);
      await Promise.all([ann.close(), watcher.close()]);
      const stopped = await stop(second);
      assert.equal(stopped.code, 0, stopped.stderr);

      const rows = await tableRows(scratch.url, "public");
      assert.deepEqual(
        rows.map((row) => [row.sender, row.client_id, row.id, row.seq]),
        [["ann", "restart-1", original.id, 1], ["ann", "marker", rows[1]?.id, 2]],
        "one row for the re-sent message",
      );
    } finally {
      for (const child of running) await stop(child);
      await scratch.drop();
    }
  },
});
