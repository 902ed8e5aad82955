/**
 * The client SDK (static/sdk/chat.js) against the real server, in-process on 127.0.0.1 with real
 * WebSockets: delivery in order and once, safe sends, gaps, history, epochs, tokens, closing.
 * Each test closes its rooms, sockets and server; sanitizers stay on.
 */
import assert from "node:assert/strict";
import { ChatError, connect } from "../../static/sdk/chat.js";
import type { ConnectOptions, Room } from "../../static/sdk/chat.d.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { startTestServer, type TestServer } from "../support/test_server.ts";
import type { RecordingStore } from "../support/recording_store.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { mintToken, Recorder, SECRET, seqsUpTo } from "./_recorder.ts";
import { spySockets } from "./_spy_socket.ts";

type Server = TestServer<RecordingStore>;

/** Fast reconnects: the tests wait for them. */
const QUICK = { baseMs: 20, maxMs: 200 } as const;

/** Runs `test` with a server started with `env`, closed afterwards. */
async function withServer(
  env: Record<string, string>,
  test: (server: Server) => Promise<void>,
): Promise<void> {
  const server = startTestServer(env);
  try {
    await test(server);
  } finally {
    await server.close();
  }
}

/** Rooms opened by a test, all closed at its end (also when it failed). */
class Rooms {
  readonly #open: Room[] = [];

  async join(options: ConnectOptions): Promise<{ room: Room; seen: Recorder }> {
    const room = await connect({ backoff: QUICK, ...options });
    this.#open.push(room);
    return { room, seen: new Recorder(room) };
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#open.map((room) => room.close()));
  }
}

async function withRooms(test: (rooms: Rooms) => Promise<void>): Promise<void> {
  const rooms = new Rooms();
  try {
    await test(rooms);
  } finally {
    await rooms.closeAll();
  }
}

/** A raw member of `room` that sends `texts` and waits for their echoes. */
async function post(server: Server, room: string, texts: readonly string[]): Promise<Frame[]> {
  const socket = await TestSocket.open(server.chatUrl(room, "bob"));
  try {
    await socket.nextOfType("welcome");
    for (const text of texts) socket.send(text);
    return await socket.collect("message", texts.length);
  } finally {
    await socket.close();
  }
}

Deno.test("connect() resolves at the welcome with the room's epoch, members and lastSeq, asking for protocol 2", async () => {
  await withServer({}, async (server) => {
    await post(server, "lobby", ["before 1", "before 2"]);
    const bob = await TestSocket.open(server.chatUrl("lobby", "bob"));
    const { epoch } = await bob.nextOfType("welcome");
    const spy = spySockets();
    await withRooms(async (rooms) => {
      const { room } = await rooms.join({
        url: server.url(""),
        room: "lobby",
        user: " ann ",
        WebSocket: spy.WebSocket,
      });
      assert.equal(room.state, "open");
      assert.equal(room.epoch, epoch);
      assert.equal(room.lastSeq, 2, "live messages follow the welcome's last_seq");
      assert.equal(room.user, "ann", "the server's (trimmed) name");
      assert.equal(room.name, "lobby");
      assert.deepEqual(room.members, ["ann", "bob"]);
      const url = spy.log.urls[0];
      assert.equal(url?.pathname, "/chat");
      assert.deepEqual(Object.fromEntries(url?.searchParams ?? []), {
        r: "lobby",
        u: " ann ",
        v: "2",
        batch: "1",
      });
    });
    await bob.close();
  });
});

Deno.test("connect() rejects with the server's refusal and its code: invalid_room (400), and stops", async () => {
  await withServer({}, async (server) => {
    const tooLong = "r".repeat(65);
    const refusal = await connect({ url: server.url(""), room: tooLong, user: "ann" }).then(
      () => assert.fail("connect resolved"),
      (error: unknown) => error,
    );
    assert.ok(refusal instanceof ChatError);
    assert.equal(refusal.code, "invalid_room");
    assert.equal(refusal.status, 400);
  });
});

