/**
 * The SDK against a scripted server that says exactly what a test needs, for what the real
 * server says only in rare conditions: `gap` frames (several instances), seqs gone for good
 * (retention), `/history` failing or incomplete (a store outage), a page of another epoch.
 */
import assert from "node:assert/strict";
import { connect } from "../../static/sdk/chat.js";
import type { Room } from "../../static/sdk/chat.d.ts";
import { Recorder } from "./_recorder.ts";

const ROOM = "scripted";

/** What the scripted server does on the `index`th socket and the `index`th `/history` request. */
interface Script {
  socket(
    send: (frame: Record<string, unknown>) => void,
    query: URLSearchParams,
    index: number,
  ): void;
  history(query: URLSearchParams, index: number): Response;
}

/** A server on 127.0.0.1 that speaks only its script. */
class ScriptedServer {
  readonly socketQueries: URLSearchParams[] = [];
  readonly historyQueries: { query: URLSearchParams; atMs: number }[] = [];
  readonly #sockets = new Set<WebSocket>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor(script: Script) {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const url = new URL(request.url);
      if (url.pathname === "/history") {
        this.historyQueries.push({ query: url.searchParams, atMs: Date.now() });
        return script.history(url.searchParams, this.historyQueries.length - 1);
      }
      if (request.headers.get("upgrade") !== "websocket") {
        return new Response(null, { status: 426 });
      }
      const { socket, response } = Deno.upgradeWebSocket(request);
      const index = this.socketQueries.push(url.searchParams) - 1;
      this.#sockets.add(socket);
      socket.onclose = () => this.#sockets.delete(socket);
      socket.onopen = () =>
        script.socket((frame) => socket.send(JSON.stringify(frame)), url.searchParams, index);
      return response;
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Closes every socket open now with `code`, as a server going away would. */
  closeSockets(code: number): Promise<void> {
    const closed = [...this.#sockets].map((socket) =>
      new Promise((resolve) => {
        socket.addEventListener("close", resolve, { once: true });
        socket.close(code, "test");
      })
    );
    return Promise.all(closed).then(() => {});
  }

  async close(): Promise<void> {
    const closed = [...this.#sockets].map((socket) =>
      new Promise((resolve) => {
        socket.addEventListener("close", resolve, { once: true });
        socket.close();
      })
    );
    await Promise.all(closed);
    await this.#server.shutdown();
  }
}

function welcome(epoch: string, lastSeq: number): Record<string, unknown> {
  return {
    type: "welcome",
    protocol: 2,
    room: ROOM,
    user: "ann",
    members: ["ann"],
    epoch,
    last_seq: lastSeq,
    limits: {
      max_content_chars: 4000,
      max_frame_bytes: 16384,
      rate_per_second: 10,
      rate_burst: 20,
    },
  };
}

/** Message `seq` as `/history` lists it (the frame adds `type`). */
function message(seq: number): Record<string, unknown> {
  const id = `019ad1f4-6c7e-7a3b-9d1e-${String(seq).padStart(12, "0")}`;
  return {
    id,
    room: ROOM,
    seq,
    sender: "bob",
    content: `m${seq}`,
    timestamp: "2026-12-01T18:00:00.123Z",
  };
}

const frame = (seq: number) => ({ type: "message", ...message(seq) });

function page(
  epoch: string,
  seqs: readonly number[],
  headers: Record<string, string> = {},
): Response {
  return Response.json(seqs.map(message), { headers: { "x-chat-epoch": epoch, ...headers } });
}

async function withScript(
  script: Script,
  test: (server: ScriptedServer, room: Room, seen: Recorder) => Promise<void>,
): Promise<void> {
  const server = new ScriptedServer(script);
  try {
    const room = await connect({
      url: server.url,
      room: ROOM,
      user: "ann",
      backoff: { baseMs: 20, maxMs: 100 },
    });
    const seen = new Recorder(room);
    try {
      await test(server, room, seen);
    } finally {
      seen.stop();
      await room.close();
    }
  } finally {
    await server.close();
  }
}

Deno.test("A gap frame: the missing seqs are read from /history and delivered before later ones", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 0));
      send(frame(1));
      send({ type: "gap", room: ROOM, epoch: "e1", from_seq: 2, to_seq: 3 });
      send(frame(4));
      send(frame(5));
    },
    history: () => page("e1", [2, 3]),
  }, async (server, room, seen) => {
    await seen.untilMessages(5);
    assert.deepEqual(seen.seqs, [1, 2, 3, 4, 5]);
    assert.equal(room.lastSeq, 5);
    const query = Object.fromEntries(server.historyQueries[0]?.query ?? []);
    assert.deepEqual(query, { r: ROOM, after_seq: "1", before_seq: "4", limit: "500" });
  });
});

Deno.test("Seqs that a complete /history page lacks are reported gone (messages_unavailable), and delivery goes on", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 0));
      send(frame(1));
      send({ type: "gap", room: ROOM, epoch: "e1", from_seq: 2, to_seq: 4 });
      send(frame(5));
    },
    history: () => page("e1", [3]),
  }, async (_server, room, seen) => {
    await seen.untilMessages(3);
    assert.deepEqual(seen.seqs, [1, 3, 5]);
    assert.equal(room.lastSeq, 5);
    assert.deepEqual(seen.errors.map((error) => [error.code, error.message]), [
      ["messages_unavailable", `messages 2 to 2 of ${ROOM} are no longer stored`],
      ["messages_unavailable", `messages 4 to 4 of ${ROOM} are no longer stored`],
    ]);
  });
});

