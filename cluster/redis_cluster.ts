/**
 * Several server instances sharing rooms through Redis: pub/sub and presence heartbeats; each
 * room's shared sequence is {@linkcode RedisSequencer}'s.
 *
 * @module
 */
import { errorCode } from "../log/error_code.ts";
import { Redis } from "ioredis";
import type {
  Cluster,
  LinkReady,
  MessageDraft,
  Placement,
  RemoteSink,
  RoomLink,
} from "../chat/cluster.ts";
import type { Logger } from "../log/logger.ts";
import {
  RedisSequencer,
  SEQUENCE_TIMEOUT_MS,
  type SequencedRoom,
  withTimeout,
} from "./redis_sequencer.ts";

/** Options of {@linkcode RedisCluster.start}. */
export interface RedisClusterOptions {
  /** Prefix of every key and channel, so several deployments (or tests) can share one Redis. */
  readonly prefix: string;
  /** How long this instance's presence outlives its last heartbeat (a crash is noticed by then). */
  readonly presenceTtlMs: number;
  /** Messages each room's Redis stream keeps (about; trimmed in whole nodes), for gap fills. */
  readonly streamLength?: number;
  /** How long a client id is remembered in Redis (`IDEMPOTENCY_WINDOW`); 10 minutes by default. */
  readonly sentWindowMs?: number;
  readonly logger: Logger;
}

// Wire format of a pub/sub payload, one per sequenced batch or presence change:
//   "M\n<instance>\n<epoch>\n<frame>\n<frame>..."  message frames in seq order, as sequenced
//   "P\n<instance>\n<json users>"                   the users <instance> has in the room now
//   "T\n<instance>\n<user>"                         <user> is typing
//   "R\n<instance>\n<seq>\n<user>"                  <user> has read the room up to <seq>
// JSON frames never contain a raw newline, so the fields split off cheaply.
const MESSAGE = "M";
const PRESENCE = "P";
const TYPING = "T";
const READ = "R";
/** How long a room waits for the others' member lists before its first welcome. */
const INITIAL_MEMBERS_TIMEOUT_MS = 1_000;
/** Longest close() waits for the connections to end (ioredis destroys them after 10 s). */
const CLOSE_TIMEOUT_MS = 2_000;
/** Between attempts at reading a room's sequence while Redis is away. */
const LINK_RETRY_MS = 500;

/**
 * Links local rooms to the same rooms on other instances. Every instance's messages, its own
 * included, reach local rooms in seq order through a {@linkcode RedisSequencer}, which
 * sequences them in Redis. Subscribes only to rooms with local members. Redis being away never
 * blocks a room: sequencing fails fast (no offline queue) and its senders are told
 * `unavailable`; ioredis reconnects and resubscribes by itself; on reconnect and at every
 * heartbeat each room catches up with its sequence, so a lost payload cannot stay unnoticed; the
 * next heartbeat re-announces members.
 *
 * @example
 * ```ts
 * const cluster = RedisCluster.start("redis://127.0.0.1:6379", { prefix: "chat:", presenceTtlMs: 15_000, logger });
 * const hub = new Hub({ ..., cluster });
 * await cluster.close();
 * ```
 */
export class RedisCluster implements Cluster {
  /** This instance's id in the cluster. */
  readonly instance = crypto.randomUUID();
  readonly #commands: Redis;
  readonly #subscriber: Redis;
  readonly #options: RedisClusterOptions;
  readonly #rooms = new Map<string, LinkedRoom>();
  readonly #sequencer: RedisSequencer;
  readonly #heartbeat: ReturnType<typeof setInterval>;
  #published = 0;
  #failures = 0;
  #faults = 0;

