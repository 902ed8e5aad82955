/**
 * A chat client for the sequence acceptance tests, as a careful protocol 2 client would be: it
 * keeps every message by seq, resumes with `since_seq` and `epoch` on whatever instance it moves
 * to, sends each message with a `client_id` until it is acknowledged (re-sending it with the same
 * id after a refusal with `unavailable` or a lost connection), and remembers every seq it was
 * told is missing (a `gap` frame, a `resume` with `complete: false`) until a later resume or a
 * `/history` page brings it. Whatever breaks the protocol's promises is recorded in `problems`:
 *
 * - on one connection, seqs run since+1, since+2, ... (replayed, then live) one by one, except
 *   across a `gap` frame: a jump is a silent hole, a repeat a duplicate (an instance behind the
 *   cursor must not repeat what the client has);
 * - `complete: true` only when the replay reached welcome's `last_seq`;
 * - one message per seq, the same wherever it came from;
 * - an `ack` or `error` answers the message being sent, naming its `client_id`; a client id is
 *   acknowledged with one id and seq however often it is sent.
 */
import type { Frame } from "../support/test_socket.ts";
import type { Instance } from "./_instance.ts";

/** A message as a client keeps it. */
export interface HeldMessage {
  readonly id: string;
  readonly sender: string;
  readonly content: string;
  readonly timestamp: string;
  /** The frame's `client_id` (every message of these tests has one). */
  readonly clientId: string | undefined;
}

/** A `message` frame, or a `/history` entry. */
type SeqMessage = Omit<HeldMessage, "clientId"> & {
  readonly seq: number;
  readonly client_id?: string;
};
type Outcome = "ack" | "unavailable" | "closed";

/** What an `ack` said of a message: where it is in the room, and which attempt the ack answered. */
export interface Ack {
  readonly id: string;
  readonly seq: number;
  readonly attempt: number;
}
const REASONS = new Set(["limit", "unavailable", "epoch_changed"]);
/** How long a welcome may wait (a room opened during a Redis outage waits for Redis). */
const CONNECT_TIMEOUT_MS = 20_000;
const ACK_TIMEOUT_MS = 20_000;
/** Between sends refused with `unavailable`: a client's retry policy. */
const RETRY_DELAY_MS = 100;

/** One socket of a participant, from welcome through replay to live frames. */
class Connection {
  phase: "welcome" | "replay" | "live" = "welcome";
  lastSeqAtWelcome = 0;
  /** The next seq due: of the replay, then of live frames. */
  next = 0;
  replayed = 0;
  /** Live messages received. */
  live = 0;
  /** The `resume` frame, once it came. */
  resume: Record<string, unknown> | undefined;
  constructor(
    readonly socket: WebSocket,
    readonly instance: Instance,
    readonly since: number,
  ) {}
}

export class Participant {
  readonly held = new Map<number, HeldMessage>();
  /** Seqs this client was told it misses, and does not hold yet. */
  readonly told = new Set<number>();
  readonly problems: string[] = [];
  readonly stats = {
    connects: 0,
    incomplete: 0,
    gapFrames: 0,
    unavailable: 0,
    /** Messages that came again (a replay or lagging instance re-sending what it held). */
    again: 0,
    fromHistory: 0,
    /** Messages sent again with their client id, after a refusal or a lost connection. */
    resent: 0,
    /** `resume` frames, with the since they answered and welcome's last_seq. */
    resumes: [] as { since: number; lastSeq: number; frame: Record<string, unknown> }[],
  };
  epoch: string | undefined;
  /** The ack of each message `k` this participant sent, by `k`. */
  readonly acks = new Map<number, Ack>();
  #connection: Connection | undefined;
  #awaiting:
    | { k: number; clientId: string; attempt: number; settle: (outcome: Outcome) => void }
    | undefined;
  #wake: (() => void)[] = [];
  /** Set by {@linkcode Participant.close}: no more connections. */
  #closed = false;

  constructor(readonly user: string, readonly room: string) {}

