/**
 * A room: one loop that owns its membership and its sequence, and fans every message out to
 * every member in seq order.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { ChatMetrics } from "./chat_metrics.ts";
import type { Cluster, LinkReady, MessageDraft, RoomLink, SequencedMessage } from "./cluster.ts";
import {
  type ChangeRequest,
  type ChatMessage,
  draftChange,
  draftMessage,
  isMessage,
  type MessageLog,
  type RoomSequence,
  type Submission,
} from "./message.ts";
import { MessageTargets, type Target } from "./message_targets.ts";
import type { SentMessages } from "./sent_messages.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import { type ChatEvents, NO_EVENTS } from "./chat_events.ts";

/** What an ack means: queued for storage (`async`) or committed (`durable`). */
export type PersistMode = "async" | "durable";
import { RecentMessages } from "./recent_messages.ts";
import { RoomMembers } from "./room_members.ts";
import { RoomPresence } from "./room_presence.ts";
import { type ResumeCursor, RoomReplays } from "./room_replays.ts";
import { Channel, ChannelClosedError } from "./channel.ts";
import { reportFault } from "./faults.ts";
import type { Client } from "./client.ts";
import {
  type ClientLimits,
  CLOSE_CODES,
  encodeFrame,
  encodeMessage,
  type ErrorCode,
  PROTOCOL_VERSION,
  scrubbedEdit,
  tombstoneFrame,
} from "./protocol.ts";

/**
 * Who a message comes from, as the room needs it: a connection ({@linkcode Client}), or the
 * server API publishing for an application.
 */
export type Sender = Pick<Client, "user" | "joinedAt" | "acknowledge" | "reject" | "moderator">;

/** Events a room's loop handles, in the order they were accepted. */
type RoomEvent =
  | { readonly type: "join"; readonly client: Client; readonly cursor: ResumeCursor | undefined }
  | { readonly type: "leave"; readonly client: Client }
  | {
    readonly type: "message";
    readonly client: Sender;
    readonly submission: Submission;
    /** `performance.now()` when the message arrived, for the broadcast latency. */
    readonly receivedAt: number;
  }
  | {
    readonly type: "change";
    readonly client: Sender;
    readonly request: ChangeRequest;
    readonly clientId: string | undefined;
    readonly receivedAt: number;
    /** The target as the store had it, once looked up (`null`: no such message). */
    readonly looked?: Target | null;
  }
  | { readonly type: "sequenced"; readonly messages: readonly SequencedMessage[] }
  | { readonly type: "gap"; readonly fromSeq: number; readonly toSeq: number }
  | { readonly type: "reset"; readonly sequence: RoomSequence }
  | {
    readonly type: "settled";
    readonly messages: readonly ChatMessage[];
    readonly stored: boolean;
  }
  | {
    readonly type: "remote_presence";
    readonly instance: string;
    readonly users: readonly string[];
  }
  | { readonly type: "presence_flush" }
  | { readonly type: "typing"; readonly user: string; readonly local: Client | undefined }
  | { readonly type: "read"; readonly client: Client; readonly seq: number }
  | { readonly type: "remote_read"; readonly user: string; readonly seq: number }
  | { readonly type: "receipts_flush" }
  | { readonly type: "presence_expire"; readonly user: string; readonly grace: number };

/** Options of {@linkcode Room}. */
export interface RoomOptions {
  /** Events (mostly messages) that may wait for the room's loop. */
  readonly inboxLimit: number;
  /** Where every delivered message goes to be stored, and where replays read. Never awaited. */
  readonly log: MessageLog;
  /** Client ids used lately, shared by the hub's rooms: re-sends are acknowledged, not sent. */
  readonly sent: SentMessages;
  /**
   * `async` (default): a message goes out once queued for storage; `durable`: once the batch
   * holding it committed (a single instance only).
   */
  readonly persistMode?: PersistMode;
  /** Messages one resume replays at most; also how many recent messages the room keeps. */
  readonly resumeLimit: number;
  /** The same room on other instances. */
  readonly cluster: Cluster;
  /** What a connection may send, told to each client in its `welcome`. */
  readonly limits?: ClientLimits;
  /**
   * How long a user stays listed after its last connection closed (`PRESENCE_LEAVE_GRACE`): a
   * reconnect within it is no leave and no join to the others. 0 by default.
   */
  readonly presenceLeaveGraceMs?: number;
  /** The byte budget the recent buffer counts against (and gives back to when it runs short). */
  readonly budget?: MemoryBudget;
  /** Told of each message sent through this room here (webhooks). */
  readonly events?: ChatEvents;
  /**
   * How long after sending it an author may edit or delete a message (`EDIT_WINDOW`);
   * unlimited when undefined. Moderators' deletes have no window.
   */
  readonly editWindowMs?: number;
  readonly metrics: ChatMetrics;
  readonly logger: Logger;
  /**
   * The loop of the previous room of this name, if it is still ending: it may still hand out
   * seqs, so this room reads where the sequence stands only once it has ended.
   */
  readonly previous?: Promise<void>;
}

