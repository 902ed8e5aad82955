/**
 * The in-memory idempotency window: a client id is found for `windowMs` after it was remembered,
 * the oldest entries go first when the byte bound is passed, and remembering a key again renews
 * it without counting its bytes twice.
 */
import assert from "node:assert/strict";
import type { SentMessage } from "../../chat/message.ts";
import { SentMessages } from "../../chat/sent_messages.ts";

const WINDOW_MS = 60_000;

/** A clock the test moves by hand. */
class ManualClock {
  nowMs = 0;
  readonly now = () => this.nowMs;
}

function sent(sender: string, clientId: string, seq: number): SentMessage {
  return { sender, clientId, id: `0190c0de-0000-7000-8000-${String(seq).padStart(12, "0")}`, seq };
}

/**
 * Bytes of one entry as the window counts them: the same formula as the source (200 of overhead,
 * 2 per character of `room\nsender\nclientId`). Keys of equal length make every entry equal.
 */
function entryBytes(room: string, sender: string, clientId: string): number {
  return 200 + 2 * `${room}\n${sender}\n${clientId}`.length;
}

Deno.test("SentMessages finds a client id until its window ends, and no longer", () => {
  const clock = new ManualClock();
  const window = new SentMessages({ windowMs: WINDOW_MS, maxBytes: 1 << 20, now: clock.now });
  const first = sent("ann", "c1", 1);
  window.remember("general", first);

  assert.deepEqual(window.find("general", "ann", "c1"), first);
  clock.nowMs = WINDOW_MS - 1;
  assert.deepEqual(window.find("general", "ann", "c1"), first, "found within the window");
  clock.nowMs = WINDOW_MS;
  assert.equal(window.find("general", "ann", "c1"), undefined, "gone when the window ends");
  assert.equal(window.forgottenEarly, 0, "expiry is not forgetting early");
});

Deno.test("SentMessages drops expired entries when it next remembers", () => {
  const clock = new ManualClock();
  const window = new SentMessages({ windowMs: WINDOW_MS, maxBytes: 1 << 20, now: clock.now });
  window.remember("general", sent("ann", "c1", 1));
  clock.nowMs = 10;
  window.remember("general", sent("ann", "c2", 2));
  assert.equal(window.size, 2);

  clock.nowMs = WINDOW_MS + 5; // c1 expired, c2 not yet
  window.remember("general", sent("ann", "c3", 3));
  assert.equal(window.size, 2, "the expired entry is dropped, the live ones stay");
  assert.equal(window.find("general", "ann", "c1"), undefined);
  assert.equal(window.find("general", "ann", "c2")?.seq, 2);
  assert.equal(window.find("general", "ann", "c3")?.seq, 3);
  assert.equal(window.forgottenEarly, 0);
});

Deno.test("SentMessages keys by room, sender and client id", () => {
  const window = new SentMessages({ windowMs: WINDOW_MS, maxBytes: 1 << 20 });
  window.remember("general", sent("ann", "c1", 1));
  assert.equal(window.find("general", "ann", "c1")?.seq, 1);
  assert.equal(window.find("general", "bob", "c1"), undefined, "another sender's c1");
  assert.equal(window.find("random", "ann", "c1"), undefined, "ann's c1 in another room");
  assert.equal(window.find("general", "ann", "c2"), undefined);
  // Keys that would collide if the parts were joined without a separator.
  window.remember("ab", sent("c", "d", 2));
  assert.equal(window.find("a", "bc", "d"), undefined);
  assert.equal(window.size, 2);
});

Deno.test("SentMessages forgets the oldest entries first beyond maxBytes, and counts them", () => {
  const clock = new ManualClock();
  const bytes = entryBytes("general", "ann", "c1");
  // Room for exactly three entries of this size.
  const window = new SentMessages({ windowMs: WINDOW_MS, maxBytes: 3 * bytes, now: clock.now });
  for (let i = 1; i <= 3; i++) {
    clock.nowMs = i;
    window.remember("general", sent("ann", `c${i}`, i));
  }
  assert.equal(window.size, 3);
  assert.equal(window.forgottenEarly, 0, "exactly at the bound nothing is forgotten");

  clock.nowMs = 4;
  window.remember("general", sent("ann", "c4", 4));
  assert.equal(window.size, 3);
  assert.equal(window.forgottenEarly, 1);
  assert.equal(window.find("general", "ann", "c1"), undefined, "the oldest went first");
  for (const id of ["c2", "c3", "c4"]) assert.ok(window.find("general", "ann", id), id);

  clock.nowMs = 5;
  window.remember("general", sent("ann", "c5", 5));
  window.remember("general", sent("ann", "c6", 6));
  assert.equal(window.forgottenEarly, 3);
  assert.deepEqual(
    ["c1", "c2", "c3", "c4", "c5", "c6"].map((id) => window.find("general", "ann", id)?.seq),
    [undefined, undefined, undefined, 4, 5, 6],
  );
});

Deno.test("SentMessages renews an entry remembered again: a new window, moved to the back", () => {
  const clock = new ManualClock();
  const bytes = entryBytes("general", "ann", "c1");
  const window = new SentMessages({ windowMs: WINDOW_MS, maxBytes: 2 * bytes, now: clock.now });
  window.remember("general", sent("ann", "c1", 1));
  clock.nowMs = 10;
  window.remember("general", sent("ann", "c2", 2));
  clock.nowMs = 20;
  window.remember("general", sent("ann", "c1", 1)); // c1 again: now newer than c2
  assert.equal(window.size, 2, "one entry per key");
  assert.equal(window.forgottenEarly, 0, "its old bytes are not counted twice");

  clock.nowMs = 30;
  window.remember("general", sent("ann", "c3", 3));
  assert.equal(window.forgottenEarly, 1);
  assert.equal(window.find("general", "ann", "c2"), undefined, "c2 is now the oldest");
  assert.equal(window.find("general", "ann", "c1")?.seq, 1, "the renewed c1 stays");

  clock.nowMs = WINDOW_MS + 19;
  assert.equal(window.find("general", "ann", "c1")?.seq, 1, "its window runs from the renewal");
  clock.nowMs = WINDOW_MS + 20;
  assert.equal(window.find("general", "ann", "c1"), undefined);
});

Deno.test("SentMessages re-remembered many times stays one entry within its bytes", () => {
  const clock = new ManualClock();
  const bytes = entryBytes("general", "ann", "c1");
  const window = new SentMessages({ windowMs: WINDOW_MS, maxBytes: bytes, now: clock.now });
  for (let i = 0; i < 1_000; i++) {
    clock.nowMs = i;
    window.remember("general", sent("ann", "c1", 1));
  }
  assert.equal(window.size, 1);
  assert.equal(window.forgottenEarly, 0);
  assert.equal(window.find("general", "ann", "c1")?.seq, 1);
  window.remember("general", sent("ann", "c2", 2));
  assert.equal(window.forgottenEarly, 1, "a second entry does not fit: the first goes");
  assert.equal(window.find("general", "ann", "c2")?.seq, 2);
});

Deno.test("SentMessages uses performance.now when no clock is given", () => {
  const window = new SentMessages({ windowMs: WINDOW_MS, maxBytes: 1 << 20 });
  window.remember("general", sent("ann", "c1", 7));
  assert.deepEqual(window.find("general", "ann", "c1"), sent("ann", "c1", 7));
});
