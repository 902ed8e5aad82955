/**
 * A room: one loop that owns its membership and fans every message out to every member.
 *
 * @module
 */
import { v7 as uuidv7 } from "uuid";
import type { ChatMessage } from "../storage/repository.ts";
import type { ChatMetrics } from "./chat_metrics.ts";
import type { Cluster, RoomLink } from "./cluster.ts";
import { RecentMessages } from "./recent_messages.ts";
import { RoomPresence } from "./room_presence.ts";
import { replayFrames, replayFromStore, type ReplaySource } from "./replay.ts";
import { Channel, ChannelClosedError } from "./channel.ts";
import type { UnstoredMessages } from "./unstored_messages.ts";
import type { Client } from "./client.ts";
import {
  CLOSE_CODES,
  encodeFrame,
  encodeMessage,
  type PresenceEvent,
  PROTOCOL_VERSION,
} from "./protocol.ts";

/** Events a room's loop handles, in the order they were accepted. */
type RoomEvent =
  | { readonly type: "join"; readonly client: Client; readonly since: string | undefined }
  | { readonly type: "leave"; readonly client: Client }
  | {
    readonly type: "message";
    readonly client: Client;
    readonly content: string;
    /** `performance.now()` when the message arrived, for the broadcast latency. */
    readonly receivedAt: number;
  }
  | { readonly type: "remote_message"; readonly id: string; readonly frame: string }
  | {
    readonly type: "remote_presence";
    readonly instance: string;
    readonly users: readonly string[];
  };

/** Options of {@linkcode Room}. */
export interface RoomOptions {
  /** Events (mostly messages) that may wait for the room's loop. */
  readonly inboxLimit: number;
  /** Where every broadcast message also goes, to be stored. Never awaited. */
  readonly persistQueue: Channel<ChatMessage>;
  /** Told of every message queued for storage, until the store has it; read by replays. */
  readonly unstored: UnstoredMessages;
  /** Messages one resume replays at most; also how many recent messages the room keeps. */
  readonly resumeLimit: number;
  /** Where a resume reaching past the recent messages reads from. */
  readonly replaySource: ReplaySource;
  /** The same room on other instances. */
  readonly cluster: Cluster;
  readonly metrics: ChatMetrics;
}

/** How many queued events the loop handles per wake-up. */
const EVENTS_PER_TURN = 256;

