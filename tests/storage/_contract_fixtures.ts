/** Messages and lookups shared by the store contract's case files. */
import assert from "node:assert/strict";
import { v7 } from "uuid";
import type { ChatMessage } from "../../storage/repository.ts";

/** The timestamp of the first message {@linkcode messages} makes. */
export const BASE_TIME = Date.parse("2025-03-01T12:00:00.000Z");

/** Sorted lower-case UUIDv7 ids, so that index order is id order. */
export function ids(count: number): string[] {
  return Array.from({ length: count }, () => v7()).sort();
}

/** `count` messages of `room` in ascending id order, one millisecond apart from BASE_TIME. */
export function messages(room: string, count: number): ChatMessage[] {
  return ids(count).map((id, i) => ({
    id,
    room,
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
