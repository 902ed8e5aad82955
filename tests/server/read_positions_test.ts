import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";

async function join(url: string): Promise<TestSocket> {
  const socket = await TestSocket.open(url);
  assert.equal((await socket.next()).type, "welcome");
  return socket;
}

const read = (seq: unknown) => JSON.stringify({ type: "read", seq });

Deno.test("Read positions: stored never backwards, told to the room as receipts, unread counts at GET /me/rooms", async () => {
  const app = startTestServer();
  try {
    const ann = await join(app.chatUrl("r", "ann"));
    const bob = await join(app.chatUrl("r", "bob"));
    for (const text of ["one", "two", "three"]) ann.send(text);
    for (let i = 0; i < 3; i++) await bob.nextOfType("message");

    bob.send(read(2));
    assert.deepEqual(await ann.nextOfType("read"), {
      type: "read",
      room: "r",
      user: "bob",
      seq: 2,
    });
    bob.send(read(1)); // backwards: nothing moves, nothing is told
    bob.send(read(99)); // past the room's last seq: read up to it
    assert.deepEqual(await ann.nextOfType("read"), {
      type: "read",
      room: "r",
      user: "bob",
      seq: 3,
    });

    const mine = async () => await (await fetch(app.url("/me/rooms?u=bob"))).json();
    assert.deepEqual(await mine(), [{ room: "r", unread: 0, read_seq: 3, last_seq: 3 }]);
    ann.send("four");
    await bob.nextOfType("message");
    assert.deepEqual(await mine(), [{ room: "r", unread: 1, read_seq: 3, last_seq: 4 }]);
    assert.deepEqual(await (await fetch(app.url("/me/rooms?u=nobody"))).json(), []);

    for (const bad of [0, -1, 1.5, "2", null]) {
      bob.send(read(bad));
      assert.equal((await bob.nextOfType("error")).code, "invalid_read", JSON.stringify(bad));
    }
    await Promise.all([ann.close(), bob.close()]);
  } finally {
    await app.close();
  }
});
