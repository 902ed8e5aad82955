/** The pieces of edits, deletes and reactions that need no server. */
import assert from "node:assert/strict";
import type { ChatMessage } from "../../chat/message.ts";
import { MessageTargets } from "../../chat/message_targets.ts";
import {
  decodeItemFrame,
  encodeMessage,
  scrubbedEdit,
  tombstoneFrame,
} from "../../chat/protocol.ts";
import { isReaction, parseClientFrame } from "../../server/client_frame.ts";

const TIME = "2026-12-06T10:00:00.000Z";

function message(seq: number, sender = "ann", extra: Partial<ChatMessage> = {}): ChatMessage {
  return {
    id: `0193a1b2-0000-7000-8000-${String(seq).padStart(12, "0")}`,
    room: "r",
    seq,
    sender,
    content: `m${seq}`,
    timestamp: TIME,
    ...extra,
  };
}

Deno.test("isReaction: one emoji grapheme or a short token", () => {
  for (const ok of ["👍", "❤️", "🇯🇵", "👩‍👩‍👧‍👦", "👍🏽", "1️⃣", "🏳️‍🌈", "+1", "party_parrot", "a-b"]) {
    assert.ok(isReaction(ok), ok);
  }
  for (
    const bad of ["", "👍👍", "ab cd", "Thumbs", "#", "1\u20e3x", "a".repeat(33), "<b>", "é", 3]
  ) {
    assert.ok(!isReaction(bad), String(bad));
  }
});

Deno.test("parseClientFrame: edit, delete and react frames, and their refusals with the client_id", () => {
  assert.deepEqual(
    parseClientFrame('{"type":"edit","seq":3,"content":" new ","client_id":"e"}', 100),
    { ok: true, change: { kind: "edit", target: 3, content: "new" }, clientId: "e" },
  );
  assert.deepEqual(parseClientFrame('{"type":"delete","seq":3}', 100), {
    ok: true,
    change: { kind: "delete", target: 3 },
  });
  assert.deepEqual(parseClientFrame('{"type":"react","seq":3,"reaction":"👍"}', 100), {
    ok: true,
    change: { kind: "react", target: 3, reaction: "👍", on: true },
  });
  assert.deepEqual(
    parseClientFrame('{"type":"react","seq":3,"reaction":"👍","on":false,"client_id":"r"}', 100),
    { ok: true, change: { kind: "react", target: 3, reaction: "👍", on: false }, clientId: "r" },
  );
  const refused = (text: string) => {
    const parsed = parseClientFrame(text, 5);
    assert.equal(parsed.ok, false, text);
    return parsed.ok ? undefined : [parsed.code, parsed.clientId];
  };
  assert.deepEqual(refused('{"type":"edit","seq":0,"content":"x","client_id":"c"}'), [
    "invalid_target",
    "c",
  ]);
  assert.deepEqual(refused('{"type":"edit","seq":1,"content":"toolong","client_id":"c"}'), [
    "content_too_long",
    "c",
  ]);
  assert.deepEqual(refused('{"type":"delete","seq":"1"}'), ["invalid_target", undefined]);
  assert.deepEqual(refused('{"type":"react","seq":1,"reaction":"no way"}'), [
    "invalid_reaction",
    undefined,
  ]);
  assert.deepEqual(refused('{"type":"react","seq":1,"reaction":"👍","client_id":"bad id"}'), [
    "invalid_client_id",
    undefined,
  ]);
  // Level 0 reads every frame as text: a change frame is a message there.
  const plain = parseClientFrame('{"type":"delete","seq":1}', 100, true);
  assert.ok(plain.ok && "submission" in plain);
});

Deno.test("Item frames: changes encode with event_seq and decode back; tombstones and scrubbed edits keep no content", () => {
  const edit: ChatMessage = {
    ...message(5, "ann"),
    content: "fixed",
    change: { kind: "edit", target: 2 },
    clientId: "c1",
  };
  const react: ChatMessage = {
    ...message(6, "bob"),
    content: "",
    change: { kind: "react", target: 2, reaction: "🎉", on: false },
  };
  const removal: ChatMessage = {
    ...message(7, "mo"),
    content: "",
    change: { kind: "delete", target: 2 },
  };
  for (
    const item of [
      message(1),
      message(2, "bob", { replyTo: 1, editedAt: TIME }),
      edit,
      react,
      removal,
    ]
  ) {
    assert.deepEqual(decodeItemFrame(encodeMessage(item)), item);
  }
  assert.deepEqual(JSON.parse(encodeMessage(edit)), {
    type: "edit",
    id: edit.id,
    room: "r",
    event_seq: 5,
    user: "ann",
    seq: 2,
    content: "fixed",
    timestamp: TIME,
    client_id: "c1",
  });
  const tombstone = JSON.parse(
    tombstoneFrame(encodeMessage(message(2, "bob", { editedAt: TIME }))),
  );
  assert.deepEqual([tombstone.content, tombstone.edited_at, tombstone.deleted], [
    undefined,
    undefined,
    true,
  ]);
  assert.equal(JSON.parse(scrubbedEdit(encodeMessage(edit), 2) ?? "{}").content, "");
  assert.equal(scrubbedEdit(encodeMessage(edit), 3), undefined);
  assert.equal(scrubbedEdit(encodeMessage(message(2)), 2), undefined);
});

Deno.test("MessageTargets: recent messages are known, other seqs above the floor are no messages, older ones are looked up", () => {
  const targets = new MessageTargets(2);
  targets.start(10);
  assert.equal(targets.of(5), undefined); // before the room's start: look it up
  targets.added(message(11, "ann"));
  targets.added({
    ...message(12, "bob"),
    content: "",
    change: { kind: "react", target: 11, reaction: "👍", on: true },
  });
  targets.added(message(13, "bob"));
  assert.equal(targets.of(11)?.sender, "ann");
  assert.deepEqual([...targets.of(11)?.reactions?.get("👍") ?? []], ["bob"]);
  assert.equal(targets.of(12), null); // a change, not a message
  targets.added({ ...message(14, "ann"), content: "", change: { kind: "delete", target: 11 } });
  assert.equal(targets.of(11)?.deleted, true);
  targets.added(message(15, "cat")); // evicts 11: the floor moves past it
  assert.equal(targets.floor, 12);
  assert.equal(targets.of(11), undefined);
  targets.lookedUp(11, { ...message(11, "ann"), deleted: true });
  assert.equal(targets.of(11)?.deleted, true);
  targets.lookedUp(9, undefined);
  assert.equal(targets.of(9), null);
});
