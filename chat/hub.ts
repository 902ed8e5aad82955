/**
 * The hub: rooms by name, created on first join and removed when their last member leaves.
 *
 * @module
 */
import {
  Client,
  type ClientOwner,
  type OutboxLimits,
  type ReadPosition,
  type Transport,
} from "./client.ts";
import type { Logger } from "../log/logger.ts";
import { type ClientLimits, CLOSE_CODES, type CloseCode, type ErrorCode } from "./protocol.ts";
import type { ChatMetrics } from "./chat_metrics.ts";
import type { Cluster } from "./cluster.ts";
import { OutboxWriter } from "./outbox_writer.ts";
import { reportFault } from "./faults.ts";
import type { ChangeRequest, MessageLog, RoomSequence, Submission } from "./message.ts";
import { type PersistMode, Room, type Sender } from "./room.ts";
import { SentMessages, type SentMessagesOptions } from "./sent_messages.ts";
import type { ResumeCursor } from "./room_replays.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import { type ChatEvents, NO_EVENTS } from "./chat_events.ts";

/** Longest a message published through the API waits for its room's answer. */
const PUBLISH_TIMEOUT_MS = 10_000;
/** How often sockets that had bytes buffered are read again for the budget. */
const BUFFERED_SWEEP_MS = 1_000;

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /** Bounds of each client's outbox. */
  readonly outbox: Omit<OutboxLimits, "replayFrames">;
  /** Events that may wait in each room's inbox. */
  readonly roomInboxLimit: number;
  /** Where every delivered message goes to be stored, and where replays read. */
  readonly log: MessageLog;
  /** Messages one resume replays at most (and recent messages each room keeps for it). */
  readonly resumeLimit: number;
  /** How long, and within how many bytes, client ids are remembered in memory. */
  readonly sentWindow: SentMessagesOptions;
  /** When a message goes out: once queued for storage (`async`), or once committed. */
  readonly persistMode?: PersistMode;
  /** Other instances serving the same rooms; {@linkcode SoloCluster} when there are none. */
  readonly cluster: Cluster;
  /** What a connection may send, told to each client in its `welcome`. */
  readonly limits?: ClientLimits;
  /** How long a user stays listed after its last connection closed (0 by default). */
  readonly presenceLeaveGraceMs?: number;
  /** How long authors may edit or delete their messages (`EDIT_WINDOW`); unlimited if unset. */
  readonly editWindowMs?: number;
  /** The byte budget: rooms' recent buffers and clients' socket buffers count against it. */
  readonly budget?: MemoryBudget;
  /** Told of connections and new messages here (webhooks); {@linkcode NO_EVENTS} by default. */
  readonly events?: ChatEvents;
  /** Where counts go; {@linkcode NO_METRICS} counts nothing. */
  readonly metrics: ChatMetrics;
  readonly logger: Logger;
}

/**
 * Owns the rooms and the clients in them.
 *
 * @example
 * ```ts
 * const hub = new Hub({ outbox: { frames: 256, bytes: 1 << 20 }, roomInboxLimit: 4096, log, ... });
 * const client = hub.join({ room: "general", user: "ann", cursor: { sinceSeq: 0, epoch: undefined } }, transport);
 * client.receive("hello");
 * await hub.close();
 * ```
 */
