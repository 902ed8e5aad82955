/**
 * What a room needs to reach the same room on other server instances. `chat/` declares it;
 * the Redis implementation lives in `cluster/`, and a single instance uses {@linkcode SoloCluster}.
 *
 * @module
 */

/** Events from other instances, delivered to one room. */
export interface RemoteSink {
  /** A message another instance broadcast, with its frame already encoded. */
  message(id: string, frame: string): void;
  /** The users `instance` has in the room now; an empty list means none (or it is gone). */
  presence(instance: string, users: readonly string[]): void;
}

/** One room's connection to the cluster. */
export interface RoomLink {
  /** The other instances' members of the room when it was linked, by instance. */
  readonly initialMembers: Promise<ReadonlyMap<string, readonly string[]>>;
  /** Sends a message this instance broadcast to the room's members elsewhere. Never waits. */
  publish(id: string, frame: string): void;
  /** Tells the others which users this instance has in the room now. Never waits. */
  announce(users: readonly string[]): void;
  /** Leaves the room's cluster traffic. */
  close(): void;
}

/** The cluster as the hub sees it. */
export interface Cluster {
  /** Links a room: from now on `sink` gets its events from other instances. */
  link(room: string, sink: RemoteSink): RoomLink;
  /** `off` for a single instance, `ok` when connected, `degraded` when the others are out of reach. */
  readonly state: "off" | "ok" | "degraded";
  /** Withdraws this instance's presence and disconnects. */
  close(): Promise<void>;
}

const NO_MEMBERS: ReadonlyMap<string, readonly string[]> = new Map();

// Stateless, so every room of a single instance shares it.
const SOLO_LINK: RoomLink = Object.freeze({
  initialMembers: Promise.resolve(NO_MEMBERS),
  publish() {},
  announce() {},
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

  close(): Promise<void> {
    return Promise.resolve();
  }
}
