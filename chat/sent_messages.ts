/**
 * The idempotency window: which client ids each sender used in each room lately, and what their
 * messages became.
 *
 * @module
 */
import type { SentMessage } from "./message.ts";

/** Bounds of a {@linkcode SentMessages}. */
export interface SentMessagesOptions {
  /** How long a client id is remembered after its message was accepted. */
  readonly windowMs: number;
  /** Estimated bytes of all entries; beyond it the oldest are forgotten early. */
  readonly maxBytes: number;
  /** The clock, in milliseconds; `performance.now` by default. */
  readonly now?: () => number;
}

interface Entry {
  readonly sent: SentMessage;
  readonly expiresAt: number;
  readonly bytes: number;
}

/** Entry overhead (map slot, objects, the id string) on top of two bytes per key character. */
const ENTRY_OVERHEAD_BYTES = 200;

/**
 * Remembers, per room, sender and client id, the id and seq of the accepted message, for
 * `windowMs` and within `maxBytes`: a re-send found here is acknowledged again instead of being
 * sent twice. Shared by every room of a hub, so it outlives a room that empties. Entries are kept
 * in insertion order, which is expiry order, so forgetting is from the front only.
 *
 * @example
 * ```ts
 * const sent = new SentMessages({ windowMs: 600_000, maxBytes: 32 << 20 });
 * sent.remember("general", { sender: "ann", clientId: "c1", id, seq: 42 });
 * sent.find("general", "ann", "c1"); // { ..., seq: 42 }
 * ```
 */
export class SentMessages {
  readonly #options: SentMessagesOptions;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #forgottenEarly = 0;

  constructor(options: SentMessagesOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** How long a client id is remembered. */
  get windowMs(): number {
    return this.#options.windowMs;
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Entries forgotten before their window ended, to stay within `maxBytes`. */
  get forgottenEarly(): number {
    return this.#forgottenEarly;
  }

  /** The message `sender` sent to `room` with `clientId` within the window, if any. */
  find(room: string, sender: string, clientId: string): SentMessage | undefined {
    const entry = this.#entries.get(keyOf(room, sender, clientId));
    return entry && entry.expiresAt > this.#now() ? entry.sent : undefined;
  }

  /** Remembers an accepted message (or one found in the store) for the window from now. */
  remember(room: string, sent: SentMessage): void {
    const key = keyOf(room, sent.sender, sent.clientId);
    const previous = this.#entries.get(key);
    if (previous) {
      this.#entries.delete(key);
      this.#bytes -= previous.bytes;
    }
    const bytes = ENTRY_OVERHEAD_BYTES + 2 * key.length;
    this.#entries.set(key, { sent, expiresAt: this.#now() + this.#options.windowMs, bytes });
    this.#bytes += bytes;
    this.#forget();
  }

  #forget(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      const expired = entry.expiresAt <= now;
      if (!expired && this.#bytes <= this.#options.maxBytes) return;
      if (!expired) this.#forgottenEarly++;
      this.#entries.delete(key);
      this.#bytes -= entry.bytes;
    }
  }
}

function keyOf(room: string, sender: string, clientId: string): string {
  // Room names and client ids have no newline; a user name cannot either (no control characters).
  return `${room}\n${sender}\n${clientId}`;
}
