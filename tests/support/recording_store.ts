/** A test double: a memory store that records every saved batch and can be awaited. */
import type { ChatMessage } from "../../chat/message.ts";
import { MemoryStore } from "../../storage/memory_store.ts";

export class RecordingStore extends MemoryStore {
  override readonly kind = "recording";
  /** Every message saved, in the order saves happened. */
  readonly saved: ChatMessage[] = [];
  readonly batchSizes: number[] = [];
  #waiters: (() => void)[] = [];

  constructor() {
    super({ maxPerRoom: 1_000_000, maxRooms: 1_000 });
  }

  override async saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    await super.saveBatch(messages);
    this.saved.push(...messages);
    this.batchSizes.push(messages.length);
    for (const wake of this.#waiters.splice(0)) wake();
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
