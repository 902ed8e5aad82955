/**
 * The SDK against a scripted server that says exactly what a test needs, for what the real
 * server says only in rare conditions: `gap` frames (several instances), seqs gone for good
 * (retention), `/history` failing or incomplete (a store outage), a page of another epoch; and
 * for the sequence that messages and changes (edit, delete, react) share, item by item.
 */
import assert from "node:assert/strict";
import { ChatError, connect } from "../../static/sdk/chat.js";
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
  /** A frame the SDK sent, answered with `send` (nothing by default). */
  receive?(frame: Record<string, unknown>, send: (frame: Record<string, unknown>) => void): void;
}

/** A server on 127.0.0.1 that speaks only its script. */
class ScriptedServer {
  readonly socketQueries: URLSearchParams[] = [];
  readonly historyQueries: { query: URLSearchParams; atMs: number }[] = [];
  /** The frames the SDK sent, in order. */
  readonly received: Record<string, unknown>[] = [];
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
      const send = (frame: Record<string, unknown>) => socket.send(JSON.stringify(frame));
      socket.onclose = () => this.#sockets.delete(socket);
      socket.onopen = () => script.socket(send, url.searchParams, index);
      socket.onmessage = (event) => {
        const frame = JSON.parse(String(event.data));
        this.received.push(frame);
        script.receive?.(frame, send);
      };
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

/** The change at `eventSeq` to message `seq`, as frames and `/history?changes=1` carry it. */
function change(
  type: "edit" | "delete" | "react",
  eventSeq: number,
  seq: number,
  fields: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type,
    id: `019ad1f4-6c7e-7a3b-9d1e-c${String(eventSeq).padStart(11, "0")}`,
    room: ROOM,
    event_seq: eventSeq,
    user: "bob",
    seq,
    ...(type === "edit" && { content: `m${seq} edited` }),
    ...(type === "react" && { reaction: "👍", on: true }),
    timestamp: "2026-12-01T18:00:01.000Z",
    ...fields,
  };
}

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
    assert.deepEqual(query, {
      r: ROOM,
      u: "ann",
      after_seq: "1",
      before_seq: "4",
      limit: "500",
      changes: "1",
    });
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
    assert.deepEqual(resumed, {
      r: ROOM,
      u: "ann",
      v: "2",
      batch: "1",
      since_seq: "1",
      epoch: "e1",
    });
    assert.deepEqual(seen.states, ["open", "reconnecting", "open"]);
  });
});

Deno.test("Change frames are items of the sequence: edit, delete and react events in order, the cursor past them, no gap read", async () => {
  const react = change("react", 4, 3);
  await withScript({
    socket(send) {
      send(welcome("e1", 0));
      send(frame(1));
      send(change("edit", 2, 1));
      send(frame(3));
      send(react);
      send(change("delete", 5, 1, { user: "mod" }));
      send(frame(6));
    },
    history: () => page("e1", []),
  }, async (server, room, seen) => {
    await seen.untilItems(6);
    assert.deepEqual(seen.sequence, [
      "message 1",
      "edit 2→1",
      "message 3",
      "react 4→3",
      "delete 5→1",
      "message 6",
    ]);
    const { type: _type, ...reactEvent } = react;
    assert.deepEqual(seen.items[3], { type: "react", event: reactEvent });
    assert.equal(room.lastSeq, 6);
    assert.equal(server.historyQueries.length, 0, "no hole between messages 3 and 6");
    assert.equal(room.limits.max_content_chars, 4000);
  });
});

Deno.test("The resume cursor counts change items: since_seq is a change's event_seq when it came last", async () => {
  await withScript({
    socket(send, _query, index) {
      if (index === 0) {
        send(welcome("e1", 0));
        send(frame(1));
        send(change("react", 2, 1));
        return;
      }
      send(welcome("e1", 3));
      send(change("edit", 3, 1));
      send({ type: "resume", complete: true, replayed: 1, epoch: "e1" });
    },
    history: () => page("e1", []),
  }, async (server, room, seen) => {
    await seen.untilItems(2);
    await server.closeSockets(1001);
    await seen.untilItems(3);
    assert.equal(server.socketQueries[1]?.get("since_seq"), "2");
    assert.deepEqual(seen.sequence, ["message 1", "react 2→1", "edit 3→1"]);
    assert.equal(room.lastSeq, 3);
  });
});

Deno.test("A gap is filled from /history with changes=1: its change items are delivered in their place, none reported gone", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 0));
      send(frame(1));
      send({ type: "gap", room: ROOM, epoch: "e1", from_seq: 2, to_seq: 4 });
      send(frame(5));
    },
    history: () =>
      Response.json([change("edit", 2, 1), frame(3), change("delete", 4, 3)], {
        headers: { "x-chat-epoch": "e1" },
      }),
  }, async (server, room, seen) => {
    await seen.untilItems(5);
    assert.deepEqual(seen.sequence, [
      "message 1",
      "edit 2→1",
      "message 3",
      "delete 4→3",
      "message 5",
    ]);
    assert.equal(room.lastSeq, 5);
    assert.deepEqual(seen.errors, []);
    const query = Object.fromEntries(server.historyQueries[0]?.query ?? []);
    assert.deepEqual(query, {
      r: ROOM,
      u: "ann",
      after_seq: "1",
      before_seq: "5",
      limit: "500",
      changes: "1",
    });
  });
});