Deno.test("Room.on('message') delivers each message once in seq order; presence is a sorted set from welcome and deltas", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const { room, seen } = await rooms.join({ url: server.url(""), room: "r1", user: "ann" });
      const bob = await TestSocket.open(server.chatUrl("r1", "bob"));
      await bob.nextOfType("welcome");
      await seen.until("bob's join", () => seen.presence.length === 1);
      assert.deepEqual(seen.presence[0], { event: "join", user: "bob", members: ["ann", "bob"] });
      assert.deepEqual(room.members, ["ann", "bob"]);
      for (let i = 1; i <= 20; i++) bob.send(`m${i}`);
      await seen.untilMessages(20);
      assert.deepEqual(seen.seqs, seqsUpTo(20));
      assert.deepEqual(seen.contents, seqsUpTo(20).map((i) => `m${i}`));
      assert.equal(room.lastSeq, 20);
      await bob.close();
      await seen.until("bob's leave", () => seen.presence.length === 2);
      assert.deepEqual(seen.presence[1], { event: "leave", user: "bob", members: ["ann"] });
      assert.deepEqual(seen.errors, []);
    });
  });
});

Deno.test("Room.typing() tells the others at most once per 2 s; Room.on('typing') hears others, not itself", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const { room: ann } = await rooms.join({ url: server.url(""), room: "t", user: "ann" });
      const { room: bob } = await rooms.join({ url: server.url(""), room: "t", user: "bob" });
      const heardByBob: string[] = [];
      const heardByAnn: string[] = [];
      bob.on("typing", ({ user }) => heardByBob.push(user));
      ann.on("typing", ({ user }) => heardByAnn.push(user));
      const bobHasIt = new Promise<void>((resolve) => {
        bob.on("message", ({ content }) => content === "typed" && resolve());
      });
      for (let i = 0; i < 5; i++) ann.typing(); // one keystroke after another
      await ann.send("typed");
      await bobHasIt; // the typing frames went before the message, in the room's order
      assert.deepEqual(heardByBob, ["ann"]);
      assert.deepEqual(heardByAnn, []);
    });
  });
});

Deno.test("Room.send() with reply_to: the others get it on the message; a bad one rejects with invalid_reply_to", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const { room: ann } = await rooms.join({ url: server.url(""), room: "re", user: "ann" });
      const { room: bob, seen } = await rooms.join({
        url: server.url(""),
        room: "re",
        user: "bob",
      });
      const question = await ann.send("the question");
      await bob.send("the answer", { reply_to: question.seq });
      await seen.untilMessages(2);
      assert.deepEqual(
        seen.messages.map((message) => [message.content, message.reply_to]),
        [["the question", undefined], ["the answer", question.seq]],
      );
      await assert.rejects(bob.send("to the future", { reply_to: 99 }), (error: ChatError) => {
        assert.equal(error.code, "invalid_reply_to");
        return true;
      });
    });
  });
});

Deno.test("Room.read() stores a read position; Room.on('read') hears the receipt", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const { room: ann } = await rooms.join({ url: server.url(""), room: "rd", user: "ann" });
      const { room: bob } = await rooms.join({ url: server.url(""), room: "rd", user: "bob" });
      const receipt = new Promise<{ user: string; seq: number }>((resolve) => {
        ann.on("read", ({ user, seq }) => resolve({ user, seq }));
      });
      const { seq } = await ann.send("read me");
      bob.read(seq);
      assert.deepEqual(await receipt, { user: "bob", seq });
      const mine = await (await fetch(server.url("/me/rooms?u=bob"))).json();
      assert.deepEqual(mine, [{ room: "rd", unread: 0, read_seq: seq, last_seq: seq }]);
    });
  });
});

Deno.test("Room.send() resolves with the ack; a refused message rejects with the server's code", async () => {
  await withServer({ MAX_CONTENT_CHARS: "10" }, async (server) => {
    await withRooms(async (rooms) => {
      const { room, seen } = await rooms.join({ url: server.url(""), room: "r2", user: "ann" });
      const ack = await room.send("hello");
      assert.equal(ack.seq, 1);
      await seen.untilMessages(1);
      assert.equal(seen.messages[0]?.id, ack.id);
      assert.equal(seen.messages[0]?.sender, "ann");
      for (
        const [content, code] of [["   ", "empty_content"], ["x".repeat(11), "content_too_long"]]
      ) {
        const error = await room.send(content ?? "").then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof ChatError, `${code}: ${error}`);
        assert.equal(error.code, code);
        assert.equal(error.retryable, false);
      }
      assert.equal((await room.send("after")).seq, 2);
    });
  });
});

