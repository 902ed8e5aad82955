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

/** A gated store already holding `count` seeded messages of `room`, and the room's epoch. */
async function seededStore(
  room: string,
  count: number,
): Promise<{ store: GatedStore; old: ChatMessage[]; epoch: string }> {
  const store = new GatedStore();
  const old = seed(room, count);
  await store.inner.saveBatch(old);
  const sequence = await store.inner.roomSequence(room);
  assert.ok(sequence !== undefined);
  return { store, old, epoch: sequence.epoch };
}

/** The query of a protocol 2 cursor. */
function since(seq: number | undefined, epoch: string): string {
  return `&since_seq=${seq}&epoch=${epoch}`;
}

/** `welcome`, the frames after it up to `resume`, and `resume`. */
async function replayOf(
  socket: TestSocket,
): Promise<{ welcome: Frame; messages: Frame[]; resume: Frame }> {
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

const seqsOf = (frames: readonly Frame[]) => frames.map((frame) => frame.seq);

Deno.test("Resume with since_seq and epoch replays exactly the seqs after it, then live frames", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("resume", "ann"));
  const { epoch } = await ann.nextOfType("welcome");
  for (let i = 0; i < 10; i++) ann.send(`m${i}`);
  const sent = await ann.collect("message", 10);

  const bob = await TestSocket.open(app.chatUrl("resume", "bob") + since(sent[3]?.seq, epoch));
  const { welcome, messages, resume } = await replayOf(bob);
  assert.deepEqual([welcome.epoch, welcome.last_seq], [epoch, 10]);
  assert.deepEqual(messages, sent.slice(4));
  assert.deepEqual(resume, { type: "resume", complete: true, replayed: 6, epoch });
  ann.send("live");
  const live = await bob.nextOfType("message");
  assert.deepEqual([live.content, live.seq], ["live", 11]);

  // A cursor at the newest message replays nothing; since_seq=0 asks for everything.
  const cat = await TestSocket.open(app.chatUrl("resume", "cat") + since(11, epoch));
  assert.deepEqual((await replayOf(cat)).resume, {
    type: "resume",
    complete: true,
    replayed: 0,
    epoch,
  });
  const dan = await TestSocket.open(app.chatUrl("resume", "dan") + "&since_seq=0");
  const all = await replayOf(dan);
  assert.deepEqual(all.messages, [...sent, live]);
  assert.deepEqual(all.resume, { type: "resume", complete: true, replayed: 11, epoch });
  await Promise.all([ann.close(), bob.close(), cat.close(), dan.close()]);
  await app.close();
});

Deno.test("Resume with an epoch that is not the room's replays nothing and says epoch_changed", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("epochs", "ann"));
  const { epoch } = await ann.nextOfType("welcome");
  for (let i = 0; i < 3; i++) ann.send(`m${i}`);
  const sent = await ann.collect("message", 3);

  // A cursor of another epoch: seq 1 there is not seq 1 here.
  const bob = await TestSocket.open(app.chatUrl("epochs", "bob") + since(1, "an-old-epoch"));
  const { messages, resume } = await replayOf(bob);
  assert.deepEqual(messages, []);
  assert.deepEqual(resume, {
    type: "resume",
    complete: false,
    replayed: 0,
    epoch,
    reason: "epoch_changed",
  });
  ann.send("live");
  assert.equal((await bob.nextOfType("message")).content, "live", "live frames follow");

  // since_seq=0 is everything whatever the epoch: there is nothing to mistake.
  const cat = await TestSocket.open(app.chatUrl("epochs", "cat") + since(0, "an-old-epoch"));
  const all = await replayOf(cat);
  assert.deepEqual(seqsOf(all.messages), [...seqsOf(sent), 4]);
  assert.deepEqual(all.resume, { type: "resume", complete: true, replayed: 4, epoch });
  await Promise.all([ann.close(), bob.close(), cat.close()]);
  await app.close();
});

