/**
 * The one contract every {@linkcode MessageRepository} passes: memory and PostgreSQL alike.
 *
 * @module
 */
import assert from "node:assert/strict";
import { v7 } from "uuid";
import type { ChatMessage } from "../../chat/message.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import { at, BASE_TIME, ids, messages } from "./_contract_fixtures.ts";
import { changesContract } from "./changes_contract.ts";
import { pruneContract } from "./prune_contract.ts";
import { sequenceContract } from "./sequence_contract.ts";

/** A fresh, empty repository and how to release everything opened for it. */
export interface OpenedRepository {
  readonly repository: MessageRepository;
  readonly dispose: () => Promise<void>;
}

/** How the contract's cases are registered. */
export interface ContractOptions {
  /** Registers every case as ignored (the service behind the store is not configured). */
  readonly ignore?: boolean;
}

/**
 * Deno 2.9 runs tests without the op and resource sanitizers unless asked: every store test asks,
 * so a leaked timer, socket or query fails it.
 */
export const SANITIZERS = { sanitizeOps: true, sanitizeResources: true } as const;

/** Registers one contract case on a fresh repository. */
export type ContractCase = (
  title: string,
  fn: (repository: MessageRepository) => Promise<void>,
) => void;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const UNUSUAL_TEXT = [
  "'); DROP TABLE messages; --",
  "Robert'); DELETE FROM messages WHERE ('1'='1",
  `single ' double " back \` quotes`,
  "back\\slash \\\\ and \\x00 and \\n written out",
  "$1 $$ dollar $tag$ quoting $tag$ ?",
  "emoji 👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 😀",
  "مرحبا بالعالم — שלום עולם",
  "e\u0301 n\u0303 a\u030a\u0323 combining marks",
  "line one\nline two\r\nline three\ttabbed",
  "\u200b zero width \u200d joiner \ufeff bom \u202e rtl override",
  "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠜎𠜱 and the last code point \u{10ffff}",
  "%s %d {0} ${x} <script>alert(1)</script> &amp;",
  "x".repeat(3_989) + " 4000 chars",
];

/**
 * Registers the contract's cases as `Deno.test`, each named `${name}: ...`. Every case opens a
 * fresh repository with `open` and disposes it, whatever the outcome.
 *
 * @example
 * ```ts
 * repositoryContract("MemoryStore", () => {
 *   const repository = new MemoryStore({ maxPerRoom: 10_000, maxRooms: 100 });
 *   return Promise.resolve({ repository, dispose: () => repository.close() });
 * });
 * ```
 */
