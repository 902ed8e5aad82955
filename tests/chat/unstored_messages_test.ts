import assert from "node:assert/strict";
import { UnstoredMessages } from "../../chat/unstored_messages.ts";

const id = (i: number) => `id-${String(i).padStart(4, "0")}`;

Deno.test("UnstoredMessages.after() gives a room's held messages after a cursor, in id order", () => {
  const unstored = new UnstoredMessages();
  for (const i of [3, 1, 2]) unstored.add("a", { id: id(i), frame: `a${i}` });
  unstored.add("b", { id: id(9), frame: "b9" });
  unstored.add("a", { id: id(2), frame: "again" }); // already held: ignored
  assert.equal(unstored.size, 4);
  assert.deepEqual(unstored.after("a", id(1)).map((m) => m.frame), ["a2", "a3"]);
  assert.deepEqual(unstored.after("b", id(0)).map((m) => m.frame), ["b9"]);
  assert.deepEqual(unstored.after("c", id(0)), []);
});

Deno.test("UnstoredMessages.settled() forgets what was stored, and rooms left with nothing", () => {
  const unstored = new UnstoredMessages();
  for (let i = 0; i < 3; i++) unstored.add("a", { id: id(i), frame: `a${i}` });
  unstored.add("b", { id: id(5), frame: "b5" });
  unstored.settled([{ id: id(0), room: "a" }, { id: id(5), room: "b" }, { id: id(7), room: "b" }]);
  assert.equal(unstored.size, 2);
  assert.deepEqual(unstored.after("a", id(0)).map((m) => m.frame), ["a1", "a2"]);
  assert.deepEqual(unstored.after("b", id(0)), []);
  unstored.settled([{ id: id(1), room: "a" }, { id: id(2), room: "a" }]);
  assert.equal(unstored.size, 0);
});
