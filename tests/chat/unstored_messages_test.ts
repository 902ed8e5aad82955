import assert from "node:assert/strict";
import { UnstoredMessages } from "../../chat/unstored_messages.ts";
import type { ChatMessage } from "../../storage/repository.ts";

const id = (i: number) => `id-${String(i).padStart(4, "0")}`;
const message = (room: string, i: number): ChatMessage => ({
  id: id(i),
  room,
  sender: "ann",
  content: `${room}${i}`,
  timestamp: new Date(0).toISOString(),
});
const hold = (unstored: UnstoredMessages, room: string, ...ids: number[]) => {
  for (const i of ids) unstored.add(message(room, i), `frame ${room}${i}`);
};

Deno.test("UnstoredMessages.after() gives a room's held frames after a cursor, in id order", () => {
  const unstored = new UnstoredMessages();
  hold(unstored, "a", 3, 1, 2);
  hold(unstored, "b", 9);
  unstored.add(message("a", 2), "again"); // already held: ignored
  assert.equal(unstored.size, 4);
  assert.deepEqual(unstored.after("a", id(1)), [
    { id: id(2), frame: "frame a2" },
    { id: id(3), frame: "frame a3" },
  ]);
  assert.deepEqual(unstored.after("b", id(0)).map((m) => m.frame), ["frame b9"]);
  assert.deepEqual(unstored.after("c", id(0)), []);
});

Deno.test("UnstoredMessages.complete() puts held messages into a store page under the same window", () => {
  const unstored = new UnstoredMessages();
  hold(unstored, "a", 4, 6, 9);
  const stored = [1, 2, 3, 5, 7, 8].map((i) => message("a", i));
  const ids = (page: ChatMessage[]) => page.map((m) => m.id);
  // Newest 4: the store's newest 4 are 3, 5, 7, 8; with the held ones, 6, 7, 8, 9.
  const newest = unstored.complete("a", { limit: 4 }, stored.slice(-4));
  assert.deepEqual(ids(newest), [6, 7, 8, 9].map(id));
  // Oldest 3 after 2: the store gives 3, 5, 7; held 4 and 6 come before 7.
  const after = unstored.complete(
    "a",
    { limit: 3, after: id(2) },
    [3, 5, 7].map((i) => message("a", i)),
  );
  assert.deepEqual(ids(after), [3, 4, 5].map(id));
  // Before 7: held 9 is outside the window.
  const before = unstored.complete("a", { limit: 10, before: id(7) }, stored.slice(0, 4));
  assert.deepEqual(ids(before), [1, 2, 3, 4, 5, 6].map(id));
  assert.deepEqual(ids(unstored.complete("b", { limit: 2 }, [])), []);
});

Deno.test("UnstoredMessages.settled() forgets what was stored, and rooms left with nothing", () => {
  const unstored = new UnstoredMessages();
  hold(unstored, "a", 0, 1, 2);
  hold(unstored, "b", 5);
  unstored.settled([message("a", 0), message("b", 5), message("b", 7)]);
  assert.equal(unstored.size, 2);
  assert.deepEqual(unstored.after("a", id(0)).map((m) => m.id), [id(1), id(2)]);
  assert.deepEqual(unstored.after("b", id(0)), []);
  unstored.settled([message("a", 1), message("a", 2)]);
  assert.equal(unstored.size, 0);
});