Deno.test("An incomplete resume is filled with changes=1 up to the welcome's last_seq, which counts changes", async () => {
  await withScript({
    socket(send, _query, index) {
      if (index === 0) {
        send(welcome("e1", 0));
        send(frame(1));
        return;
      }
      send(welcome("e1", 4));
      send({ type: "resume", complete: false, replayed: 0, epoch: "e1", reason: "unavailable" });
    },
    history: () =>
      Response.json([frame(2), change("react", 3, 2), change("edit", 4, 2)], {
        headers: { "x-chat-epoch": "e1" },
      }),
  }, async (server, room, seen) => {
    await seen.untilItems(1);
    await server.closeSockets(1001);
    await seen.untilItems(4);
    assert.deepEqual(seen.sequence, ["message 1", "message 2", "react 3→2", "edit 4→2"]);
    assert.equal(room.lastSeq, 4);
    assert.equal(server.historyQueries[0]?.query.get("changes"), "1");
    assert.deepEqual(seen.errors, []);
  });
});

Deno.test("Room.edit(), delete() and react() send with a client_id and settle by it: an ack's seq is the event_seq, an echo settles too, an error rejects", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 1));
    },
    receive(sent, send) {
      const clientId = sent.client_id;
      if (sent.type === "edit") {
        send({ type: "ack", client_id: clientId, id: "edit-id", seq: 2 });
        send(change("edit", 2, 1, { user: "ann", content: sent.content, client_id: clientId }));
      } else if (sent.type === "react") {
        // No ack: the echo (the react frame with the client_id) settles it alone.
        send(change("react", 3, 1, { user: "ann", id: "react-id", client_id: clientId }));
      } else if (sent.type === "delete") {
        send({ type: "error", code: "not_author", message: "not yours", client_id: clientId });
      }
    },
    history: () => page("e1", []),
  }, async (server, room, seen) => {
    assert.deepEqual(await room.edit(1, "fixed"), { id: "edit-id", event_seq: 2 });
    assert.deepEqual(await room.react(1, "👍"), { id: "react-id", event_seq: 3 });
    const refused = await room.delete(1).then(() => undefined, (error: unknown) => error);
    assert.ok(refused instanceof ChatError);
    assert.equal(refused.code, "not_author");
    assert.equal(refused.retryable, false);
    const [edit, react, del] = server.received;
    assert.deepEqual(edit, { type: "edit", seq: 1, content: "fixed", client_id: edit?.client_id });
    assert.deepEqual(react, {
      type: "react",
      seq: 1,
      reaction: "👍",
      on: true,
      client_id: react?.client_id,
    });
    assert.deepEqual(del, { type: "delete", seq: 1, client_id: del?.client_id });
    assert.equal(refused.clientId, del?.client_id);
    for (const each of [edit, react, del]) assert.match(String(each?.client_id), /^[\w-]{1,64}$/);
    await seen.untilItems(2);
    assert.deepEqual(seen.sequence, ["edit 2→1", "react 3→1"]);
    await assert.rejects(room.react(1, "👍", "yes" as unknown as boolean), TypeError);
    await assert.rejects(room.edit(0, "x"), TypeError);
  });
});

Deno.test("A retried change with the same client_id is one send; react(seq, r, false) takes a reaction back", async () => {
  await withScript({
    socket(send) {
      send(welcome("e1", 1));
    },
    receive(sent, send) {
      send({ type: "ack", client_id: sent.client_id, id: "x", seq: 2 });
    },
    history: () => page("e1", []),
  }, async (server, room) => {
    const first = room.react(1, "tada", false, { client_id: "r-1" });
    const again = room.react(1, "tada", false, { client_id: "r-1" });
    assert.equal(first, again);
    assert.deepEqual(await first, { id: "x", event_seq: 2 });
    assert.deepEqual(server.received, [
      { type: "react", seq: 1, reaction: "tada", on: false, client_id: "r-1" },
    ]);
  });
});

Deno.test('Messages in their latest state: a deleted one has content "" and deleted, an edited one edited_at; /history reactions pass through', async () => {
  const deleted = { ...message(1), content: undefined, deleted: true };
  const edited = { ...message(2), content: "new", edited_at: "2026-12-01T18:05:00.000Z" };
  const reacted = { ...message(3), reactions: { "👍": { count: 2, me: true } } };
  await withScript({
    socket(send) {
      send(welcome("e1", 0));
      send({ type: "message", ...deleted });
    },
    history: () => Response.json([deleted, edited, reacted], { headers: { "x-chat-epoch": "e1" } }),
  }, async (_server, room, seen) => {
    await seen.untilMessages(1);
    const { content: _content, ...rest } = deleted;
    assert.deepEqual(seen.messages[0], { ...rest, content: "" });
    const { messages } = await room.historyPage({ before_seq: 4 });
    assert.deepEqual(messages, [{ ...rest, content: "" }, edited, reacted]);
  });
});

Deno.test("The welcome's read_seq, unread and moderator are the room's readSeq, unread and moderator; own receipts raise readSeq", async () => {
  await withScript({
    socket(send) {
      send({ ...welcome("e1", 9), read_seq: 4, unread: 3, moderator: true });
      send({ type: "read", room: ROOM, user: "bob", seq: 9 });
      send({ type: "read", room: ROOM, user: "ann", seq: 6 });
    },
    history: () => page("e1", []),
  }, async (_server, room, seen) => {
    const reads: unknown[] = [];
    const off = room.on("read", (event) => reads.push(event));
    await seen.until("two receipts", () => reads.length === 2);
    off();
    assert.deepEqual(reads, [
      { room: ROOM, user: "bob", seq: 9 },
      { room: ROOM, user: "ann", seq: 6 },
    ]);
    assert.deepEqual([room.readSeq, room.unread, room.moderator], [6, 3, true]);
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
