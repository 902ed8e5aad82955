/**
 * One room of the in-memory store: its items in seq order, each message in its latest state,
 * and the reactions to its messages.
 *
 * @module
 */
import {
  byId,
  type ChatMessage,
  type HistoryQuery,
  isMessage,
  type MessageReactions,
  newEpoch,
  type SentMessage,
} from "../chat/message.ts";
import { byCodePoint, type ChangeItem, edited, isChange, tombstone } from "./message_state.ts";

/**
 * What an item costs the store, estimated from above: two bytes per character of its strings
 * (V8 keeps text with any non-Latin-1 character at two bytes per character) plus the object, its
 * id and timestamp (about 330 bytes measured for one-byte text), and for a change its change.
 *
 * @example
 * ```ts
 * estimatedBytes(message); // 360 + 2 * (content + sender) for a message without a client id
 * ```
 */
export function estimatedBytes(item: ChatMessage): number {
  const clientIdBytes = item.clientId === undefined
    ? 0
    : CLIENT_ID_OVERHEAD_BYTES + 2 * (item.clientId.length + item.sender.length);
  const change = item.change;
  const changeBytes = change === undefined
    ? 0
    : CHANGE_OVERHEAD_BYTES + 2 * (change.kind === "react" ? change.reaction.length : 0);
  const editedBytes = item.editedAt === undefined ? 0 : 2 * item.editedAt.length;
  return MESSAGE_OVERHEAD_BYTES + 2 * (item.content.length + item.sender.length) +
    clientIdBytes + changeBytes + editedBytes;
}

const MESSAGE_OVERHEAD_BYTES = 360;
/** A client id's entry in the room's index (map slot and key string), besides its characters. */
const CLIENT_ID_OVERHEAD_BYTES = 100;
/** A change's own object (kind, target, reaction, on). */
const CHANGE_OVERHEAD_BYTES = 80;
/** A reaction's entry: map slot, object, key string (besides the characters counted twice). */
const REACTION_OVERHEAD_BYTES = 200;

/** One user's reaction to one message, and the seq of the change that set it. */
interface Reaction {
  readonly reaction: string;
  readonly user: string;
  on: boolean;
  seq: number;
}

function reactionBytes(reaction: Reaction): number {
  return REACTION_OVERHEAD_BYTES + 4 * (reaction.reaction.length + reaction.user.length);
}

/**
 * A room's sequence and items. Changes are applied as {@linkcode MessageRepository.saveBatch}
 * says: each only over older changes (by seq), so the order they arrive in does not matter. A
 * deleted message's content is dropped, and so is that of its edits: nothing here keeps it.
 */
export class MemoryRoom {
  readonly epoch: string = newEpoch();
  /** The highest seq saved; it stays when items are forgotten. */
  lastSeq = 0;
  #bytes = 0;
  #messageCount = 0;
  /** Messages (latest state) and change items, in seq order. */
  #items: ChatMessage[] = [];
  /** Per message that has one, the seq of the latest edit applied to it. */
  readonly #editSeqs = new Map<number, number>();
  /** Messages with a client id, by sender and client id. */
  readonly #byClientId = new Map<string, { readonly id: string; readonly seq: number }>();
  /** Per message seq, its reactions by reaction and user. */
  readonly #reactions = new Map<number, Map<string, Reaction>>();

  /** Estimated bytes of what the room keeps. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Items kept (messages and changes). */
  get size(): number {
    return this.#items.length;
  }

  /** Saves an item unless its seq is taken, and applies it if it is a change. */
  save(item: ChatMessage): void {
    const items = this.#items;
    const last = items[items.length - 1];
    let at = items.length;
    if (last !== undefined && last.seq >= item.seq) {
      at = lowerBound(items, item.seq);
      if (items[at]?.seq === item.seq) return; // already stored: saving is idempotent
    }
    const recorded = isChange(item) ? this.#recorded(item) : item;
    if (at === items.length) items.push(recorded); // the common case: seqs arrive in order
    else items.splice(at, 0, recorded);
    if (item.seq > this.lastSeq) this.lastSeq = item.seq;
    this.#bytes += estimatedBytes(recorded);
    if (isChange(recorded)) {
      this.#apply(recorded);
    } else {
      this.#messageCount++;
      if (item.clientId !== undefined) {
        this.#byClientId.set(clientKey(item.sender, item.clientId), { id: item.id, seq: item.seq });
      }
    }
  }

  /** Forgets the oldest items beyond `maxItems`. */
  trim(maxItems: number): void {
    if (this.#items.length > maxItems) {
      this.#forget(this.#items.splice(0, this.#items.length - maxItems));
    }
  }

