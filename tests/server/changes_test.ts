/**
 * Edits, deletes and reactions over real sockets: each action, each refusal, moderators, resume
 * and `/history` in the latest state.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { startTestServer, type TestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import type { RecordingStore } from "../support/recording_store.ts";

const SECRET = "changes-test-secret-0123456789-abcdef";

async function join(url: string): Promise<[TestSocket, Frame]> {
  const socket = await TestSocket.open(url);
  const welcome = await socket.next();
  assert.equal(welcome.type, "welcome");
  return [socket, welcome];
}

async function token(sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  return await new SignJWT({ rooms: ["*"], ...claims }).setProtectedHeader({ alg: "HS256" })
    .setSubject(sub).setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));
}

async function history(app: TestServer<RecordingStore>, query: string): Promise<Frame[]> {
  const response = await fetch(app.url(`/history?${query}`));
  assert.equal(response.status, 200);
  return await response.json();
}

/** Sends a message and returns its frame as the sender got it back (others' are skipped). */
async function say(socket: TestSocket, content: string): Promise<Frame> {
  socket.send(JSON.stringify({ type: "message", content }));
  for (;;) {
    const message = await socket.nextOfType("message");
    if (message.content === content) return message;
  }
}

/** The next `ack` naming `clientId` (acks of messages without one are skipped). */
async function ackOf(socket: TestSocket, clientId: string): Promise<Frame> {
  for (;;) {
    const ack = await socket.nextOfType("ack");
    if (ack.client_id === clientId) return ack;
  }
}

function change(socket: TestSocket, frame: Record<string, unknown>): void {
  socket.send(JSON.stringify(frame));
}

