/** Messages and lookups shared by the store contract's case files. */
import assert from "node:assert/strict";
import { v7 } from "uuid";
import type { ChatMessage, MessageChange } from "../../chat/message.ts";

/** The timestamp of the first message {@linkcode messages} makes. */
export const BASE_TIME = Date.parse("2025-03-01T12:00:00.000Z");

/** Sorted lower-case UUIDv7 ids, so that index order is id order. */
export function ids(count: number): string[] {
  return Array.from({ length: count }, () => v7()).sort();
}

/** The last seq {@linkcode messages} gave in each room, so that calls never reuse one. */
const lastSeqs = new Map<string, number>();

/**
 * `count` messages of `room` in ascending id and seq order, one millisecond apart from
 * BASE_TIME. Seqs continue from the previous call's for the same room.
 */
export function messages(room: string, count: number): ChatMessage[] {
  const first = (lastSeqs.get(room) ?? 0) + 1;
  lastSeqs.set(room, first + count - 1);
  return ids(count).map((id, i) => ({
    id,
    room,
    seq: first + i,
    sender: `user${i % 3}`,
    content: `message ${i}`,
    timestamp: new Date(BASE_TIME + i).toISOString(),
  }));
}

/** When {@linkcode change} items are timestamped: an hour after BASE_TIME, plus their seq in ms. */
export const CHANGE_TIME = BASE_TIME + 3_600_000;

/**
 * A change item of `room` by `sender`, at the room's next seq (as {@linkcode messages} counts
 * them). `content` is the new content of an edit; other changes have `""`.
 */
export function change(
  room: string,
  sender: string,
  what: MessageChange,
  content = "",
): ChatMessage & { readonly change: MessageChange } {
  const seq = (lastSeqs.get(room) ?? 0) + 1;
  lastSeqs.set(room, seq);
  return {
    id: v7(),
    room,
    seq,
    sender,
    content,
    timestamp: new Date(CHANGE_TIME + seq).toISOString(),
    change: what,
  };
}

/** A message of `room` at its next seq, sent by `sender`. */
export function messageBy(room: string, sender: string, content: string): ChatMessage {
  return { ...at(messages(room, 1), 0), sender, content };
}

/** `items[index]`, failing the test when there is none. */
export function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  assert.ok(item !== undefined, `no item at ${index}`);
  return item;
}
