/**
 * Several server instances sharing rooms through Redis: one shared sequence per room, a capped
 * stream of each room's recent messages, pub/sub, and presence heartbeats.
 *
 * @module
 */
import { Redis } from "ioredis";
import type {
  Cluster,
  LinkReady,
  MessageDraft,
  RemoteSink,
  RoomLink,
  SequencedMessage,
} from "../chat/cluster.ts";
import { type ChatMessage, newEpoch, type RoomSequence } from "../chat/message.ts";
import { encodeMessageParts } from "../chat/protocol.ts";
import type { Logger } from "../log/logger.ts";
import { SequenceGate } from "./sequence_gate.ts";

/** Options of {@linkcode RedisCluster.start}. */
export interface RedisClusterOptions {
  /** Prefix of every key and channel, so several deployments (or tests) can share one Redis. */
  readonly prefix: string;
  /** How long this instance's presence outlives its last heartbeat (a crash is noticed by then). */
  readonly presenceTtlMs: number;
  /** Messages each room's Redis stream keeps (about; trimmed in whole nodes), for gap fills. */
  readonly streamLength?: number;
  readonly logger: Logger;
}

// Wire format of a pub/sub payload, one per sequenced batch or presence change:
//   "M\n<instance>\n<epoch>\n<frame>\n<frame>..."  message frames in seq order, as sequenced
//   "P\n<instance>\n<json users>"                   the users <instance> has in the room now
// JSON frames never contain a raw newline, so the fields split off cheaply.
const MESSAGE = "M";
const PRESENCE = "P";
/** How long a room waits for the others' member lists before its first welcome. */
const INITIAL_MEMBERS_TIMEOUT_MS = 1_000;
/** How long a batch may wait for the sequencer before its senders are told `unavailable`. */
const SEQUENCE_TIMEOUT_MS = 2_000;
/** Between attempts at reading a room's sequence while Redis is away. */
const LINK_RETRY_MS = 500;
const STREAM_LENGTH = 10_000;
/** An idle room's stream goes after a day; its sequence hash stays (see docs/scaling.md). */
const STREAM_TTL_MS = 86_400_000;

// One atomic step per batch: take the next seqs, finish each frame with its seq, append it to
// the room's stream (id "<seq>-1", so a gap is read back by seq) and publish the batch. Redis runs
// scripts one at a time, so publish order is seq order. A room without a sequence returns nil:
// the caller seeds it first. KEYS: sequence hash, stream. ARGV: channel, payload prefix ("M\n
// <instance>\n"), stream length, stream TTL, then the head and tail of each frame.
const SEQUENCE_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return false end
local count = (#ARGV - 4) / 2
local last = redis.call('HINCRBY', KEYS[1], 'seq', count)
local first = last - count + 1
local frames = {}
for i = 1, count do
  local seq = string.format('%d', first + i - 1)
  local frame = ARGV[3 + 2 * i] .. seq .. ARGV[4 + 2 * i]
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-1', 'f', frame)
  frames[i] = frame
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. epoch .. '\\n' .. table.concat(frames, '\\n'))
return {epoch, string.format('%d', first)}
`;

// Gives a room a sequence if it has none: a new epoch (whatever Redis had is lost, and seqs of
// the old epoch may have reached clients), continuing the store's last seq. KEYS: sequence hash,
// stream. ARGV: epoch, last seq. Returns the sequence that stands, seeded or found.
const SEED_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HMGET', KEYS[1], 'epoch', 'seq')
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', ARGV[2])
return {ARGV[1], ARGV[2]}
`;

