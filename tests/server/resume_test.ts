import assert from "node:assert/strict";
import { v7 as uuidv7 } from "uuid";
import type { ChatMessage } from "../../chat/message.ts";
import { GatedStore } from "../support/gated_store.ts";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket, UPGRADE_HEADERS } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

/** Messages stored before this server started (as after a restart): older than any new id. */
function seed(room: string, count: number): ChatMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    id: uuidv7(),
    room,
    seq: i + 1,
    sender: "earlier",
    content: `old ${i}`,
    timestamp: new Date().toISOString(),
  }));
}

/** A gated store already holding `count` seeded messages of `room`. */
async function seededStore(
  room: string,
  count: number,
): Promise<{ store: GatedStore; old: ChatMessage[] }> {
  const store = new GatedStore();
  const old = seed(room, count);
  await store.inner.saveBatch(old);
  return { store, old };
}

/** Frames after welcome up to and including `resume`. */
async function replayOf(socket: TestSocket): Promise<{ messages: Frame[]; resume: Frame }> {
  assert.equal((await socket.next()).type, "welcome");
  const messages: Frame[] = [];
  for (;;) {
    const frame = await socket.next();
    if (frame.type === "resume") return { messages, resume: frame };
    assert.equal(frame.type, "message", "only messages come between welcome and resume");
    messages.push(frame);
  }
}

Deno.test("Resume from the room's buffer replays what came after since, then live frames", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("resume", "ann"));
  await ann.nextOfType("welcome");
  for (let i = 0; i < 10; i++) ann.send(`m${i}`);
  const sent = await ann.collect("message", 10);

  const bob = await TestSocket.open(app.chatUrl("resume", "bob") + `&since=${sent[3]?.id}`);
  const { messages, resume } = await replayOf(bob);
  assert.deepEqual(messages, sent.slice(4));
  assert.deepEqual(resume, { type: "resume", complete: true, replayed: 6 });
  ann.send("live");
  const live = await bob.nextOfType("message");
  assert.equal(live.content, "live");

  // A cursor at the newest message replays nothing.
  const cat = await TestSocket.open(app.chatUrl("resume", "cat") + `&since=${live.id}`);
  assert.deepEqual((await replayOf(cat)).resume, { type: "resume", complete: true, replayed: 0 });
  await Promise.all([ann.close(), bob.close(), cat.close()]);
  await app.close();
});

Deno.test("Resume across the buffer and the store, with unstored messages and live traffic during the replay", async () => {
  const { store, old } = await seededStore("mixed", 8);
  const app = startTestServer({ RESUME_LIMIT: "50" }, store);
  const ann = await TestSocket.open(app.chatUrl("mixed", "ann"));
  await ann.nextOfType("welcome");

  store.saves.close(); // new messages stay in the room's buffer only, not yet stored
  for (let i = 0; i < 5; i++) ann.send(`new ${i}`);
  const recent = await ann.collect("message", 5);

  store.reads.close(); // the replay's store read is slow...
  const bob = await TestSocket.open(app.chatUrl("mixed", "bob") + `&since=${old[2]?.id}`);
  await store.reads.arrival();
  for (let i = 0; i < 5; i++) ann.send(`live ${i}`); // ...while the room goes on
  const live = await ann.collect("message", 5);
  store.reads.open();

  const { messages, resume } = await replayOf(bob);
  const strip = (frame: Frame) => ({ id: frame.id, content: frame.content });
  assert.deepEqual(
    messages.map(strip),
    [...old.slice(3), ...recent].map(strip),
    "stored and unstored messages after since, in order, each once",
  );
  assert.deepEqual(resume, { type: "resume", complete: true, replayed: 10 });
  const after = await bob.collect("message", 5);
  assert.deepEqual(
    after,
    live,
    "live messages from during the replay follow it, none lost or doubled",
  );

  store.saves.open();
  await Promise.all([ann.close(), bob.close()]);
  await app.close();
});

