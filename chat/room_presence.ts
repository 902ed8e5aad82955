/**
 * Who is in a room across instances, and which changes the members have not been told yet.
 *
 * @module
 */
import type { PresenceEvent } from "./protocol.ts";

/** One change to tell the members. */
export interface PresenceChange {
  readonly event: PresenceEvent;
  readonly user: string;
  /** The user's latest change: a member welcomed at or after it knows already. */
  readonly version: number;
}

/**
 * The member list of one room. A user is visible while it has a local connection, lingers
 * after its last one (the room's leave grace), or another instance announced it. Members are
 * told net changes only, in batches ({@linkcode RoomPresence.takeChanges}): a user who leaves
 * and comes back before the next batch was never gone as far as they can tell. Every update is
 * O(1) per user changed, so a reconnect storm costs each member O(N), not O(N²).
 *
 * @example
 * ```ts
 * const presence = new RoomPresence();
 * presence.addLocal("ann");
 * presence.setRemote("instance-b", ["bob"]);
 * presence.names(); // ["ann", "bob"]
 * presence.takeChanges(64); // [{ event: "join", user: "ann" }, { event: "join", user: "bob" }]
 * ```
 */
export class RoomPresence {
  /** Local connections per user. */
  readonly #local = new Map<string, number>();
  /** Users whose last local connection closed within the leave grace. */
  readonly #lingering = new Set<string>();
  /** Made when another instance first announces someone: most rooms never need it. */
  #remote: Map<string, ReadonlySet<string>> | undefined;
  /** Per user, how many other instances list it. */
  #remoteCount: Map<string, number> | undefined;
  /** Visible users, kept sorted: a welcome lists them without sorting. */
  readonly #sorted: string[] = [];
  /** Visible users as the members were last told. */
  readonly #shown = new Set<string>();
  /** Users whose visibility may differ from what the members were told, with their version. */
  readonly #dirty = new Map<string, number>();
  #version = 0;
  #localChanged = false;

  /** Whether some change has not been told yet. */
  get pending(): boolean {
    return this.#dirty.size > 0;
  }

  /** Counts every change of the list: a welcome sent now shows every change up to this one. */
  get version(): number {
    return this.#version;
  }

  /** Counts a local connection of `user`. @returns whether `user` was lingering. */
  addLocal(user: string): boolean {
    const wasLingering = this.#lingering.delete(user);
    const count = this.#local.get(user) ?? 0;
    this.#local.set(user, count + 1);
    if (count === 0 && !wasLingering) this.#changedLocally(user);
    return wasLingering;
  }

  /**
   * Uncounts a local connection of `user`. @returns `true` if it was the user's last: then call
   * {@linkcode RoomPresence.linger} or {@linkcode RoomPresence.endLinger}.
   */
  removeLocal(user: string): boolean {
    const count = this.#local.get(user) ?? 0;
    if (count !== 1) {
      if (count > 1) this.#local.set(user, count - 1);
      return false;
    }
    this.#local.delete(user);
    this.#lingering.add(user);
    return true;
  }

  /** Ends `user`'s grace: it leaves unless it came back meanwhile. */
  endLinger(user: string): void {
    if (this.#lingering.delete(user)) this.#changedLocally(user);
  }

  /** Users lingering now (to end them all when the room closes). */
  lingering(): string[] {
    return [...this.#lingering];
  }

  /**
   * Distinct local users (lingering ones included), sorted, if they changed since the last call:
   * what this instance announces to the others.
   */
  takeLocalNames(): string[] | undefined {
    if (!this.#localChanged) return undefined;
    this.#localChanged = false;
    return [...new Set([...this.#local.keys(), ...this.#lingering])].sort();
  }

  /** Distinct visible user names on every instance, sorted. Read-only: do not keep it. */
  names(): readonly string[] {
    return this.#sorted;
  }

  /** Replaces what `instance` has in the room (an empty list: nothing, or it is gone). */
  setRemote(instance: string, users: readonly string[]): void {
    const before = this.#remote?.get(instance) ?? new Set<string>();
    const after = new Set(users);
    if (after.size === 0) this.#remote?.delete(instance);
    else (this.#remote ??= new Map()).set(instance, after);
    const counts = this.#remoteCount ??= new Map();
    for (const user of before) {
      if (after.has(user)) continue;
      const count = (counts.get(user) ?? 1) - 1;
      if (count > 0) counts.set(user, count);
      else {
        counts.delete(user);
        this.#update(user);
      }
    }
    for (const user of after) {
      if (before.has(user)) continue;
      const count = (counts.get(user) ?? 0) + 1;
      counts.set(user, count);
      if (count === 1) this.#update(user);
    }
  }

  /**
   * Up to `max` net changes since the members were last told, which then count as told. A user
   * who came and went (or went and came) in between yields nothing.
   */
  takeChanges(max: number): PresenceChange[] {
    const changes: PresenceChange[] = [];
    for (const [user, version] of this.#dirty) {
      if (changes.length >= max) break;
      this.#dirty.delete(user);
      const visible = this.#visible(user);
      if (visible === this.#shown.has(user)) continue;
      if (visible) this.#shown.add(user);
      else this.#shown.delete(user);
      changes.push({ event: visible ? "join" : "leave", user, version });
    }
    return changes;
  }

  #changedLocally(user: string): void {
    this.#localChanged = true;
    this.#update(user);
  }

  #visible(user: string): boolean {
    return this.#local.has(user) || this.#lingering.has(user) ||
      (this.#remoteCount?.has(user) ?? false);
  }

  /** Keeps the sorted list in step with `user`'s visibility and marks it to be told. */
  #update(user: string): void {
    const visible = this.#visible(user);
    const at = insertionPoint(this.#sorted, user);
    const listed = this.#sorted[at] === user;
    if (visible === listed) return;
    if (visible) this.#sorted.splice(at, 0, user);
    else this.#sorted.splice(at, 1);
    // Re-inserted last, so the batches go out oldest change first.
    this.#dirty.delete(user);
    this.#dirty.set(user, ++this.#version);
  }
}

/** The index of the first name not below `name` (binary search; names are sorted). */
function insertionPoint(sorted: readonly string[], name: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] as string) < name) low = mid + 1;
    else high = mid;
  }
  return low;
}
