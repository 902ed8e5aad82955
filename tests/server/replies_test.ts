import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";

async function join(url: string): Promise<TestSocket> {
  const socket = await TestSocket.open(url);
  assert.equal((await socket.next()).type, "welcome");
  return socket;
}

Deno.test("Replies: reply_to names an earlier seq of the room; frames, acks and /history carry it", async () => {
  const app = startTestServer();
  try {
    const ann = await join(app.chatUrl("r", "ann"));
    const bob = await join(app.chatUrl("r", "bob"));
    ann.send("the question");
    const question = await bob.nextOfType("message");
    bob.send(JSON.stringify({ type: "message", content: "the answer", reply_to: question.seq }));
    assert.equal((await ann.nextOfType("message")).content, "the question"); // her own
    const answer = await ann.nextOfType("message");
    assert.deepEqual([answer.content, answer.reply_to], ["the answer", question.seq]);
    const history = await (await fetch(app.url("/history?r=r"))).json();
    assert.deepEqual(
      history.map((item: { content: string; reply_to?: number }) => [item.content, item.reply_to]),
      [["the question", undefined], ["the answer", question.seq]],
    );
    await Promise.all([ann.close(), bob.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("Replies: a reply_to that is not a seq of the room gets invalid_reply_to, naming the client_id", async () => {
  const app = startTestServer();
  try {
    const ann = await join(app.chatUrl("r", "ann"));
    ann.send("first");
    await ann.nextOfType("ack");
    for (const replyTo of [0, -1, 1.5, "1", 2, 99]) {
      ann.send(
        JSON.stringify({ type: "message", content: "x", reply_to: replyTo, client_id: "c1" }),
      );
      const error = await ann.nextOfType("error");
      assert.deepEqual(
        [error.code, error.client_id],
        ["invalid_reply_to", "c1"],
        JSON.stringify(replyTo),
      );
    }
    // null is no reply at all.
    ann.send(JSON.stringify({ type: "message", content: "plain", reply_to: null }));
    const plain = await ann.nextOfType("message");
    assert.equal(plain.reply_to, undefined);
    await ann.close();
  } finally {
    await app.close();
  }
});