  private constructor(url: string, options: RedisClusterOptions) {
    this.#options = options;
    // Commands fail fast while Redis is away (no offline queue), so nothing piles up in memory.
    this.#commands = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    // Subscriptions are few (one per room) and must not be lost: they wait for the connection.
    // The "ready" handler below resubscribes every room: ioredis's own resubscription leaves a
    // promise nobody handles, whose rejection (the connection closing again, or close()) would
    // end the process.
    this.#subscriber = new Redis(url, {
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      autoResubscribe: false,
    });
    this.#sequencer = new RedisSequencer(this.#commands, {
      prefix: options.prefix,
      streamLength: options.streamLength,
      logger: options.logger,
      rooms: this.#rooms,
      channel: (room) => this.#channel(room),
      payloadHead: `${MESSAGE}\n${this.instance}\n`,
      sentWindowMs: options.sentWindowMs ?? 600_000,
      onFailure: (event, error) => this.#fail(event, error),
    });
    for (
      const [role, client] of [["commands", this.#commands], [
        "subscriber",
        this.#subscriber,
      ]] as const
    ) {
      // ioredis emits "error" for every failed reconnect; without a listener it would throw.
      client.on("error", (error: Error) => this.#fail(`redis.${role}_error`, error));
    }
    this.#commands.on("ready", () => this.#beat());
    this.#subscriber.on("ready", () => {
      const channels = [...this.#rooms.keys()].map((room) => this.#channel(room));
      if (channels.length === 0) return this.#beat();
      // Caught up once subscribed, so that what was published while away is read from the
      // streams and what comes after arrives.
      this.#subscriber.subscribe(...channels).then(
        () => this.#beat(),
        (error) => this.#fail("redis.subscribe_failed", error),
      );
    });
    this.#subscriber.on(
      "message",
      (channel: string, payload: string) => {
        // Thrown into ioredis's event emitter, an exception would end the process.
        try {
          this.#receive(channel, payload);
        } catch (error) {
          this.#faults++;
          this.#options.logger.error("cluster.receive_failed", {
            channel,
            error: errorCode(error),
          });
        }
      },
    );
    this.#heartbeat = setInterval(() => this.#beat(), Math.max(100, options.presenceTtlMs / 3));
  }

  /** Connects (in the background) and starts heartbeating. */
  static start(url: string, options: RedisClusterOptions): RedisCluster {
    return new RedisCluster(url, options);
  }

  get state(): "ok" | "degraded" {
    return this.#commands.status === "ready" && this.#subscriber.status === "ready"
      ? "ok"
      : "degraded";
  }

  /** Payloads whose handling threw and was contained (for tests). */
  get faults(): number {
    return this.#faults;
  }

  /** Payloads published so far (for metrics and tests). */
  get published(): number {
    return this.#published + this.#sequencer.published;
  }

  link(room: string, sink: RemoteSink): RoomLink {
    const entry: LinkedRoom = { sink, users: [], present: new Set(), gate: undefined, early: [] };
    this.#rooms.set(room, entry);
    return {
      ready: this.#ready(room, entry),
      publish: (drafts) => this.#sequence(room, drafts),
      // By entry, not by name: a room that closes after a new one of the same name was linked
      // must not announce for it, nor unlink it.
      announce: (users) => this.#announce(room, entry, users),
      typing: (user) => {
        if (this.#rooms.get(room) === entry) {
          this.#publish(room, `${TYPING}\n${this.instance}\n${user}`);
        }
      },
      read: (user, seq) => {
        if (this.#rooms.get(room) === entry) {
          this.#publish(room, `${READ}\n${this.instance}\n${seq}\n${user}`);
        }
      },
      close: () => this.#unlink(room, entry),
    };
  }

  epochOf(room: string): Promise<string | undefined> {
    return this.#sequencer.epochOf(room);
  }

  async membersElsewhere(room: string): Promise<readonly string[] | undefined> {
    const members = await this.#membersElsewhere(room);
    if (!members) return undefined;
    return [...new Set([...members.values()].flat())].sort();
  }

  /**
   * Subscribes, then reads where the room's sequence stands (seeding it from the store if Redis
   * has none), so that every payload after that point is seen; retried while Redis is away.
   */
  async #ready(room: string, entry: LinkedRoom): Promise<LinkReady> {
    for (;;) {
      if (this.#rooms.get(room) !== entry) {
        throw new Error(`room ${room} closed before it was linked`);
      }
      try {
        await withTimeout(this.#subscriber.subscribe(this.#channel(room)), SEQUENCE_TIMEOUT_MS);
        const sequence = await this.#sequencer.read(room, entry.sink);
        const members = (await this.#membersElsewhere(room)) ?? new Map();
        this.#sequencer.open(room, entry, sequence);
        return { members, sequence };
      } catch (error) {
        this.#fail("redis.link_failed", error);
        await new Promise((resolve) => setTimeout(resolve, LINK_RETRY_MS));
      }
    }
  }

  // Refused at once while Redis is away, counted but not logged as in #publish: the command
  // client has no offline queue, and every send would fail the same way.
  #sequence(
    room: string,
    drafts: readonly MessageDraft[],
  ): Promise<readonly Placement[] | undefined> {
    if (this.#commands.status !== "ready") {
      this.#failures++;
      return Promise.resolve(undefined);
    }
    return this.#sequencer.sequence(room, drafts);
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    for (const [room, entry] of [...this.#rooms]) this.#unlink(room, entry);
    try {
      if (this.#commands.status === "ready") {
        await this.#commands.del(this.#instanceKey(this.instance));
      }
    } catch (error) {
      this.#fail("redis.close_failed", error);
    }
    // Ended, not just asked to: until its socket closes, each client holds a timer.
    const ended = [this.#subscriber, this.#commands].map((client) =>
      client.status === "end"
        ? Promise.resolve()
        : new Promise<void>((resolve) => client.once("end", () => resolve()))
    );
    this.#subscriber.disconnect();
    this.#commands.disconnect();
    await withTimeout(Promise.all(ended), CLOSE_TIMEOUT_MS).catch(() => {});
  }

  #announce(room: string, entry: LinkedRoom, users: readonly string[]): void {
    if (this.#rooms.get(room) !== entry) return;
    entry.users = [...users];
    this.#writePresence(room, entry.users);
    this.#publish(room, `${PRESENCE}\n${this.instance}\n${JSON.stringify(entry.users)}`);
  }

  #unlink(room: string, entry: LinkedRoom): void {
    if (this.#rooms.get(room) !== entry) return;
    this.#rooms.delete(room);
    this.#publish(room, `${PRESENCE}\n${this.instance}\n[]`);
    this.#run(this.#commands.hdel(this.#presenceKey(room), this.instance), "redis.presence_failed");
    this.#subscriber.unsubscribe(this.#channel(room)).catch((error) =>
      this.#fail("redis.unsubscribe_failed", error)
    );
  }

  #receive(channel: string, payload: string): void {
    const room = channel.slice(this.#options.prefix.length + "room:".length);
    const entry = this.#rooms.get(room);
    if (!entry) return;
    const kind = payload.slice(0, 1);
    const instanceEnd = payload.indexOf("\n", 2);
    if (instanceEnd < 0) return;
    const instance = payload.slice(2, instanceEnd);
    if (kind === MESSAGE) {
      // This instance's own messages come back this way too: delivery is in seq order only.
      this.#sequencer.receive(entry, payload.slice(instanceEnd + 1));
    } else if (kind === PRESENCE && instance !== this.instance) {
      this.#report(entry, instance, parseUsers(payload.slice(instanceEnd + 1)));
    } else if (kind === TYPING && instance !== this.instance) {
      entry.sink.typing(payload.slice(instanceEnd + 1));
    } else if (kind === READ && instance !== this.instance) {
      const seqEnd = payload.indexOf("\n", instanceEnd + 1);
      const seq = Number(payload.slice(instanceEnd + 1, seqEnd));
      if (seqEnd > 0 && Number.isSafeInteger(seq) && seq > 0) {
        entry.sink.read(payload.slice(seqEnd + 1), seq);
      }
    }
  }

  /** Refreshes this instance's liveness and presence, and drops members of instances gone quiet. */
  #beat(): void {
    this.#sequencer.catchUp();
    const ttl = this.#options.presenceTtlMs;
    this.#run(
      this.#commands.set(this.#instanceKey(this.instance), "1", "PX", ttl),
      "redis.heartbeat_failed",
    );
    for (const [room, entry] of this.#rooms) {
      if (entry.users.length > 0) this.#writePresence(room, entry.users);
      this.#membersElsewhere(room).then((members) => {
        if (!members || this.#rooms.get(room) !== entry) return;
        // Dead instances come back with no users, so their members leave everywhere.
        for (const [instance, users] of members) this.#report(entry, instance, users);
        // An instance this room knows but Redis no longer lists (another survivor already
        // removed its dead entry) is gone too.
        for (const instance of [...entry.present]) {
          if (!members.has(instance)) this.#report(entry, instance, []);
        }
      });
    }
  }

  /** The other live instances' users of a room, from Redis; empty when Redis is away. */
  async #membersElsewhere(room: string): Promise<Map<string, readonly string[]> | undefined> {
    const members = new Map<string, readonly string[]>();
    if (this.#commands.status !== "ready") return undefined;
    try {
      const read = (async () => {
        const fields = await this.#commands.hgetall(this.#presenceKey(room));
        const others = Object.entries(fields).filter(([instance]) => instance !== this.instance);
        if (others.length === 0) return;
        const alive = await this.#commands.mget(
          ...others.map(([instance]) => this.#instanceKey(instance)),
        );
        others.forEach(([instance, users], i) => {
          if (alive[i] !== null) members.set(instance, parseUsers(users));
          else {
            members.set(instance, []); // its heartbeat expired: it crashed or was cut off
            this.#run(
              this.#commands.hdel(this.#presenceKey(room), instance),
              "redis.presence_failed",
            );
          }
        });
      })();
      await withTimeout(read, INITIAL_MEMBERS_TIMEOUT_MS);
    } catch (error) {
      this.#fail("redis.presence_read_failed", error);
      return undefined; // unknown, which is not the same as nobody
    }
    return members;
  }

  /** Passes another instance's users to the room, remembering who is present. */
  #report(entry: LinkedRoom, instance: string, users: readonly string[]): void {
    if (users.length > 0) entry.present.add(instance);
    else entry.present.delete(instance);
    entry.sink.presence(instance, users);
  }

  #writePresence(room: string, users: readonly string[]): void {
    const key = this.#presenceKey(room);
    const write = users.length === 0
      ? this.#commands.hdel(key, this.instance)
      : this.#commands.multi().hset(key, this.instance, JSON.stringify(users))
        .pexpire(key, this.#options.presenceTtlMs * 4).exec();
    this.#run(write, "redis.presence_failed");
  }

  #publish(room: string, payload: string): void {
    if (this.#commands.status !== "ready") {
      this.#failures++;
      return;
    }
    this.#published++;
    this.#run(this.#commands.publish(this.#channel(room), payload), "redis.publish_failed");
  }

  #run(pending: Promise<unknown>, event: string): void {
    pending.catch((error) => this.#fail(event, error));
  }

  #fail(event: string, error: unknown): void {
    this.#failures++;
    // Logged at debug: during an outage every attempt fails, and /readyz already says degraded.
    this.#options.logger.debug(event, {
      error: error instanceof Error ? error.name : typeof error,
    });
  }

  #channel(room: string): string {
    return `${this.#options.prefix}room:${room}`;
  }

  #presenceKey(room: string): string {
    return `${this.#options.prefix}presence:${room}`;
  }

  #instanceKey(instance: string): string {
    return `${this.#options.prefix}instance:${instance}`;
  }
}

/** A room with local members, as this instance tracks it. */
interface LinkedRoom extends SequencedRoom {
  /** This instance's users in the room, re-announced with every heartbeat. */
  users: readonly string[];
  /** Other instances that have users in the room, as last reported to it. */
  readonly present: Set<string>;
}

function parseUsers(json: string): readonly string[] {
  try {
    const value: unknown = JSON.parse(json);
    return Array.isArray(value)
      ? value.filter((user): user is string => typeof user === "string")
      : [];
  } catch (error) {
    if (error instanceof SyntaxError) return []; // another deployment's junk on our prefix
    throw error;
  }
}