  get connected(): boolean {
    return this.#connection?.phase === "live";
  }

  get instance(): Instance | undefined {
    return this.#connection?.instance;
  }

  /** The connection's live messages so far (0 when not connected). */
  get liveCount(): number {
    return this.#connection?.live ?? 0;
  }

  /** The next live seq the connection waits for (0 when not connected). */
  get nextLive(): number {
    return this.connected ? this.#connection?.next ?? 0 : 0;
  }

  /** The highest seq up to which this client holds every message. */
  contiguous(): number {
    let seq = 0;
    while (this.held.has(seq + 1)) seq++;
    return seq;
  }

  /** Opens a socket on `instance` resuming after {@linkcode contiguous}; waits for `resume`. */
  async connect(instance: Instance): Promise<void> {
    if (this.#closed) throw new Error(`${this.user} is closed`);
    const since = this.contiguous();
    const cursor = since > 0 ? `&since_seq=${since}&epoch=${this.epoch}` : "&since_seq=0";
    const socket = new WebSocket(instance.chatUrl(this.room, this.user) + cursor);
    const connection = new Connection(socket, instance, since);
    this.#connection = connection;
    this.stats.connects++;
    const closed = new Promise<void>((resolve) => {
      socket.onclose = () => {
        if (this.#connection === connection) this.#connection = undefined;
        if (connection.phase === "live") this.#settle("closed");
        resolve();
        this.#notify();
      };
    });
    socket.onmessage = (event) => {
      this.#frame(connection, JSON.parse(event.data));
      this.#notify();
    };
    try {
      await this.until(
        `resume on ${instance.id}`,
        () => connection.phase === "live" || this.#connection !== connection,
        CONNECT_TIMEOUT_MS,
      );
    } catch (error) {
      socket.close();
      await closed;
      throw error;
    }
    if (connection.phase !== "live") throw new Error(`${this.user}: closed before resume`);
  }

  /** Leaves the current instance (if any) and resumes on `instance`. */
  async moveTo(instance: Instance): Promise<void> {
    await this.disconnect();
    await this.connect(instance);
  }

  /** Disconnects for good: whatever it was doing (sending, roaming) ends with an error. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.disconnect();
    this.#notify();
  }

  /** Closes the socket and waits for the close. */
  async disconnect(): Promise<void> {
    const connection = this.#connection;
    if (!connection) return;
    const closed = new Promise<void>((resolve) =>
      connection.socket.addEventListener("close", () => resolve())
    );
    connection.socket.close(1000);
    await closed;
  }

  /**
   * Sends message `k` (content `user:k:attempt`, client id `user-k`) until it is acknowledged:
   * a refusal (`unavailable`) is re-sent, a lost connection resumed on `pick()` and the message
   * re-sent there with the same client id, even if an earlier attempt got through: the server
   * answers that with the first attempt's ack.
   */
  async send(k: number, pick: () => Instance): Promise<void> {
    const clientId = `${this.user}-${k}`;
    const deadline = Date.now() + 4 * ACK_TIMEOUT_MS;
    for (let attempt = 0;; attempt++) {
      if (Date.now() > deadline) throw new Error(`${this.user}: message ${k} never got through`);
      if (!this.connected) await this.reconnect(pick);
      if (attempt > 0) this.stats.resent++;
      const content = `${this.user}:${k}:${attempt}`;
      const outcome = new Promise<Outcome>((settle) =>
        this.#awaiting = { k, clientId, attempt, settle }
      );
      this.#connection?.socket.send(
        JSON.stringify({ type: "message", client_id: clientId, content }),
      );
      const result = await bounded(outcome, ACK_TIMEOUT_MS, `${this.user}: ack of ${content}`);
      if (result === "ack") return;
      if (result === "unavailable") {
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      }
    }
  }

  /** Connects to one instance after another from `pick` until one takes it. */
  async reconnect(pick: () => Instance): Promise<void> {
    let last: unknown;
    for (let tries = 0; tries < 5 && !this.#closed; tries++) {
      try {
        return await this.moveTo(pick());
      } catch (error) {
        last = error;
      }
    }
    throw new Error(`${this.user}: no instance took it`, { cause: last });
  }

  /**
   * Moves to `pick()` after every 15 to 40 live messages (`random` decides), and resumes there
   * after a lost connection, until `signal` aborts.
   */
  async roam(pick: () => Instance, random: () => number, signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.#notify(), { once: true });
    while (!signal.aborted) {
      const after = 15 + Math.floor(random() * 25);
      await this.until(
        "a move",
        () => signal.aborted || !this.connected || this.liveCount >= after,
        120_000,
      );
      if (!signal.aborted) await this.reconnect(pick);
    }
  }

  /** Waits until the live frames reached `lastSeq` (resuming on `pick()` if not connected). */
  async syncTo(lastSeq: number, pick: () => Instance): Promise<void> {
    for (let tries = 0; tries < 3; tries++) {
      if (!this.connected) await this.reconnect(pick);
      await this.until(
        `live up to ${lastSeq}`,
        () => !this.connected || this.nextLive > lastSeq,
        ACK_TIMEOUT_MS,
      );
      if (this.connected) return;
    }
    throw new Error(`${this.user}: lost its connection three times while catching up`);
  }

  /** Reads every seq it was told it misses from `/history` (after_seq paging) of `instances`. */
  async fillFromHistory(instances: readonly Instance[], deadlineMs = 10_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    while (this.told.size > 0) {
      for (const instance of instances) {
        if (this.told.size === 0) return;
        const from = Math.min(...this.told);
        const url = instance.url(`/history?r=${this.room}&after_seq=${from - 1}&limit=500`);
        const response = await fetch(url);
        const epoch = response.headers.get("x-chat-epoch");
        const page = await response.json();
        if (!Array.isArray(page)) {
          throw new Error(`/history of ${instance.id}: ${response.status} ${JSON.stringify(page)}`);
        }
        if (epoch !== this.epoch) this.#problem(`/history epoch ${epoch}, not ${this.epoch}`);
        for (const message of page) {
          if (this.told.has(message.seq)) this.stats.fromHistory++;
          this.#hold(message);
        }
      }
      if (this.told.size === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`${this.user}: told of ${[...this.told]} and /history never had them`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100)); // the stores catch up meanwhile
    }
  }

