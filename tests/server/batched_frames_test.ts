/** `batch=1`: frames waiting together leave as one WebSocket frame, one JSON frame per line. */
import assert from "node:assert/strict";
import { joinedFrames } from "../../chat/client.ts";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";

/** Every WebSocket frame a raw socket gets until `done` says it has enough. */
async function rawFrames(url: string, done: (frames: string[]) => boolean): Promise<string[]> {
  const socket = new WebSocket(url);
  const frames: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${frames.length}`)), 5_000);
    socket.onmessage = (event) => {
      frames.push(String(event.data));
      if (done(frames)) {
        clearTimeout(timer);
        resolve();
      }
    };
    socket.onerror = () => {
      clearTimeout(timer);
      reject(new Error("socket error"));
    };
  });
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.close();
  await closed;
  return frames;
}

const lines = (frames: string[]) => frames.flatMap((frame) => frame.split("\n"));
const types = (frames: string[]) => lines(frames).map((line) => JSON.parse(line).type);

Deno.test("Batched frames: a resume's welcome, replay and resume frame leave as one WebSocket frame with batch=1, as seven without", async () => {
  const app = startTestServer();
  try {
    const ann = await TestSocket.open(app.chatUrl("r", "ann"));
    const { epoch } = await ann.nextOfType("welcome");
    for (let i = 1; i <= 5; i++) ann.send(`m${i}`);
    await ann.collect("message", 5);
    const resume = `&since_seq=0&epoch=${epoch}`;
    const hasResume = (frames: string[]) => frames.some((frame) => frame.includes('"resume"'));
    const batched = await rawFrames(app.chatUrl("r", "bob") + resume + "&batch=1", hasResume);
    assert.equal(batched.length, 1, batched.join("\n---\n"));
    assert.deepEqual(types(batched), [
      "welcome",
      "message",
      "message",
      "message",
      "message",
      "message",
      "resume",
    ]);
    // Each line is the frame as it would have been sent alone.
    const plain = await rawFrames(app.chatUrl("r", "cat") + resume, hasResume);
    assert.equal(plain.length, 7);
    assert.deepEqual(lines(batched).slice(1), plain.slice(1));
    // A frame alone is sent alone, without a newline.
    const live = await rawFrames(app.chatUrl("r", "dan") + "&batch=1", (frames) => {
      if (frames.length === 1) ann.send("live");
      return frames.length === 2;
    });
    assert.ok(!live.some((frame) => frame.includes("\n")), live.join("|"));
    await ann.close();
  } finally {
    await app.close();
  }
});

Deno.test("Batched frames: batch=1 needs protocol 2; a bad value is refused", async () => {
  const app = startTestServer();
  try {
    for (const query of ["batch=1&v=0", "batch=1&v=1", "batch=yes"]) {
      const response = await fetch(app.url(`/chat?r=r&u=ann&${query}`));
      assert.equal(response.status, 400, query);
      assert.equal((await response.json()).error.code, "invalid_batch");
    }
  } finally {
    await app.close();
  }
});

Deno.test("joinedFrames: newline-joined up to about 64 KiB per frame; the same strings again reuse the last join", () => {
  const small = ["a", "b", "c"];
  assert.deepEqual(joinedFrames(small), ["a\nb\nc"]);
  const again = joinedFrames([...small]); // a new array of the same strings
  assert.equal(again, joinedFrames(small));
  const big = Array.from({ length: 5 }, (_, i) => String(i).repeat(30_000));
  const joined = joinedFrames(big);
  assert.deepEqual(joined.map((frame) => frame.split("\n").length), [2, 2, 1]);
  assert.deepEqual(joined.flatMap((frame) => frame.split("\n")), big);
  const huge = ["x".repeat(70_000), "y"];
  assert.deepEqual(joinedFrames(huge), huge);
});