Deno.test("Room.send() in flight when the connection is lost is sent again after the reconnect and appears once", async () => {
  // RESUME_LIMIT 1: the replay stops before ann's message, so only a re-send can settle it.
  await withServer({ RESUME_LIMIT: "1" }, async (server) => {
    const proxy = TcpProxy.start({ hostname: "127.0.0.1", port: server.port });
    const bob = await TestSocket.open(server.chatUrl("r3", "bob"));
    await bob.nextOfType("welcome");
    const spy = spySockets();
    try {
      await withRooms(async (rooms) => {
        const { room, seen } = await rooms.join({
          url: `http://127.0.0.1:${proxy.port}`,
          room: "r3",
          user: "ann",
          WebSocket: spy.WebSocket,
        });
        // From here on, nothing the server says reaches ann: her ack will be lost.
        spy.log.sockets[0]?.deafen();
        bob.send("one");
        bob.send("two");
        await bob.collect("message", 2);
        const sent = room.send("mine");
        sent.catch(() => {}); // awaited below; a failed assertion before must not leave it unhandled
        const mine = await bob.nextOfType("message");
        assert.equal(mine?.content, "mine", "the server took it; ann does not know");
        proxy.cut();
        proxy.restore();
        const ack = await sent;
        assert.deepEqual(ack, { id: mine?.id, seq: mine?.seq }, "the first message's ack, again");
        await seen.untilMessages(3);
        assert.deepEqual(seen.contents, ["one", "two", "mine"]);
        const clientId = JSON.parse(spy.log.sent[0] ?? "{}").client_id;
        assert.equal(spy.log.sent.length, 2, "sent on the lost socket, then on the new one");
        assert.ok(spy.log.sent.every((frame) => JSON.parse(frame).client_id === clientId));
        bob.send("after");
        await seen.untilMessages(4);
        assert.deepEqual(seen.seqs, [1, 2, 3, 4]);
        const history = await (await fetch(server.url("/history?r=r3"))).json();
        assert.deepEqual(history.map((m: Frame) => m.content), ["one", "two", "mine", "after"]);
      });
    } finally {
      await bob.close();
      await proxy.close();
    }
  });
});

Deno.test("Room.send() with the client_id of a message already sent gets the first ack, not a second message", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const first = await rooms.join({ url: server.url(""), room: "r4", user: "ann" });
      const ack = await first.room.send("once", { client_id: "fixed-id-1" });
      await first.room.close();
      const again = await rooms.join({ url: server.url(""), room: "r4", user: "ann" });
      assert.deepEqual(await again.room.send("once", { client_id: "fixed-id-1" }), ack);
      const history = await (await fetch(server.url("/history?r=r4"))).json();
      assert.equal(history.length, 1);
    });
  });
});

