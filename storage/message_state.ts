/**
 * What edits, deletes and reactions make of a message: the rules every store and the
 * write-behind log apply the same way, so that a read never depends on where a change is.
 *
 * @module
 */
import type { ChatMessage, MessageChange, MessageReactions } from "../chat/message.ts";

/** A change item: an item of the sequence that changes an earlier message. */
export type ChangeItem = ChatMessage & { readonly change: MessageChange };

/** Whether `item` is a change item (narrows its type). */
export function isChange(item: ChatMessage): item is ChangeItem {
  return item.change !== undefined;
}

/**
 * The tombstone a delete leaves: no content, and no edit time, so that a message deleted reads
 * the same whether or not an edit of it arrived first.
 *
 * @example
 * ```ts
 * tombstone(message); // { ...message, content: "", deleted: true } without editedAt
 * ```
 */
export function tombstone(message: ChatMessage): ChatMessage {
  const { editedAt: _editedAt, ...rest } = message;
  return { ...rest, content: "", deleted: true };
}

/**
 * `message` with the content of `edit` and its time as `editedAt`; a tombstone stays one.
 *
 * @example
 * ```ts
 * edited(message, editItem).editedAt === editItem.timestamp; // unless message.deleted
 * ```
 */
export function edited(message: ChatMessage, edit: ChatMessage): ChatMessage {
  if (message.deleted === true) return message;
  return { ...message, content: edit.content, editedAt: edit.timestamp };
}

/**
 * `message` in the state `changes` leave it in, applied in the order given (seq order); changes
 * of other targets and reactions leave it as it is.
 *
 * @example
 * ```ts
 * const latest = withChanges(stored, heldChangesOfIt);
 * ```
 */
export function withChanges(message: ChatMessage, changes: readonly ChatMessage[]): ChatMessage {
  let state = message;
  for (const item of changes) {
    const change = item.change;
    if (change === undefined || change.target !== message.seq) continue;
    if (change.kind === "delete") state = state.deleted === true ? state : tombstone(state);
    else if (change.kind === "edit") state = edited(state, item);
  }
  return state;
}

/**
 * `reactions` with the `react` changes among `changes` applied in the order given (seq order):
 * each turns its sender's reaction on or off. Users stay sorted; a reaction nobody has is left
 * out. `reactions` itself is not modified.
 *
 * @example
 * ```ts
 * withReactions(new Map([["👍", ["ann"]]]), [bobAddsThumbsUp]); // 👍 → ann, bob
 * ```
 */
export function withReactions(
  reactions: MessageReactions | undefined,
  changes: readonly ChatMessage[],
): MessageReactions {
  const result = new Map<string, string[]>();
  for (const [reaction, users] of reactions ?? []) result.set(reaction, [...users]);
  for (const item of changes) {
    const change = item.change;
    if (change?.kind !== "react") continue;
    const users = result.get(change.reaction) ?? [];
    const at = users.indexOf(item.sender);
    if (change.on && at === -1) {
      users.push(item.sender);
      users.sort(byCodePoint);
    } else if (!change.on && at !== -1) {
      users.splice(at, 1);
    }
    if (users.length > 0) result.set(change.reaction, users);
    else result.delete(change.reaction);
  }
  return result;
}

/** Orders user names as PostgreSQL's `collate "C"` does for the names the server allows. */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