/**
 * Frames one turn fans out at most (every member's outbox holds a turn's frames until it ends,
 * and is cut off at OUTBOX_LIMIT, 256 by default): a sequenced message counts one, a message
 * submitted here two (its sender also gets the ack), any other event one.
 */
const FRAMES_PER_TURN = 256;
/**
 * Presence changes are told at most once per window: a burst of joins and leaves becomes one
 * batch of net changes, and the first change after a quiet spell goes out at once.
 */
const PRESENCE_WINDOW_MS = 100;
/** Presence frames one batch fans out at most (a turn's frames share the outbox bound). */
const PRESENCE_FRAMES_PER_FLUSH = 64;
/** Read receipts go out at most once per this long (the latest position of each user). */
const RECEIPTS_INTERVAL_MS = 1_000;
/** A user's typing indicator is passed on at most once per this long (per instance). */
const TYPING_INTERVAL_MS = 2_000;
/** Different reactions one message may have at most (`too_many_reactions` beyond). */
export const MAX_REACTIONS_PER_MESSAGE = 20;
/** Recent messages a room keeps what it needs to check changes to them without the store. */
const TARGETS_KEPT = 256;
const OPEN_RETRY_BASE_MS = 50;
/** Longest a turn waits for the log to say whether its client ids were used before. */
const LOOKUP_TIMEOUT_MS = 250;
/** How long look-ups pause after one failed or timed out. */
const LOOKUP_PAUSE_MS = 5_000;
const OPEN_RETRY_MAX_MS = 2_000;

/**
 * Serialises everything that happens in one room through its inbox, so every member sees the
 * same frames in the same order. Joins and leaves wait for room in the inbox (there are at most
 * two per connection); messages never wait: a full inbox refuses them.
 *
 * On a single instance the loop is the room's sequencer: seq = last seq + 1, synchronously.
 * With a cluster, the loop hands each turn's messages to the shared sequencer and delivers
 * what comes back, its own and other instances' alike, in seq order.
 *
 * @example
 * ```ts
 * const room = new Room("general", { inboxLimit: 4096, log, resumeLimit: 1000, cluster, metrics, logger });
 * room.join(client, { sinceSeq: 41, epoch: "9f2c..." });
 * room.submit(client, "hello");
 * room.close();
 * await room.done;
 * ```
 */
export class Room {
  /** Room name. */
  readonly name: string;
  /** Resolves when the loop has handled every accepted event after {@linkcode Room.close}. */
  readonly done: Promise<void>;
  readonly #inbox: Channel<RoomEvent>;
  readonly #log: MessageLog;
  readonly #sent: SentMessages;
  readonly #members = new RoomMembers();
  readonly #presence = new RoomPresence();
  readonly #link: RoomLink;
  readonly #metrics: ChatMetrics;
  readonly #logger: Logger;
  readonly #recent: RecentMessages;
  readonly #replays: RoomReplays;
  #pendingMembers = 0;
  readonly #previous: Promise<void> | undefined;
  readonly #limits: ClientLimits | undefined;
  #epoch = "";
  /** The last seq handed out (or, with a cluster, received). */
  #lastSeq = 0;
  /** The last seq members were sent: behind `#lastSeq` while durable messages await commit. */
  #deliveredSeq = 0;
  readonly #durable: boolean;
  /** Durable mode: sequenced messages waiting for their batch to commit, in seq order. */
  readonly #uncommitted: Uncommitted[] = [];
  #closing = false;
  /** Client id look-ups are skipped until then, after one failed. */
  #lookupsPausedUntil = 0;
  /** Whether the cluster sequences this room (else the loop does). */
  #shared = false;
  /** Whether the link was ready and the loop started. */
  #started = false;
  /** The events of the turn being handled (kept here so that a failed turn's joins are closed). */
  readonly #turn: RoomEvent[] = [];
  readonly #leaveGraceMs: number;
  readonly #events: ChatEvents;
  /** Users within their leave grace, with the timer that ends it and its number. */
  readonly #graceTimers = new Map<string, Grace>();
  #graceCount = 0;
  /** Whether a presence batch is queued or timed. */
  #presenceDue = false;
  #presenceTimer: ReturnType<typeof setTimeout> | undefined;
  #lastPresenceFlush = -Infinity;
  /** Each user's read position as reported here (to skip what moves nothing). */
  readonly #readSeqs = new Map<string, number>();
  /** Read positions not yet told to the members, by user. */
  readonly #receipts = new Map<string, number>();
  #receiptsTimer: ReturnType<typeof setTimeout> | undefined;
  /** When each user's typing indicator was last passed on. */
  readonly #typedAt = new Map<string, number>();
  /** Members welcomed since the last batch, with the presence version their welcome showed. */
  readonly #welcomedSince = new Map<Client, number>();
  /** The recent messages' authors, times and states, to check changes to them. */
  readonly #targets = new MessageTargets(TARGETS_KEPT);
  readonly #editWindowMs: number | undefined;

