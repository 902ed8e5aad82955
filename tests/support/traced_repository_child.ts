/**
 * Run as a child process by tests/storage/traced_repository_test.ts, with OTEL_DENO=true: saves
 * a batch (refused once, then retried), reads two pages of history and prunes, all through a
 * TracedRepository over a MemoryStore, then exits so that Deno flushes the spans.
 *
 * Arguments: the content, the sender and a cursor id, which must never reach the collector.
 */
import { MemoryStore } from "../../storage/memory_store.ts";
import type { ChatMessage } from "../../chat/message.ts";
import { TracedRepository } from "../../storage/traced_repository.ts";

class RefusedOnce extends Error {
  readonly code = "refused_once";
}

/** A memory store that refuses its first save, as a database in a blip would. */
class RefusingOnceStore extends MemoryStore {
  #refused = false;

  constructor() {
    super({ maxPerRoom: 100, maxRooms: 10 });
  }

  override saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    if (this.#refused) return super.saveBatch(messages);
    this.#refused = true;
    // Quotes the content, as database errors may: the span must carry the code, not this text.
    return Promise.reject(new RefusedOnce(`refused a batch starting ${messages[0]?.content}`));
  }
}

const [content = "", sender = "", cursor = ""] = Deno.args;
const room = "traced-room";
const batch: ChatMessage[] = [1, 2, 3].map((i) => ({
  id: `01900000-0000-7000-8000-00000000000${i}`,
  room,
  seq: i,
  sender,
  content: `${content} ${i}`,
  timestamp: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
}));

const repository = new TracedRepository(new RefusingOnceStore());
// The same array again, as the persistence workers retry: the second span says attempt 2.
await repository.saveBatch(batch).catch((error: unknown) => {
  if (!(error instanceof RefusedOnce)) throw error;
});
await repository.saveBatch(batch);
await repository.history(room, { limit: 25, before: cursor });
await repository.history(room, { limit: 5 });
await repository.prune({ maxPerRoom: 2 });
await repository.close();
