/**
 * The change cases of the store contract: edits, deletes and reactions are items of the room's
 * sequence, applied the same way on every store whatever order they arrive in; reads give
 * messages in their latest state, and unread counts follow. Registered by `repositoryContract`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChatMessage } from "../../chat/message.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import { tombstone } from "../../storage/message_state.ts";
import { at, change, messageBy, messages } from "./_contract_fixtures.ts";
import type { ContractCase } from "./repository_contract.ts";

const edit = (target: ChatMessage, content: string) =>
  change(target.room, target.sender, { kind: "edit", target: target.seq }, content);
const remove = (target: ChatMessage, sender = target.sender) =>
  change(target.room, sender, { kind: "delete", target: target.seq });
const react = (target: ChatMessage, sender: string, reaction: string, on = true) =>
  change(target.room, sender, { kind: "react", target: target.seq, reaction, on });

/** Every message of `room`, in its latest state. */
const all = (repository: MessageRepository, room: string) =>
  repository.history(room, { limit: 1_000 });
/** Every item of `room`, changes included. */
const everything = (repository: MessageRepository, room: string) =>
  repository.history(room, { limit: 1_000, changes: true });

/** `message` as an edit leaves it. */
const editedBy = (message: ChatMessage, edit: ChatMessage) => ({
  ...message,
  content: edit.content,
  editedAt: edit.timestamp,
});