Deno.test("Changes: an edit goes to every member with its own event_seq, is acknowledged, and /history shows the latest state", async () => {
  const app = startTestServer();
  try {
    const [ann] = await join(app.chatUrl("r", "ann"));
    const [bob] = await join(app.chatUrl("r", "bob"));
    const first = await say(ann, "helo");
    await bob.nextOfType("message");
    change(ann, { type: "edit", seq: first.seq, content: "  hello  ", client_id: "e1" });
    const edit = await bob.nextOfType("edit");
    assert.equal(edit.user, "ann");
    assert.equal(edit.seq, first.seq);
    assert.equal(edit.event_seq, first.seq + 1); // the next item of the room's one sequence
    assert.equal(edit.content, "hello"); // trimmed as a message is
    assert.equal(edit.client_id, "e1");
    const own = await ann.nextOfType("edit");
    assert.deepEqual(own, edit);
    const ack = await ackOf(ann, "e1");
    assert.deepEqual([ack.seq, ack.id], [edit.event_seq, edit.id]);
    // The next message follows the change in the sequence.
    const second = await say(ann, "next");
    assert.equal(second.seq, edit.event_seq + 1);
    const page = await history(app, "r=r");
    assert.deepEqual(page.map((item) => [item.seq, item.content]), [
      [first.seq, "hello"],
      [second.seq, "next"],
    ]);
    assert.equal(page[0]?.edited_at, edit.timestamp);
    assert.equal(page[1]?.edited_at, undefined);
    // changes=1 lists every item of the sequence, changes as their frames.
    const items = await history(app, "r=r&changes=1");
    assert.deepEqual(items.map((item) => [item.type, item.seq, item.event_seq]), [
      ["message", first.seq, undefined],
      ["edit", first.seq, edit.event_seq],
      ["message", second.seq, undefined],
    ]);
    await Promise.all([ann.close(), bob.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("Changes: refusals carry stable codes and the client_id, and change nothing", async () => {
  const app = startTestServer();
  try {
    const [ann] = await join(app.chatUrl("r", "ann"));
    const [bob] = await join(app.chatUrl("r", "bob"));
    const first = await say(ann, "mine");
    await bob.nextOfType("message");
    const refused = async (socket: TestSocket, frame: Record<string, unknown>, code: string) => {
      change(socket, { ...frame, client_id: "x1" });
      const error = await socket.nextOfType("error");
      assert.deepEqual([error.code, error.client_id], [code, "x1"], JSON.stringify(frame));
    };
    await refused(bob, { type: "edit", seq: first.seq, content: "bob's now" }, "not_author");
    await refused(bob, { type: "delete", seq: first.seq }, "not_author");
    for (const seq of [0, -1, 1.5, "1", 99]) {
      await refused(ann, { type: "edit", seq, content: "x" }, "invalid_target");
    }
    await refused(ann, { type: "edit", seq: first.seq, content: "   " }, "empty_content");
    await refused(ann, { type: "edit", seq: first.seq, content: "a\u0000b" }, "invalid_text");
    await refused(ann, { type: "edit", seq: first.seq }, "invalid_frame");
    for (const reaction of ["", "👍👍", "Thumbs", "a".repeat(33), "#", 7, "<b>"]) {
      await refused(bob, { type: "react", seq: first.seq, reaction }, "invalid_reaction");
    }
    await refused(
      bob,
      { type: "react", seq: first.seq, reaction: "👍", on: "yes" },
      "invalid_reaction",
    );
    // A change's own seq names no message.
    change(bob, { type: "react", seq: first.seq, reaction: "👍" });
    const react = await ann.nextOfType("react");
    await refused(ann, { type: "edit", seq: react.event_seq, content: "x" }, "invalid_target");
    await refused(ann, { type: "react", seq: react.event_seq, reaction: "👍" }, "invalid_target");
    const page = await history(app, "r=r");
    assert.deepEqual(page.map((item) => item.content), ["mine"]);
    assert.equal(page[0]?.edited_at, undefined);
    await Promise.all([ann.close(), bob.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("Changes: a delete makes a tombstone everywhere: frames, /history, resume; its content and its edits' content are gone", async () => {
  const app = startTestServer();
  try {
    const [ann, welcome] = await join(app.chatUrl("r", "ann"));
    const [bob] = await join(app.chatUrl("r", "bob"));
    const kept = await say(ann, "kept");
    const secret = await say(ann, "the secret");
    change(ann, { type: "edit", seq: secret.seq, content: "the edited secret" });
    await ann.nextOfType("edit");
    change(ann, { type: "delete", seq: secret.seq, client_id: "d1" });
    const deleted = await bob.nextOfType("delete");
    assert.deepEqual([deleted.user, deleted.seq, deleted.client_id], ["ann", secret.seq, "d1"]);
    assert.equal(deleted.content, undefined);
    await ackOf(ann, "d1");
    // A deleted message takes no more changes.
    for (
      const frame of [
        { type: "edit", seq: secret.seq, content: "again" },
        { type: "delete", seq: secret.seq },
        { type: "react", seq: secret.seq, reaction: "👍" },
      ]
    ) {
      change(ann, frame);
      assert.equal((await ann.nextOfType("error")).code, "invalid_target");
    }
    const page = await history(app, "r=r");
    assert.deepEqual(page.map((item) => [item.seq, item.content, item.deleted]), [
      [kept.seq, "kept", undefined],
      [secret.seq, undefined, true],
    ]);
    // A resume from before (served from the room's buffer) shows neither content.
    const cursor = `&since_seq=${welcome.last_seq}&epoch=${welcome.epoch}`;
    const [carl] = await join(app.chatUrl("r", "carl") + cursor);
    const replay: Frame[] = [];
    for (let frame = await carl.next(); frame.type !== "resume"; frame = await carl.next()) {
      replay.push(frame);
    }
    const text = JSON.stringify(replay);
    assert.ok(!text.includes("secret"), text);
    assert.deepEqual(replay.map((frame) => frame.type), ["message", "message", "edit", "delete"]);
    assert.equal(replay[1]?.deleted, true);
    // And the same from the store once the room has closed.
    await Promise.all([ann.close(), bob.close(), carl.close()]);
    const [dan] = await join(app.chatUrl("r", "dan") + cursor);
    const stored: Frame[] = [];
    for (let frame = await dan.next(); frame.type !== "resume"; frame = await dan.next()) {
      stored.push(frame);
    }
    assert.ok(!JSON.stringify(stored).includes("secret"), JSON.stringify(stored));
    assert.deepEqual(stored.map((frame) => frame.type), ["message", "message", "edit", "delete"]);
    assert.equal(stored[1]?.deleted, true);
    await dan.close();
  } finally {
    await app.close();
  }
});

Deno.test("Changes: a moderator (token claim mod) deletes another's message; a member cannot", async () => {
  const app = startTestServer({ AUTH_SECRET: SECRET });
  try {
    const url = async (user: string, claims?: Record<string, unknown>) =>
      `ws://127.0.0.1:${app.port}/chat?r=lobby&token=${await token(user, claims)}`;
    const [ann] = await join(await url("ann"));
    const [bob, bobWelcome] = await join(await url("bob"));
    const [mod, modWelcome] = await join(await url("mo", { mod: ["lob*"] }));
    assert.equal(modWelcome.moderator, true);
    assert.equal(bobWelcome.moderator, undefined);
    const message = await say(ann, "spam");
    change(bob, { type: "delete", seq: message.seq });
    assert.equal((await bob.nextOfType("error")).code, "not_author");
    // A moderator may delete, not edit, another's message.
    change(mod, { type: "edit", seq: message.seq, content: "x" });
    assert.equal((await mod.nextOfType("error")).code, "not_author");
    change(mod, { type: "delete", seq: message.seq });
    const deleted = await ann.nextOfType("delete");
    assert.deepEqual([deleted.user, deleted.seq], ["mo", message.seq]);
    // Moderating another room gives nothing here.
    const [other] = await join(await url("ot", { mod: ["elsewhere"] }));
    const next = await say(ann, "more");
    change(other, { type: "delete", seq: next.seq });
    assert.equal((await other.nextOfType("error")).code, "not_author");
    await Promise.all([ann.close(), bob.close(), mod.close(), other.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("Changes: EDIT_WINDOW bounds the author's edits and deletes", async () => {
  const app = startTestServer({ EDIT_WINDOW: "50ms" });
  try {
    const [ann] = await join(app.chatUrl("r", "ann"));
    const message = await say(ann, "quick");
    change(ann, { type: "edit", seq: message.seq, content: "in time" });
    assert.equal((await ann.nextOfType("edit")).content, "in time");
    await new Promise((resolve) => setTimeout(resolve, 80));
    change(ann, { type: "edit", seq: message.seq, content: "too late" });
    assert.equal((await ann.nextOfType("error")).code, "edit_window_passed");
    change(ann, { type: "delete", seq: message.seq });
    assert.equal((await ann.nextOfType("error")).code, "edit_window_passed");
    await ann.close();
  } finally {
    await app.close();
  }
});

Deno.test("Changes: reactions on and off per user; /history counts them with me for the reader; at most 20 kinds", async () => {
  const app = startTestServer();
  try {
    const [ann] = await join(app.chatUrl("r", "ann"));
    const [bob] = await join(app.chatUrl("r", "bob"));
    const message = await say(ann, "react to me");
    await bob.nextOfType("message");
    change(ann, { type: "react", seq: message.seq, reaction: "👍" });
    change(bob, { type: "react", seq: message.seq, reaction: "👍", on: true });
    change(bob, { type: "react", seq: message.seq, reaction: "party_parrot" });
    change(bob, { type: "react", seq: message.seq, reaction: "🇯🇵" });
    change(bob, { type: "react", seq: message.seq, reaction: "🇯🇵", on: false });
    const reacts = await ann.collect("react", 5);
    assert.deepEqual(reacts.map((frame) => [frame.user, frame.reaction, frame.on]), [
      ["ann", "👍", true],
      ["bob", "👍", true],
      ["bob", "party_parrot", true],
      ["bob", "🇯🇵", true],
      ["bob", "🇯🇵", false],
    ]);
    const asAnn = await history(app, "r=r&u=ann");
    assert.deepEqual(asAnn[0]?.reactions, {
      "👍": { count: 2, me: true },
      party_parrot: { count: 1, me: false },
    });
    const asCarl = await history(app, "r=r&u=carl");
    assert.deepEqual(asCarl[0]?.reactions["👍"], { count: 2, me: false });
    // 20 different reactions at most; one already there still counts up.
    for (let i = 2; i < 20; i++) {
      change(ann, { type: "react", seq: message.seq, reaction: `r${i}` });
    }
    await ann.collect("react", 18);
    change(ann, { type: "react", seq: message.seq, reaction: "one_too_many", client_id: "m" });
    const error = await ann.nextOfType("error");
    assert.deepEqual([error.code, error.client_id], ["too_many_reactions", "m"]);
    change(ann, { type: "react", seq: message.seq, reaction: "party_parrot" });
    assert.equal((await ann.nextOfType("react")).reaction, "party_parrot");
    await Promise.all([ann.close(), bob.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("Changes: a change to a message older than the room's memory is checked against the store", async () => {
  const app = startTestServer();
  try {
    const [ann] = await join(app.chatUrl("r", "ann"));
    const old = await say(ann, "from before");
    const theirs = await (async () => {
      const [bob] = await join(app.chatUrl("r", "bob"));
      const message = await say(bob, "bob's");
      await bob.close();
      return message;
    })();
    await ann.close();
    // The room closed: its successor knows nothing of these seqs and asks the store.
    const [again] = await join(app.chatUrl("r", "ann"));
    change(again, { type: "edit", seq: theirs.seq, content: "not mine" });
    assert.equal((await again.nextOfType("error")).code, "not_author");
    change(again, { type: "edit", seq: old.seq, content: "from before, edited" });
    assert.equal((await again.nextOfType("edit")).content, "from before, edited");
    change(again, { type: "delete", seq: old.seq });
    await again.nextOfType("delete");
    change(again, { type: "react", seq: old.seq, reaction: "👍" });
    assert.equal((await again.nextOfType("error")).code, "invalid_target");
    await again.close();
  } finally {
    await app.close();
  }
});

Deno.test("Changes: the server API's DELETE is a moderator's delete change", async () => {
  const key = "changes-test-api-key-0123456789";
  const app = startTestServer({ API_KEYS: key });
  try {
    const [ann] = await join(app.chatUrl("r", "ann"));
    const message = await say(ann, "remove me");
    const remove = (seq: number) =>
      fetch(app.url(`/api/rooms/r/messages/${seq}`), {
        method: "DELETE",
        headers: { authorization: `Bearer ${key}` },
      });
    const response = await remove(message.seq);
    assert.equal(response.status, 200);
    const body = await response.json();
    const frame = await ann.nextOfType("delete");
    assert.deepEqual(body, { ...frame, type: "delete" });
    assert.equal(frame.user, "api");
    const again = await remove(message.seq);
    assert.equal(again.status, 404);
    await again.body?.cancel();
    await ann.close();
  } finally {
    await app.close();
  }
});

Deno.test("Changes: welcome carries read_seq and unread once the user has read", async () => {
  const app = startTestServer();
  try {
    const [ann, first] = await join(app.chatUrl("r", "ann"));
    assert.equal(first.read_seq, undefined);
    const [bob] = await join(app.chatUrl("r", "bob"));
    const one = await say(bob, "one");
    ann.send(JSON.stringify({ type: "read", seq: one.seq }));
    await ann.nextOfType("read");
    await say(bob, "two");
    const three = await say(bob, "three");
    change(bob, { type: "delete", seq: three.seq });
    await bob.nextOfType("delete");
    await say(ann, "ann's own");
    const [later, welcome] = await join(app.chatUrl("r", "ann"));
    // Two after the read position, one of them deleted, and ann's own: one unread.
    assert.deepEqual([welcome.read_seq, welcome.unread], [one.seq, 1]);
    await Promise.all([ann.close(), bob.close(), later.close()]);
  } finally {
    await app.close();
  }
});