Deno.test("Resume with a protocol 1 since=<id> still replays what came after that message", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("resume", "ann"));
  const { epoch } = await ann.nextOfType("welcome");
  for (let i = 0; i < 10; i++) ann.send(`m${i}`);
  const sent = await ann.collect("message", 10);

  const bob = await TestSocket.open(app.chatUrl("resume", "bob") + `&since=${sent[3]?.id}`);
  const { messages, resume } = await replayOf(bob);
  assert.deepEqual(messages, sent.slice(4));
  assert.deepEqual(resume, { type: "resume", complete: true, replayed: 6, epoch });
  // The nil UUID asks for everything; an id newer than every message, for nothing.
  const nil = "00000000-0000-0000-0000-000000000000";
  const cat = await TestSocket.open(app.chatUrl("resume", "cat") + `&since=${nil}`);
  assert.deepEqual((await replayOf(cat)).messages, sent);
  const dan = await TestSocket.open(app.chatUrl("resume", "dan") + `&since=${uuidv7()}`);
  assert.deepEqual((await replayOf(dan)).resume, {
    type: "resume",
    complete: true,
    replayed: 0,
    epoch,
  });
  await Promise.all([ann.close(), bob.close(), cat.close(), dan.close()]);
  await app.close();
});

Deno.test("Resume across the buffer and the store, with unstored messages and live traffic during the replay", async () => {
  const { store, old, epoch } = await seededStore("mixed", 8);
  const app = startTestServer({ RESUME_LIMIT: "50" }, store);
  const ann = await TestSocket.open(app.chatUrl("mixed", "ann"));
  await ann.nextOfType("welcome");

  store.saves.close(); // new messages stay in the write-behind log only, not yet stored
  for (let i = 0; i < 5; i++) ann.send(`new ${i}`);
  const recent = await ann.collect("message", 5);

  store.reads.close(); // the replay's store read is slow...
  const bob = await TestSocket.open(app.chatUrl("mixed", "bob") + since(old[2]?.seq, epoch));
  await store.reads.arrival();
  for (let i = 0; i < 5; i++) ann.send(`live ${i}`); // ...while the room goes on
  const live = await ann.collect("message", 5);
  store.reads.open();

  const { messages, resume } = await replayOf(bob);
  const strip = (frame: Frame) => ({ id: frame.id, seq: frame.seq, content: frame.content });
  assert.deepEqual(
    messages.map(strip),
    [...old.slice(3), ...recent].map(strip),
    "stored and unstored messages after the cursor, in seq order, each once",
  );
  assert.deepEqual(seqsOf(messages), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  assert.deepEqual(resume, { type: "resume", complete: true, replayed: 10, epoch });
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
    const { store, old, epoch } = await seededStore("outage", 4);
    const app = startTestServer({ RESUME_LIMIT: "5" }, store);
    const ann = await TestSocket.open(app.chatUrl("outage", "ann"));
    await ann.nextOfType("welcome");
    store.saves.close(); // an outage: nothing new is stored
    for (let i = 0; i < 10; i++) ann.send(`unstored ${i}`);
    const unstored = await ann.collect("message", 10); // the buffer keeps the newest 5
    // The cursor is the newest stored message: what follows it is only in the buffer, or held
    // by the write-behind log.
    const bob = await TestSocket.open(app.chatUrl("outage", "bob") + since(old[3]?.seq, epoch));
    const { messages, resume } = await replayOf(bob);
    assert.deepEqual(messages, unstored.slice(0, 5));
    assert.deepEqual(resume, {
      type: "resume",
      complete: false,
      replayed: 5,
      epoch,
      reason: "limit",
    });
    // The catch-up the resume frame asks for finds the rest, although none of it is stored yet.
    const response = await fetch(app.url(`/history?r=outage&after_seq=${messages.at(-1)?.seq}`));
    assert.equal(response.headers.get("x-chat-epoch"), epoch);
    const rest: ChatMessage[] = await response.json();
    assert.deepEqual(rest, unstored.slice(5).map(({ type: _, ...message }) => message));
    store.saves.open();
    await Promise.all([ann.close(), bob.close()]);
    await app.close();
  },
});

Deno.test("Resume into a room that emptied meanwhile replays its messages not yet stored", async () => {
  const { store, old, epoch } = await seededStore("emptied", 2);
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
  const bob = await TestSocket.open(app.chatUrl("emptied", "bob") + since(old[1]?.seq, epoch));
  const { welcome, messages, resume } = await replayOf(bob);
  // The reopened room counts the held messages: their seqs are not handed out again.
  assert.deepEqual([welcome.epoch, welcome.last_seq], [epoch, 5]);
  assert.deepEqual(messages, unstored);
  assert.deepEqual(resume, { type: "resume", complete: true, replayed: 3, epoch });
  bob.send("after");
  assert.equal((await bob.nextOfType("message")).seq, 6);
  store.saves.open();
  await bob.close();
  await app.close();
});

