/** A test double: a memory store whose saves and reads can be held back and released. */
import type {
  ChatMessage,
  HistoryQuery,
  MessageReactions,
  RoomSequence,
  SentMessage,
  UnreadCount,
} from "../../chat/message.ts";
import type { MessageRepository, RetentionPolicy } from "../../storage/repository.ts";
import { MemoryStore } from "../../storage/memory_store.ts";

/** A latch: callers wait while it is closed. */
class Gate {
  #open = true;
  #waiters: (() => void)[] = [];
  #arrivals: (() => void)[] = [];

  close(): void {
    this.#open = false;
  }

  open(): void {
    this.#open = true;
    for (const release of this.#waiters.splice(0)) release();
  }

  /** Resolves once somebody is waiting at the closed gate. */
  arrival(): Promise<void> {
    if (this.#waiters.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.#arrivals.push(resolve));
  }

  pass(): Promise<void> {
    if (this.#open) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      for (const arrived of this.#arrivals.splice(0)) arrived();
    });
  }
}

export class GatedStore implements MessageRepository {
  readonly kind = "gated";
  readonly saves = new Gate();
  readonly reads = new Gate();
  readonly inner = new MemoryStore({ maxPerRoom: 100_000, maxRooms: 100 });

  async saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    await this.saves.pass();
    await this.inner.saveBatch(messages);
  }

  async history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    await this.reads.pass();
    return await this.inner.history(room, query);
  }

  async reactionsTo(room: string, seqs: readonly number[]): Promise<Map<number, MessageReactions>> {
    await this.reads.pass();
    return await this.inner.reactionsTo(room, seqs);
  }

  openRoom(room: string): Promise<RoomSequence> {
    return this.inner.openRoom(room);
  }

  roomSequence(room: string): Promise<RoomSequence | undefined> {
    return this.inner.roomSequence(room);
  }

  findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]> {
    return this.inner.findSent(room, keys);
  }

  releaseRooms(): Promise<void> {
    return this.inner.releaseRooms();
  }

  saveReadPosition(room: string, user: string, seq: number): Promise<number> {
    return this.inner.saveReadPosition(room, user, seq);
  }

  unread(user: string, room?: string): Promise<UnreadCount[]> {
    return this.inner.unread(user, room);
  }

  prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number> {
    return this.inner.prune(policy, signal);
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    this.saves.open();
    this.reads.open();
    return this.inner.close();
  }
}
