/**
 * Each room's shared sequence in Redis: a hash with the room's epoch and last seq, and a capped
 * stream of its recent messages, from which a {@linkcode SequenceGate} fills holes.
 *
 * @module
 */
import type { Redis } from "ioredis";
import type { MessageDraft, Placement, RemoteSink, SequencedMessage } from "../chat/cluster.ts";
import { newEpoch, type RoomSequence } from "../chat/message.ts";
import { decodeItemFrame as parseMessage, encodeMessageParts } from "../chat/protocol.ts";
import type { Logger } from "../log/logger.ts";
import { SequenceGate } from "./sequence_gate.ts";

/** How long a batch may wait for the sequencer before its senders are told `unavailable`. */
export const SEQUENCE_TIMEOUT_MS = 2_000;
const STREAM_LENGTH = 10_000;
/** An idle room's stream goes after a day; its sequence hash stays (see docs/scaling.md). */
const STREAM_TTL_MS = 86_400_000;

// One atomic step per batch: for each message, unless its sender's client id is known (then
// its first placement is returned instead), take the next seq, finish the frame with it, append
// it to the room's stream (id "<seq>-1", so a gap is read back by seq) and remember the client id
// for the window; then publish the new frames as one payload. Redis runs scripts one at a time,
// so publish order is seq order, and two instances cannot both take one client id. A room
// without a sequence returns nil: the caller seeds it first. KEYS: sequence hash, stream. ARGV:
// channel, payload prefix ("M\n<instance>\n"), stream length, stream TTL, client id window (ms),
// then per message its frame's head and tail, its client id key ("" for none) and its id.
// Returns the epoch, then "<id> <seq>" per message.
const SEQUENCE_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return false end
local frames = {}
local placed = {epoch}
for i = 1, (#ARGV - 5) / 4 do
  local at = 2 + 4 * i
  local sentKey = ARGV[at + 2]
  local prior = false
  if sentKey ~= '' then prior = redis.call('GET', sentKey) end
  if prior then
    placed[i + 1] = prior
  else
    local seq = string.format('%d', redis.call('HINCRBY', KEYS[1], 'seq', 1))
    local frame = ARGV[at] .. seq .. ARGV[at + 1]
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-1', 'f', frame)
    frames[#frames + 1] = frame
    placed[i + 1] = ARGV[at + 3] .. ' ' .. seq
    if sentKey ~= '' then redis.call('SET', sentKey, placed[i + 1], 'PX', ARGV[5]) end
  end
end
if #frames > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  redis.call('PUBLISH', ARGV[1], ARGV[2] .. epoch .. '\\n' .. table.concat(frames, '\\n'))
end
return placed
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
  chatSequence(...args: string[]): Promise<string[] | null>;
  chatSeed(...args: string[]): Promise<[string, string]>;
  chatRebase(...args: string[]): Promise<[string | null, string | null]>;
}

/** What the sequencer needs of a linked room; the cluster's entry for the room has it. */
export interface SequencedRoom {
  readonly sink: RemoteSink;
  /** Puts the room's messages in seq order; made once the room's sequence is known. */
  gate: SequenceGate | undefined;
  /** Payloads that arrived before the gate was made. */
  readonly early: { epoch: string; messages: SequencedMessage[] }[];
}

/** Options of {@linkcode RedisSequencer}. */
export interface RedisSequencerOptions {
  /** Prefix of the keys: `<prefix>seq:<room>` (epoch and last seq), `<prefix>stream:<room>`. */
  readonly prefix: string;
  /** Messages each room's Redis stream keeps (about; trimmed in whole nodes), for gap fills. */
  readonly streamLength?: number;
  readonly logger: Logger;
  /**
   * The linked rooms, owned by the cluster: read to find a room's sink and gate, and to tell
   * whether a room was unlinked (or linked anew) while a call to Redis was out.
   */
  readonly rooms: ReadonlyMap<string, SequencedRoom>;
  /** The pub/sub channel on which the sequencing script publishes a room's batches. */
  readonly channel: (room: string) => string;
  /** What each published batch starts with, before its epoch and frames (kind and instance). */
  readonly payloadHead: string;
  /** How long a client id is remembered (`<prefix>sent:` keys), so a re-send is recognised. */
  readonly sentWindowMs: number;
  /** Counts and logs a failed Redis call; called once per failure. */
  readonly onFailure: (event: string, error: unknown) => void;
}

/**
 * Sequences each room's messages in Redis (one script per batch: seq, stream, publish) and puts
 * the published batches back in seq order per room through a {@linkcode SequenceGate}: a hole
 * is filled from the room's stream, or reported as a gap. Sequencing fails fast (the command
 * client has no offline queue), and {@linkcode RedisSequencer.catchUp} notices whatever a lost
 * payload or a Redis that went back left behind.
 *
 * @example
 * ```ts
 * const sequencer = new RedisSequencer(commands, {
 *   prefix: "chat:", logger, rooms, channel: (room) => `chat:room:${room}`,
 *   payloadHead: `M\n${instance}\n`, onFailure: (event, error) => fail(event, error),
 * });
 * sequencer.open(room, entry, await sequencer.read(room, entry.sink));
 * await sequencer.sequence(room, drafts); // comes back on the channel: sequencer.receive(...)
 * ```
 */
export class RedisSequencer {
  readonly #commands: Redis;
  readonly #scripts: SequencerCommands;
  readonly #options: RedisSequencerOptions;
  #published = 0;

  /** Defines the sequencing scripts on `commands`, which the caller keeps and closes. */
  constructor(commands: Redis, options: RedisSequencerOptions) {
    this.#commands = commands;
    this.#options = options;
    commands.defineCommand("chatSequence", { numberOfKeys: 2, lua: SEQUENCE_SCRIPT });
    commands.defineCommand("chatSeed", { numberOfKeys: 2, lua: SEED_SCRIPT });
    commands.defineCommand("chatRebase", { numberOfKeys: 2, lua: REBASE_SCRIPT });
    this.#scripts = commands as unknown as SequencerCommands;
  }

  /** Batches published so far. */
  get published(): number {
    return this.#published;
  }

  /** The epoch of a room's sequence; `undefined` when it has none or Redis did not answer. */
  async epochOf(room: string): Promise<string | undefined> {
    if (this.#commands.status !== "ready") return undefined;
    try {
      const epoch = await withTimeout(
        this.#commands.hget(this.#sequenceKey(room), "epoch"),
        SEQUENCE_TIMEOUT_MS,
      );
      return epoch ?? undefined;
    } catch (error) {
      this.#options.onFailure("redis.sequence_read_failed", error);
      return undefined;
    }
  }

  /**
   * Where a room's sequence stands, seeding it from `sink` (the store's last seq) if Redis has
   * none.
   *
   * @throws {Error} When Redis fails or does not answer in time; the caller retries.
   */
  async read(room: string, sink: RemoteSink): Promise<RoomSequence> {
    const keys = [this.#sequenceKey(room), this.#streamKey(room)];
    const [epoch, seq] = await withTimeout(
      this.#commands.hmget(keys[0] as string, "epoch", "seq"),
      SEQUENCE_TIMEOUT_MS,
    );
    if (epoch && seq) return { epoch, lastSeq: Number(seq) };
    const seeded = await withTimeout(
      this.#scripts.chatSeed(...keys, newEpoch(), String(await sink.seed())),
      SEQUENCE_TIMEOUT_MS,
    );
    this.#options.logger.info("cluster.sequence_seeded", { room });
    return { epoch: seeded[0], lastSeq: Number(seeded[1]) };
  }

  /** Starts the room's gate at `sequence` and lets through what arrived meanwhile. */
  open(room: string, entry: SequencedRoom, sequence: RoomSequence): void {
    entry.gate = new SequenceGate(
      sequence,
      entry.sink,
      (from, to) => this.#readStream(room, from, to),
    );
    for (const { epoch, messages } of entry.early.splice(0)) entry.gate.push(epoch, messages);
  }

  /**
   * Takes a published batch, `body` being what follows the payload head ("<epoch>\n<frame>
   * \n<frame>..."), to the room's gate, or keeps it until the gate is made.
   */
  receive(entry: SequencedRoom, body: string): void {
    const epochEnd = body.indexOf("\n");
    if (epochEnd < 0) return;
    const epoch = body.slice(0, epochEnd);
    const messages: SequencedMessage[] = [];
    for (const frame of body.slice(epochEnd + 1).split("\n")) {
      const message = parseMessage(frame);
      if (message) messages.push({ message, frame });
    }
    if (entry.gate) entry.gate.push(epoch, messages);
    else entry.early.push({ epoch, messages });
  }

  /**
   * One script call for a room's turn; resolves `false` if Redis did not answer in time. The
   * caller refuses a batch itself while the command client is not ready.
   */
  async sequence(
    room: string,
    drafts: readonly MessageDraft[],
  ): Promise<readonly Placement[] | undefined> {
    const args = [
      this.#sequenceKey(room),
      this.#streamKey(room),
      this.#options.channel(room),
      this.#options.payloadHead,
      String(this.#options.streamLength ?? STREAM_LENGTH),
      String(STREAM_TTL_MS),
      String(this.#options.sentWindowMs),
    ];
    for (const draft of drafts) {
      const sentKey = draft.clientId === undefined
        ? ""
        : this.#sentKey(room, draft.sender, draft.clientId);
      args.push(...encodeMessageParts(draft), sentKey, draft.id);
    }
    try {
      let placed = await withTimeout(this.#scripts.chatSequence(...args), SEQUENCE_TIMEOUT_MS);
      if (placed === null) {
        // Redis lost the room's sequence (a restart without persistence): seed it, then retry.
        const entry = this.#options.rooms.get(room);
        if (!entry) return undefined;
        await this.read(room, entry.sink);
        placed = await withTimeout(this.#scripts.chatSequence(...args), SEQUENCE_TIMEOUT_MS);
      }
      this.#published++;
      return placed?.slice(1).map(parsePlacement);
    } catch (error) {
      this.#options.onFailure("redis.sequence_failed", error);
      return undefined;
    }
  }

  /** Tells each open room's gate where its sequence stands; it reads whatever it missed. */
  catchUp(): void {
    const rooms = this.#options.rooms;
    const open = [...rooms].filter(([, entry]) => entry.gate !== undefined);
    if (open.length === 0 || this.#commands.status !== "ready") return;
    const pipeline = this.#commands.pipeline();
    for (const [room] of open) pipeline.hmget(this.#sequenceKey(room), "epoch", "seq");
    pipeline.exec().then((results) => {
      results?.forEach(([error, value], i) => {
        const [room, entry] = open[i] as [string, SequencedRoom];
        const [epoch, seq] = (value ?? []) as (string | null)[];
        if (error || !epoch || !seq || rooms.get(room) !== entry) return;
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
    }, (error) => this.#options.onFailure("redis.catch_up_failed", error));
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

  /**
   * Moves a room whose sequence in Redis went back (in its epoch, or to an epoch left before)
   * to a new epoch, past every seq this instance delivered or stored; the gate then resets the
   * room (its members resume and are told the epoch changed). If it fails, the next catch-up
   * tries again.
   */
  async #rebase(room: string, entry: SequencedRoom, behind: RoomSequence): Promise<void> {
    const delivered = entry.gate?.lastSeq ?? 0;
    const left = entry.gate?.hasLeft(behind.epoch) ?? false;
    const epoch = newEpoch();
    try {
      // What Redis said may just be older than what the subscription brought since: the
      // script moves on only if the sequence is still behind.
      const floor = Math.max(delivered, await entry.sink.seed());
      const [standing, seq] = await withTimeout(
        this.#scripts.chatRebase(
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
      if (!standing || !seq || this.#options.rooms.get(room) !== entry) return;
      entry.gate?.catchUp({ epoch: standing, lastSeq: Number(seq) });
    } catch (error) {
      this.#options.onFailure("redis.rebase_failed", error);
    }
  }

  #sequenceKey(room: string): string {
    return `${this.#options.prefix}seq:${room}`;
  }

  #sentKey(room: string, sender: string, clientId: string): string {
    // Room names and client ids have no newline, and user names no control character.
    return `${this.#options.prefix}sent:${room}\n${sender}\n${clientId}`;
  }

  #streamKey(room: string): string {
    return `${this.#options.prefix}stream:${room}`;
  }
}

/**
 * Settles as `pending` does, or rejects once `ms` have passed without an answer.
 *
 * @example
 * ```ts
 * const epoch = await withTimeout(commands.hget(key, "epoch"), SEQUENCE_TIMEOUT_MS);
 * ```
 *
 * @throws {Error} When `pending` rejects, or does not settle within `ms`.
 */
export async function withTimeout<T>(pending: Promise<T>, ms: number): Promise<T> {
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

/** "<id> <seq>", as the sequencing script returns each message's place. */
function parsePlacement(placed: string): Placement {
  const space = placed.indexOf(" ");
  return { id: placed.slice(0, space), seq: Number(placed.slice(space + 1)) };
}