/**
 * Serialises everything that happens in one room through its inbox, so every member sees the
 * same frames in the same order. Joins and leaves wait for room in the inbox (there are at most
 * two per connection); messages never wait: a full inbox refuses them.
 *
 * @example
 * ```ts
 * const room = new Room("general", { inboxLimit: 4096, persistQueue, unstored, ... });
 * room.join(client);
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
  readonly #persistQueue: Channel<ChatMessage>;
  readonly #unstored: UnstoredMessages;
  readonly #members = new Set<Client>();
  readonly #presence = new RoomPresence();
  readonly #link: RoomLink;
  readonly #metrics: ChatMetrics;
  readonly #recent: RecentMessages;
  readonly #resumeLimit: number;
  readonly #replaySource: ReplaySource;
  /** Replays read from the store and not yet queued; made on the first one. */
  #replays: Set<Promise<void>> | undefined;
  #pendingMembers = 0;

  constructor(name: string, options: RoomOptions) {
    this.name = name;
    this.#inbox = new Channel(options.inboxLimit);
    this.#persistQueue = options.persistQueue;
    this.#unstored = options.unstored;
    this.#resumeLimit = options.resumeLimit;
    this.#replaySource = options.replaySource;
    this.#recent = new RecentMessages(options.resumeLimit);
    this.#metrics = options.metrics;
    this.#link = options.cluster.link(name, {
      message: (id, frame) => this.#enqueueRemote({ type: "remote_message", id, frame }),
      presence: (instance, users) =>
        this.#enqueueRemote({ type: "remote_presence", instance, users }),
    });
    this.done = this.#run().then(() => this.#settleReplays());
  }

  /** Clients joined and not yet left, counted when they are queued rather than handled. */
  get memberCount(): number {
    return this.#pendingMembers;
  }

  /**
   * Queues a client's arrival; it gets `welcome`, the others `presence` join. With `since`, it
   * then gets every message after that id and a `resume` frame before any live frame.
   */
  join(client: Client, since?: string): void {
    this.#pendingMembers++;
    this.#inbox.send({ type: "join", client, since }).catch(ignoreClosed);
  }

  /** Queues a client's departure; the others get `presence` leave. */
  leave(client: Client): void {
    this.#pendingMembers--;
    this.#inbox.send({ type: "leave", client }).catch(ignoreClosed);
  }

  /** Queues a message for broadcast. @returns `false` if the inbox is full. */
  submit(client: Client, content: string): boolean {
    return this.#inbox.trySend({ type: "message", client, content, receivedAt: performance.now() });
  }

  /** Accepts no more events; those already queued are still handled. */
  close(): void {
    this.#inbox.close();
  }

  /**
   * Events from other instances must not be dropped: if the inbox is full they wait, in order
   * (once one waits, later ones cannot overtake it, since `trySend` refuses while senders wait).
   */
  #enqueueRemote(event: RoomEvent): void {
    if (!this.#inbox.trySend(event)) this.#inbox.send(event).catch(ignoreClosed);
  }

  async #run(): Promise<void> {
    // Know who is on other instances before the first welcome goes out.
    this.#setRemoteMembers(await this.#link.initialMembers);
    const events: RoomEvent[] = [];
    try {
      for (;;) {
        try {
          events.push(await this.#inbox.receive());
        } catch (error) {
          if (error instanceof ChannelClosedError) return;
          throw error;
        }
        this.#inbox.drainInto(events, EVENTS_PER_TURN - 1);
        for (const event of events) this.#handle(event);
        events.length = 0;
      }
    } finally {
      this.#link.close();
    }
  }

  #setRemoteMembers(members: ReadonlyMap<string, readonly string[]>): void {
    for (const [instance, users] of members) this.#presence.setRemote(instance, users);
  }

  #handle(event: RoomEvent): void {
    switch (event.type) {
      case "message":
        return this.#broadcast(event.client, event.content, event.receivedAt);
      case "join":
        return this.#add(event.client, event.since);
      case "leave":
        return this.#remove(event.client);
      case "remote_message":
        this.#recent.add({ id: event.id, frame: event.frame });
        return this.#fanOut(event.frame);
      case "remote_presence":
        return this.#remotePresence(event.instance, event.users);
    }
  }

  #remotePresence(instance: string, users: readonly string[]): void {
    const { joined, left } = this.#presence.setRemote(instance, users);
    if (joined.length === 0 && left.length === 0) return;
    const members = this.#presence.names();
    for (const user of joined) this.#announce("join", user, members);
    for (const user of left) this.#announce("leave", user, members);
  }

  #broadcast(sender: Client, content: string, receivedAt: number): void {
    const id = uuidv7();
    const message: ChatMessage = {
      id,
      room: this.name,
      sender: sender.user,
      content,
      timestamp: new Date(timeOfUuidv7(id)).toISOString(),
    };
    // Queue for storage first: a message the store cannot take is not shown to anyone, so every
    // message anyone saw is one that will be stored.
    if (!this.#persistQueue.trySend(message)) return sender.reject("backlog");
    const frame = encodeMessage(message);
    this.#recent.add({ id, frame });
    this.#unstored.add(message, frame);
    this.#fanOut(frame);
    this.#metrics.messageBroadcast(this.#members.size, performance.now() - receivedAt);
    this.#link.publish(id, frame);
  }

  #add(client: Client, since: string | undefined): void {
    if (!client.connected) return; // left before its join was handled
    this.#members.add(client);
    this.#presence.addLocal(client.user);
    this.#link.announce(this.#presence.localNames());
    const members = this.#presence.names();
    client.offer(encodeFrame({
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      room: this.name,
      user: client.user,
      members,
    }));
    this.#announce("join", client.user, members, client);
    if (since !== undefined) this.#replay(client, since);
  }

  #replay(client: Client, since: string): void {
    if (this.#recent.covers(since)) {
      return client.endReplay(replayFrames(this.#recent.after(since), this.#resumeLimit));
    }
    // The buffer starts after the cursor: read the rest from the store without holding up the
    // room. Live frames wait in the client until the replay is queued ahead of them.
    client.beginReplay();
    const replay = replayFromStore(this.#replaySource, {
      room: this.name,
      since,
      boundary: uuidv7(), // every message broadcast from now on has a greater id
      limit: this.#resumeLimit,
      // Recent messages and those not stored yet (some may have left the recent buffer, or
      // been broadcast by an earlier instance of this room): the store may not have them.
      buffered: [...this.#recent.after(since), ...this.#unstored.after(this.name, since)],
    }).then((frames) => client.endReplay(frames));
    const replays = this.#replays ??= new Set();
    replays.add(replay);
    const forget = () => replays.delete(replay);
    replay.then(forget, forget);
  }

  async #settleReplays(): Promise<void> {
    while (this.#replays && this.#replays.size > 0) await Promise.all([...this.#replays]);
  }

  #remove(client: Client): void {
    if (!this.#members.delete(client)) return;
    this.#presence.removeLocal(client.user);
    this.#link.announce(this.#presence.localNames());
    this.#announce("leave", client.user, this.#presence.names());
  }

  /** Tells the members (but `except`, who got a welcome instead) that `user` came or went. */
  #announce(event: PresenceEvent, user: string, members: string[], except?: Client): void {
    const frame = encodeFrame({ type: "presence", event, room: this.name, user, members });
    this.#fanOut(frame, except);
  }

  /** Hands one encoded frame to every member; a member whose outbox is full is cut off. */
  #fanOut(frame: string, except?: Client): void {
    let behind: Client[] | undefined;
    for (const member of this.#members) {
      if (member !== except && !member.offer(frame)) (behind ??= []).push(member);
    }
    // Cut off after the loop, so the presence leave this causes follows the frame in order.
    if (behind) { for (const member of behind) member.disconnect(CLOSE_CODES.slowConsumer); }
  }
}

/** Milliseconds since the epoch encoded in the first 48 bits of a UUIDv7. */
function timeOfUuidv7(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

function ignoreClosed(error: unknown): void {
  // A join or leave refused because the room closed: the room is gone, there is nothing to tell.
  if (!(error instanceof ChannelClosedError)) throw error;
}