Deno.test("Room.on('message') fills what an incomplete resume could not replay from /history, in order", async () => {
  await withServer({ RESUME_LIMIT: "2" }, async (server) => {
    const proxy = TcpProxy.start({ hostname: "127.0.0.1", port: server.port });
    try {
      await withRooms(async (rooms) => {
        await post(server, "r5", ["old 1", "old 2"]);
        const { room, seen } = await rooms.join({
          url: `http://127.0.0.1:${proxy.port}`,
          room: "r5",
          user: "ann",
        });
        await post(server, "r5", ["live 3"]);
        await seen.untilMessages(1);
        proxy.cut();
        await seen.untilState("reconnecting");
        await post(server, "r5", seqsUpTo(9, 4).map((i) => `missed ${i}`));
        proxy.restore();
        await seen.untilMessages(7);
        await post(server, "r5", ["live 10"]);
        await seen.untilMessages(8);
        assert.deepEqual(seen.seqs, seqsUpTo(10, 3), "each once, in order, from the join on");
        assert.equal(room.lastSeq, 10);
        assert.deepEqual(seen.errors, []);
      });
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("connect({ since: { seq: 0 } }) delivers the whole room first, beyond the replay limit", async () => {
  await withServer({ RESUME_LIMIT: "3" }, async (server) => {
    await post(server, "r6", seqsUpTo(8).map((i) => `m${i}`));
    await withRooms(async (rooms) => {
      const { room, seen } = await rooms.join({
        url: server.url(""),
        room: "r6",
        user: "ann",
        since: { seq: 0 },
      });
      await seen.untilMessages(8);
      assert.deepEqual(seen.seqs, seqsUpTo(8));
      const { seen: later } = await rooms.join({
        url: server.url(""),
        room: "r6",
        user: "cat",
        since: { seq: 6, epoch: room.epoch },
      });
      await later.untilMessages(2);
      assert.deepEqual(later.seqs, [7, 8]);
    });
  });
});

Deno.test("Room.history() pages forward (oldest first) and backward (newest first), each message once", async () => {
  await withServer({}, async (server) => {
    const posted = await post(server, "r7", seqsUpTo(23).map((i) => `m${i}`));
    await withRooms(async (rooms) => {
      const { room } = await rooms.join({ url: server.url(""), room: "r7", user: "ann" });
      const read = async (query: Parameters<Room["history"]>[0]) => {
        const seqs: number[] = [];
        for await (const message of room.history(query)) seqs.push(message.seq);
        return seqs;
      };
      assert.deepEqual(await read({ after_seq: 0, page_size: 5 }), seqsUpTo(23));
      assert.deepEqual(await read({ page_size: 5 }), seqsUpTo(23).reverse());
      assert.deepEqual(await read({ after_seq: 4, before_seq: 12, page_size: 3 }), seqsUpTo(11, 5));
      assert.deepEqual(await read({ before_seq: 10, limit: 4 }), [9, 8, 7, 6]);
      assert.deepEqual(await read({ after_seq: 20, limit: 10 }), [21, 22, 23]);
      const first = (await room.history({ after_seq: 0, limit: 1 }).next()).value;
      assert.deepEqual(first, withoutType(posted[0]), "the message as the socket had it");
    });
  });
});

function withoutType(frame: Frame | undefined): Frame {
  const { type: _, ...message } = frame ?? {};
  return message;
}

Deno.test("Room.history() waits out 429 with its Retry-After and still reads every message once", async () => {
  // One /history request a second, bursts of two: the third page is refused once.
  await withServer({ HISTORY_RATE_LIMIT: "1" }, async (server) => {
    await post(server, "r8", seqsUpTo(9).map((i) => `m${i}`));
    await withRooms(async (rooms) => {
      const { room } = await rooms.join({ url: server.url(""), room: "r8", user: "ann" });
      const seqs: number[] = [];
      const started = Date.now();
      for await (const message of room.history({ after_seq: 0, page_size: 3 })) {
        seqs.push(message.seq);
      }
      assert.deepEqual(seqs, seqsUpTo(9));
      assert.ok(Date.now() - started >= 900, "it waited for the Retry-After (1 s)");
    });
  });
});

Deno.test("Room epoch: after an in-memory server restarts, the room starts over in the new epoch", async () => {
  let server = startTestServer();
  const port = server.port;
  try {
    await withRooms(async (rooms) => {
      const { room, seen } = await rooms.join({ url: server.url(""), room: "r9", user: "ann" });
      const before = room.epoch;
      await post(server, "r9", ["one", "two"]);
      await seen.untilMessages(2);
      await server.close();
      await seen.untilState("reconnecting");
      server = startTestServer({ PORT: String(port) });
      await seen.until("the new epoch", () => seen.epochs.length === 1);
      assert.notEqual(room.epoch, before);
      assert.deepEqual(seen.epochs, [{ epoch: room.epoch, previous: before, last_seq: 0 }]);
      await seen.untilState("open", 2);
      assert.equal(room.lastSeq, 0);
      await post(server, "r9", ["new one"]);
      await seen.untilMessages(3);
      assert.deepEqual(seen.messages.map((m) => [m.seq, m.content]), [
        [1, "one"],
        [2, "two"],
        [1, "new one"],
      ]);
    });
  } finally {
    await server.close();
  }
});

Deno.test("Token refresh: close 4001 asks the token function for a fresh token and reconnects", async () => {
  await withServer({ AUTH_SECRET: SECRET }, async (server) => {
    await withRooms(async (rooms) => {
      let calls = 0;
      const { room, seen } = await rooms.join({
        url: server.url(""),
        room: "r10",
        // The first token expires within 1 to 2 s: the server closes the socket with 4001.
        token: () => mintToken("ann", ++calls === 1 ? 2 : 3600),
      });
      assert.equal(room.user, "ann", "the token's sub");
      await seen.untilState("reconnecting");
      await seen.untilState("open", 2);
      assert.equal(calls, 2);
      const ack = await room.send("still here");
      await seen.untilMessages(1);
      assert.equal(seen.messages[0]?.seq, ack.seq);
      assert.deepEqual(seen.errors, []);
    });
  });
});

Deno.test("Token refresh: a refused upgrade (401, expired token) asks the token function again", async () => {
  await withServer({ AUTH_SECRET: SECRET }, async (server) => {
    await withRooms(async (rooms) => {
      let calls = 0;
      const { room } = await rooms.join({
        url: server.url(""),
        room: "r11",
        token: () => mintToken("ann", ++calls === 1 ? -10 : 3600),
      });
      assert.equal(calls, 2);
      assert.equal(room.state, "open");
      const seqs: number[] = [];
      await room.send("readable with the fresh token");
      for await (const message of room.history()) seqs.push(message.seq);
      assert.deepEqual(seqs, [1]);
    });
  });
});

Deno.test("Token refresh: a string token that expires closes the room with token_expired", async () => {
  await withServer({ AUTH_SECRET: SECRET }, async (server) => {
    await withRooms(async (rooms) => {
      const { room, seen } = await rooms.join({
        url: server.url(""),
        room: "r12",
        token: await mintToken("ann", 2),
      });
      await seen.untilState("closed");
      assert.equal(room.state, "closed");
      assert.deepEqual(seen.errors.map((error) => error.code), ["token_expired"]);
      const error = await room.send("too late").then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof ChatError && error.code === "closed");
    });
  });
});

Deno.test("Room.close() closes with 1000, rejects pending sends with closed, and stops for good", async () => {
  await withServer({}, async (server) => {
    const bob = await TestSocket.open(server.chatUrl("r13", "bob"));
    await bob.nextOfType("welcome");
    const room = await connect({ url: server.url(""), room: "r13", user: "ann" });
    const seen = new Recorder(room);
    await bob.nextOfType("presence");
    const pending = room.send("unanswered").then(() => undefined, (e: unknown) => e);
    await room.close();
    const error = await pending;
    assert.ok(error instanceof ChatError && error.code === "closed", String(error));
    assert.equal(room.state, "closed");
    assert.equal(seen.states.at(-1), "closed");
    const left = await bob.nextOfType("presence");
    assert.deepEqual([left.event, left.user], ["leave", "ann"]);
    await room.close(); // idempotent
    await bob.close();
  });
});

Deno.test("connect({ signal }) aborted while the server is unreachable rejects with closed", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const controller = new AbortController();
  const joining = connect({
    url: `http://127.0.0.1:${port}`,
    room: "r14",
    user: "ann",
    backoff: QUICK,
    signal: controller.signal,
  });
  const error = await Promise.race([
    joining.then(() => "resolved", (e: unknown) => e),
    new Promise((resolve) => queueMicrotask(() => resolve("pending"))),
  ]);
  assert.equal(error, "pending", "it keeps retrying an unreachable server");
  controller.abort();
  const refusal = await joining.then(() => undefined, (e: unknown) => e);
  assert.ok(refusal instanceof ChatError && refusal.code === "closed", String(refusal));
});

Deno.test("Room.send() paces itself under the welcome's rate limits: a burst of sends is never rate_limited", async () => {
  // The server takes bursts of 4; unpaced, the fifth of eight frames would be refused.
  await withServer({ RATE_LIMIT_PER_SECOND: "10", RATE_LIMIT_BURST: "4" }, async (server) => {
    await withRooms(async (rooms) => {
      const { room, seen } = await rooms.join({ url: server.url(""), room: "r15", user: "ann" });
      const acks = await Promise.all(seqsUpTo(8).map((i) => room.send(`m${i}`)));
      assert.deepEqual(acks.map((ack) => ack.seq), seqsUpTo(8));
      await seen.untilMessages(8);
      assert.deepEqual(seen.contents, seqsUpTo(8).map((i) => `m${i}`));
      assert.deepEqual(seen.errors, []);
    });
  });
});

Deno.test("Room.send() refuses a frame over the welcome's max_frame_bytes itself, and the connection stays", async () => {
  await withServer({ MAX_FRAME_BYTES: "256" }, async (server) => {
    await withRooms(async (rooms) => {
      const { room, seen } = await rooms.join({ url: server.url(""), room: "r16", user: "ann" });
      const error = await room.send("x".repeat(300)).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof ChatError && error.code === "frame_too_large", String(error));
      assert.equal((await room.send("small")).seq, 1);
      assert.equal(room.state, "open");
      assert.ok(!seen.states.includes("reconnecting"), "never disconnected (no close 1009)");
    });
  });
});

Deno.test("Room.send() beyond maxPending unacknowledged sends rejects with queue_full", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const { room } = await rooms.join({
        url: server.url(""),
        room: "r17",
        user: "ann",
        maxPending: 2,
      });
      const sends = ["a", "b", "c"].map((text) => room.send(text).then((ack) => ack.seq, (e) => e));
      const [a, b, c] = await Promise.all(sends);
      assert.deepEqual([a, b], [1, 2]);
      assert.ok(c instanceof ChatError && c.code === "queue_full" && c.retryable, String(c));
    });
  });
});