export class Hub implements ClientOwner {
  readonly #options: HubOptions;
  readonly #outboxLimits: OutboxLimits;
  readonly #writer = new OutboxWriter((error) =>
    reportFault(this.#options, "outbox", "outbox.flush_failed", error)
  );
  readonly #rooms = new Map<string, Room>();
  readonly #sent: SentMessages;
  readonly #clients = new Set<Client>();
  readonly #retired = new Set<Promise<void>>();
  /** Rooms whose loops are ending, by name: a new room of that name starts after the old ends. */
  readonly #ending = new Map<string, Promise<void>>();
  #nextClientId = 1;
  #closing = false;
  readonly #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#sent = new SentMessages(options.sentWindow);
    this.#outboxLimits = { ...options.outbox, replayFrames: options.resumeLimit };
    if (options.budget) this.#sweep = setInterval(() => this.#measureBuffered(), BUFFERED_SWEEP_MS);
  }

  /** Rooms that have at least one member. */
  get roomCount(): number {
    return this.#rooms.size;
  }

  /** Connected clients. */
  get clientCount(): number {
    return this.#clients.size;
  }

  /** The `limit` rooms with the most local members, largest first. */
  largestRooms(limit: number): { room: string; members: number }[] {
    const rooms: { room: string; members: number }[] = [];
    for (const room of this.#rooms.values()) {
      rooms.push({ room: room.name, members: room.memberCount });
    }
    return rooms.sort((a, b) => b.members - a.members || (a.room < b.room ? -1 : 1)).slice(
      0,
      limit,
    );
  }

  /** The sequence of a room with members here; `undefined` if it has none or has not started. */
  sequenceOf(room: string): RoomSequence | undefined {
    const sequence = this.#rooms.get(room)?.sequence;
    return sequence && sequence.epoch !== "" ? sequence : undefined;
  }

  /** @internal Called by a client whose transport threw; it is closed with 1011. */
  faulted(client: Client, error: unknown): void {
    reportFault(this.#options, "client", "client.failed", error, {
      client: client.id,
      room: client.room,
    });
  }

  /** @internal Called by a client whose user has read its room up to `seq`. */
  read(client: Client, seq: number): void {
    if (!this.#closing) this.#rooms.get(client.room)?.read(client, seq);
  }

  /** @internal Called by a client whose user is typing. */
  typing(client: Client): void {
    if (!this.#closing) this.#rooms.get(client.room)?.typing(client);
  }

  /** @internal Called by a client whose frame was refused. */
  refused(code: ErrorCode): void {
    this.#options.metrics.messageRefused(code);
  }

  /**
   * Adds a connection to a room, creating the room on first join. After {@linkcode Hub.close}
   * the connection is closed with 1001 at once.
   */
  join(
    identity: {
      readonly room: string;
      readonly user: string;
      readonly cursor?: ResumeCursor;
      readonly moderator?: boolean;
      readonly readPosition?: ReadPosition;
      readonly batch?: boolean;
    },
    transport: Transport,
  ): Client {
    const client = new Client(
      {
        id: this.#nextClientId++,
        room: identity.room,
        user: identity.user,
        moderator: identity.moderator,
        readPosition: identity.readPosition,
        batched: identity.batch,
      },
      transport,
      {
        owner: this,
        limits: this.#outboxLimits,
        writer: this.#writer,
        budget: this.#options.budget,
      },
    );
    if (this.#closing) {
      client.disconnect(CLOSE_CODES.goingAway);
      return client;
    }
    this.#clients.add(client);
    const room = this.#roomFor(identity.room);
    room.join(client, identity.cursor);
    (this.#options.events ?? NO_EVENTS).connected(client.user, client.room);
    return client;
  }

  /**
   * Publishes a validated message into `room` as `user`, for the server API: the room is opened
   * for it if it has no members here. Resolves with the message's id and seq once it is
   * acknowledged (a re-send of a known client id: the first one's), or with the refusal.
   */
  async publish(
    name: string,
    user: string,
    submission: Submission,
  ): Promise<{ readonly id: string; readonly seq: number } | { readonly refused: ErrorCode }> {
    this.#options.metrics.messageReceived();
    if (this.#closing) return { refused: "shutting_down" };
    return await this.#onBehalf(
      name,
      user,
      false,
      (room, sender) => room.submit(sender, submission),
    );
  }

  /** Hands a room something to do for `user` outside any connection, and waits for its answer. */
  async #onBehalf(
    name: string,
    user: string,
    moderator: boolean,
    queue: (room: Room, sender: Sender) => boolean,
  ): Promise<{ readonly id: string; readonly seq: number } | { readonly refused: ErrorCode }> {
    const room = this.#roomFor(name);
    room.hold();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise((resolve) => {
        const sender: Sender = {
          user,
          moderator,
          // Younger than the idempotency window: the room asks the store about its client id.
          joinedAt: performance.now(),
          acknowledge: (_clientId, id, seq) => resolve({ id, seq }),
          reject: (code) => {
            this.#options.metrics.messageRefused(code);
            resolve({ refused: code });
          },
        };
        // A room that fails drops its queued messages: the caller hears `unavailable`.
        timer = setTimeout(() => resolve({ refused: "unavailable" }), PUBLISH_TIMEOUT_MS);
        if (!queue(room, sender)) sender.reject("room_busy");
      });
    } finally {
      clearTimeout(timer);
      room.unhold();
      this.#closeIfEmpty(room);
    }
  }

  /**
   * Makes a change in `room` as `user` for the server API (`moderator`: it may delete any
   * message), opening the room for it if it has no members here. Resolves with the change's id
   * and seq (its `event_seq`) once it is acknowledged, or with the refusal.
   */
  async publishChange(
    name: string,
    user: string,
    request: ChangeRequest,
    moderator: boolean,
  ): Promise<{ readonly id: string; readonly seq: number } | { readonly refused: ErrorCode }> {
    if (this.#closing) return { refused: "shutting_down" };
    return await this.#onBehalf(
      name,
      user,
      moderator,
      (room, sender) => room.change(sender, request, undefined),
    );
  }

  /** The members of `room` as this instance knows them; `undefined` if it has none here. */
  membersOf(room: string): readonly string[] | undefined {
    return this.#rooms.get(room)?.members;
  }

  /** @internal Called by a client with a validated change. */
  change(
    client: Client,
    request: ChangeRequest,
    clientId: string | undefined,
  ): ErrorCode | undefined {
    this.#options.metrics.messageReceived();
    if (this.#closing) return "shutting_down";
    const room = this.#rooms.get(client.room);
    if (!room || !room.change(client, request, clientId)) return "room_busy";
    return undefined;
  }

  /** @internal Called by a client with a validated message. */
  submit(client: Client, submission: Submission): ErrorCode | undefined {
    this.#options.metrics.messageReceived();
    if (this.#closing) return "shutting_down";
    const room = this.#rooms.get(client.room);
    if (!room || !room.submit(client, submission)) return "room_busy";
    return undefined;
  }

  /** @internal Called by a client exactly once, when it is gone. */
  release(client: Client, close: CloseCode | undefined, closing: Promise<void>): void {
    if (!this.#clients.delete(client)) return;
    this.#options.metrics.clientLeft(close?.code);
    const fields = { client: client.id, room: client.room, code: close?.code };
    // Every disconnect is logged by the transport; a cut-off also says why, here.
    if (close === CLOSE_CODES.slowConsumer) this.#options.logger.info("client.cut_off", fields);
    (this.#options.events ?? NO_EVENTS).disconnected(client.user, client.room);
    const room = this.#rooms.get(client.room);
    if (!room) return;
    room.leave(client);
    this.#closeIfEmpty(room);
    this.#retire(closing);
  }

  /** The open room of this name, or a new one. */
  #roomFor(name: string): Room {
    let room = this.#rooms.get(name);
    if (!room) {
      room = new Room(name, {
        inboxLimit: this.#options.roomInboxLimit,
        log: this.#options.log,
        sent: this.#sent,
        persistMode: this.#options.persistMode,
        resumeLimit: this.#options.resumeLimit,
        cluster: this.#options.cluster,
        limits: this.#options.limits,
        presenceLeaveGraceMs: this.#options.presenceLeaveGraceMs,
        editWindowMs: this.#options.editWindowMs,
        budget: this.#options.budget,
        events: this.#options.events,
        metrics: this.#options.metrics,
        logger: this.#options.logger,
        previous: this.#ending.get(name),
      });
      this.#rooms.set(name, room);
    }
    return room;
  }

  /**
   * Closes `room` if nobody is in it. Decided synchronously, so a join that comes next creates a
   * fresh room instead of joining one whose loop is ending.
   */
  #closeIfEmpty(room: Room): void {
    if (room.memberCount !== 0 || this.#rooms.get(room.name) !== room) return;
    this.#rooms.delete(room.name);
    room.close();
    this.#retire(room.done);
    this.#ending.set(room.name, room.done);
    const forget = () => {
      if (this.#ending.get(room.name) === room.done) this.#ending.delete(room.name);
    };
    room.done.then(forget, forget);
  }

  /**
   * Stops taking messages, lets every room broadcast what it had accepted (so every accepted
   * message reaches its members and the persistence queue), then closes every connection with
   * 1001 once its outbox is flushed.
   */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweep);
    const rooms = [...this.#rooms.values()];
    for (const room of rooms) room.close();
    await Promise.all(rooms.map((room) => room.done));
    for (const client of [...this.#clients]) client.disconnect(CLOSE_CODES.goingAway);
    while (this.#retired.size > 0) await Promise.all([...this.#retired]);
  }

  /** Sockets drain between writes: what they hold now is what the budget should count. */
  #measureBuffered(): void {
    for (const client of this.#clients) if (client.bufferedBytes > 0) client.measureBuffered();
  }

  #retire(task: Promise<void>): void {
    this.#retired.add(task);
    const forget = () => this.#retired.delete(task);
    // A failed task stays visible: close() awaits it before it is forgotten.
    task.then(forget, forget);
  }
}
