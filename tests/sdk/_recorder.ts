/**
 * What the SDK tests share: a recorder of a room's events that tests await (each wait bounded by
 * a timeout, never a sleep), and tokens for servers with AUTH_SECRET.
 */
import { SignJWT } from "jose";
import type {
  ChatError,
  ChatMessage,
  ConnectionState,
  DeleteEvent,
  EditEvent,
  EpochEvent,
  PresenceEvent,
  ReactEvent,
  Room,
} from "../../static/sdk/chat.d.ts";

const DEFAULT_TIMEOUT_MS = 10_000;

/** An item of the room's sequence as the SDK delivered it: a message or a change. */
export type Delivered =
  | { readonly type: "message"; readonly event: ChatMessage }
  | { readonly type: "edit"; readonly event: EditEvent }
  | { readonly type: "delete"; readonly event: DeleteEvent }
  | { readonly type: "react"; readonly event: ReactEvent };

/** Every event of one room, in arrival order per kind. */
export class Recorder {
  readonly messages: ChatMessage[] = [];
  readonly states: ConnectionState[] = [];
  readonly errors: ChatError[] = [];
  readonly presence: PresenceEvent[] = [];
  readonly epochs: EpochEvent[] = [];
  /** Messages and changes, in the order they were delivered. */
  readonly items: Delivered[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #off: (() => void)[];

  constructor(room: Room) {
    this.#off = [
      room.on("message", (message) => {
        this.items.push({ type: "message", event: message });
        this.#record(this.messages, message);
      }),
      room.on("edit", (event) => this.#record(this.items, { type: "edit", event })),
      room.on("delete", (event) => this.#record(this.items, { type: "delete", event })),
      room.on("react", (event) => this.#record(this.items, { type: "react", event })),
      room.on("state", (event) => this.#record(this.states, event.state)),
      room.on("error", (error) => this.#record(this.errors, error)),
      room.on("presence", (event) => this.#record(this.presence, event)),
      room.on("epoch", (event) => this.#record(this.epochs, event)),
    ];
  }

  /** The contents of the messages received, in order. */
  get contents(): string[] {
    return this.messages.map((message) => message.content);
  }

  /** The seqs of the messages received, in order. */
  get seqs(): number[] {
    return this.messages.map((message) => message.seq);
  }

  /**
   * What was delivered, in order, each as its kind and own seq: `message 1`, `edit 2→1` (the
   * change at event_seq 2 of message 1).
   */
  get sequence(): string[] {
    return this.items.map((item) =>
      item.type === "message"
        ? `message ${item.event.seq}`
        : `${item.type} ${item.event.event_seq}→${item.event.seq}`
    );
  }

  /** Waits until `count` items (messages and changes) in all were delivered. */
  untilItems(count: number, timeoutMs?: number): Promise<true> {
    return this.until(`${count} items (have ${this.sequence})`, () => {
      return this.items.length >= count || undefined;
    }, timeoutMs);
  }

  /** Resolves with `probe()` once it is neither undefined nor false, checked at every event. */
  async until<T>(
    what: string,
    probe: () => T | undefined | false,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<T> {
    const signal = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const value = probe();
      if (value !== undefined && value !== false) return value;
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          cleanup();
          resolve();
        };
        const expire = () => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        };
        const cleanup = () => {
          this.#waiters.delete(wake);
          signal.removeEventListener("abort", expire);
        };
        this.#waiters.add(wake);
        signal.addEventListener("abort", expire, { once: true });
      });
    }
  }

  /** Waits until `count` messages in all were received. */
  untilMessages(count: number, timeoutMs?: number): Promise<true> {
    return this.until(`${count} messages (have ${this.messages.length})`, () => {
      return this.messages.length >= count || undefined;
    }, timeoutMs);
  }

  /** Waits for the `nth` (1-based) occurrence of `state`. */
  untilState(state: ConnectionState, nth = 1, timeoutMs?: number): Promise<true> {
    return this.until(`state ${state} #${nth} (states: ${this.states})`, () => {
      return this.states.filter((each) => each === state).length >= nth || undefined;
    }, timeoutMs);
  }

  /** Stops recording. */
  stop(): void {
    for (const off of this.#off) off();
  }

  #record<T>(list: T[], item: T): void {
    list.push(item);
    for (const wake of [...this.#waiters]) wake();
  }
}

/** The secret of the servers the token tests start. */
export const SECRET = "sdk-test-secret-that-is-at-least-32-bytes-long";

/** A token for `user` in any room, expiring `ttlSeconds` from now (whole seconds, as `exp`). */
export async function mintToken(user: string, ttlSeconds: number): Promise<string> {
  return await new SignJWT({ rooms: ["*"] })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

/** 1, 2, ... `count`. */
export function seqsUpTo(count: number, from = 1): number[] {
  return Array.from({ length: count - from + 1 }, (_, index) => from + index);
}