  /** Forgets the oldest items until at least `excess` bytes are freed or none is left. */
  shrink(excess: number): void {
    let count = 0;
    let freed = 0;
    while (count < this.#items.length && freed < excess) {
      const item = this.#items[count++] as ChatMessage;
      freed += estimatedBytes(item);
      for (const reaction of this.#reactions.get(item.seq)?.values() ?? []) {
        freed += reactionBytes(reaction);
      }
    }
    this.#forget(this.#items.splice(0, count));
  }

  /**
   * Removes the messages older than `cutoffMs`, then the oldest beyond `maxPerRoom` messages,
   * with the changes of those messages and every change older than `cutoffMs`.
   *
   * @returns how many messages it removed.
   */
  prune(cutoffMs: number | undefined, maxPerRoom: number | undefined): number {
    // Timestamps are parsed, not compared as text: "+010000-01-01T..." sorts before "2025-...".
    const old = (item: ChatMessage) =>
      cutoffMs !== undefined && Date.parse(item.timestamp) < cutoffMs;
    const goneSeqs = new Set<number>();
    for (const item of this.#items) if (isMessage(item) && old(item)) goneSeqs.add(item.seq);
    let beyond = this.#messageCount - goneSeqs.size - (maxPerRoom ?? Infinity);
    for (let i = 0; beyond > 0 && i < this.#items.length; i++) {
      const item = this.#items[i] as ChatMessage;
      if (isMessage(item) && !goneSeqs.has(item.seq)) {
        goneSeqs.add(item.seq);
        beyond--;
      }
    }
    const kept: ChatMessage[] = [];
    const gone: ChatMessage[] = [];
    for (const item of this.#items) {
      const goes = isChange(item)
        ? old(item) || goneSeqs.has(item.change.target)
        : goneSeqs.has(item.seq);
      (goes ? gone : kept).push(item);
    }
    if (gone.length === 0) return 0;
    this.#items = kept;
    this.#forget(gone);
    return goneSeqs.size;
  }

  /** One page (see {@linkcode HistoryQuery}). */
  history(query: HistoryQuery): ChatMessage[] {
    if (query.after !== undefined || query.before !== undefined) return this.#pageById(query);
    return pageBySeq(this.#items, query);
  }

  /** The reactions that are on for the (not deleted) messages at `seqs`. */
  reactionsTo(seqs: readonly number[]): Map<number, MessageReactions> {
    const found = new Map<number, MessageReactions>();
    for (const seq of seqs) {
      const byUser = this.#reactions.get(seq);
      if (byUser === undefined || this.#message(seq)?.deleted !== undefined) continue;
      // Reactions by the lowest seq among their standing changes, as PostgreSQL orders them.
      const on = [...byUser.values()].filter((entry) => entry.on).sort((a, b) => a.seq - b.seq);
      const reactions = new Map<string, string[]>();
      for (const { reaction, user } of on) {
        const users = reactions.get(reaction);
        if (users) users.push(user);
        else reactions.set(reaction, [user]);
      }
      for (const users of reactions.values()) users.sort(byCodePoint);
      if (reactions.size > 0) found.set(seq, reactions);
    }
    return found;
  }

  /** The messages after `readSeq` that others than `user` sent and that are not deleted. */
  unreadAfter(readSeq: number, user: string): number {
    let count = 0;
    for (let i = lowerBound(this.#items, readSeq + 1); i < this.#items.length; i++) {
      const item = this.#items[i] as ChatMessage;
      if (isMessage(item) && item.deleted === undefined && item.sender !== user) count++;
    }
    return count;
  }

  /** The messages `keys` name by sender and client id. */
  findSent(keys: readonly { readonly sender: string; readonly clientId: string }[]): SentMessage[] {
    const found: SentMessage[] = [];
    for (const { sender, clientId } of keys) {
      const message = this.#byClientId.get(clientKey(sender, clientId));
      if (message) found.push({ sender, clientId, id: message.id, seq: message.seq });
    }
    return found;
  }

  /** A change as it is recorded: an edit of a deleted message keeps no content. */
  #recorded(item: ChangeItem): ChangeItem {
    const deleted = item.change.kind === "edit" &&
      this.#message(item.change.target)?.deleted !== undefined;
    return deleted ? { ...item, content: "" } : item;
  }

  /** Applies a change to its target, if the target is stored. */
  #apply(item: ChangeItem): void {
    const change = item.change;
    const at = this.#indexOfMessage(change.target);
    if (at === -1) return; // recorded only: the target is not (or no longer) here
    const target = this.#items[at] as ChatMessage;
    if (change.kind === "react") {
      this.#react(item, change);
    } else if (change.kind === "edit") {
      if (target.deleted || (this.#editSeqs.get(target.seq) ?? 0) >= item.seq) return;
      this.#replace(at, edited(target, item));
      this.#editSeqs.set(target.seq, item.seq);
    } else if (target.deleted === undefined) {
      this.#replace(at, tombstone(target));
      this.#editSeqs.delete(target.seq);
      for (let i = at + 1; i < this.#items.length; i++) {
        const later = this.#items[i] as ChatMessage;
        if (later.change?.kind === "edit" && later.change.target === target.seq) {
          this.#replace(i, { ...later, content: "" });
        }
      }
    }
  }

  #react(item: ChatMessage, change: { target: number; reaction: string; on: boolean }): void {
    let byUser = this.#reactions.get(change.target);
    if (byUser === undefined) this.#reactions.set(change.target, byUser = new Map());
    const key = `${change.reaction}\n${item.sender}`;
    const entry = byUser.get(key);
    if (entry === undefined) {
      const added = { reaction: change.reaction, user: item.sender, on: change.on, seq: item.seq };
      byUser.set(key, added);
      this.#bytes += reactionBytes(added);
    } else if (entry.seq < item.seq) {
      entry.on = change.on;
      entry.seq = item.seq;
    }
  }

  #replace(at: number, next: ChatMessage): void {
    this.#bytes += estimatedBytes(next) - estimatedBytes(this.#items[at] as ChatMessage);
    this.#items[at] = next;
  }

  /** Drops what is kept about items removed from the array. */
  #forget(gone: readonly ChatMessage[]): void {
    for (const item of gone) {
      this.#bytes -= estimatedBytes(item);
      if (isChange(item)) continue;
      this.#messageCount--;
      this.#editSeqs.delete(item.seq);
      for (const reaction of this.#reactions.get(item.seq)?.values() ?? []) {
        this.#bytes -= reactionBytes(reaction);
      }
      this.#reactions.delete(item.seq);
      if (item.clientId === undefined) continue;
      const key = clientKey(item.sender, item.clientId);
      if (this.#byClientId.get(key)?.id === item.id) this.#byClientId.delete(key);
    }
  }

  #indexOfMessage(seq: number): number {
    const at = lowerBound(this.#items, seq);
    const item = this.#items[at];
    return item !== undefined && item.seq === seq && isMessage(item) ? at : -1;
  }

  #message(seq: number): ChatMessage | undefined {
    const at = this.#indexOfMessage(seq);
    return at === -1 ? undefined : this.#items[at];
  }

  /** Protocol 1: a page by id cursors, in id order (ids of a room are not always in seq order). */
  #pageById(query: HistoryQuery): ChatMessage[] {
    const { after, before, limit } = query;
    const inRange = this.#items
      .filter((m) =>
        isMessage(m) && (after === undefined || m.id > after) &&
        (before === undefined || m.id < before)
      )
      .sort(byId);
    return after !== undefined
      ? inRange.slice(0, limit)
      : inRange.slice(Math.max(0, inRange.length - limit));
  }
}

