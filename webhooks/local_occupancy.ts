/**
 * Occupancy of a single instance: its own first and last connections are the cluster's.
 *
 * @module
 */
import type { EmitEvent, Occupancy, OccupantKind } from "./occupancy.ts";

/** Options of {@linkcode LocalOccupancy}. */
export interface LocalOccupancyOptions {
  /** How long a user without connections stays online (`WEBHOOK_OFFLINE_GRACE`). */
  readonly offlineGraceMs: number;
  readonly emit: EmitEvent;
}

/**
 * Rooms are occupied and vacated at once; a user goes offline once it has had no connection for
 * the grace, and a reconnect within it emits nothing. One timer serves every user leaving.
 *
 * @example
 * ```ts
 * const occupancy = new LocalOccupancy({ offlineGraceMs: 30_000, emit: (type, data) => sender.send(type, data) });
 * occupancy.held("user", "ann"); // user.online
 * occupancy.released("user", "ann"); // user.offline in 30 s, unless ann is held again first
 * await occupancy.close(); // user.offline now for everyone still in their grace
 * ```
 */
export class LocalOccupancy implements Occupancy {
  readonly #options: LocalOccupancyOptions;
  /**
   * Users in their grace: when they left, in the order they left (a user who comes back is
   * deleted, and leaves again at the end), so the first entry is always the next due.
   */
  readonly #leaving = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: LocalOccupancyOptions) {
    this.#options = options;
  }

  held(kind: OccupantKind, name: string): void {
    if (kind === "room") return this.#options.emit("room.occupied", { room: name });
    // Back within the grace: neither an offline nor a new online.
    if (this.#leaving.delete(name)) return;
    this.#options.emit("user.online", { user: name });
  }

  released(kind: OccupantKind, name: string): void {
    if (kind === "room") return this.#options.emit("room.vacated", { room: name });
    this.#leaving.set(name, Date.now());
    if (this.#timer === undefined) this.#schedule();
  }

  /** Nobody can come back to a stopped server: everyone in their grace goes offline now. */
  close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#sweep(Infinity);
    return Promise.resolve();
  }

  #schedule(): void {
    const first = this.#leaving.values().next();
    if (first.done) return;
    const delay = Math.max(0, first.value + this.#options.offlineGraceMs - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#sweep(Date.now() - this.#options.offlineGraceMs);
      this.#schedule();
    }, delay);
  }

  /** Emits `user.offline` for everyone who left at or before `cutoff`. */
  #sweep(cutoff: number): void {
    for (const [user, leftAt] of this.#leaving) {
      if (leftAt > cutoff) return;
      this.#leaving.delete(user);
      this.#options.emit("user.offline", { user, last_seen: new Date(leftAt).toISOString() });
    }
  }
}
