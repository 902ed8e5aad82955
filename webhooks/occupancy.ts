/**
 * Occupancy: turns this instance's first and last connection of a user or room into the
 * cluster-wide events `user.online`, `user.offline` (after a grace), `room.occupied` and
 * `room.vacated`, each told once.
 *
 * @module
 */
import type { WebhookEventType } from "./webhook_event.ts";

/** What is tracked: a user (across rooms) or a room (across users). */
export type OccupantKind = "user" | "room";

/** Where occupancy events go (the webhook sender's queue). Must not throw or block. */
export type EmitEvent = (type: WebhookEventType, data: Readonly<Record<string, unknown>>) => void;

/**
 * Told, synchronously and in order, when this instance gains its first connection of a user or
 * room (`held`) and loses its last (`released`); decides which of those are cluster-wide
 * transitions and emits their events. {@linkcode LocalOccupancy} for one instance,
 * {@linkcode RedisOccupancy} for several sharing a Redis.
 */
export interface Occupancy {
  /** This instance now has a connection of `name`; it had none. Never waits or throws. */
  held(kind: OccupantKind, name: string): void;
  /** This instance has no connection of `name` any more. Never waits or throws. */
  released(kind: OccupantKind, name: string): void;
  /**
   * Everything this instance held is released (the server is stopping): emits what that
   * decides, then stops every timer and connection. Bounded in time by the implementation.
   */
  close(): Promise<void>;
}