Deno.test("connect({ connectTimeoutMs }) rejects with connect_timeout when no welcome comes in time", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const error = await connect({
    url: `http://127.0.0.1:${port}`,
    room: "r18",
    user: "ann",
    backoff: QUICK,
    connectTimeoutMs: 200,
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof ChatError && error.code === "connect_timeout", String(error));
});

Deno.test("Room.edit(), react() and delete() against the server: acks with event_seq, events on every member's room, a cursor that counts them, /history in the latest state", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const url = server.url("");
      const { room: ann, seen: annSeen } = await rooms.join({ url, room: "changes", user: "ann" });
      const { room: bob, seen: bobSeen } = await rooms.join({ url, room: "changes", user: "bob" });
      const { seq } = await ann.send("draft");
      const edited = await ann.edit(seq, "final");
      const reacted = await bob.react(seq, "👍");
      assert.deepEqual([edited.event_seq, reacted.event_seq], [seq + 1, seq + 2]);
      const refused = await bob.edit(seq, "mine now").then(() => undefined, (error) => error);
      assert.ok(refused instanceof ChatError);
      assert.equal(refused.code, "not_author");
      const { seq: second } = await ann.send("gone soon");
      const deleted = await ann.delete(second);

      for (const seen of [annSeen, bobSeen]) {
        await seen.untilItems(5);
        assert.deepEqual(seen.sequence, [
          `message ${seq}`,
          `edit ${seq + 1}→${seq}`,
          `react ${seq + 2}→${seq}`,
          `message ${second}`,
          `delete ${deleted.event_seq}→${second}`,
        ]);
      }
      assert.equal(ann.lastSeq, deleted.event_seq);
      assert.equal(bob.lastSeq, deleted.event_seq);
      const [first, gone] = (await ann.historyPage({ after_seq: 0 })).messages;
      assert.equal(first?.content, "final");
      assert.equal(typeof first?.edited_at, "string");
      assert.deepEqual(first?.reactions, { "👍": { count: 1, me: false } });
      assert.deepEqual([gone?.seq, gone?.deleted, gone?.content], [second, true, ""]);
      const mine = (await bob.historyPage({ after_seq: 0 })).messages[0];
      assert.deepEqual(mine?.reactions, { "👍": { count: 1, me: true } });
    });
  });
});

Deno.test("A resume after changes: since_seq is the last change's event_seq, and what was missed comes in order", async () => {
  await withServer({}, async (server) => {
    await withRooms(async (rooms) => {
      const url = server.url("");
      const spy = spySockets();
      const { room: ann, seen } = await rooms.join({
        url,
        room: "resumed",
        user: "ann",
        WebSocket: spy.WebSocket,
      });
      const { room: bob } = await rooms.join({ url, room: "resumed", user: "bob" });
      const { seq } = await bob.send("hello");
      const { event_seq: eventSeq } = await bob.react(seq, "tada");
      await seen.untilItems(2);
      spy.log.sockets[0]?.close(4999, "test");
      await seen.untilState("reconnecting");
      await bob.edit(seq, "hello again");
      await seen.untilItems(3);
      assert.equal(spy.log.urls[1]?.searchParams.get("since_seq"), String(eventSeq));
      assert.deepEqual(seen.sequence, [
        `message ${seq}`,
        `react ${eventSeq}→${seq}`,
        `edit ${eventSeq + 1}→${seq}`,
      ]);
      assert.equal(ann.lastSeq, eventSeq + 1);
    });
  });
});
