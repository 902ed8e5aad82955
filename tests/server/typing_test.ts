import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";

const TYPING = JSON.stringify({ type: "typing" });

async function join(url: string): Promise<TestSocket> {
  const socket = await TestSocket.open(url);
  assert.equal((await socket.next()).type, "welcome");
  return socket;
}

/** The frames `socket` gets until the message `marker` comes (presence and acks left out). */
async function framesUntil(socket: TestSocket, marker: string): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (;;) {
    const frame = await socket.next();
    if (frame.type === "message" && frame.content === marker) return frames;
    if (frame.type !== "presence" && frame.type !== "ack") frames.push(frame);
  }
}

Deno.test("Typing: the others hear it at once, at most once per 2 s per user; the typist's own tabs do not; never stored", async () => {
  const app = startTestServer();
  try {
    const ann = await join(app.chatUrl("r", "ann"));
    const bobTab1 = await join(app.chatUrl("r", "bob"));
    const bobTab2 = await join(app.chatUrl("r", "bob"));
    const legacy = await TestSocket.open(`ws://127.0.0.1:${app.port}/chat?r=r&u=old&v=0`);

    bobTab1.send(TYPING);
    bobTab1.send(TYPING); // within 2 s: not passed on
    bobTab2.send(TYPING); // the same user from another tab: neither
    ann.send("mark 1");
    assert.deepEqual(await framesUntil(ann, "mark 1"), [{
      type: "typing",
      room: "r",
      user: "bob",
    }]);
    for (const tab of [bobTab1, bobTab2]) {
      assert.deepEqual(await framesUntil(tab, "mark 1"), [], "not told of itself");
    }

    await new Promise((resolve) => setTimeout(resolve, 2_100));
    bobTab2.send(TYPING);
    ann.send("mark 2");
    assert.deepEqual(await framesUntil(ann, "mark 2"), [{
      type: "typing",
      room: "r",
      user: "bob",
    }]);

    // Level 0 clients only ever get message objects.
    for (;;) {
      const frame = await legacy.next();
      assert.equal(frame.type, undefined, JSON.stringify(frame));
      if (frame.content === "mark 2") break;
    }
    // Nothing of it is stored or replayed.
    const history = await (await fetch(app.url("/history?r=r"))).json();
    assert.deepEqual(history.map((item: Frame) => item.content), ["mark 1", "mark 2"]);
    const resumed = await TestSocket.open(`${app.chatUrl("r", "cat")}&since_seq=0`);
    const replayed: string[] = [];
    for (;;) {
      const frame = await resumed.next();
      replayed.push(frame.type);
      if (frame.type === "resume") break;
    }
    assert.deepEqual(replayed, ["welcome", "message", "message", "resume"]);
    await resumed.close();
    await Promise.all([ann, bobTab1, bobTab2, legacy].map((socket) => socket.close()));
  } finally {
    await app.close();
  }
});