/**
 * A page by seq cursors: the oldest after `afterSeq`, else the newest before `beforeSeq`; only
 * messages unless `query.changes`, so changes never take a message's place in the page.
 */
function pageBySeq(items: readonly ChatMessage[], query: HistoryQuery): ChatMessage[] {
  const end = query.beforeSeq === undefined ? items.length : lowerBound(items, query.beforeSeq);
  const start = query.afterSeq === undefined ? 0 : lowerBound(items, query.afterSeq + 1);
  const page: ChatMessage[] = [];
  const wanted = (item: ChatMessage) => query.changes === true || isMessage(item);
  if (query.afterSeq !== undefined) {
    for (let i = start; i < end && page.length < query.limit; i++) {
      const item = items[i] as ChatMessage;
      if (wanted(item)) page.push(item);
    }
    return page;
  }
  for (let i = end - 1; i >= start && page.length < query.limit; i--) {
    const item = items[i] as ChatMessage;
    if (wanted(item)) page.push(item);
  }
  return page.reverse();
}

/** Index of the first item whose seq is >= `seq`. */
function lowerBound(items: readonly ChatMessage[], seq: number): number {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((items[mid] as ChatMessage).seq < seq) low = mid + 1;
    else high = mid;
  }
  return low;
}

function clientKey(sender: string, clientId: string): string {
  return `${sender}\n${clientId}`;
}