  constructor(name: string, options: RoomOptions) {
    this.name = name;
    this.#inbox = new Channel(options.inboxLimit);
    this.#log = options.log;
    this.#sent = options.sent;
    this.#recent = new RecentMessages(options.resumeLimit, options.budget);
    this.#replays = new RoomReplays(options.log, options.resumeLimit);
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#previous = options.previous;
    this.#limits = options.limits;
    this.#durable = options.persistMode === "durable";
    this.#leaveGraceMs = options.presenceLeaveGraceMs ?? 0;
    this.#events = options.events ?? NO_EVENTS;
    this.#editWindowMs = options.editWindowMs;
    this.#link = options.cluster.link(name, {
      messages: (messages) => this.#enqueueRemote({ type: "sequenced", messages }),
      gap: (fromSeq, toSeq) => this.#enqueueRemote({ type: "gap", fromSeq, toSeq }),
      reset: (sequence) => this.#enqueueRemote({ type: "reset", sequence }),
      presence: (instance, users) =>
        this.#enqueueRemote({ type: "remote_presence", instance, users }),
      // Ephemeral: dropped rather than waited for when the inbox is full.
      typing: (user) => this.#inbox.trySend({ type: "typing", user, local: undefined }),
      // A receipt is no promise: dropped rather than waited for when the inbox is full.
      read: (user, seq) => this.#inbox.trySend({ type: "remote_read", user, seq }),
      seed: async () => (await this.#log.roomSequence(name))?.lastSeq ?? 0,
    });
    // A room whose turn threw ends alone: its members are closed with 1011 and reconnect to a
    // fresh room; the process and the other rooms go on.
    this.done = this.#run()
      .catch((error) => this.#fail(error))
      .then(() => this.#replays.settled());
  }

  /** Clients joined and not yet left, counted when they are queued rather than handled. */
  get memberCount(): number {
    return this.#pendingMembers;
  }

  /** The room's epoch and last delivered seq; epoch `""` until the loop has started. */
  get sequence(): RoomSequence {
    return { epoch: this.#epoch, lastSeq: this.#deliveredSeq };
  }

  /**
   * Queues a client's arrival; it gets `welcome`, the others `presence` join. With a cursor, it
   * then gets every message after it and a `resume` frame before any live frame.
   */
  join(client: Client, cursor?: ResumeCursor): void {
    this.#pendingMembers++;
    this.#inbox.send({ type: "join", client, cursor }).catch(ignoreClosed);
  }

  /** Queues a client's departure; the others get `presence` leave. */
  leave(client: Client): void {
    this.#pendingMembers--;
    this.#inbox.send({ type: "leave", client }).catch(ignoreClosed);
  }

  /**
   * Keeps the room open without a member while a message published through the server API is
   * in flight; {@linkcode Room.unhold} ends it.
   */
  hold(): void {
    this.#pendingMembers++;
  }

  /** Ends a {@linkcode Room.hold}. */
  unhold(): void {
    this.#pendingMembers--;
  }

  /** The room's members on every instance, as its loop last knew them (sorted). */
  get members(): readonly string[] {
    return this.#presence.names();
  }

  /**
   * `client`'s user has read the room up to `seq` (at most the last seq delivered): stored
   * (never backwards) and told to the members as a receipt, at most once a second.
   */
  read(client: Client, seq: number): void {
    this.#inbox.trySend({ type: "read", client, seq });
  }

  /**
   * `client`'s user is typing: the other members here and on other instances are told, at most
   * once per {@linkcode TYPING_INTERVAL_MS} per user. Dropped if the inbox is full: it is
   * ephemeral.
   */
  typing(client: Client): void {
    this.#inbox.trySend({ type: "typing", user: client.user, local: client });
  }

  /**
   * Queues a change (edit, delete, react) of the message at `request.target`: checked against
   * who sent it and its state, then sequenced and sent like a message. @returns `false` if the
   * inbox is full.
   */
  change(client: Sender, request: ChangeRequest, clientId: string | undefined): boolean {
    return this.#inbox.trySend({
      type: "change",
      client,
      request,
      clientId,
      receivedAt: performance.now(),
    });
  }