Deno.test("A gap while /history fails (503, Retry-After) or is incomplete is read again, never sooner than asked", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 0));
      send(frame(1));
      send({ type: "gap", room: ROOM, epoch: "e1", from_seq: 2, to_seq: 3 });
      send(frame(4));
    },
    history(_query, index) {
      if (index === 0) {
        return Response.json(
          { error: { code: "store_unavailable", message: "the store is down" } },
          { status: 503, headers: { "retry-after": "1" } },
        );
      }
      if (index === 1) return page("e1", [2], { "x-chat-incomplete": "true" });
      return page("e1", [3]);
    },
  }, async (server, _room, seen) => {
    await seen.untilMessages(4);
    assert.deepEqual(seen.seqs, [1, 2, 3, 4]);
    const [first, second, third] = server.historyQueries;
    assert.ok((second?.atMs ?? 0) - (first?.atMs ?? 0) >= 1000, "Retry-After: 1 was honoured");
    assert.equal(third?.query.get("after_seq"), "2", "the incomplete page's seq 2 is kept");
    assert.deepEqual(seen.errors, [], "a wait is not an error");
  });
});

Deno.test("A /history page of another epoch drops the socket; the resume says epoch_changed and the room starts over", async () => {
  await withScript({
    socket(send, _query, index) {
      if (index === 0) {
        send(welcome("e1", 0));
        send(frame(1));
        send({ type: "gap", room: ROOM, epoch: "e1", from_seq: 2, to_seq: 2 });
        return;
      }
      send(welcome("e2", 7));
      send({ type: "resume", complete: false, replayed: 0, epoch: "e2", reason: "epoch_changed" });
      send(frame(8));
    },
    history: () => page("e2", [2]),
  }, async (server, room, seen) => {
    await seen.untilMessages(2);
    assert.deepEqual(seen.seqs, [1, 8]);
    assert.deepEqual(seen.epochs, [{ epoch: "e2", previous: "e1", last_seq: 7 }]);
    assert.equal(room.epoch, "e2");
    const resumed = Object.fromEntries(server.socketQueries[1] ?? []);
    assert.deepEqual(resumed, { r: ROOM, u: "ann", v: "2", since_seq: "1", epoch: "e1" });
    assert.deepEqual(seen.states, ["open", "reconnecting", "open"]);
  });
});

Deno.test("A deleted frame is emitted as `deleted`, and its seq is no hole (nothing read from /history)", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 0));
      send(frame(1));
      send({ type: "deleted", room: ROOM, seq: 2, id: "gone" });
      send(frame(3));
    },
    history: () => page("e1", []),
  }, async (server, room, seen) => {
    const deleted: unknown[] = [];
    const off = room.on("deleted", (event) => deleted.push(event));
    await seen.untilMessages(2);
    off();
    assert.deepEqual(seen.seqs, [1, 3]);
    assert.equal(room.lastSeq, 3);
    assert.deepEqual(deleted, [{ room: ROOM, seq: 2, id: "gone" }]);
    assert.equal(server.historyQueries.length, 0);
    assert.equal(room.limits.max_content_chars, 4000);
  });
});

Deno.test("connect({ holdMs: 0 }) delivers past a hole at once; the hole's messages follow, each once", async () => {
  const server = new ScriptedServer({
    socket(send) {
      send(welcome("e1", 0));
      send(frame(1));
      send({ type: "gap", room: ROOM, epoch: "e1", from_seq: 2, to_seq: 2 });
      send(frame(3));
    },
    history: (_query, index) =>
      index === 0
        ? Response.json({ error: { code: "store_unavailable", message: "down" } }, {
          status: 503,
          headers: { "retry-after": "1" },
        })
        : page("e1", [2]),
  });
  const room = await connect({ url: server.url, room: ROOM, user: "ann", holdMs: 0 });
  const seen = new Recorder(room);
  const fills: boolean[] = [];
  const off = room.on("fill", (event) => fills.push(event.waiting));
  try {
    await seen.untilMessages(3);
    assert.deepEqual(seen.seqs, [1, 3, 2]);
    assert.equal(room.lastSeq, 3);
    await seen.until("the fill is done", () => fills.at(-1) === false);
    assert.deepEqual(fills, [true, false]);
  } finally {
    off();
    seen.stop();
    await room.close();
    await server.close();
  }
});

Deno.test("Room.historyPage() returns an incomplete page with its holes instead of an error", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 9));
    },
    history: () => page("e1", [7, 9], { "x-chat-incomplete": "true" }),
  }, async (_server, room) => {
    const result = await room.historyPage({ before_seq: 10, limit: 5 });
    assert.equal(result.incomplete, true);
    assert.deepEqual(result.messages.map((m) => m.seq), [7, 9]);
    assert.deepEqual(result.holes, [{ from_seq: 5, to_seq: 6 }, { from_seq: 8, to_seq: 8 }]);
  });
});

Deno.test("Room state events carry retryAt and why; reconnectNow() connects at once", async () => {
  await withScript({
    socket(send, _query, index) {
      send(welcome("e1", 0));
      if (index > 0) send({ type: "resume", complete: true, replayed: 0, epoch: "e1" });
    },
    history: () => page("e1", []),
  }, async (server, room, seen) => {
    const events: { state: string; retryAt?: number; close?: { code: number } }[] = [];
    const off = room.on("state", (event) => events.push(event));
    await server.closeSockets(4999);
    await seen.untilState("reconnecting");
    const waiting = events.find((event) => event.state === "reconnecting");
    assert.ok((waiting?.retryAt ?? 0) >= Date.now() - 1000);
    assert.equal(waiting?.close?.code, 4999);
    room.reconnectNow();
    await seen.untilState("open", 2);
    off();
  });
});
