/**
 * Who is in a room across instances: local connections plus what other instances announced.
 *
 * @module
 */

/**
 * The member list of one room. Local users are counted per connection (two tabs, one name);
 * remote users are whatever each other instance last announced.
 *
 * @example
 * ```ts
 * const presence = new RoomPresence();
 * presence.addLocal("ann");
 * const { joined, left } = presence.setRemote("instance-b", ["bob"]);
 * presence.names(); // ["ann", "bob"]
 * ```
 */
export class RoomPresence {
  readonly #local = new Map<string, number>();
  /** Made when another instance first announces someone: most rooms never need it. */
  #remote: Map<string, readonly string[]> | undefined;

  /** Counts a local connection of `user`. */
  addLocal(user: string): void {
    this.#local.set(user, (this.#local.get(user) ?? 0) + 1);
  }

  /** Uncounts a local connection of `user`. */
  removeLocal(user: string): void {
    const count = this.#local.get(user) ?? 0;
    if (count <= 1) this.#local.delete(user);
    else this.#local.set(user, count - 1);
  }

  /** Distinct local user names, sorted: what this instance announces to the others. */
  localNames(): string[] {
    return [...this.#local.keys()].sort();
  }

  /** Distinct user names on every instance, sorted. */
  names(): string[] {
    const names = new Set(this.#local.keys());
    for (const users of this.#remote?.values() ?? []) for (const user of users) names.add(user);
    return [...names].sort();
  }

  /**
   * Replaces what `instance` has in the room (an empty list: nothing, or it is gone).
   *
   * @returns users who became visible, and users who are no longer visible anywhere.
   */
  setRemote(instance: string, users: readonly string[]): { joined: string[]; left: string[] } {
    const before = new Set(this.names());
    if (users.length === 0) this.#remote?.delete(instance);
    else (this.#remote ??= new Map()).set(instance, [...users]);
    const after = new Set(this.names());
    return {
      joined: [...after].filter((user) => !before.has(user)),
      left: [...before].filter((user) => !after.has(user)),
    };
  }
}
