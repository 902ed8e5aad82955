/** A test double: a memory store that records every saved batch and can be awaited. */
import type { ChatMessage, HistoryQuery, RoomSequence, SentMessage } from "../../chat/message.ts";
import type { MessageRepository, RetentionPolicy } from "../../storage/repository.ts";
import { MemoryStore } from "../../storage/memory_store.ts";

export class RecordingStore implements MessageRepository {
  readonly kind = "recording";
  /** Every message saved, in the order saves happened. */
  readonly saved: ChatMessage[] = [];
  readonly batchSizes: number[] = [];
  readonly #inner = new MemoryStore({ maxPerRoom: 1_000_000, maxRooms: 1_000 });
  #waiters: (() => void)[] = [];

  async saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    await this.#inner.saveBatch(messages);
    this.saved.push(...messages);
    this.batchSizes.push(messages.length);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return this.#inner.history(room, query);
  }

  openRoom(room: string): Promise<RoomSequence> {
    return this.#inner.openRoom(room);
  }

  roomSequence(room: string): Promise<RoomSequence | undefined> {
    return this.#inner.roomSequence(room);
  }

  findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]> {
    return this.#inner.findSent(room, keys);
  }

  releaseRooms(): Promise<void> {
    return this.#inner.releaseRooms();
  }

  prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number> {
    return this.#inner.prune(policy, signal);
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  /** Resolves once at least `count` messages are saved. */
  async waitForSaved(count: number, timeoutMs = 5_000): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    while (this.saved.length < count) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new Error(`timed out: ${this.saved.length}/${count} saved`));
        signal.addEventListener("abort", onAbort, { once: true });
        this.#waiters.push(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }
}
