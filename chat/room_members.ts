/**
 * A room's local members and how frames reach them.
 *
 * @module
 */
import type { Client } from "./client.ts";
import { CLOSE_CODES, type CloseCode } from "./protocol.ts";

/**
 * The members of one room on this instance. Fan-out never waits: a member whose outbox is full
 * is cut off with 1013, after the frame went to everyone else. A member that resumed past the
 * room's last seq (this instance is behind another) is not sent the messages up to its cursor
 * again.
 *
 * @example
 * ```ts
 * const members = new RoomMembers();
 * members.add(client);
 * members.fanOut(presenceFrame);
 * members.deliver(messageFrame, 42);
 * ```
 */
export class RoomMembers {
  readonly #members = new Set<Client>();
  /** Members ahead of the room, with their cursors; made when needed. */
  #ahead: Map<Client, number> | undefined;

  /** Members now. */
  get size(): number {
    return this.#members.size;
  }

  /** Adds a member. */
  add(client: Client): void {
    this.#members.add(client);
  }

  /** Removes a member. @returns `false` if it was not one. */
  remove(client: Client): boolean {
    this.#ahead?.delete(client);
    return this.#members.delete(client);
  }

  /** The member already holds every message up to `seq`: none of them is sent to it. */
  holdsThrough(client: Client, seq: number): void {
    (this.#ahead ??= new Map()).set(client, seq);
  }

  /** Seqs up to `seq` will not be delivered (a gap): nobody waits for them any more. */
  skipThrough(seq: number): void {
    for (const [client, cursor] of this.#ahead ?? []) {
      if (cursor <= seq) this.#ahead?.delete(client);
    }
  }

  /** The connections of `user` here. */
  of(user: string): Set<Client> {
    const connections = new Set<Client>();
    for (const member of this.#members) if (member.user === user) connections.add(member);
    return connections;
  }

  /** Hands one encoded frame to every member (but those in `except`). */
  fanOut(frame: string, except?: ReadonlySet<Client>): void {
    let behind: Client[] | undefined;
    for (const member of this.#members) {
      if (except?.has(member)) continue;
      if (!member.offer(frame)) (behind ??= []).push(member);
    }
    this.#cutOff(behind);
  }

  /** Hands message `seq`'s frame to every member that does not hold it already. */
  deliver(frame: string, seq: number): void {
    const ahead = this.#ahead;
    if (!ahead) return this.fanOut(frame);
    let behind: Client[] | undefined;
    for (const member of this.#members) {
      const cursor = ahead.get(member);
      if (cursor !== undefined && seq <= cursor) continue;
      if (!member.offer(frame)) (behind ??= []).push(member);
    }
    for (const [client, cursor] of ahead) if (cursor <= seq) ahead.delete(client);
    if (ahead.size === 0) this.#ahead = undefined;
    this.#cutOff(behind);
  }

  /** Closes every member with `close`. */
  disconnectAll(close: CloseCode): void {
    this.#ahead = undefined;
    for (const member of [...this.#members]) member.disconnect(close);
  }

  /** Cut off after the loop, so the presence leave this causes follows the frame in order. */
  #cutOff(behind: Client[] | undefined): void {
    if (behind) { for (const member of behind) member.disconnect(CLOSE_CODES.slowConsumer); }
  }
}