  /** Resolves once `done()` holds, checked after every frame, close and abort. */
  async until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`${this.user}: timed out waiting for ${what}`);
      await bounded(
        new Promise<void>((resolve) => this.#wake.push(resolve)),
        remaining,
        `${this.user}: ${what}`,
      );
    }
  }

  #notify(): void {
    for (const wake of this.#wake.splice(0)) wake();
  }

  #settle(outcome: Outcome): void {
    const awaiting = this.#awaiting;
    this.#awaiting = undefined;
    awaiting?.settle(outcome);
  }

  #problem(text: string): void {
    this.problems.push(`${this.user}: ${text}`);
  }

  #frame(connection: Connection, frame: Frame): void {
    if (connection.phase === "welcome") {
      if (frame.type !== "welcome") return this.#problem(`${frame.type} before welcome`);
      if (this.epoch !== undefined && frame.epoch !== this.epoch) {
        this.#problem(`epoch ${frame.epoch} after ${this.epoch}`);
      }
      this.epoch = frame.epoch;
      connection.lastSeqAtWelcome = frame.last_seq;
      // Replayed seqs follow the cursor; an instance behind the cursor (welcome's last_seq is
      // lower) sends nothing up to it, neither replayed nor live.
      connection.next = connection.since + 1;
      connection.phase = "replay";
    } else if (connection.phase === "replay") {
      if (frame.type === "message") {
        if (frame.seq !== connection.next) {
          this.#problem(`replayed ${frame.seq} where ${connection.next} was due`);
        }
        connection.next = frame.seq + 1;
        connection.replayed++;
        return this.#hold(frame as SeqMessage);
      }
      if (frame.type !== "resume") return this.#problem(`${frame.type} before resume`);
      this.#resume(connection, frame);
    } else if (frame.type === "message") {
      if (frame.seq !== connection.next) {
        const what = frame.seq < connection.next ? "twice" : "after a silent hole";
        this.#problem(`live ${frame.seq} ${what} (${connection.next} was due)`);
      }
      connection.next = frame.seq + 1;
      connection.live++;
      this.#hold(frame as SeqMessage);
    } else if (frame.type === "gap") {
      this.stats.gapFrames++;
      if (frame.from_seq !== connection.next) {
        this.#problem(`gap from ${frame.from_seq} where ${connection.next} was due`);
      }
      for (let seq = frame.from_seq; seq <= frame.to_seq; seq++) this.#missing(seq);
      connection.next = frame.to_seq + 1;
    } else if (frame.type === "ack") {
      this.#ack(frame);
    } else if (frame.type === "error" && frame.code === "unavailable") {
      this.stats.unavailable++;
      if (frame.client_id !== this.#awaiting?.clientId) {
        this.#problem(`unavailable for ${frame.client_id}, not ${this.#awaiting?.clientId}`);
      }
      this.#settle("unavailable");
    } else if (frame.type !== "presence") {
      this.#problem(`unexpected ${JSON.stringify(frame)}`);
    }
  }

  /** Settles the send it answers; the same client id must always get the same id and seq. */
  #ack(frame: Frame): void {
    const awaiting = this.#awaiting;
    if (!awaiting || frame.client_id !== awaiting.clientId) {
      return this.#problem(`ack ${JSON.stringify(frame)} while sending ${awaiting?.clientId}`);
    }
    const earlier = this.acks.get(awaiting.k);
    if (earlier && (earlier.id !== frame.id || earlier.seq !== frame.seq)) {
      this.#problem(`${awaiting.clientId} acked at ${earlier.seq}, then at ${frame.seq}`);
    }
    this.acks.set(awaiting.k, { id: frame.id, seq: frame.seq, attempt: awaiting.attempt });
    this.#settle("ack");
  }

  #resume(connection: Connection, frame: Record<string, unknown>): void {
    const reached = connection.next - 1;
    const lastSeq = connection.lastSeqAtWelcome;
    this.stats.resumes.push({ since: connection.since, lastSeq, frame });
    if (frame.replayed !== connection.replayed) {
      this.#problem(`resume says ${frame.replayed} replayed, ${connection.replayed} came`);
    }
    if (frame.epoch !== this.epoch) this.#problem(`resume epoch ${frame.epoch}`);
    if (frame.complete === true) {
      if (reached !== Math.max(lastSeq, connection.since)) {
        this.#problem(`resume complete:true, but the replay reached ${reached} of ${lastSeq}`);
      }
    } else {
      this.stats.incomplete++;
      if (!REASONS.has(String(frame.reason))) this.#problem(`resume reason ${frame.reason}`);
      for (let seq = reached + 1; seq <= lastSeq; seq++) this.#missing(seq);
    }
    connection.resume = frame;
    connection.next = Math.max(lastSeq, connection.since) + 1;
    connection.phase = "live";
  }

  #missing(seq: number): void {
    if (!this.held.has(seq)) this.told.add(seq);
  }

  #hold(frame: SeqMessage): void {
    const message = {
      id: frame.id,
      sender: frame.sender,
      content: frame.content,
      timestamp: frame.timestamp,
      clientId: frame.client_id,
    };
    const held = this.held.get(frame.seq);
    if (held) {
      this.stats.again++;
      if (JSON.stringify(held) !== JSON.stringify(message)) {
        this.#problem(
          `seq ${frame.seq} was ${JSON.stringify(held)}, now ${JSON.stringify(message)}`,
        );
      }
      return;
    }
    this.held.set(frame.seq, message);
    this.told.delete(frame.seq);
  }
}

/** `pending`, or an error naming `what` after `ms`. */
async function bounded<T>(pending: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
