/** Messages and lookups shared by the store contract's case files. */
import assert from "node:assert/strict";
import { v7 } from "uuid";
import type { ChatMessage } from "../../chat/message.ts";

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

/** `items[index]`, failing the test when there is none. */
export function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  assert.ok(item !== undefined, `no item at ${index}`);
  return item;
}