export function repositoryContract(
  name: string,
  open: () => Promise<OpenedRepository>,
  options: ContractOptions = {},
): void {
  const test: ContractCase = (title, fn) => {
    Deno.test({
      name: `${name}: ${title}`,
      ignore: options.ignore ?? false,
      ...SANITIZERS,
      async fn() {
        const { repository, dispose } = await open();
        try {
          await fn(repository);
        } finally {
          await dispose();
        }
      },
    });
  };

  test("history() of an unknown room returns []", async (repository) => {
    assert.deepEqual(await repository.history("nobody-here", { limit: 50 }), []);
    await repository.saveBatch(messages("somebody", 3));
    assert.deepEqual(await repository.history("nobody-here", { limit: 50 }), []);
  });

  test("saveBatch() then history() keeps reply_to, and leaves it out where there is none", async (repository) => {
    const [question, answer, other] = messages("a", 3) as [ChatMessage, ChatMessage, ChatMessage];
    const saved = [question, { ...answer, replyTo: question.seq }, other];
    await repository.saveBatch(saved);
    assert.deepEqual(await repository.history("a", { limit: 10 }), saved);
  });

  test("saveBatch() of an empty batch stores nothing", async (repository) => {
    await repository.saveBatch([]);
    assert.deepEqual(await repository.history("a", { limit: 50 }), []);
  });

  test("saveBatch() then history() returns messages ascending by id, not by time", async (repository) => {
    // Timestamps run backwards, so a store ordering by time instead of id fails here.
    const saved = messages("a", 10).map((message, i) => ({
      ...message,
      timestamp: new Date(BASE_TIME - i * 1_000).toISOString(),
    }));
    await repository.saveBatch([...saved].reverse());
    assert.deepEqual(await repository.history("a", { limit: 100 }), saved);
  });

  test("history() without cursors returns the newest limit messages", async (repository) => {
    const saved = messages("a", 30);
    await repository.saveBatch(saved);
    assert.deepEqual(await repository.history("a", { limit: 7 }), saved.slice(-7));
    assert.deepEqual(await repository.history("a", { limit: 1 }), saved.slice(-1));
    assert.deepEqual(await repository.history("a", { limit: 30 }), saved);
    assert.deepEqual(await repository.history("a", { limit: 500 }), saved);
  });

  test("history({ before }) returns the newest limit messages older than the id", async (repository) => {
    const saved = messages("a", 30);
    await repository.saveBatch(saved);
    const before = (index: number, limit: number) =>
      repository.history("a", { limit, before: at(saved, index).id });
    assert.deepEqual(await before(20, 5), saved.slice(15, 20));
    assert.deepEqual(await before(3, 5), saved.slice(0, 3));
    assert.deepEqual(await before(0, 5), []);
    // A cursor that is no stored id still bounds the page: newer than every message here.
    assert.deepEqual(await repository.history("a", { limit: 4, before: v7() }), saved.slice(-4));

    const pages: ChatMessage[][] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await repository.history("a", { limit: 8, ...(cursor && { before: cursor }) });
      if (page.length === 0) break;
      pages.unshift(page);
      cursor = at(page, 0).id;
    }
    assert.deepEqual(pages.map((page) => page.length), [6, 8, 8, 8]);
    assert.deepEqual(pages.flat(), saved);
  });

  test("history({ after }) returns the oldest limit messages newer than the id", async (repository) => {
    const saved = messages("a", 30);
    await repository.saveBatch(saved);
    const after = (index: number, limit: number) =>
      repository.history("a", { limit, after: at(saved, index).id });
    assert.deepEqual(await after(9, 5), saved.slice(10, 15));
    assert.deepEqual(await after(26, 5), saved.slice(27));
    assert.deepEqual(await after(29, 5), []);

    const forward: ChatMessage[] = [];
    let cursor = at(saved, 0).id;
    for (;;) {
      const page = await repository.history("a", { limit: 8, after: cursor });
      if (page.length === 0) break;
      forward.push(...page);
      cursor = at(page, page.length - 1).id;
    }
    assert.deepEqual(forward, saved.slice(1));
  });

  test("history({ before, after }) returns the range between them, oldest first", async (repository) => {
    const saved = messages("a", 30);
    await repository.saveBatch(saved);
    const range = (after: number, before: number, limit: number) =>
      repository.history("a", { limit, after: at(saved, after).id, before: at(saved, before).id });
    assert.deepEqual(await range(4, 20, 100), saved.slice(5, 20));
    assert.deepEqual(await range(4, 20, 3), saved.slice(5, 8), "the page starts at after");
    assert.deepEqual(await range(4, 5, 10), []);
    assert.deepEqual(await range(20, 4, 10), []);
  });

  test("saveBatch() of the same batch twice stores each message once", async (repository) => {
    const saved = messages("a", 10);
    await repository.saveBatch(saved);
    await repository.saveBatch(saved);
    // The first write of an id wins: a retried batch never rewrites a stored message.
    await repository.saveBatch([{ ...at(saved, 3), content: "rewritten" }]);
    assert.deepEqual(await repository.history("a", { limit: 100 }), saved);
  });

  test("saveBatch() of overlapping batches stores each message once", async (repository) => {
    const saved = messages("a", 20);
    await repository.saveBatch(saved.slice(0, 12));
    await repository.saveBatch(saved.slice(8, 20));
    await repository.saveBatch([at(saved, 5), at(saved, 5), at(saved, 19)]);
    assert.deepEqual(await repository.history("a", { limit: 100 }), saved);
  });

  test("saveBatch() of a later batch before an earlier one reads back in id order", async (repository) => {
    const saved = messages("a", 20);
    await repository.saveBatch(saved.slice(10));
    await repository.saveBatch(saved.slice(0, 10));
    assert.deepEqual(await repository.history("a", { limit: 100 }), saved);
    assert.deepEqual(await repository.history("a", { limit: 5 }), saved.slice(-5));
    assert.deepEqual(
      await repository.history("a", { limit: 4, after: at(saved, 7).id }),
      saved.slice(8, 12),
    );
  });

  test("history() keeps rooms apart", async (repository) => {
    const a = messages("a", 10);
    const b = messages("b", 10);
    // Interleaved in one batch, ids of the two rooms alternate in time.
    await repository.saveBatch(a.flatMap((message, i) => [message, at(b, i)]));
    assert.deepEqual(await repository.history("a", { limit: 100 }), a);
    assert.deepEqual(await repository.history("b", { limit: 100 }), b);
    assert.deepEqual(await repository.history("b", { limit: 3 }), b.slice(-3));
    const cursor = at(a, 5).id; // a cursor of room a bounds room b by id only
    const older = await repository.history("b", { limit: 100, before: cursor });
    assert.deepEqual(older, b.filter((message) => message.id < cursor));
    const newer = await repository.history("b", { limit: 100, after: cursor });
    assert.deepEqual(newer, b.filter((message) => message.id > cursor));
    assert.deepEqual(await repository.history("A", { limit: 100 }), [], "room names are exact");
  });

  test("saveBatch() then history() returns unusual text verbatim", async (repository) => {
    const room = 'r\'; DROP TABLE messages; -- \\ "ü"';
    const saved = ids(UNUSUAL_TEXT.length).map((id, i) => ({
      id,
      room,
      seq: i + 1,
      // Whole code points: a lone surrogate cannot be encoded, and the server refuses it anyway.
      sender: Array.from(at(UNUSUAL_TEXT, (i + 1) % UNUSUAL_TEXT.length)).slice(0, 32).join(""),
      content: at(UNUSUAL_TEXT, i),
      timestamp: new Date(BASE_TIME + i).toISOString(),
    }));
    await repository.saveBatch(saved);
    const read = await repository.history(room, { limit: 100 });
    assert.deepEqual(read, saved);
    assert.equal(at(read, read.length - 1).content.length, 4_000);
    // The injection attempts did nothing: the store still works.
    await repository.saveBatch(messages("after", 1));
    assert.equal((await repository.history("after", { limit: 10 })).length, 1);
  });

  test("saveBatch() then history() returns timestamps exactly", async (repository) => {
    const timestamps = [
      "2025-03-01T12:00:00.000Z",
      "2025-03-01T12:00:00.001Z",
      "2025-03-01T12:00:00.999Z",
      "2024-02-29T23:59:59.999Z",
      "1999-12-31T23:59:59.500Z",
      "2038-01-19T03:14:08.123Z",
      "2100-06-15T00:00:00.010Z",
    ];
    const saved = ids(timestamps.length).map((id, i) => ({
      id,
      room: "a",
      seq: i + 1,
      sender: "ann",
      content: `at ${i}`,
      timestamp: at(timestamps, i),
    }));
    await repository.saveBatch(saved);
    const read = await repository.history("a", { limit: 100 });
    assert.deepEqual(read.map((message) => message.timestamp), timestamps);
  });

  test("history() returns lower-case UUIDv7 ids and exactly the message fields", async (repository) => {
    const saved = messages("a", 5);
    await repository.saveBatch(saved);
    const read = await repository.history("a", { limit: 100 });
    assert.equal(read.length, 5);
    for (const message of read) {
      assert.match(message.id, UUID_V7);
      assert.deepEqual(Object.keys(message).sort(), [
        "content",
        "id",
        "room",
        "sender",
        "seq",
        "timestamp",
      ]);
      assert.ok(Number.isSafeInteger(message.seq), "seq is a number, not a bigint's text");
      assert.equal(Object.getPrototypeOf(message), Object.prototype);
    }
    assert.deepEqual(read.map((message) => message.id), saved.map((message) => message.id));
    assert.deepEqual(read.map((message) => message.seq), saved.map((message) => message.seq));
  });

  sequenceContract(test);
  pruneContract(test);
  changesContract(test);
}
