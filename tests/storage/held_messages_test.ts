import assert from "node:assert/strict";
import type { ChatMessage } from "../../chat/message.ts";
import { HeldMessages } from "../../storage/held_messages.ts";

function message(seq: number, room = "r"): ChatMessage {
  return {
    id: `id-${room}-${seq}`,
    room,
    seq,
    sender: "ann",
    content: `m${seq}`,
    timestamp: new Date(seq).toISOString(),
  };
}

Deno.test("HeldMessages answers every seq window as a filter and a sort of all it holds would", () => {
  // A deterministic shuffle: settles come in any order, and a few adds overtake others.
  let state = 7;
  const random = () => (state = (state * 48271) % 2147483647) / 2147483647;
  const held = new HeldMessages();
  const live = new Map<number, ChatMessage>();
  for (let seq = 1; seq <= 400; seq++) {
    const late = random() < 0.05 && seq > 3 ? seq - 2 : seq;
    if (!live.has(late)) {
      held.add(message(late));
      live.set(late, message(late));
    }
    if (random() < 0.4 && live.size > 0) {
      const keys = [...live.keys()];
      const gone = keys[Math.floor(random() * keys.length)] as number;
      assert.equal(held.delete(message(gone)), true);
      live.delete(gone);
    }
    if (seq % 20 !== 0) continue;
    const all = [...live.values()].sort((a, b) => a.seq - b.seq);
    for (const afterSeq of [undefined, 0, 17, seq - 5]) {
      for (const beforeSeq of [undefined, seq - 3, 40]) {
        for (const oldestFirst of [true, false]) {
          const within = all.filter((m) =>
            (afterSeq === undefined || m.seq > afterSeq) &&
            (beforeSeq === undefined || m.seq < beforeSeq)
          );
          const expected = oldestFirst ? within.slice(0, 10) : within.slice(-10);
          const window = { afterSeq, beforeSeq, limit: 10, oldestFirst };
          assert.deepEqual(held.window("r", window), expected, JSON.stringify(window));
        }
      }
    }
    assert.equal(held.newestSeq("r"), all.at(-1)?.seq ?? 0);
    assert.deepEqual(held.all("r"), all);
  }
  for (const seq of [...live.keys()]) held.delete(message(seq));
  assert.equal(held.newestSeq("r"), 0);
  assert.deepEqual(held.window("r", { limit: 10, oldestFirst: true }), []);
});
