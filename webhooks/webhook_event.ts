/**
 * What a webhook delivers: one chat event, encoded once as the JSON body
 * `{ "id", "type", "time", "data" }`.
 *
 * @module
 */
import { v7 as uuidv7 } from "uuid";

/** The event types, as the body's `type` names them. */
export const WEBHOOK_EVENT_TYPES = [
  "room.occupied",
  "room.vacated",
  "user.online",
  "user.offline",
  "message.created",
] as const;

/** One of {@linkcode WEBHOOK_EVENT_TYPES}. */
export type WebhookEventType = typeof WEBHOOK_EVENT_TYPES[number];

/** An event waiting to be delivered: its body is final, and every retry sends the same bytes. */
export interface WebhookDelivery {
  /** The delivery id (also the body's `id`): the same on every attempt, for idempotency. */
  readonly id: string;
  readonly type: WebhookEventType;
  /** The JSON body, exactly as it is signed and sent. */
  readonly body: string;
  /** Estimated bytes it holds while queued (what the queue's bound counts). */
  readonly bytes: number;
  /** `Date.now()` when it was made: retries stop `WEBHOOK_RETRY_WINDOW` after it. */
  readonly createdAt: number;
}

/** A queued delivery's bookkeeping besides its body's characters (object, id, strings' headers). */
const DELIVERY_OVERHEAD_BYTES = 200;

/**
 * Makes the delivery of one event: a new id (UUIDv7, so ids sort by time on each instance), the
 * time now, and `data` encoded once.
 *
 * @example
 * ```ts
 * const delivery = webhookDelivery("user.online", { user: "ann" });
 * delivery.body; // {"id":"0190...","type":"user.online","time":"2026-...Z","data":{"user":"ann"}}
 * ```
 * @throws never: `data` is plain JSON built by the caller.
 */
export function webhookDelivery(
  type: WebhookEventType,
  data: Readonly<Record<string, unknown>>,
): WebhookDelivery {
  const createdAt = Date.now();
  const id = uuidv7();
  const body = JSON.stringify({ id, type, time: new Date(createdAt).toISOString(), data });
  // Two bytes per character: what V8 may hold for a string with non-Latin-1 text.
  return { id, type, body, bytes: DELIVERY_OVERHEAD_BYTES + 2 * body.length, createdAt };
}