Deno.test({
  name:
    "Resume from an old cursor during a store outage replays the unstored messages that left the room's buffer",
  fn: async () => {
    const { store, old } = await seededStore("outage", 4);
    const app = startTestServer({ RESUME_LIMIT: "5" }, store);
    const ann = await TestSocket.open(app.chatUrl("outage", "ann"));
    await ann.nextOfType("welcome");
    store.saves.close(); // an outage: nothing new is stored
    for (let i = 0; i < 10; i++) ann.send(`unstored ${i}`);
    const unstored = await ann.collect("message", 10); // the buffer keeps the newest 5
    // The cursor is the newest stored message: what follows it is only in the buffer, or lost.
    const bob = await TestSocket.open(app.chatUrl("outage", "bob") + `&since=${old[3]?.id}`);
    const { messages, resume } = await replayOf(bob);
    assert.deepEqual(messages.map((m) => m.id), unstored.slice(0, 5).map((m) => m.id));
    assert.deepEqual(resume, { type: "resume", complete: false, replayed: 5 });
    // The catch-up the resume frame asks for finds the rest, although none of it is stored yet.
    const response = await fetch(app.url(`/history?r=outage&after=${messages.at(-1)?.id}`));
    const rest: ChatMessage[] = await response.json();
    assert.deepEqual(rest.map((m) => m.id), unstored.slice(5).map((m) => m.id));
    store.saves.open();
    await Promise.all([ann.close(), bob.close()]);
    await app.close();
  },
});

Deno.test("Resume into a room that emptied meanwhile replays its messages not yet stored", async () => {
  const { store, old } = await seededStore("emptied", 2);
  const app = startTestServer({}, store);
  const ann = await TestSocket.open(app.chatUrl("emptied", "ann"));
  await ann.nextOfType("welcome");
  store.saves.close();
  for (let i = 0; i < 3; i++) ann.send(`before leaving ${i}`);
  const unstored = await ann.collect("message", 3);
  await ann.close(); // the room closes with its buffer; the messages are still not stored
  await waitFor("the room to close", async () => {
    const rooms = await (await fetch(app.url("/rooms"))).json();
    return rooms.length === 0 || undefined;
  });
  const bob = await TestSocket.open(app.chatUrl("emptied", "bob") + `&since=${old[1]?.id}`);
  const { messages, resume } = await replayOf(bob);
  assert.deepEqual(messages.map((m) => m.content), unstored.map((m) => m.content));
  assert.deepEqual(resume, { type: "resume", complete: true, replayed: 3 });
  store.saves.open();
  await bob.close();
  await app.close();
});

Deno.test("Resume is capped at RESUME_LIMIT; the rest comes from /history with no gap", async () => {
  const { store, old } = await seededStore("capped", 30);
  const app = startTestServer({ RESUME_LIMIT: "10" }, store);
  const bob = await TestSocket.open(app.chatUrl("capped", "bob") + `&since=${old[0]?.id}`);
  const { messages, resume } = await replayOf(bob);
  assert.deepEqual(resume, { type: "resume", complete: false, replayed: 10 });
  assert.deepEqual(messages.map((frame) => frame.content), old.slice(1, 11).map((m) => m.content));

  const rest: Frame[] = [];
  let cursor = messages.at(-1)?.id;
  for (;;) {
    const page = await (await fetch(app.url(`/history?r=capped&limit=7&after=${cursor}`))).json();
    if (page.length === 0) break;
    rest.push(...page);
    cursor = page.at(-1).id;
  }
  assert.deepEqual(
    [...messages, ...rest].map((frame) => frame.id),
    old.slice(1).map((m) => m.id),
    "replay plus history is every message after since, once",
  );
  await bob.close();
  await app.close();
});

Deno.test("Resume with a store that fails replays the buffer and says it is incomplete", async () => {
  const { store, old } = await seededStore("broken", 3);
  store.history = () => Promise.reject(new Error("database down"));
  const app = startTestServer({}, store);
  const bob = await TestSocket.open(app.chatUrl("broken", "bob") + `&since=${old[0]?.id}`);
  const { messages, resume } = await replayOf(bob);
  assert.deepEqual(messages, []);
  assert.deepEqual(resume, { type: "resume", complete: false, replayed: 0 });
  await bob.close();
  await app.close();
});

Deno.test("GET /chat with a since that is not a message id answers 400 invalid_cursor", async () => {
  const app = startTestServer();
  const response = await fetch(app.url("/chat?r=a&u=ann&since=yesterday"), {
    headers: UPGRADE_HEADERS,
  });
  assert.equal(response.status, 400);
  assert.equal((await response.json()).error.code, "invalid_cursor");
  await app.close();
});