// Moves a room whose sequence went back (Redis restored an older copy: a snapshot, a failover
// to a replica that was behind) to a new epoch continuing past every seq handed out, unless
// another instance did so first. KEYS: sequence hash, stream. ARGV: the epoch that went back,
// a new epoch, the last seq handed out, and the seq below which the epoch counts as gone back
// (the last seq handed out; for an epoch left before, any). Returns the sequence that stands.
const REBASE_SCRIPT = `
local found = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
local seq = tonumber(found[2] or '0')
if found[1] == ARGV[1] and seq < tonumber(ARGV[4]) then
  local last = string.format('%d', math.max(seq, tonumber(ARGV[3])))
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'seq', last)
  return {ARGV[2], last}
end
return found
`;

/** The scripts, as ioredis defines them on the command client. */
interface SequencerCommands {
  chatSequence(...args: string[]): Promise<[string, string] | null>;
  chatSeed(...args: string[]): Promise<[string, string]>;
  chatRebase(...args: string[]): Promise<[string | null, string | null]>;
}

/**
 * Sequences each room's messages in Redis (one script per batch: seq, stream, publish) and
 * delivers every instance's messages, its own included, to local rooms in seq order through a
 * {@linkcode SequenceGate}: a hole is filled from the room's stream, or reported as a gap.
 * Subscribes only to rooms with local members. Redis being away never blocks a room: sequencing
 * fails fast (no offline queue) and its senders are told `unavailable`; ioredis reconnects and
 * resubscribes by itself; on reconnect and at every heartbeat each room catches up with its
 * sequence, so a lost payload cannot stay unnoticed; the next heartbeat re-announces members.
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
  readonly #sequencer: SequencerCommands;
  readonly #heartbeat: ReturnType<typeof setInterval>;
  #published = 0;
  #failures = 0;

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
    this.#commands.defineCommand("chatSequence", { numberOfKeys: 2, lua: SEQUENCE_SCRIPT });
    this.#commands.defineCommand("chatSeed", { numberOfKeys: 2, lua: SEED_SCRIPT });
    this.#commands.defineCommand("chatRebase", { numberOfKeys: 2, lua: REBASE_SCRIPT });
    this.#sequencer = this.#commands as unknown as SequencerCommands;
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
      (channel: string, payload: string) => this.#receive(channel, payload),
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

  /** Payloads published so far (for metrics and tests). */
  get published(): number {
    return this.#published;
  }

  link(room: string, sink: RemoteSink): RoomLink {
    const entry: LinkedRoom = { sink, users: [], present: new Set(), gate: undefined, early: [] };
    this.#rooms.set(room, entry);
    return {
      ready: this.#ready(room, entry),
      publish: (drafts) => this.#sequence(room, drafts),
      announce: (users) => this.#announce(room, users),
      // By entry, not by name: a room that closes after a new one of the same name was linked
      // must not unlink the new one.
      close: () => this.#unlink(room, entry),
    };
  }

  async epochOf(room: string): Promise<string | undefined> {
    if (this.#commands.status !== "ready") return undefined;
    try {
      const epoch = await withTimeout(
        this.#commands.hget(this.#sequenceKey(room), "epoch"),
        SEQUENCE_TIMEOUT_MS,
      );
      return epoch ?? undefined;
    } catch (error) {
      this.#fail("redis.sequence_read_failed", error);
      return undefined;
    }
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
        const sequence = await this.#readSequence(room, entry.sink);
        const members = (await this.#membersElsewhere(room)) ?? new Map();
        this.#open(room, entry, sequence);
        return { members, sequence };
      } catch (error) {
        this.#fail("redis.link_failed", error);
        await new Promise((resolve) => setTimeout(resolve, LINK_RETRY_MS));
      }
    }
  }

  async #readSequence(room: string, sink: RemoteSink): Promise<RoomSequence> {
    const keys = [this.#sequenceKey(room), this.#streamKey(room)];
    const [epoch, seq] = await withTimeout(
      this.#commands.hmget(keys[0] as string, "epoch", "seq"),
      SEQUENCE_TIMEOUT_MS,
    );
    if (epoch && seq) return { epoch, lastSeq: Number(seq) };
    const seeded = await withTimeout(
      this.#sequencer.chatSeed(...keys, newEpoch(), String(await sink.seed())),
      SEQUENCE_TIMEOUT_MS,
    );
    this.#options.logger.info("cluster.sequence_seeded", { room });
    return { epoch: seeded[0], lastSeq: Number(seeded[1]) };
  }

  /** Starts the room's gate at `sequence` and lets through what arrived meanwhile. */
  #open(room: string, entry: LinkedRoom, sequence: RoomSequence): void {
    entry.gate = new SequenceGate(
      sequence,
      entry.sink,
      (from, to) => this.#readStream(room, from, to),
    );
    for (const { epoch, messages } of entry.early.splice(0)) entry.gate.push(epoch, messages);
  }

  /** One script call for a room's turn; resolves `false` if Redis did not answer in time. */
  async #sequence(room: string, drafts: readonly MessageDraft[]): Promise<boolean> {
    if (this.#commands.status !== "ready") {
      this.#failures++;
      return false;
    }
    const args = [
      this.#sequenceKey(room),
      this.#streamKey(room),
      this.#channel(room),
      `${MESSAGE}\n${this.instance}\n`,
      String(this.#options.streamLength ?? STREAM_LENGTH),
      String(STREAM_TTL_MS),
    ];
    for (const draft of drafts) args.push(...encodeMessageParts(draft));
    try {
      let sequenced = await withTimeout(this.#sequencer.chatSequence(...args), SEQUENCE_TIMEOUT_MS);
      if (sequenced === null) {
        // Redis lost the room's sequence (a restart without persistence): seed it, then retry.
        const entry = this.#rooms.get(room);
        if (!entry) return false;
        await this.#readSequence(room, entry.sink);
        sequenced = await withTimeout(this.#sequencer.chatSequence(...args), SEQUENCE_TIMEOUT_MS);
      }
      this.#published++;
      return sequenced !== null;
    } catch (error) {
      this.#fail("redis.sequence_failed", error);
      return false;
    }
  }

  /** Seqs `from`..`to` of the room's stream (fewer if it no longer has them). */
  async #readStream(room: string, from: number, to: number): Promise<SequencedMessage[]> {
    const entries = await withTimeout(
      this.#commands.xrange(this.#streamKey(room), `${from}-1`, `${to}-1`),
      SEQUENCE_TIMEOUT_MS,
    );
    const found: SequencedMessage[] = [];
    for (const [, fields] of entries) {
      const frame = fields[1];
      const message = frame === undefined ? undefined : parseMessage(frame);
      if (message && frame !== undefined) found.push({ message, frame });
    }
    return found;
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
    this.#subscriber.disconnect();
    this.#commands.disconnect();
  }

  #announce(room: string, users: readonly string[]): void {
    const entry = this.#rooms.get(room);
    if (!entry) return;
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
      const epochEnd = payload.indexOf("\n", instanceEnd + 1);
      if (epochEnd < 0) return;
      const epoch = payload.slice(instanceEnd + 1, epochEnd);
      const messages: SequencedMessage[] = [];
      for (const frame of payload.slice(epochEnd + 1).split("\n")) {
        const message = parseMessage(frame);
        if (message) messages.push({ message, frame });
      }
      if (entry.gate) entry.gate.push(epoch, messages);
      else entry.early.push({ epoch, messages });
    } else if (kind === PRESENCE && instance !== this.instance) {
      this.#report(entry, instance, parseUsers(payload.slice(instanceEnd + 1)));
    }
  }

  /** Tells each open room's gate where its sequence stands; it reads whatever it missed. */
  #catchUp(): void {
    const open = [...this.#rooms].filter(([, entry]) => entry.gate !== undefined);
    if (open.length === 0 || this.#commands.status !== "ready") return;
    const pipeline = this.#commands.pipeline();
    for (const [room] of open) pipeline.hmget(this.#sequenceKey(room), "epoch", "seq");
    pipeline.exec().then((results) => {
      results?.forEach(([error, value], i) => {
        const [room, entry] = open[i] as [string, LinkedRoom];
        const [epoch, seq] = (value ?? []) as (string | null)[];
        if (error || !epoch || !seq || this.#rooms.get(room) !== entry) return;
        const sequence = { epoch, lastSeq: Number(seq) };
        const gate = entry.gate;
        // Within an epoch the sequence only grows, and an epoch once left is over: behind what
        // was delivered, or back in an old epoch, Redis lost writes and would hand out used
        // seqs again (which every gate drops as stale).
        const behind = epoch === gate?.epoch && sequence.lastSeq < gate.lastSeq;
        if (gate && (behind || gate.hasLeft(epoch))) {
          this.#rebase(room, entry, sequence);
        } else gate?.catchUp(sequence);
      });
    }, (error) => this.#fail("redis.catch_up_failed", error));
  }

  /**
   * Moves a room whose sequence in Redis went back (in its epoch, or to an epoch left before)
   * to a new epoch, past every seq this instance delivered or stored; the gate then resets the
   * room (its members resume and are told the epoch changed). If it fails, the next catch-up
   * tries again.
   */
  async #rebase(room: string, entry: LinkedRoom, behind: RoomSequence): Promise<void> {
    const delivered = entry.gate?.lastSeq ?? 0;
    const left = entry.gate?.hasLeft(behind.epoch) ?? false;
    const epoch = newEpoch();
    try {
      // What Redis said may just be older than what the subscription brought since: the
      // script moves on only if the sequence is still behind.
      const floor = Math.max(delivered, await entry.sink.seed());
      const [standing, seq] = await withTimeout(
        this.#sequencer.chatRebase(
          this.#sequenceKey(room),
          this.#streamKey(room),
          behind.epoch,
          epoch,
          String(floor),
          String(left ? Number.MAX_SAFE_INTEGER : floor),
        ),
        SEQUENCE_TIMEOUT_MS,
      );
      if (standing === epoch) {
        this.#options.logger.warn("cluster.sequence_rebased", {
          room,
          redisSeq: behind.lastSeq,
          lastSeq: Number(seq),
        });
      }
      if (!standing || !seq || this.#rooms.get(room) !== entry) return;
      entry.gate?.catchUp({ epoch: standing, lastSeq: Number(seq) });
    } catch (error) {
      this.#fail("redis.rebase_failed", error);
    }
  }

  /** Refreshes this instance's liveness and presence, and drops members of instances gone quiet. */
  #beat(): void {
    this.#catchUp();
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

  #sequenceKey(room: string): string {
    return `${this.#options.prefix}seq:${room}`;
  }

  #streamKey(room: string): string {
    return `${this.#options.prefix}stream:${room}`;
  }

  #instanceKey(instance: string): string {
    return `${this.#options.prefix}instance:${instance}`;
  }
}

/** A room with local members, as this instance tracks it. */
interface LinkedRoom {
  readonly sink: RemoteSink;
  /** This instance's users in the room, re-announced with every heartbeat. */
  users: readonly string[];
  /** Other instances that have users in the room, as last reported to it. */
  readonly present: Set<string>;
  /** Puts the room's messages in seq order; made once the room's sequence is known. */
  gate: SequenceGate | undefined;
  /** Payloads that arrived before the gate was made. */
  readonly early: { epoch: string; messages: SequencedMessage[] }[];
}

/** A `message` frame back into a message; `undefined` for anything else. */
function parseMessage(frame: string): ChatMessage | undefined {
  try {
    const value = JSON.parse(frame);
    if (typeof value?.seq !== "number" || typeof value.id !== "string") return undefined;
    const { id, room, seq, sender, content, timestamp } = value;
    return { id, room, seq, sender, content, timestamp };
  } catch (error) {
    if (error instanceof SyntaxError) return undefined; // another deployment's junk on our prefix
    throw error;
  }
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

async function withTimeout<T>(pending: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
