import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";

Deno.test("Room broadcasts each message once, in one order, to every member and no other room", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("a", "ann"));
  const welcome = await ann.next();
  assert.match(welcome.epoch, /^[A-Za-z0-9_-]{1,64}$/);
  assert.deepEqual(welcome, {
    type: "welcome",
    protocol: 2,
    room: "a",
    user: "ann",
    members: ["ann"],
    epoch: welcome.epoch,
    last_seq: 0,
    limits: welcome.limits,
  });
  const bob = await TestSocket.open(app.chatUrl("a", "bob"));
  assert.deepEqual(await bob.next(), {
    type: "welcome",
    protocol: 2,
    room: "a",
    user: "bob",
    members: ["ann", "bob"],
    epoch: welcome.epoch,
    last_seq: 0,
    limits: welcome.limits,
  });
  assert.deepEqual(await ann.next(), {
    type: "presence",
    event: "join",
    room: "a",
    user: "bob",
  });
  const cat = await TestSocket.open(app.chatUrl("b", "cat"));
  assert.equal((await cat.next()).type, "welcome");

  const count = 50;
  for (let i = 0; i < count; i++) (i % 2 === 0 ? ann : bob).send(`hello ${i}`);
  const seenByAnn = await ann.collect("message", count);
  const seenByBob = await bob.collect("message", count);
  assert.deepEqual(seenByAnn, seenByBob, "both members see the same frames in the same order");
  assert.deepEqual(
    new Set(seenByAnn.map((frame) => frame.content)),
    new Set(Array.from({ length: count }, (_, i) => `hello ${i}`)),
    "every message exactly once",
  );
  const ids = seenByAnn.map((frame) => frame.id as string);
  assert.deepEqual(ids, [...new Set(ids)].sort(), "ids are distinct and increase");
  assert.deepEqual(
    seenByAnn.map((frame) => frame.seq),
    Array.from({ length: count }, (_, i) => i + 1),
    "seqs are 1, 2, 3, ... in delivery order",
  );
  for (const frame of seenByAnn) {
    assert.deepEqual(Object.keys(frame), [
      "type",
      "id",
      "room",
      "seq",
      "sender",
      "content",
      "timestamp",
    ], "always this key order");
    assert.equal(frame.room, "a");
    assert.match(frame.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(new Date(frame.timestamp).toISOString(), frame.timestamp);
    assert.equal(frame.sender, Number(frame.content.split(" ")[1]) % 2 === 0 ? "ann" : "bob");
  }

  // Room b saw none of that: its next frame is its own message.
  cat.send("only b");
  const next = await cat.next();
  assert.equal(next.type, "message");
  assert.equal(next.content, "only b");
  assert.equal(next.seq, 1, "each room has its own sequence");

  await bob.close();
  assert.deepEqual(await ann.next(), {
    type: "presence",
    event: "leave",
    room: "a",
    user: "bob",
  });
  assert.deepEqual(ann.members, ["ann"]);
  await Promise.all([ann.close(), cat.close()]);
  await app.close();
});

Deno.test("Room accepts a JSON message frame and treats other JSON as text", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("json", "ann"));
  await ann.next();
  ann.send(JSON.stringify({ type: "message", content: "  padded  " }));
  ann.send('"a JSON string"');
  ann.send("[1, 2]");
  ann.send("{not json");
  const contents = (await ann.collect("message", 4)).map((frame) => frame.content);
  assert.deepEqual(contents, ["padded", '"a JSON string"', "[1, 2]", "{not json"]);
  await ann.close();
  await app.close();
});

Deno.test("Hub lists a user with two connections once, and removes empty rooms", async () => {
  const app = startTestServer();
  const first = await TestSocket.open(app.chatUrl("tabs", "ann"));
  const { epoch } = await first.next();
  const second = await TestSocket.open(app.chatUrl("tabs", "ann"));
  assert.deepEqual((await second.next()).members, ["ann"]);
  first.send("before leaving");
  assert.equal((await second.nextOfType("message")).seq, 1);
  await Promise.all([first.close(), second.close()]);
  // A fresh join after everyone left gets a fresh room with only the newcomer in it, whose
  // sequence goes on in the same epoch: the store kept it.
  const again = await TestSocket.open(app.chatUrl("tabs", "bob"));
  const welcome = await again.next();
  assert.deepEqual(welcome.members, ["bob"]);
  assert.deepEqual([welcome.epoch, welcome.last_seq], [epoch, 1]);
  again.send("after");
  assert.equal((await again.nextOfType("message")).seq, 2);
  await again.close();
  await app.close();
});