Deno.test("Resume is capped at RESUME_LIMIT; the rest comes from /history with no gap", async () => {
  const { store, old, epoch } = await seededStore("capped", 30);
  const app = startTestServer({ RESUME_LIMIT: "10" }, store);
  const capped = { type: "resume", complete: false, replayed: 10, epoch, reason: "limit" };
  /** Pages /history forwards from `cursor` with `param` (a seq or an id cursor). */
  const rest = async (param: "after_seq" | "after", key: "seq" | "id", cursor: unknown) => {
    const pages: Frame[] = [];
    for (;;) {
      const page = await (await fetch(app.url(`/history?r=capped&limit=7&${param}=${cursor}`)))
        .json();
      if (page.length === 0) return pages;
      pages.push(...page);
      cursor = page.at(-1)[key];
    }
  };
  const every = old.slice(1).map((m) => m.id);

  const bob = await TestSocket.open(app.chatUrl("capped", "bob") + since(old[0]?.seq, epoch));
  const replay = await replayOf(bob);
  assert.deepEqual(replay.resume, capped);
  assert.deepEqual(seqsOf(replay.messages), old.slice(1, 11).map((m) => m.seq));
  const more = await rest("after_seq", "seq", replay.messages.at(-1)?.seq);
  assert.deepEqual(
    [...replay.messages, ...more].map((frame) => frame.id),
    every,
    "replay plus history is every message after the cursor, once",
  );

  // Protocol 1: the same with id cursors.
  const cat = await TestSocket.open(app.chatUrl("capped", "cat") + `&since=${old[0]?.id}`);
  const byId = await replayOf(cat);
  assert.deepEqual(byId.resume, capped);
  assert.deepEqual(byId.messages, replay.messages);
  const moreById = await rest("after", "id", byId.messages.at(-1)?.id);
  assert.deepEqual([...byId.messages, ...moreById].map((frame) => frame.id), every);
  await Promise.all([bob.close(), cat.close()]);
  await app.close();
});

Deno.test("Resume with a store that fails replays from the buffer, and stops at a seq only the store had", async () => {
  const { store, epoch } = await seededStore("broken", 3);
  store.history = () => Promise.reject(new Error("database down"));
  const app = startTestServer({}, store);
  const ann = await TestSocket.open(app.chatUrl("broken", "ann"));
  await ann.nextOfType("welcome");
  for (let i = 0; i < 3; i++) ann.send(`buffered ${i}`); // seqs 4 to 6, in the room's buffer
  const buffered = await ann.collect("message", 3);

  const bob = await TestSocket.open(app.chatUrl("broken", "bob") + since(4, epoch));
  const fromBuffer = await replayOf(bob);
  assert.deepEqual(fromBuffer.messages, buffered.slice(1));
  assert.deepEqual(fromBuffer.resume, { type: "resume", complete: true, replayed: 2, epoch });

  // Seq 2 is only in the store: nothing after it can be replayed without a hole.
  const cat = await TestSocket.open(app.chatUrl("broken", "cat") + since(1, epoch));
  const { messages, resume } = await replayOf(cat);
  assert.deepEqual(messages, []);
  assert.deepEqual(resume, {
    type: "resume",
    complete: false,
    replayed: 0,
    epoch,
    reason: "unavailable",
  });
  await Promise.all([ann.close(), bob.close(), cat.close()]);
  await app.close();
});

Deno.test("GET /chat with a bad resume cursor answers 400 invalid_cursor before upgrading", async () => {
  const app = startTestServer();
  const cases = [
    "since=yesterday",
    "since=42",
    "since_seq=3", // a seq means nothing without its epoch
    "since_seq=-1",
    "since_seq=1.5",
    "since_seq=ten",
    "since_seq=",
    "since_seq=01",
    "since_seq=99999999999999999",
    "since_seq=3&epoch=",
    "since_seq=3&epoch=not%20an%20epoch",
    `since_seq=3&epoch=${"e".repeat(65)}`,
    `since_seq=0&since=${uuidv7()}`, // protocol 2 or protocol 1, not both
    `since_seq=3&epoch=abc&since=${uuidv7()}`,
  ];
  for (const query of cases) {
    const response = await fetch(app.url(`/chat?r=a&u=ann&${query}`), {
      headers: UPGRADE_HEADERS,
    });
    assert.equal(response.status, 400, query);
    assert.notEqual(response.headers.get("upgrade"), "websocket");
    assert.equal((await response.json()).error.code, "invalid_cursor", query);
  }
  await app.close();
});
