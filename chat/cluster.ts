/**
 * What a room needs to reach the same room on other server instances. `chat/` declares it;
 * the Redis implementation lives in `cluster/`, and a single instance uses {@linkcode SoloCluster}.
 *
 * @module
 */

import type { ChatMessage, RoomSequence } from "./message.ts";

/** A message with its encoded `message` frame. */
export interface SequencedMessage {
  readonly message: ChatMessage;
  readonly frame: string;
}

/** A message the room accepted, before it has a seq. */
export type MessageDraft = Omit<ChatMessage, "seq">;

/** Where a published message stands in the room's sequence. */
export interface Placement {
  readonly id: string;
  readonly seq: number;
}

/** What the cluster tells one room. */
export interface RemoteSink {
  /**
   * Messages of the room from the shared sequence, this instance's own included: each call's
   * seqs follow the previous call's without a hole, unless {@linkcode RemoteSink.gap} said
   * which seqs will not come.
   */
  messages(messages: readonly SequencedMessage[]): void;
  /** Seqs `fromSeq`..`toSeq` were lost on the way and could not be recovered. */
  gap(fromSeq: number, toSeq: number): void;
  /**
   * The shared sequence was reset (Redis lost it) and now stands at `sequence`; the next
   * messages follow it.
   */
  reset(sequence: RoomSequence): void;
  /** The users `instance` has in the room now; an empty list means none (or it is gone). */
  presence(instance: string, users: readonly string[]): void;
  /** `user`, on another instance, is typing in the room (ephemeral: never stored). */
  typing(user: string): void;
  /** `user`, on another instance, has read the room up to `seq` (that instance stored it). */
  read(user: string, seq: number): void;
  /** The room's last seq as the store knows it, for a shared sequencer that has none. */
  seed(): Promise<number>;
}

/** What a room learns when it is linked. */
export interface LinkReady {
  /** The other instances' members of the room, by instance. */
  readonly members: ReadonlyMap<string, readonly string[]>;
  /**
   * The shared sequence's position, from which messages arrive through the sink; `undefined`
   * when the room is its own sequencer (a single instance).
   */
  readonly sequence: RoomSequence | undefined;
}

/** One room's connection to the cluster. */
export interface RoomLink {
  /** Resolves once the link is ready. */
  readonly ready: Promise<LinkReady>;
  /**
   * Hands messages to the shared sequencer; they come back, with seqs, through
   * {@linkcode RemoteSink.messages}. Resolves with where each draft stands, in order: its seq,
   * or, for a re-send of a client id the sequencer knows, the first message's id and seq. Resolves
   * `undefined` if the sequencer could not be reached in time: the messages were most likely not
   * sent (see docs/protocol.md). Never rejects. Only called when {@linkcode LinkReady.sequence}
   * is defined.
   */
  publish(drafts: readonly MessageDraft[]): Promise<readonly Placement[] | undefined>;
  /** Tells the others which users this instance has in the room now. Never waits. */
  announce(users: readonly string[]): void;
  /** Tells the others that `user` is typing (at most once per 2 s per user). Never waits. */
  typing(user: string): void;
  /** Tells the others that `user` has read the room up to `seq` (a receipt). Never waits. */
  read(user: string, seq: number): void;
  /** Leaves the room's cluster traffic. */
  close(): void;
}

/** The cluster as the hub sees it. */
export interface Cluster {
  /** Links a room: from now on `sink` gets its events from other instances. */
  link(room: string, sink: RemoteSink): RoomLink;
  /** `off` for a single instance, `ok` when connected, `degraded` when the others are out of reach. */
  readonly state: "off" | "ok" | "degraded";
  /**
   * The epoch of a room's shared sequence; `undefined` when the room has none yet, or when
   * the rooms are not shared (a single instance).
   */
  epochOf(room: string): Promise<string | undefined>;
  /**
   * The users other instances have in `room`, for a room this one does not host (the server
   * API's member list); `undefined` if that cannot be known now.
   */
  membersElsewhere(room: string): Promise<readonly string[] | undefined>;
  /** Withdraws this instance's presence and disconnects. */
  close(): Promise<void>;
}

const NO_MEMBERS: ReadonlyMap<string, readonly string[]> = new Map();

// Stateless, so every room of a single instance shares it.
const SOLO_LINK: RoomLink = Object.freeze({
  ready: Promise.resolve({ members: NO_MEMBERS, sequence: undefined }),
  publish: () => Promise.resolve(undefined),
  announce() {},
  typing() {},
  read() {},
  close() {},
});

/**
 * The cluster of one: nothing to publish to, nobody else present.
 *
 * @example
 * ```ts
 * const hub = new Hub({ ..., cluster: new SoloCluster() });
 * ```
 */
export class SoloCluster implements Cluster {
  readonly state = "off";

  link(_room: string, _sink: RemoteSink): RoomLink {
    return SOLO_LINK;
  }

  membersElsewhere(_room: string): Promise<readonly string[] | undefined> {
    return Promise.resolve([]);
  }

  epochOf(_room: string): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