/** Registers the change cases with `test`. */
export function changesContract(test: ContractCase): void {
  test("saveBatch() of edits sets content and editedAt; the newest edit wins in any order", async (repository) => {
    const [first, second, other] = messages("a", 3) as [ChatMessage, ChatMessage, ChatMessage];
    await repository.saveBatch([first, second, other]);
    const [older, newer] = [edit(first, "older edit"), edit(first, "newer edit")];
    const [inOrder1, inOrder2] = [edit(second, "one"), edit(second, "two")];
    await repository.saveBatch([newer, inOrder1]);
    await repository.saveBatch([older, inOrder2]); // the older edit of `first` arrives late
    await repository.saveBatch([older, newer, inOrder1]); // a retry changes nothing
    assert.deepEqual(await all(repository, "a"), [
      editedBy(first, newer),
      editedBy(second, inOrder2),
      other,
    ]);
    // Both edits of one message in one batch, the newer first.
    const [e1, e2] = [edit(other, "e1"), edit(other, "e2")];
    await repository.saveBatch([e2, e1]);
    assert.deepEqual((await all(repository, "a"))[2], editedBy(other, e2));
  });

  test("saveBatch() of a delete leaves a tombstone; edits after it change nothing", async (repository) => {
    const [kept, gone, late] = messages("a", 3) as [ChatMessage, ChatMessage, ChatMessage];
    await repository.saveBatch([kept, gone, late]);
    const before = edit(gone, "edited before");
    const deletion = remove(gone);
    const after = edit(gone, "edited after");
    await repository.saveBatch([before]);
    await repository.saveBatch([deletion]);
    await repository.saveBatch([after]);
    // An older edit arriving after the delete, and a delete and an edit in one batch.
    const olderEdit = edit(late, "older edit");
    const lateDeletion = remove(late, "moderator");
    await repository.saveBatch([lateDeletion]);
    await repository.saveBatch([olderEdit, remove(late)]);
    const expected = [kept, tombstone(gone), tombstone(late)];
    assert.deepEqual(await all(repository, "a"), expected);
    assert.equal(expected[1]?.content, "");
    assert.equal(expected[1]?.deleted, true);
    assert.ok(!("editedAt" in (expected[1] as ChatMessage)), "a tombstone has no edit time");
    // The edits stay in the sequence (a replay sees every seq), without their content.
    const items = await everything(repository, "a");
    const edits = items.filter((item) => item.change?.kind === "edit");
    assert.deepEqual(edits.map((item) => [item.seq, item.content]), [
      [before.seq, ""],
      [after.seq, ""],
      [olderEdit.seq, ""],
    ]);
  });

  test("a deleted message's content is gone from every read", async (repository) => {
    const secret = `secret-${crypto.randomUUID()}`;
    const [message] = messages("a", 1).map((m) => ({
      ...m,
      content: `${secret} original`,
      clientId: "c1",
    })) as [ChatMessage];
    await repository.saveBatch([message, edit(message, `${secret} edited`)]);
    await repository.saveBatch([react(message, "bob", "👍")]);
    await repository.saveBatch([remove(message)]);
    await repository.saveBatch([edit(message, `${secret} after`)]);
    const reads = await Promise.all([
      all(repository, "a"),
      everything(repository, "a"),
      repository.history("a", { limit: 10, afterSeq: 0, changes: true }),
      repository.history("a", { limit: 10, beforeSeq: 100, changes: true }),
      repository.history("a", { limit: 10, before: "ffffffff-ffff-7fff-bfff-ffffffffffff" }),
      repository.reactionsTo("a", [message.seq]),
      repository.findSent("a", [{ sender: message.sender, clientId: "c1" }]),
    ]);
    const text = JSON.stringify(reads, (_key, value) => value instanceof Map ? [...value] : value);
    assert.ok(!text.includes(secret), text);
    assert.deepEqual(reads[0], [tombstone(message)]);
    assert.deepEqual(reads[5], new Map(), "a deleted message has no reactions");
    assert.equal(reads[6].length, 1, "its client id still names it: a re-send is no new message");
  });

  test("reactionsTo() lists who reacted with what; re-saving and any order give the same", async (repository) => {
    const [m1, m2, m3] = messages("a", 3) as [ChatMessage, ChatMessage, ChatMessage];
    await repository.saveBatch([m1, m2, m3]);
    const annThumbs = react(m1, "ann", "👍");
    const bobThumbs = react(m1, "bob", "👍");
    const annParty = react(m1, "ann", "party_popper");
    const annAgain = react(m1, "ann", "👍"); // the same reaction twice counts once
    const carolThumbs = react(m1, "carol", "👍");
    const carolOff = react(m1, "carol", "👍", false);
    const add = react(m2, "ann", "+1");
    const drop = react(m2, "ann", "+1", false);
    await repository.saveBatch([carolThumbs, bobThumbs, annThumbs, annParty]);
    await repository.saveBatch([annAgain, carolOff, drop]);
    await repository.saveBatch([add]); // the removal's seq is higher: it stays off
    await repository.saveBatch([annThumbs, carolThumbs, add]); // re-saved: nothing changes
    const expected = new Map([[
      m1.seq,
      new Map([["👍", ["ann", "bob"]], ["party_popper", ["ann"]]]),
    ]]);
    assert.deepEqual(await repository.reactionsTo("a", [m1.seq, m2.seq, m3.seq, 999]), expected);
    assert.deepEqual(await repository.reactionsTo("a", []), new Map());
    assert.deepEqual(await repository.reactionsTo("nobody-here", [m1.seq]), new Map());
    // Reactions never change a message's state.
    assert.deepEqual(await all(repository, "a"), [m1, m2, m3]);
  });

  test("history({ changes: true }) gives change items among messages in seq order; limit counts both", async (repository) => {
    const [m1, m2, m3] = messages("a", 3) as [ChatMessage, ChatMessage, ChatMessage];
    const e4 = edit(m1, "edited");
    const r5 = react(m2, "bob", "👍");
    const [m6] = messages("a", 1) as [ChatMessage];
    const d7 = remove(m3);
    await repository.saveBatch([m1, m2, m3, e4, r5, m6, d7]);
    const latest = [editedBy(m1, e4), m2, tombstone(m3), e4, r5, m6, d7];
    assert.deepEqual(await everything(repository, "a"), latest);
    const page = (query: { limit: number; afterSeq?: number; beforeSeq?: number }) =>
      repository.history("a", { ...query, changes: true });
    assert.deepEqual(await page({ limit: 3 }), latest.slice(-3));
    assert.deepEqual(await page({ limit: 2, afterSeq: m3.seq }), [e4, r5]);
    assert.deepEqual(await page({ limit: 3, beforeSeq: m6.seq }), latest.slice(2, 5));
    assert.deepEqual(
      await page({ limit: 10, afterSeq: m1.seq, beforeSeq: d7.seq }),
      latest.slice(1, 6),
    );
    // Without changes: messages only, and changes take no place in the page.
    assert.deepEqual(await repository.history("a", { limit: 3 }), [m2, tombstone(m3), m6]);
    assert.deepEqual(await repository.history("a", { limit: 1, afterSeq: m3.seq }), [m6]);
    assert.deepEqual(await repository.history("a", { limit: 2, beforeSeq: d7.seq }), [
      tombstone(m3),
      m6,
    ]);
  });

  test("a change item raises the room's last seq; its seq is never taken by a message", async (repository) => {
    const { epoch } = await repository.openRoom("a");
    const [message] = messages("a", 1) as [ChatMessage];
    const reaction = react(message, "bob", "👍");
    await repository.saveBatch([message]);
    await repository.saveBatch([reaction]);
    const expected = { epoch, lastSeq: reaction.seq };
    assert.deepEqual(await repository.roomSequence("a"), expected);
    assert.deepEqual(await repository.openRoom("a"), expected);
    // Items of another instance given seqs already taken: the first stored keeps each.
    const impostor = { ...messageBy("a", "mallory", "impostor"), seq: reaction.seq };
    const otherChange = { ...edit(message, "impostor edit"), seq: message.seq };
    await repository.saveBatch([impostor, otherChange]);
    assert.deepEqual(await everything(repository, "a"), [message, reaction]);
    // A room whose first stored item is a change gets an epoch and a last seq too.
    const orphan = react({ ...message, room: "b", seq: 1 }, "bob", "👍");
    await repository.saveBatch([orphan]);
    assert.equal((await repository.roomSequence("b"))?.lastSeq, orphan.seq);
  });

  test("unread() counts others' messages after the read position that are not deleted", async (repository) => {
    assert.deepEqual(await repository.unread("ann"), []);
    const [own, first, second, third] = [
      messageBy("b-room", "ann", "mine"),
      messageBy("b-room", "bob", "one"),
      messageBy("b-room", "bob", "two"),
      messageBy("b-room", "carol", "three"),
    ];
    await repository.saveBatch([own, first, second, third]);
    const deletion = remove(second);
    await repository.saveBatch([deletion, edit(third, "three, edited"), react(first, "ann", "👍")]);
    const lastSeq = (await repository.roomSequence("b-room"))?.lastSeq ?? 0;
    assert.equal(await repository.saveReadPosition("b-room", "ann", own.seq), own.seq);
    assert.equal(await repository.saveReadPosition("b-room", "ann", 0), own.seq, "not backwards");
    assert.equal(await repository.saveReadPosition("a-room", "ann", 7), 7);
    assert.equal(await repository.saveReadPosition("b-room", "bob", third.seq), third.seq);
    // b-room: `first` and the edited `third`; not `own`, the deleted `second`, nor any change.
    assert.deepEqual(await repository.unread("ann"), [
      { room: "a-room", readSeq: 7, unread: 0, lastSeq: 0 },
      { room: "b-room", readSeq: own.seq, unread: 2, lastSeq },
    ]);
    assert.deepEqual(await repository.unread("ann", "b-room"), [
      { room: "b-room", readSeq: own.seq, unread: 2, lastSeq },
    ]);
    assert.deepEqual(await repository.unread("ann", "c-room"), []);
    assert.deepEqual(await repository.unread("bob"), [
      { room: "b-room", readSeq: third.seq, unread: 0, lastSeq },
    ]);
    assert.equal(await repository.saveReadPosition("b-room", "ann", lastSeq), lastSeq);
    assert.equal(at(await repository.unread("ann", "b-room"), 0).unread, 0);
  });
}
