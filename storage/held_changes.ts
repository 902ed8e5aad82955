/**
 * Change items taken and not yet stored, and when each may go to the persistence workers.
 *
 * @module
 */
import type { ChatMessage } from "../chat/message.ts";
import { HeldMessages, type SeqWindow } from "./held_messages.ts";
import type { ChangeItem } from "./message_state.ts";

/**
 * The changes of one target. A change waits (is parked) while its target is held, since a store
 * applies a change only to a stored target, and while earlier changes of the same target are on
 * their way, so that changes of one target are never written concurrently: the store then always
 * holds a prefix of them, and the held ones applied over it give the latest state exactly.
 */
interface Lane {
  /** The target is held: its changes wait until it is stored. */
  targetHeld: boolean;
  /** Changes of the target handed to the workers and not yet settled. */
  inFlight: number;
  /** Changes of the target waiting, in seq order. */
  parked: ChangeItem[];
}

/** What a settle set free: changes to hand to the workers, and changes whose target was lost. */
export interface FreedChanges {
  readonly queue: ChangeItem[];
  readonly abandon: ChangeItem[];
}

/**
 * Held change items of every room: by seq window (for replays), by target (to apply them to
 * reads), and parked until their target and the earlier changes of it are settled.
 *
 * @example
 * ```ts
 * const changes = new HeldChanges();
 * if (changes.add(edit, targetIsHeld)) queue.trySend(edit);  // else parked
 * const freed = { queue: [], abandon: [] };
 * changes.targetSettled(room, target, true, freed);           // freed.queue: the parked edit
 * ```
 */
export class HeldChanges {
  readonly #items = new HeldMessages();
  /** Per room and target, the held changes of it in seq order. */
  readonly #byTarget = new Map<string, ChangeItem[]>();
  readonly #lanes = new Map<string, Lane>();
  #parked = 0;

  /** Changes waiting for their target or an earlier change of it: not yet with the workers. */
  get parked(): number {
    return this.#parked;
  }

  /** Whether `item` (by room and id) is held. */
  has(item: Pick<ChatMessage, "room" | "id">): boolean {
    return this.#items.has(item);
  }

  /**
   * Holds `change`.
   *
   * @returns whether it may go to the workers now; otherwise it is parked until
   * {@linkcode HeldChanges.targetSettled} or {@linkcode HeldChanges.delete} frees it.
   */
  add(change: ChangeItem, targetHeld: boolean): boolean {
    this.#items.add(change);
    const key = targetKey(change.room, change.change.target);
    const ofTarget = this.#byTarget.get(key);
    if (ofTarget === undefined) this.#byTarget.set(key, [change]);
    else insertBySeq(ofTarget, change);
    let lane = this.#lanes.get(key);
    if (lane === undefined) {
      lane = { targetHeld, inFlight: targetHeld ? 0 : 1, parked: [] };
      this.#lanes.set(key, lane);
      if (!targetHeld) return true;
    }
    insertBySeq(lane.parked, change);
    this.#parked++;
    return false;
  }

  /**
   * Forgets a settled change; the next changes of its target go into `freed.queue` once none is
   * on its way any more.
   *
   * @returns whether it was held.
   */
  delete(change: ChangeItem, freed: FreedChanges): boolean {
    if (!this.#items.delete(change)) return false;
    const key = targetKey(change.room, change.change.target);
    const ofTarget = this.#byTarget.get(key) ?? [];
    const at = ofTarget.findIndex((held) => held.id === change.id);
    if (at !== -1) ofTarget.splice(at, 1);
    if (ofTarget.length === 0) this.#byTarget.delete(key);
    const lane = this.#lanes.get(key);
    if (lane === undefined) return true;
    const parkedAt = lane.parked.findIndex((held) => held.id === change.id);
    if (parkedAt !== -1) {
      lane.parked.splice(parkedAt, 1);
      this.#parked--;
    } else if (lane.inFlight > 0) {
      lane.inFlight--;
    }
    this.#advance(key, lane, freed);
    return true;
  }

  /**
   * A held message settled: if it is the target of parked changes, they go into `freed.queue`
   * when it was stored, into `freed.abandon` when it was given up on.
   */
  targetSettled(room: string, seq: number, stored: boolean, freed: FreedChanges): void {
    if (this.#lanes.size === 0) return;
    const key = targetKey(room, seq);
    const lane = this.#lanes.get(key);
    if (lane?.targetHeld !== true) return;
    lane.targetHeld = false;
    if (stored) {
      this.#advance(key, lane, freed);
      return;
    }
    for (const change of lane.parked) freed.abandon.push(change);
    this.#parked -= lane.parked.length;
    this.#lanes.delete(key);
  }

  /** At most `limit` held changes of `room` in the window, oldest first. */
  window(room: string, window: SeqWindow): ChatMessage[] {
    return this.#items.window(room, window);
  }

  /** The held changes of the message at `target` of `room`, in seq order. */
  of(room: string, target: number): readonly ChangeItem[] | undefined {
    return this.#byTarget.get(targetKey(room, target));
  }

  /** How many changes of `room` are held. */
  size(room: string): number {
    return this.#items.size(room);
  }

  /** The newest seq of a change held for `room`; 0 if none. */
  newestSeq(room: string): number {
    return this.#items.newestSeq(room);
  }

  /** Hands the parked changes of a lane with nothing in its way to the workers, all at once. */
  #advance(key: string, lane: Lane, freed: FreedChanges): void {
    if (lane.targetHeld || lane.inFlight > 0) return;
    if (lane.parked.length === 0) {
      this.#lanes.delete(key);
      return;
    }
    for (const change of lane.parked) freed.queue.push(change);
    lane.inFlight = lane.parked.length;
    this.#parked -= lane.parked.length;
    lane.parked = [];
  }
}

function targetKey(room: string, target: number): string {
  return `${room}\n${target}`;
}

/** Inserts `change` into `changes` (in seq order); a push but for one that overtook another. */
function insertBySeq(changes: ChangeItem[], change: ChangeItem): void {
  let at = changes.length;
  while (at > 0 && (changes[at - 1] as ChangeItem).seq > change.seq) at--;
  changes.splice(at, 0, change);
}
