/**
 * OpenTelemetry spans around any {@linkcode MessageRepository}, through Deno's built-in
 * telemetry (`OTEL_DENO=true`) and the `@opentelemetry/api` package.
 *
 * @module
 */
import { type Attributes, type Span, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import { errorCode } from "../log/error_code.ts";
import type {
  ChatMessage,
  HistoryQuery,
  MessageReactions,
  RoomSequence,
  SentMessage,
  UnreadCount,
} from "../chat/message.ts";
import {
  type MessageRepository,
  PruneIncompleteError,
  type RetentionPolicy,
} from "./repository.ts";

/** Name of the tracer spans are made with. */
export const TRACER_NAME = "chat-server.storage";

/**
 * Wraps a store so that every store is traced the same way, without tracing code in any store.
 * It is more than a forwarder: it opens a span per operation (`persist.batch`, `history.query`,
 * `retention.prune`) as the active context, so spans the store itself causes nest under it;
 * it numbers the attempts at each batch (the persistence workers retry a failed batch by saving
 * the same array again); and it marks failures with the error's code only.
 *
 * Attributes are counts and shapes, never data: no message content or sender, no user name, no
 * cursor value, no error message (database errors can quote rows). Room names are attributes of
 * the reads and writes of one room.
 *
 * - `persist.batch`: `chat.store.kind`, `chat.batch.messages` (items: messages and changes),
 *   `chat.batch.attempt`
 * - `history.query`: `chat.store.kind`, `chat.room`, `chat.history.limit`,
 *   `chat.history.has_cursor`, `chat.history.changes`, `chat.history.returned`
 * - `reactions.query`: `chat.store.kind`, `chat.room`, `chat.reactions.messages`
 * - `read_position.save`: `chat.store.kind`, `chat.room`
 * - `unread.query`: `chat.store.kind`, `chat.unread.one_room`, `chat.unread.rooms`
 * - `retention.prune`: `chat.store.kind`, `chat.retention.has_age_limit`,
 *   `chat.retention.max_per_room` (when set), `chat.retention.removed`
 *
 * A failed operation's span has status ERROR and `error.type` set to the error's code.
 *
 * @example
 * ```ts
 * const repository = new TracedRepository(await openStore(config, logger));
 * await repository.saveBatch(batch); // a `persist.batch` span when OTEL_DENO=true
 * ```
 */
export class TracedRepository implements MessageRepository {
  readonly #inner: MessageRepository;
  readonly #tracer: Tracer;
  // Keyed by the batch array itself: a weak map forgets batches that are dropped or saved.
  readonly #attempts = new WeakMap<readonly ChatMessage[], number>();

  /**
   * `inner` is the store that does the work. Spans go to the global tracer provider: a no-op
   * until one is registered, as Deno does itself when `OTEL_DENO=true`.
   */
  constructor(inner: MessageRepository) {
    this.#inner = inner;
    this.#tracer = trace.getTracer(TRACER_NAME);
  }

  /** The wrapped store's kind: logs and spans name the real store. */
  get kind(): string {
    return this.#inner.kind;
  }

  /** Saves through the wrapped store inside a `persist.batch` span. */
  async saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    const attempt = (this.#attempts.get(messages) ?? 0) + 1;
    this.#attempts.set(messages, attempt);
    await this.#traced("persist.batch", {
      "chat.store.kind": this.kind,
      "chat.batch.messages": messages.length,
      "chat.batch.attempt": attempt,
    }, () => this.#inner.saveBatch(messages));
    this.#attempts.delete(messages);
  }

  /** Reads through the wrapped store inside a `history.query` span. */
  history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return this.#traced("history.query", {
      "chat.store.kind": this.kind,
      "chat.room": room,
      "chat.history.limit": query.limit,
      "chat.history.has_cursor": query.before !== undefined || query.after !== undefined ||
        query.beforeSeq !== undefined || query.afterSeq !== undefined,
      "chat.history.changes": query.changes === true,
    }, async (span) => {
      const page = await this.#inner.history(room, query);
      span.setAttribute("chat.history.returned", page.length);
      return page;
    });
  }

  /** Prunes through the wrapped store inside a `retention.prune` span. */
  prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number> {
    return this.#traced("retention.prune", {
      "chat.store.kind": this.kind,
      "chat.retention.has_age_limit": policy.olderThan !== undefined,
      ...(policy.maxPerRoom !== undefined && { "chat.retention.max_per_room": policy.maxPerRoom }),
    }, async (span) => {
      try {
        const removed = await this.#inner.prune(policy, signal);
        span.setAttribute("chat.retention.removed", removed);
        return removed;
      } catch (error) {
        if (error instanceof PruneIncompleteError) {
          span.setAttribute("chat.retention.removed", error.removed);
        }
        throw error;
      }
    });
  }

  /** Forwards: once per room activation, not worth a span. */
  openRoom(room: string): Promise<RoomSequence> {
    return this.#inner.openRoom(room);
  }

  /** Forwards. */
  roomSequence(room: string): Promise<RoomSequence | undefined> {
    return this.#inner.roomSequence(room);
  }

  /** Forwards: a lookup per room turn with new client ids, cheap and frequent. */
  findSent(
    room: string,
    keys: readonly { readonly sender: string; readonly clientId: string }[],
  ): Promise<SentMessage[]> {
    return this.#inner.findSent(room, keys);
  }

  /** Forwards. */
  releaseRooms(): Promise<void> {
    return this.#inner.releaseRooms();
  }

  /** Saves through the wrapped store inside a `read_position.save` span. */
  saveReadPosition(room: string, user: string, seq: number): Promise<number> {
    return this.#traced("read_position.save", {
      "chat.store.kind": this.kind,
      "chat.room": room,
    }, () => this.#inner.saveReadPosition(room, user, seq));
  }

  /** Reads through the wrapped store inside an `unread.query` span. */
  unread(user: string, room?: string): Promise<UnreadCount[]> {
    return this.#traced("unread.query", {
      "chat.store.kind": this.kind,
      "chat.unread.one_room": room !== undefined,
    }, async (span) => {
      const counts = await this.#inner.unread(user, room);
      span.setAttribute("chat.unread.rooms", counts.length);
      return counts;
    });
  }

  /** Reads through the wrapped store inside a `reactions.query` span. */
  reactionsTo(room: string, seqs: readonly number[]): Promise<Map<number, MessageReactions>> {
    return this.#traced("reactions.query", {
      "chat.store.kind": this.kind,
      "chat.room": room,
      "chat.reactions.messages": seqs.length,
    }, () => this.#inner.reactionsTo(room, seqs));
  }

  /** Forwards: a readiness probe every few seconds is not worth a span. */
  ping(): Promise<boolean> {
    return this.#inner.ping();
  }

  /** Forwards. */
  close(): Promise<void> {
    return this.#inner.close();
  }

  #traced<T>(name: string, attributes: Attributes, run: (span: Span) => Promise<T>): Promise<T> {
    return this.#tracer.startActiveSpan(name, { attributes }, async (span) => {
      try {
        return await run(span);
      } catch (error) {
        const code = errorCode(error);
        span.setAttribute("error.type", code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: code });
        throw error;
      } finally {
        span.end();
      }
    });
  }
}