  /** Queues a message for broadcast. @returns `false` if the inbox is full. */
  submit(client: Sender, submission: Submission): boolean {
    return this.#inbox.trySend({
      type: "message",
      client,
      submission,
      receivedAt: performance.now(),
    });
  }

  /**
   * Accepts no more events; those already queued are still handled, unless the room never
   * started (its link was not ready): then the link is given up.
   */
  close(): void {
    this.#closing = true;
    // Durable messages still waiting for their commit keep the loop going until they settle.
    if (this.#uncommitted.length === 0) this.#inbox.close();
    if (!this.#started) this.#link.close();
  }

  /**
   * Events from other instances must not be dropped: if the inbox is full they wait, in order
   * (once one waits, later ones cannot overtake it, since `trySend` refuses while senders wait).
   */
  #enqueueRemote(event: RoomEvent): void {
    if (!this.#inbox.trySend(event)) this.#inbox.send(event).catch(ignoreClosed);
  }

  async #run(): Promise<void> {
    await this.#previous?.catch(() => {}); // its failure is the hub's to report
    try {
      // Know who is elsewhere and where the sequence stands before the first welcome goes out.
      let ready: LinkReady;
      try {
        ready = await this.#link.ready;
      } catch {
        return; // closed before the link was ready (Redis away): nobody was welcomed
      }
      this.#started = true;
      this.#setRemoteMembers(ready.members);
      this.#shared = ready.sequence !== undefined;
      const sequence = ready.sequence ?? await this.#openRoom();
      if (!sequence) return;
      this.#epoch = sequence.epoch;
      this.#lastSeq = this.#deliveredSeq = sequence.lastSeq;
      this.#targets.start(sequence.lastSeq);
      const unwatch = this.#durable
        ? this.#log.watch(
          this.name,
          (messages, stored) => this.#enqueueRemote({ type: "settled", messages, stored }),
        )
        : undefined;
      try {
        await this.#loop();
      } finally {
        unwatch?.();
      }
    } finally {
      clearTimeout(this.#presenceTimer);
      clearTimeout(this.#receiptsTimer);
      for (const { timer } of this.#graceTimers.values()) clearTimeout(timer);
      this.#graceTimers.clear();
      this.#recent.clear(); // its bytes go back to the budget
      this.#link.close();
    }
  }

  /**
   * The room's sequence from the store, retried while the store is down (joins wait for their
   * welcome meanwhile); `undefined` if the room was closed first.
   */
  async #openRoom(): Promise<RoomSequence | undefined> {
    for (let delayMs = OPEN_RETRY_BASE_MS;; delayMs = Math.min(delayMs * 2, OPEN_RETRY_MAX_MS)) {
      try {
        return await this.#log.openRoom(this.name);
      } catch (error) {
        this.#logger.warn("room.open_failed", {
          room: this.name,
          retryInMs: delayMs,
          error: error instanceof Error ? error.name : typeof error,
        });
      }
      if (this.#inbox.closed) return undefined;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  async #loop(): Promise<void> {
    const events = this.#turn;
    /** The rest of a batch of sequenced messages too big for the previous turn. */
    let carried: RoomEvent | undefined;
    for (;;) {
      if (carried) {
        events.push(carried);
        carried = undefined;
        await undefined; // the previous turn's frames are written first (OutboxWriter's microtask)
      } else {
        try {
          events.push(await this.#inbox.receive());
        } catch (error) {
          if (error instanceof ChannelClosedError) return;
          throw error;
        }
      }
      carried = this.#fillTurn(events);
      // Awaited only when a message names a client id this instance does not know yet: the
      // store may have it from before (another instance, an earlier run).
      const unknown = this.#unknownClientIds(events);
      if (unknown) await this.#lookUpSent(unknown);
      let drafts: Outgoing[] | undefined;
      for (const event of events) {
        if (event.type !== "message" && event.type !== "change") {
          this.#handle(event);
          continue;
        }
        const outgoing = event.type === "message" ? this.#accept(event) : this.#check(event);
        if (!outgoing) continue;
        if (this.#shared) (drafts ??= []).push(outgoing);
        else this.#place(outgoing);
      }
      events.length = 0;
      if (drafts) this.#publish(drafts);
    }
  }

  /**
   * Adds queued events to a turn until it fans out {@linkcode FRAMES_PER_TURN} frames: a turn's
   * frames all wait in each member's outbox until the turn ends, and one batch of sequenced
   * messages (another instance's turn, a gap fill) may hold hundreds. A batch that does not fit
   * is cut; the rest is returned for the next turn.
   */
  #fillTurn(events: RoomEvent[]): RoomEvent | undefined {
    let frames = 0;
    for (let i = 0; i < events.length || this.#inbox.drainInto(events, 1) === 1; i++) {
      const event = events[i] as RoomEvent;
      // A message costs its sender two frames (the message and its ack).
      const weight = event.type === "sequenced"
        ? event.messages.length
        : event.type === "message" || event.type === "change"
        ? 2
        : event.type === "presence_flush"
        ? PRESENCE_FRAMES_PER_FLUSH
        : 1;
      if (frames + weight > FRAMES_PER_TURN && event.type === "sequenced") {
        const fits = FRAMES_PER_TURN - frames;
        events[i] = { type: "sequenced", messages: event.messages.slice(0, fits) };
        return { type: "sequenced", messages: event.messages.slice(fits) };
      }
      frames += weight;
      if (frames >= FRAMES_PER_TURN) return undefined;
    }
    return undefined;
  }

  /**
   * A turn (or the start) threw: a bug, or a dependency that broke a promise. Everyone in the
   * room is closed with 1011 and every later join too, until the room is empty and the hub
   * replaces it. Nothing is sequenced any more here, so nothing can be delivered twice.
   */
  async #fail(error: unknown): Promise<void> {
    const deps = { logger: this.#logger, metrics: this.#metrics };
    reportFault(deps, "room", "room.failed", error, { room: this.name });
    this.#uncommitted.length = 0; // their senders re-send by client id, on the fresh room
    this.#members.disconnectAll(CLOSE_CODES.internalError);
    const refuse = (event: RoomEvent) => {
      if (event.type === "join") event.client.disconnect(CLOSE_CODES.internalError);
    };
    this.#turn.forEach(refuse);
    this.#turn.length = 0;
    if (this.#closing) this.#inbox.close();
    for (;;) {
      try {
        refuse(await this.#inbox.receive());
      } catch (error) {
        if (error instanceof ChannelClosedError) return;
        throw error;
      }
    }
  }

  #setRemoteMembers(members: ReadonlyMap<string, readonly string[]>): void {
    for (const [instance, users] of members) this.#presence.setRemote(instance, users);
  }

  #handle(event: Exclude<RoomEvent, { type: "message" | "change" }>): void {
    switch (event.type) {
      case "join":
        return this.#add(event.client, event.cursor);
      case "leave":
        return this.#remove(event.client);
      case "sequenced":
        return this.#deliverSequenced(event.messages);
      case "reset":
        return this.#resetEpoch(event.sequence);
      case "settled":
        return this.#committed(event.messages, event.stored);
      case "gap":
        return this.#gap(event.fromSeq, event.toSeq);
      case "remote_presence":
        this.#presence.setRemote(event.instance, event.users);
        return this.#presenceChanged();
      case "presence_flush":
        return this.#flushPresence();
      case "presence_expire":
        return this.#endGrace(event.user, event.grace);
      case "typing":
        return this.#typing(event.user, event.local);
      case "read":
        return this.#read(event.client, event.seq);
      case "remote_read":
        if (event.seq <= (this.#readSeqs.get(event.user) ?? 0)) return;
        this.#readSeqs.set(event.user, event.seq);
        return this.#receipt(event.user, event.seq);
      case "receipts_flush":
        return this.#flushReceipts();
    }
  }

  /**
   * The turn's client ids to look up in the log: those not in the window, sent by connections
   * younger than the window. A connection that has been open longer re-sends only what it sent
   * itself, which the window (or Redis) still knows; re-sends from before (another instance, an
   * earlier run) come right after a reconnect. So long-lived connections cost no look-up.
   */
  #unknownClientIds(events: readonly RoomEvent[]): SentKey[] | undefined {
    const now = performance.now();
    if (now < this.#lookupsPausedUntil) return undefined;
    let unknown: SentKey[] | undefined;
    for (const event of events) {
      if (event.type !== "message" || now - event.client.joinedAt > this.#sent.windowMs) continue;
      const { clientId } = event.submission;
      const sender = event.client.user;
      if (clientId === undefined || this.#sent.find(this.name, sender, clientId)) continue;
      (unknown ??= []).push({ sender, clientId });
    }
    return unknown;
  }

  /**
   * Puts what the log knows of these client ids into the window. In async mode it waits at most
   * {@linkcode LOOKUP_TIMEOUT_MS}; in durable mode messages wait for the store anyway, so it is
   * not cut short. A log that cannot answer (the store is down) leaves the window as it is, and
   * look-ups pause for {@linkcode LOOKUP_PAUSE_MS} so that the room is not held up during an
   * outage: a re-send from before this run, or older than the window, then goes out again (the
   * store keeps the copy without its client id, so its seq is no hole). Logged at warn.
   */
  async #lookUpSent(keys: readonly SentKey[]): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const found = this.#log.findSent(this.name, keys);
    const answer = this.#durable ? found : Promise.race([
      found,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("look-up timed out")), LOOKUP_TIMEOUT_MS);
      }),
    ]);
    try {
      for (const sent of await answer) this.#sent.remember(this.name, sent);
    } catch (error) {
      this.#lookupsPausedUntil = performance.now() + LOOKUP_PAUSE_MS;
      this.#logger.warn("room.sent_lookup_failed", {
        room: this.name,
        pausedMs: LOOKUP_PAUSE_MS,
        error: error instanceof Error ? error.name : typeof error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** A re-send of a message the window knows: its sender gets the first ack again. */
  #resent(sender: Sender, clientId: string | undefined): boolean {
    if (clientId === undefined) return false;
    const sent = this.#sent.find(this.name, sender.user, clientId);
    if (!sent) return false;
    // Durable mode: the first is not committed yet, so neither is this ack due.
    const waiting = this.#uncommitted.find((entry) => entry.message.id === sent.id);
    if (waiting) (waiting.resent ??= []).push(sender);
    else sender.acknowledge(clientId, sent.id, sent.seq);
    return true;
  }

  /** Whether a `reply_to`, if any, names a seq this room has handed out. */
  #answersKnownSeq(message: { readonly replyTo?: number }): boolean {
    return message.replyTo === undefined || message.replyTo <= this.#lastSeq;
  }

  /** A message of this turn, checked: its draft, or `undefined` if it was refused or re-sent. */
  #accept(event: RoomEvent & { type: "message" }): Outgoing | undefined {
    const { client: sender, submission, receivedAt } = event;
    const { clientId } = submission;
    if (this.#resent(sender, clientId)) return undefined;
    if (!this.#answersKnownSeq(submission)) {
      sender.reject("invalid_reply_to", clientId);
      return undefined;
    }
    return { sender, draft: draftMessage(this.name, sender.user, submission), receivedAt };
  }

  /**
   * A change of this turn, checked against its target: its draft, or `undefined` if it was
   * refused, re-sent, or waits for its target to be looked up in the store.
   */
  #check(event: RoomEvent & { type: "change" }): Outgoing | undefined {
    const { client: sender, request, clientId, receivedAt } = event;
    if (this.#resent(sender, clientId)) return undefined;
    const refuse = (code: ErrorCode) => {
      sender.reject(code, clientId);
      return undefined;
    };
    if (request.target > this.#lastSeq) return refuse("invalid_target");
    let target = this.#targets.of(request.target);
    if (target === undefined && event.looked !== undefined) target = event.looked;
    if (target === undefined) return this.#lookUpTarget(event);
    if (target === null || target.deleted) return refuse("invalid_target");
    const own = target.sender === sender.user;
    if (request.kind === "edit" || request.kind === "delete") {
      const moderating = request.kind === "delete" && sender.moderator && !own;
      if (!own && !moderating) return refuse("not_author");
      if (
        !moderating && this.#editWindowMs !== undefined &&
        Date.now() - target.atMs > this.#editWindowMs
      ) return refuse("edit_window_passed");
    } else if (
      request.on && !target.reactions?.has(request.reaction) &&
      (target.reactions?.size ?? 0) >= MAX_REACTIONS_PER_MESSAGE
    ) return refuse("too_many_reactions");
    return {
      sender,
      draft: draftChange(this.name, sender.user, request, clientId),
      receivedAt,
    };
  }

  /**
   * Reads a change's target from the store (it is older than the kept ones) and queues the
   * change again with what was found; its sender is told `unavailable` if the store cannot
   * answer.
   */
  #lookUpTarget(event: RoomEvent & { type: "change" }): undefined {
    const seq = event.request.target;
    Promise.all([
      this.#log.history(this.name, { afterSeq: seq - 1, beforeSeq: seq + 1, limit: 1 }),
      this.#log.reactionsTo(this.name, [seq]),
    ]).then(([[found], reactions]) => {
      const message = found?.seq === seq ? found : undefined;
      this.#targets.lookedUp(seq, message, reactions.get(seq));
      const looked = this.#targets.of(seq) ?? null;
      if (!this.#inbox.trySend({ ...event, looked })) {
        event.client.reject("room_busy", event.clientId);
      }
    }, (error) => {
      this.#logger.warn("room.target_lookup_failed", {
        room: this.name,
        error: error instanceof Error ? error.name : typeof error,
      });
      event.client.reject("unavailable", event.clientId);
    });
    return undefined;
  }

  /** A single instance: this loop hands out the seq. */
  #place(outgoing: Outgoing): void {
    const { sender, draft, receivedAt } = outgoing;
    const { clientId } = draft;
    const message: ChatMessage = { ...draft, seq: this.#lastSeq + 1 };
    // Queued for storage first: a message the store cannot take is shown to no one and takes no
    // seq, so every seq anyone saw names a message that will be stored.
    if (!this.#log.append(message)) return sender.reject("backlog", clientId);
    this.#lastSeq = message.seq;
    this.#targets.added(message);
    if (clientId !== undefined) {
      this.#sent.remember(this.name, {
        sender: sender.user,
        clientId,
        id: message.id,
        seq: message.seq,
      });
    }
    const frame = encodeMessage(message);
    if (this.#durable) {
      this.#uncommitted.push({ message, frame, sender, receivedAt, stored: undefined });
      return;
    }
    this.#deliver(message, frame, receivedAt);
    sender.acknowledge(clientId, message.id, message.seq);
    if (isMessage(message)) this.#events.messageCreated(message);
  }

  /**
   * Durable mode: the workers settled these messages. The committed ones at the head of the
   * queue go out in seq order, with their acks; one given up on (the shutdown deadline passed
   * with the store down) goes to no one: its sender gets `shutting_down`, the members a `gap`.
   */
  #committed(messages: readonly ChatMessage[], stored: boolean): void {
    const ids = new Set(messages.map((message) => message.id));
    for (const entry of this.#uncommitted) if (ids.has(entry.message.id)) entry.stored = stored;
    while (this.#uncommitted[0]?.stored !== undefined) {
      const entry = this.#uncommitted.shift() as Uncommitted;
      const { message, sender } = entry;
      const senders = [sender, ...entry.resent ?? []];
      if (entry.stored) {
        this.#deliver(message, entry.frame, entry.receivedAt);
        for (const each of senders) each.acknowledge(message.clientId, message.id, message.seq);
        if (isMessage(message)) this.#events.messageCreated(message);
      } else {
        for (const each of senders) each.reject("shutting_down", message.clientId);
        this.#announceGap(message.seq, message.seq);
      }
    }
    if (this.#closing && this.#uncommitted.length === 0) this.#inbox.close();
  }

  /**
   * A cluster: one call to the shared sequencer per turn; the messages come back in order. The
   * sequencer also knows the client ids used on every instance: a re-send it recognises comes
   * back with the first message's id and seq.
   */
  #publish(fresh: Outgoing[]): void {
    // Every instance delivering a message also stores it, so refuse what this one cannot store.
    if (!this.#log.hasRoomFor(fresh.length)) {
      for (const { sender, draft } of fresh) sender.reject("backlog", draft.clientId);
      return;
    }
    this.#link.publish(fresh.map((entry) => entry.draft)).then((placed) => {
      fresh.forEach(({ sender, draft }, i) => {
        const at = placed?.[i];
        if (!at) return sender.reject("unavailable", draft.clientId);
        const { clientId } = draft;
        if (clientId !== undefined) {
          this.#sent.remember(this.name, { sender: sender.user, clientId, ...at });
        }
        sender.acknowledge(clientId, at.id, at.seq);
        // Another id: the sequencer knew the client id, this is a re-send.
        if (at.id === draft.id && draft.change === undefined) {
          this.#events.messageCreated({ ...draft, seq: at.seq });
        }
      });
    });
  }

  #deliverSequenced(messages: readonly SequencedMessage[]): void {
    for (const { message, frame } of messages) {
      if (message.seq <= this.#lastSeq) continue; // a copy of one delivered already
      if (message.seq > this.#lastSeq + 1) this.#gap(this.#lastSeq + 1, message.seq - 1);
      // Another instance's message the store will not take still goes out: its own instance
      // stored it (or refused it before it had a seq).
      if (!this.#log.append(message)) {
        this.#logger.warn("room.store_full", { room: this.name, seq: message.seq });
      }
      this.#lastSeq = message.seq;
      this.#targets.added(message);
      this.#deliver(message, frame, undefined);
    }
  }

  /**
   * The shared sequence was reset (Redis lost it): seqs of the old epoch mean nothing now, so
   * the members are closed with 4002 to resume, which tells them the epoch changed.
   */
  #resetEpoch(sequence: RoomSequence): void {
    this.#logger.warn("room.epoch_changed", { room: this.name });
    this.#epoch = sequence.epoch;
    this.#lastSeq = this.#deliveredSeq = sequence.lastSeq;
    this.#targets.start(sequence.lastSeq);
    this.#recent.clear();
    this.#members.disconnectAll(CLOSE_CODES.epochChanged);
  }

  /** Seqs that will never come: members are told, so they can fill them from `/history`. */
  #gap(fromSeq: number, toSeq: number): void {
    if (toSeq <= this.#lastSeq) return;
    fromSeq = Math.max(fromSeq, this.#lastSeq + 1);
    this.#metrics.sequenceGap(toSeq - fromSeq + 1);
    this.#logger.warn("room.sequence_gap", { room: this.name, fromSeq, toSeq });
    this.#lastSeq = toSeq;
    this.#announceGap(fromSeq, toSeq);
  }

  /** Tells the members seqs `fromSeq`..`toSeq` will not reach them. */
  #announceGap(fromSeq: number, toSeq: number): void {
    this.#deliveredSeq = toSeq;
    this.#members.skipThrough(toSeq);
    this.#members.fanOut(encodeFrame({
      type: "gap",
      room: this.name,
      epoch: this.#epoch,
      from_seq: fromSeq,
      to_seq: toSeq,
    }));
  }

  #deliver(message: ChatMessage, frame: string, receivedAt: number | undefined): void {
    // A resume must not show a deleted message's content again, even from the buffer.
    if (message.change?.kind === "delete") {
      const { target } = message.change;
      this.#recent.replace(target, tombstoneFrame);
      this.#recent.rewriteEach((entry) => scrubbedEdit(entry.frame, target));
    }
    this.#recent.add({ seq: message.seq, id: message.id, frame });
    this.#deliveredSeq = message.seq;
    this.#members.deliver(frame, message.seq);
    const latencyMs = receivedAt === undefined ? undefined : performance.now() - receivedAt;
    this.#metrics.messageBroadcast(this.#members.size, latencyMs);
  }

  #add(client: Client, cursor: ResumeCursor | undefined): void {
    if (!client.connected) return; // left before its join was handled
    this.#members.add(client);
    if (this.#presence.addLocal(client.user)) {
      clearTimeout(this.#graceTimers.get(client.user)?.timer);
      this.#graceTimers.delete(client.user);
    }
    this.#presenceChanged();
    this.#welcomedSince.set(client, this.#presence.version);
    const members = this.#presence.names();
    client.offer(encodeFrame({
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      room: this.name,
      user: client.user,
      members,
      epoch: this.#epoch,
      last_seq: this.#deliveredSeq,
      ...(client.readPosition && {
        read_seq: client.readPosition.readSeq,
        unread: client.readPosition.unread,
      }),
      ...(client.moderator && { moderator: true }),
      ...(this.#limits && { limits: this.#limits }),
    }));
    if (cursor === undefined) return;
    const view = {
      name: this.name,
      epoch: this.#epoch,
      lastSeq: this.#deliveredSeq,
      recent: this.#recent,
    };
    const ahead = this.#replays.start(client, cursor, view);
    if (ahead !== undefined) this.#members.holdsThrough(client, ahead);
  }

  #remove(client: Client): void {
    if (!this.#members.remove(client)) return;
    this.#welcomedSince.delete(client);
    const { user } = client;
    if (!this.#presence.removeLocal(user)) return;
    this.#typedAt.delete(user);
    if (this.#leaveGraceMs === 0) this.#presence.endLinger(user);
    else {
      const grace = ++this.#graceCount;
      const timer = setTimeout(() => {
        this.#enqueueRemote({ type: "presence_expire", user, grace });
      }, this.#leaveGraceMs);
      this.#graceTimers.set(user, { grace, timer });
    }
    this.#presenceChanged();
  }

  /**
   * Tells the members (but `user`'s own connections) that `user` is typing. One from a local
   * connection is passed on at most once per interval, to the other instances too.
   */
  #typing(user: string, local: Client | undefined): void {
    if (local) {
      if (!local.connected) return;
      const now = performance.now();
      if (now - (this.#typedAt.get(user) ?? -Infinity) < TYPING_INTERVAL_MS) return;
      this.#typedAt.set(user, now);
      this.#link.typing(user);
    }
    const frame = encodeFrame({ type: "typing", room: this.name, user });
    this.#members.fanOut(frame, this.#members.of(user));
  }

  #read(client: Client, reported: number): void {
    const seq = Math.min(reported, this.#deliveredSeq);
    const { user } = client;
    if (seq <= (this.#readSeqs.get(user) ?? 0)) return;
    this.#readSeqs.set(user, seq);
    this.#log.saveReadPosition(this.name, user, seq).catch((error) => {
      this.#logger.warn("room.read_position_failed", {
        room: this.name,
        error: error instanceof Error ? error.name : typeof error,
      });
    });
    this.#link.read(user, seq);
    this.#receipt(user, seq);
  }

  /** A receipt for the members: told with the next batch, at most once a second. */
  #receipt(user: string, seq: number): void {
    if (seq <= (this.#receipts.get(user) ?? 0)) return;
    this.#receipts.set(user, seq);
    this.#receiptsTimer ??= setTimeout(() => {
      this.#enqueueRemote({ type: "receipts_flush" });
    }, RECEIPTS_INTERVAL_MS);
  }

  /** Tells the members where each user who read since the last receipts stands now. */
  #flushReceipts(): void {
    this.#receiptsTimer = undefined;
    for (const [user, seq] of this.#receipts) {
      this.#members.fanOut(encodeFrame({ type: "read", room: this.name, user, seq }));
    }
    this.#receipts.clear();
  }

  /** A grace timer fired: `user` leaves, unless it came back (and maybe left again) since. */
  #endGrace(user: string, grace: number): void {
    if (this.#graceTimers.get(user)?.grace !== grace) return;
    this.#graceTimers.delete(user);
    this.#presence.endLinger(user);
    this.#presenceChanged();
  }

  /** Presence changed: a batch goes out at once after a quiet window, else when it ends. */
  #presenceChanged(): void {
    if (this.#presenceDue) return;
    this.#presenceDue = true;
    const waitMs = this.#lastPresenceFlush + PRESENCE_WINDOW_MS - performance.now();
    if (waitMs <= 0) return this.#enqueueRemote({ type: "presence_flush" });
    this.#presenceTimer = setTimeout(() => {
      this.#presenceTimer = undefined;
      this.#enqueueRemote({ type: "presence_flush" });
    }, waitMs);
  }

  /**
   * Tells the members the net presence changes since the last batch (a bounded number: the rest
   * go in the next), and the other instances this one's users if they changed.
   */
  #flushPresence(): void {
    this.#presenceDue = false;
    this.#lastPresenceFlush = performance.now();
    const local = this.#presence.takeLocalNames();
    if (local) this.#link.announce(local);
    for (const { event, user, version } of this.#presence.takeChanges(PRESENCE_FRAMES_PER_FLUSH)) {
      // A member whose welcome came after the change has it in its list already.
      let knows: Set<Client> | undefined;
      for (const [client, shown] of this.#welcomedSince) {
        if (shown >= version) (knows ??= new Set()).add(client);
      }
      this.#members.fanOut(encodeFrame({ type: "presence", event, room: this.name, user }), knows);
    }
    if (this.#presence.pending) this.#presenceChanged();
    else this.#welcomedSince.clear();
  }
}

/** Durable mode: a sequenced message waiting for its batch to commit. */
interface Uncommitted {
  readonly message: ChatMessage;
  readonly frame: string;
  readonly sender: Sender;
  readonly receivedAt: number;
  /** Whether the workers stored it; `undefined` until they settle it. */
  stored: boolean | undefined;
  /** Connections that re-sent it meanwhile: acknowledged with it. */
  resent?: Sender[];
}

/** A user's leave grace: its number (a later one replaces it) and the timer that ends it. */
interface Grace {
  readonly grace: number;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** A client id of a sender, to look up. */
interface SentKey {
  readonly sender: string;
  readonly clientId: string;
}

/** A message of a turn waiting for the shared sequencer. */
interface Outgoing {
  readonly sender: Sender;
  readonly draft: MessageDraft;
  readonly receivedAt: number;
}

function ignoreClosed(error: unknown): void {
  // A join or leave refused because the room closed: the room is gone, there is nothing to tell.
  if (!(error instanceof ChannelClosedError)) throw error;
}
