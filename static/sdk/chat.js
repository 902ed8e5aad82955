// @ts-check
/**
 * The chat server's client SDK (see chat.d.ts for the API and docs/protocol.md for the wire).
 * One dependency-free ES module for browsers, Deno and Node 20+ (with a WebSocket class such as
 * npm `ws`). It is one file on purpose: a page or a script imports it whole from the server.
 *
 * How it keeps its promises:
 * - Items: messages and changes to them (edit, delete, react) share the room's sequence: a
 *   change's own seq is its `event_seq`. `Sequence` delivers seq `cursor + 1` only; later ones
 *   wait in `ahead` until the hole before them is filled from /history (`changes=1`, so change
 *   items fill it too) or found gone. A reconnect resumes after the cursor (`since_seq` +
 *   `epoch`), so nothing is missed and nothing comes twice.
 * - Sends: every message and change has a `client_id` and stays in `pending` until its ack (or
 *   its echo); those in flight when a socket drops are sent again, and the server recognises
 *   the id.
 * - Reconnects: full jitter under a doubling cap; a refused upgrade is explained by a plain GET
 *   of the same URL (400/401/403 stop, anything else is retried).
 *
 * @module
 */

/**
 * @typedef {import("./chat.d.ts").Room} RoomApi
 * @typedef {import("./chat.d.ts").ConnectOptions} ConnectOptions
 * @typedef {import("./chat.d.ts").ConnectionState} ConnectionState
 * @typedef {import("./chat.d.ts").StateEvent} StateEvent
 * @typedef {import("./chat.d.ts").HistoryPage} HistoryPageApi
 * @typedef {import("./chat.d.ts").ChatMessage} ChatMessage
 * @typedef {import("./chat.d.ts").Ack} Ack
 * @typedef {import("./chat.d.ts").ChangeAck} ChangeAck
 * @typedef {import("./chat.d.ts").ChangeOptions} ChangeOptions
 * @typedef {import("./chat.d.ts").RoomEventMap} RoomEventMap
 * @typedef {import("./chat.d.ts").SendOptions} SendOptions
 * @typedef {import("./chat.d.ts").HistoryQuery} HistoryQuery
 * @typedef {import("./chat.d.ts").HistoryPageQuery} HistoryPageQuery
 * @typedef {import("./chat.d.ts").ChatErrorOptions} ChatErrorOptions
 * @typedef {import("./chat.d.ts").TokenSource} TokenSource
 * @typedef {import("./chat.d.ts").WebSocketClass} WebSocketClass
 */

/**
 * The part of a WebSocket this SDK uses: the standard one and npm `ws` both have it.
 *
 * @typedef {object} SocketLike
 * @property {number} readyState
 * @property {((event: unknown) => void) | null} onopen
 * @property {((event: { data: unknown }) => void) | null} onmessage
 * @property {((event: { code: number, reason: string }) => void) | null} onclose
 * @property {((event: unknown) => void) | null} onerror
 * @property {(data: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 */

/** @typedef {ReturnType<typeof setTimeout>} Timer */
/** @typedef {Record<string, unknown>} Frame */

/**
 * An item of the room's sequence at its own `seq`: a message, or a change to an earlier one
 * (its `event_seq`; the change's `seq` names its target).
 *
 * @typedef {{ seq: number, type: "message", event: ChatMessage }
 *   | { seq: number, type: "edit", event: import("./chat.d.ts").EditEvent }
 *   | { seq: number, type: "delete", event: import("./chat.d.ts").DeleteEvent }
 *   | { seq: number, type: "react", event: import("./chat.d.ts").ReactEvent }} Item
 */

const PROTOCOL = 2;
const OPEN = 1; // WebSocket.OPEN, the same in every implementation
const TOKEN_EXPIRED_CLOSE = 4001;
const FRAME_TOO_LARGE_CLOSE = 1009;
const DROP_CLOSE = 4000; // this SDK gave up on a socket; the server logs it, nothing more
const TYPING_INTERVAL_MS = 2_000; // the server passes a user's typing on at most this often
// Reconnect backoff: full jitter over a cap doubling from 0.5 s to 10 s. A connection that stayed
// up this long starts the backoff over; one that drops at once keeps backing off.
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const STABLE_CONNECTION_MS = 10_000;
// /history read again after a failure: a jittered wait doubling from 1 s to 30 s, never sooner
// than Retry-After, itself capped (a broken header must not stop history for good).
const HISTORY_RETRY_BASE_MS = 1_000;
const HISTORY_RETRY_MAX_MS = 30_000;
const RETRY_AFTER_MAX_MS = 60_000;
/** Reads of one page by `history()` at most; the gap filler of the live stream never gives up. */
const HISTORY_ATTEMPTS = 5;
const FILL_PAGE = 500; // the /history maximum
const HISTORY_PAGE = 100;
/** Items held past a hole at most; beyond, the socket is dropped and the resume replays. */
const MAX_AHEAD = 10_000;
/** How long a message waits for a hole before it to be filled, by default (`holdMs`). */
const HOLD_MS = 5_000;
/**
 * Seqs delivered early past a hole at most; beyond, the oldest hole is given up on (reported as
 * `messages_unavailable`): the store has been unreadable for that many messages.
 */
const MAX_DONE = 100_000;
const MAX_PENDING = 1_000;
/** 401s in a row, each after a fresh token from the token function, before giving up. */
const TOKEN_REFUSALS = 3;
const PROBE_TIMEOUT_MS = 10_000;
const CLOSE_WAIT_MS = 3_000;
// Sending paces itself at half the connection's limits (the welcome's), so a queue of messages
// written while offline goes out whole; after a `rate_limited` error it pauses.
const DEFAULT_RATE = { perSecond: 5, burst: 10 };
const RATE_LIMITED_PAUSE_MS = 2_000;
/** HTTP statuses another attempt cannot change (bad names, no or a refused token, no such URL). */
const REFUSAL_STATUSES = new Set([400, 401, 403, 404]);
/** Send refusals worth trying again later with the same client_id (docs/protocol.md). */
const RETRYABLE_CODES = new Set(["room_busy", "backlog", "unavailable", "rate_limited"]);
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Every error of this SDK, with the server's code or one of its own (see chat.d.ts). */
export class ChatError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {ChatErrorOptions} [options]
   */
  constructor(code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ChatError";
    /** @readonly */
    this.code = code;
    /** @readonly @type {number | undefined} */
    this.status = options.status;
    /** @readonly */
    this.retryAfterMs = options.retryAfterMs ?? 0;
    /** @readonly */
    this.retryable = options.retryable ?? false;
    /** @readonly @type {string | undefined} */
    this.clientId = options.clientId;
  }
}

// ---- small helpers ------------------------------------------------------------------------

/** @param {unknown} value */
function isSeq(value) {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * A message frame or /history item as the SDK hands it on: without `type`, and a deleted one
 * (`deleted: true`, which has no `content` on the wire) with `content` "". Undefined for
 * anything else.
 *
 * @param {unknown} value
 * @returns {ChatMessage | undefined}
 */
function toMessage(value) {
  if (typeof value !== "object" || value === null) return undefined;
  const { type, ...m } = /** @type {Frame} */ (value);
  if (type !== undefined && type !== "message") return undefined;
  const deleted = m.deleted === true;
  const valid = typeof m.id === "string" && isSeq(m.seq) && Number(m.seq) > 0 &&
    typeof m.sender === "string" && (deleted || typeof m.content === "string") &&
    typeof m.timestamp === "string" && typeof m.room === "string";
  if (!valid) return undefined;
  return /** @type {ChatMessage} */ (/** @type {unknown} */ (deleted ? { ...m, content: "" } : m));
}

/**
 * A change frame (`edit`, `delete`, `react`) as an item at its `event_seq`, or undefined. The
 * event has the frame's fields without `type`.
 *
 * @param {unknown} value
 * @returns {Item | undefined}
 */
function toChange(value) {
  if (typeof value !== "object" || value === null) return undefined;
  const f = /** @type {Frame} */ (value);
  const type = f.type;
  if (type !== "edit" && type !== "delete" && type !== "react") return undefined;
  const valid = typeof f.id === "string" && typeof f.room === "string" &&
    typeof f.user === "string" && typeof f.timestamp === "string" && isSeq(f.event_seq) &&
    Number(f.event_seq) > 0 && isSeq(f.seq) && Number(f.seq) > 0 &&
    (type !== "edit" || typeof f.content === "string") &&
    (type !== "react" || (typeof f.reaction === "string" && typeof f.on === "boolean"));
  if (!valid) return undefined;
  const { type: _type, ...event } = f;
  return /** @type {Item} */ (/** @type {unknown} */ ({ seq: Number(f.event_seq), type, event }));
}

/** A /history item (with `changes=1`, a message or a change) as an item, or undefined. */
function toItem(/** @type {unknown} */ value) {
  const message = toMessage(value);
  if (message) return /** @type {Item} */ ({ seq: message.seq, type: "message", event: message });
  return toChange(value);
}

/** @param {unknown} error */
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

/** A Retry-After header (seconds, or an HTTP date) in milliseconds from now; 0 without. */
function retryAfterMs(/** @type {string | null} */ header) {
  if (!header) return 0;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), RETRY_AFTER_MAX_MS) : 0;
}

/** Full jitter: a random wait under a cap that doubles per attempt. */
function jittered(/** @type {number} */ attempt, /** @type {number} */ baseMs, maxMs = baseMs) {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
}

/** How long to wait before reading /history again: half the cap to all of it, or Retry-After. */
function historyDelay(/** @type {number} */ attempt, /** @type {number} */ minMs) {
  const cap = Math.min(HISTORY_RETRY_MAX_MS, HISTORY_RETRY_BASE_MS * 2 ** Math.min(attempt, 30));
  return Math.max(minMs, cap / 2 + (Math.random() * cap) / 2);
}

/**
 * Waits `ms`, or rejects with the signal's reason as soon as it aborts (the timer is cleared).
 *
 * @param {number} ms
 * @param {AbortSignal} signal
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", aborted);
    };
    const aborted = () => {
      done();
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal.addEventListener("abort", aborted, { once: true });
  });
}

/**
 * A signal that aborts when any of `signals` does (AbortSignal.any where there is one).
 *
 * @param {(AbortSignal | undefined)[]} signals
 * @returns {AbortSignal}
 */
function anySignal(signals) {
  const given = /** @type {AbortSignal[]} */ (signals.filter(Boolean));
  if (given.length === 1 && given[0]) return given[0];
  if (typeof AbortSignal.any === "function") return AbortSignal.any(given);
  const controller = new AbortController();
  for (const signal of given) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

/** A new `client_id`: a UUID, or 32 random hex digits where randomUUID is missing (HTTP). */
function newClientId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The code and message of an error body `{"error": {"code", "message"}}`. */
function errorOf(/** @type {unknown} */ body) {
  const error = typeof body === "object" && body !== null
    ? /** @type {Frame} */ (body).error
    : undefined;
  const fields = typeof error === "object" && error !== null ? /** @type {Frame} */ (error) : {};
  return {
    code: typeof fields.code === "string" ? fields.code : "",
    message: typeof fields.message === "string" ? fields.message : "",
  };
}

/** Reports an error thrown by a listener the way EventTarget does, without stopping the SDK. */
function report(/** @type {unknown} */ error) {
  const global = /** @type {{ reportError?: (error: unknown) => void }} */ (globalThis);
  if (typeof global.reportError === "function") global.reportError(error);
  else {
    queueMicrotask(() => {
      throw error;
    });
  }
}

// ---- options --------------------------------------------------------------------------

/**
 * @typedef {object} Settings
 * @property {URL} chatUrl
 * @property {URL} historyUrl
 * @property {string} room
 * @property {string | undefined} user
 * @property {TokenSource | undefined} token
 * @property {number} protocol
 * @property {WebSocketClass} WebSocket
 * @property {{ seq: number, epoch: string | undefined } | undefined} since
 * @property {number} baseMs
 * @property {number} maxMs
 * @property {number} maxPending
 * @property {number} holdMs
 * @property {number | undefined} connectTimeoutMs
 * @property {AbortSignal | undefined} signal
 */

/**
 * Checks the options of `connect`.
 *
 * @param {ConnectOptions} options
 * @returns {Settings}
 * @throws {TypeError} for a missing or malformed option.
 */
function settingsOf(options) {
  if (typeof options !== "object" || options === null) throw new TypeError("options are required");
  const base = new URL(String(options.url));
  if (base.protocol === "ws:" || base.protocol === "wss:") {
    base.protocol = base.protocol === "wss:" ? "https:" : "http:";
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`url must be the server's http(s) URL, got ${options.url}`);
  }
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  const chatUrl = new URL("chat", base);
  chatUrl.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  if (typeof options.room !== "string" || !options.room) throw new TypeError("room is required");
  const token = options.token;
  if (token !== undefined && typeof token !== "string" && typeof token !== "function") {
    throw new TypeError("token must be a string or a function returning one");
  }
  if (options.user === undefined && token === undefined) {
    throw new TypeError("user is required (or a token, whose sub names the user)");
  }
  const WebSocketClass = options.WebSocket ??
    /** @type {WebSocketClass | undefined} */ (/** @type {Frame} */ (globalThis).WebSocket);
  if (typeof WebSocketClass !== "function") {
    throw new TypeError("no WebSocket here: pass one, e.g. { WebSocket } from npm ws");
  }
  return {
    chatUrl,
    historyUrl: new URL("history", base),
    room: options.room,
    user: options.user,
    token,
    protocol: options.protocol ?? PROTOCOL,
    WebSocket: WebSocketClass,
    since: sinceOf(options.since),
    baseMs: positive(options.backoff?.baseMs, BACKOFF_BASE_MS, "backoff.baseMs"),
    maxMs: positive(options.backoff?.maxMs, BACKOFF_MAX_MS, "backoff.maxMs"),
    maxPending: positive(options.maxPending, MAX_PENDING, "maxPending"),
    holdMs: notNegative(options.holdMs, HOLD_MS, "holdMs"),
    connectTimeoutMs: options.connectTimeoutMs === undefined
      ? undefined
      : positive(options.connectTimeoutMs, 0, "connectTimeoutMs"),
    signal: options.signal,
  };
}

/**
 * @param {number | undefined} value
 * @param {number} fallback
 * @param {string} name
 */
function notNegative(value, fallback, name) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value >= 0)) throw new TypeError(`${name} must be 0 or more`);
  return value;
}

/** @param {ConnectOptions["since"]} since */
function sinceOf(since) {
  if (since === undefined) return undefined;
  if (!isSeq(since.seq)) throw new TypeError("since.seq must be a whole number (a seq)");
  if (since.seq > 0 && typeof since.epoch !== "string") {
    throw new TypeError("since.epoch is required with a since.seq above 0");
  }
  return { seq: since.seq, epoch: since.epoch };
}

/**
 * @param {number | undefined} value
 * @param {number} fallback
 * @param {string} name
 */
function positive(value, fallback, name) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0)) throw new TypeError(`${name} must be above 0`);
  return value;
}

// ---- in-order, exactly-once delivery --------------------------------------------------

/**
 * @typedef {object} Ahead a seq past a hole: an item held for it, or one with nothing left to
 * deliver (delivered early, after waiting `holdMs`).
 * @property {Item | null} message
 * @property {number} at when it arrived (Date.now())
 */

/**
 * The seqs of one epoch (messages' and changes' alike), each delivered once. `cursor` is the
 * newest seq delivered with every one before it delivered or gone. An item past a hole waits in
 * `ahead` for at most `holdMs`, then is delivered anyway (its seq stays marked, so a replay or a
 * fill never delivers it twice); the hole's items are delivered when they are read. Held items
 * are bounded by the caller, who drops the socket when they grow past MAX_AHEAD.
 */
class Sequence {
  /** @type {Map<number, Ahead>} */
  #ahead = new Map();
  #heldCount = 0;
  #deliver;
  #holdMs;
  /** @type {Timer | undefined} */
  #timer;

  /**
   * @param {(item: Item) => void} deliver called with the cursor already moved
   * @param {number} holdMs how long a message waits for a hole before it, at most
   */
  constructor(deliver, holdMs) {
    this.cursor = 0;
    this.#deliver = deliver;
    this.#holdMs = holdMs;
  }

  /** Starts over after `cursor` (a new epoch); forgets everything past it. */
  reset(/** @type {number} */ cursor) {
    this.cursor = cursor;
    this.#ahead.clear();
    this.#heldCount = 0;
    this.stop();
  }

  /**
   * Forgets the messages held past a hole (the next socket's replay sends them again); what was
   * delivered early stays marked, so the replay cannot deliver it twice.
   */
  clearAhead() {
    for (const [seq, entry] of this.#ahead) if (entry.message) this.#ahead.delete(seq);
    this.#heldCount = 0;
    this.stop();
  }

  stop() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Messages held past a hole, not delivered yet. */
  get heldSize() {
    return this.#heldCount;
  }

  /** Seqs past a hole with nothing left to deliver. */
  get doneSize() {
    return this.#ahead.size - this.#heldCount;
  }

  /** The lowest seq past a hole (held or done), if any. */
  firstAhead() {
    let first;
    for (const seq of this.#ahead.keys()) if (first === undefined || seq < first) first = seq;
    return first;
  }

  /** Delivers `message` if it is next (then what waited for it); holds it if a hole is before. */
  add(/** @type {Item} */ message) {
    const seq = message.seq;
    if (seq <= this.cursor || this.#ahead.has(seq)) return;
    if (seq !== this.cursor + 1) {
      if (this.#holdMs <= 0) {
        this.#ahead.set(seq, { message: null, at: 0 });
        this.#deliver(message);
        return;
      }
      this.#ahead.set(seq, { message, at: Date.now() });
      this.#heldCount++;
      this.#timer ??= setTimeout(() => this.#release(), this.#holdMs);
      return;
    }
    this.cursor = seq;
    this.#deliver(message);
    this.#drain();
  }

  /**
   * Gives up on the seqs up to `seq` that never came (the server no longer has them): delivers
   * what waited among them, in order, and returns the ranges given up on.
   *
   * @param {number} seq
   * @returns {[number, number][]}
   */
  skipTo(seq) {
    /** @type {[number, number][]} */
    const gone = [];
    const known = [...this.#ahead.keys()].filter((each) => each <= seq).sort((a, b) => a - b);
    for (const each of [...known, seq + 1]) {
      if (each > this.cursor + 1) gone.push([this.cursor + 1, each - 1]);
      const entry = this.#ahead.get(each);
      if (!entry) continue;
      this.#take(each, entry);
    }
    this.cursor = Math.max(this.cursor, seq);
    this.#drain();
    return gone;
  }

  #drain() {
    for (;;) {
      const entry = this.#ahead.get(this.cursor + 1);
      if (!entry) return;
      this.#take(this.cursor + 1, entry);
    }
  }

  /**
   * @param {number} seq
   * @param {Ahead} entry
   */
  #take(seq, entry) {
    this.#ahead.delete(seq);
    this.cursor = seq;
    if (!entry.message) return;
    this.#heldCount--;
    this.#deliver(entry.message);
  }

  /** Delivers, in seq order, the held messages that waited `holdMs`; they stay marked. */
  #release() {
    this.#timer = undefined;
    const now = Date.now();
    let next = Infinity;
    const seqs = [...this.#ahead.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      const entry = this.#ahead.get(seq);
      if (!entry?.message) continue;
      if (now - entry.at < this.#holdMs) {
        next = Math.min(next, entry.at + this.#holdMs - now);
        continue;
      }
      const message = entry.message;
      this.#ahead.set(seq, { message: null, at: 0 });
      this.#heldCount--;
      this.#deliver(message);
    }
    if (next !== Infinity) this.#timer = setTimeout(() => this.#release(), next);
  }
}

// ---- the room -------------------------------------------------------------------------

/**
 * A message or a change waiting for its ack: `queued` (to send on the next ready socket) or
 * `sent` (on the current one). The ack's seq of a `change` is the change's `event_seq`.
 *
 * @typedef {object} PendingSend
 * @property {string} clientId
 * @property {string} frame
 * @property {number} bytes
 * @property {"message" | "change"} kind
 * @property {"queued" | "sent"} state
 * @property {Promise<Ack | ChangeAck>} promise
 * @property {(ack: Ack | ChangeAck) => void} resolve
 * @property {(error: unknown) => void} reject
 */

/**
 * One page of /history.
 *
 * @typedef {object} HistoryPage
 * @property {ChatMessage[]} messages ascending by seq
 * @property {Item[]} items ascending by their own seq: the messages, and with `changes=1` the
 *   changes too
 * @property {string | undefined} epoch the `X-Chat-Epoch` header
 * @property {boolean} incomplete the `X-Chat-Incomplete` header: seqs may be missing
 */

/** @typedef {{ after_seq?: number, before_seq?: number, limit: number, changes?: 1 }} PageQuery */

/** @implements {RoomApi} */
class Room {
  /** @type {Settings} */
  #s;
  /** @type {ConnectionState} */
  #state = "connecting";
  /** @type {Map<keyof RoomEventMap, Set<(event: never) => void>>} */
  #listeners = new Map();
  // Events from the first welcome until connect's caller has had a task to add listeners: npm
  // `ws` dispatches the frames of one TCP read synchronously, before any await resumes.
  /** @type {[keyof RoomEventMap, unknown][]} */
  #held = [];
  #holding = true;
  /** @type {{ resolve: (room: Room) => void, reject: (error: unknown) => void } | undefined} */
  #joining;
  #welcomed = false;
  /** @type {Promise<void> | undefined} */
  #closing;
  #closed = false;
  #closeAbort = new AbortController();
  /** Stops listening to the `signal` option. */
  #unlisten = () => {};
  /** @type {SocketLike | null} */
  #socket = null;
  #typedAt = -Infinity; // when typing() last sent
  /**
   * Sockets not closed yet, the current one and those being closed, for close() to await.
   *
   * @type {Set<Promise<void>>}
   */
  #unclosed = new Set();
  #run = 0; // one per socket: the reads of an older socket stop
  #runAbort = new AbortController();
  #ready = false; // the current socket was welcomed and its replay (if any) is in
  #resuming = false;
  #joinSeq = 0;
  /** @type {string | undefined} */
  #epoch;
  #sequence;
  #needUpTo = 0; // seqs up to here exist (a gap frame, an incomplete resume): read them
  #fillRun = 0; // the socket whose gap filling runs, 0 for none
  #fillWaiting = false; // a read of /history for a hole failed, and the hole is still there
  /** @type {string | undefined} */
  #user;
  /** @type {string | undefined} */
  #roomName; // as the server spells it (it trims and normalizes)
  /** @type {Set<string>} */
  #members = new Set();
  /** @type {readonly string[]} */
  #sortedMembers = Object.freeze([]);
  /** @type {string | undefined} */
  #token;
  #tokenRefusals = 0;
  #attempt = 0;
  #liveAt = 0;
  /** @type {Timer | undefined} */
  #retryTimer;
  /** @type {Timer | undefined} */
  #pumpTimer;
  /** @type {Timer | undefined} */
  #connectTimer;
  /** @type {Timer | undefined} */
  #holdTimer;
  /** @type {Map<string, PendingSend>} */
  #pending = new Map();
  #rate = { ...DEFAULT_RATE };
  #maxFrameBytes = Infinity;
  /** @type {Readonly<Record<string, number>>} */
  #limits = Object.freeze({});
  #tokens = DEFAULT_RATE.burst;
  #tokensAt = Date.now();
  #pausedUntil = 0;
  #readSeq = 0;
  #unread = 0;
  #moderator = false;

  /** @param {Settings} settings */
  constructor(settings) {
    this.#s = settings;
    this.#sequence = new Sequence(
      (item) => this.#emit(item.type, /** @type {never} */ (item.event)),
      settings.holdMs,
    );
    this.#token = typeof settings.token === "string" ? settings.token : undefined;
    if (settings.since) {
      this.#sequence.reset(settings.since.seq);
      this.#epoch = settings.since.epoch;
    }
  }

  /**
   * Creates the room and resolves with it at its first welcome.
   *
   * @param {Settings} settings
   * @returns {Promise<Room>}
   */
  static join(settings) {
    const room = new Room(settings);
    /** @type {Promise<Room>} */
    const joined = new Promise((resolve, reject) => {
      room.#joining = { resolve, reject };
    });
    const signal = settings.signal;
    if (signal?.aborted) {
      void room.#finish(new ChatError("closed", "connect was aborted", { cause: signal.reason }));
      return joined;
    }
    const abort = () => room.close();
    signal?.addEventListener("abort", abort, { once: true });
    room.#unlisten = () => signal?.removeEventListener("abort", abort);
    if (settings.connectTimeoutMs !== undefined) {
      room.#connectTimer = setTimeout(() => {
        const seconds = (settings.connectTimeoutMs ?? 0) / 1000;
        void room.#finish(
          new ChatError("connect_timeout", `no welcome from the server within ${seconds} s`),
        );
      }, settings.connectTimeoutMs);
    }
    void room.#start();
    return joined;
  }

  get name() {
    return this.#roomName ?? this.#s.room;
  }

  get user() {
    return this.#user ?? this.#s.user ?? "";
  }

  get members() {
    return this.#sortedMembers;
  }

  get epoch() {
    return this.#epoch ?? "";
  }

  get lastSeq() {
    return this.#sequence.cursor;
  }

  get state() {
    return this.#state;
  }

  get limits() {
    return this.#limits;
  }

  get readSeq() {
    return this.#readSeq;
  }

  get unread() {
    return this.#unread;
  }

  get moderator() {
    return this.#moderator;
  }

  /** @param {number} seq */
  read(seq) {
    const socket = this.#socket;
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw new TypeError("seq must be a whole number from 1");
    }
    if (!this.#ready || !socket || socket.readyState !== OPEN) return;
    socket.send(JSON.stringify({ type: "read", seq }));
    this.#readSeq = Math.max(this.#readSeq, seq);
  }

  typing() {
    const socket = this.#socket;
    const now = Date.now();
    if (!this.#ready || !socket || socket.readyState !== OPEN) return;
    if (now - this.#typedAt < TYPING_INTERVAL_MS) return;
    this.#typedAt = now;
    socket.send(JSON.stringify({ type: "typing" }));
  }

  reconnectNow() {
    if (this.#closed || this.#socket || this.#retryTimer === undefined) return;
    clearTimeout(this.#retryTimer);
    this.#attempt = 0;
    this.#open();
  }

  /**
   * @template {keyof RoomEventMap} K
   * @param {K} type
   * @param {(event: RoomEventMap[K]) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    let listeners = this.#listeners.get(type);
    if (!listeners) this.#listeners.set(type, listeners = new Set());
    const added = /** @type {(event: never) => void} */ (listener);
    listeners.add(added);
    return () => {
      listeners.delete(added);
    };
  }

  /**
   * @param {string} content
   * @param {SendOptions} [options]
   * @returns {Promise<Ack>}
   */
  send(content, options = {}) {
    if (typeof content !== "string") return Promise.reject(new TypeError("content must be text"));
    const replyTo = options.reply_to;
    if (replyTo !== undefined && !(Number.isSafeInteger(replyTo) && replyTo >= 1)) {
      return Promise.reject(new TypeError("reply_to must be a seq (a whole number from 1)"));
    }
    const frame = { type: "message", content, ...(replyTo !== undefined && { reply_to: replyTo }) };
    return /** @type {Promise<Ack>} */ (this.#enqueue(frame, options.client_id));
  }

  /**
   * @param {number} seq
   * @param {string} content
   * @param {ChangeOptions} [options]
   * @returns {Promise<ChangeAck>}
   */
  edit(seq, content, options = {}) {
    if (typeof content !== "string") return Promise.reject(new TypeError("content must be text"));
    return this.#change({ type: "edit", seq, content }, options);
  }

  /**
   * @param {number} seq
   * @param {ChangeOptions} [options]
   * @returns {Promise<ChangeAck>}
   */
  delete(seq, options = {}) {
    return this.#change({ type: "delete", seq }, options);
  }

  /**
   * @param {number} seq
   * @param {string} reaction
   * @param {boolean} [on]
   * @param {ChangeOptions} [options]
   * @returns {Promise<ChangeAck>}
   */
  react(seq, reaction, on = true, options = {}) {
    if (typeof reaction !== "string" || !reaction) {
      return Promise.reject(new TypeError("reaction must be an emoji or a short token"));
    }
    if (typeof on !== "boolean") return Promise.reject(new TypeError("on must be a boolean"));
    return this.#change({ type: "react", seq, reaction, on }, options);
  }

  /**
   * @param {Frame & { seq: number }} frame
   * @param {ChangeOptions} options
   * @returns {Promise<ChangeAck>}
   */
  #change(frame, options) {
    if (!(Number.isSafeInteger(frame.seq) && frame.seq >= 1)) {
      return Promise.reject(new TypeError("seq must be a message's seq (a whole number from 1)"));
    }
    return /** @type {Promise<ChangeAck>} */ (this.#enqueue(frame, options.client_id, "change"));
  }

  /**
   * Queues a frame for sending with its client_id, resolved by its ack (or echo). A client_id
   * pending already gives the promise it has.
   *
   * @param {Frame} fields the frame without client_id
   * @param {string | undefined} given the caller's client_id
   * @param {PendingSend["kind"]} [kind] what the ack is of: a change's seq is its `event_seq`
   * @returns {Promise<Ack | ChangeAck>}
   */
  #enqueue(fields, given, kind = "message") {
    const clientId = given ?? newClientId();
    if (!CLIENT_ID.test(clientId)) {
      return Promise.reject(new TypeError("client_id must be 1 to 64 of A-Z a-z 0-9 _ -"));
    }
    if (this.#closed) return Promise.reject(new ChatError("closed", "the room is closed"));
    const known = this.#pending.get(clientId);
    if (known) return known.promise;
    if (this.#pending.size >= this.#s.maxPending) {
      const text = `${this.#pending.size} sends are waiting for their ack already`;
      return Promise.reject(new ChatError("queue_full", text, { retryable: true, clientId }));
    }
    const frame = JSON.stringify({ ...fields, client_id: clientId });
    /** @type {PendingSend} */
    const entry = {
      clientId,
      frame,
      bytes: new TextEncoder().encode(frame).length,
      kind,
      state: "queued",
      promise: Promise.resolve({ id: "", seq: 0 }),
      resolve: () => {},
      reject: () => {},
    };
    entry.promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    this.#pending.set(clientId, entry);
    this.#pump();
    return entry.promise;
  }

  /**
   * @param {HistoryQuery} [query]
   * @returns {AsyncGenerator<ChatMessage, void, undefined>}
   */
  async *history(query = {}) {
    const { after_seq: afterSeq, before_seq: beforeSeq } = query;
    for (const [name, value] of [["after_seq", afterSeq], ["before_seq", beforeSeq]]) {
      if (value !== undefined && !isSeq(value)) throw new TypeError(`${name} must be a seq`);
    }
    const limit = query.limit === undefined ? Infinity : positive(query.limit, 0, "limit");
    const pageSize = Math.min(positive(query.page_size, HISTORY_PAGE, "page_size"), FILL_PAGE);
    const signal = anySignal([this.#closeAbort.signal, query.signal]);
    // Oldest first when catching up (`after_seq`), newest first when scrolling back.
    const forward = afterSeq !== undefined;
    let after = afterSeq;
    let before = beforeSeq;
    let yielded = 0;
    /** @type {string | undefined} */
    let epoch;
    while (yielded < limit) {
      const size = Math.min(pageSize, limit - yielded);
      const page = await this.#readPageRetrying(
        { after_seq: after, before_seq: before, limit: size },
        signal,
      );
      epoch ??= page.epoch;
      if (page.epoch !== undefined && page.epoch !== epoch) {
        throw new ChatError("epoch_changed", "the room's history was reset while it was read");
      }
      const messages = forward ? page.messages : [...page.messages].reverse();
      for (const message of messages) {
        // Each once, in order, whatever a page holds.
        if (forward ? message.seq <= (after ?? 0) : before !== undefined && message.seq >= before) {
          continue;
        }
        if (forward) after = message.seq;
        else before = message.seq;
        yield message;
        if (++yielded >= limit) return;
      }
      if (page.messages.length < size) return;
    }
  }

  /**
   * @param {HistoryPageQuery} [query]
   * @returns {Promise<HistoryPageApi>}
   */
  async historyPage(query = {}) {
    const { after_seq: afterSeq, before_seq: beforeSeq } = query;
    for (const [name, value] of [["after_seq", afterSeq], ["before_seq", beforeSeq]]) {
      if (value !== undefined && !isSeq(value)) throw new TypeError(`${name} must be a seq`);
    }
    const limit = Math.min(positive(query.limit, HISTORY_PAGE, "limit"), FILL_PAGE);
    const signal = anySignal([this.#closeAbort.signal, query.signal]);
    const epoch = this.#epoch;
    /** @type {HistoryPage} */
    let page;
    try {
      page = await this.#readPageAuthorized(
        { after_seq: afterSeq, before_seq: beforeSeq, limit },
        signal,
      );
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (error instanceof ChatError) throw error;
      const text = `history cannot be read: ${messageOf(error)}`;
      throw new ChatError("unreachable", text, { cause: error, retryable: true });
    }
    if (page.epoch !== undefined && epoch !== undefined && page.epoch !== epoch) {
      // Its seqs name other messages: the resume says epoch_changed and the room starts over.
      if (epoch === this.#epoch) this.#drop("the room's epoch changed");
      throw new ChatError("epoch_changed", "the room's history was reset while it was read");
    }
    const messages = page.messages.filter((message) =>
      message.seq > (afterSeq ?? 0) && (beforeSeq === undefined || message.seq < beforeSeq)
    );
    const holes = page.incomplete ? holesOf(messages, { afterSeq, beforeSeq, limit }) : [];
    return Object.freeze({ messages, incomplete: page.incomplete, holes });
  }

  close() {
    return this.#finish(new ChatError("closed", "the room was closed"));
  }

  // ---- connecting --------------------------------------------------------------------

  async #start() {
    if (typeof this.#s.token === "function" && !(await this.#refreshToken())) return;
    this.#open();
  }

  /** The socket URL: room, name, protocol, the resume cursor and the token (as the page does). */
  #chatUrl() {
    const url = new URL(this.#s.chatUrl);
    url.searchParams.set("r", this.#s.room);
    if (this.#s.user !== undefined) url.searchParams.set("u", this.#s.user);
    url.searchParams.set("v", String(this.#s.protocol));
    // Frames waiting together come as one WebSocket frame, one JSON frame per line.
    if (this.#s.protocol === 2) url.searchParams.set("batch", "1");
    if (this.#resuming) {
      url.searchParams.set("since_seq", String(this.#sequence.cursor));
      if (this.#epoch !== undefined) url.searchParams.set("epoch", this.#epoch);
    }
    if (this.#token !== undefined) url.searchParams.set("token", this.#token);
    return url;
  }

  #open() {
    this.#retryTimer = undefined;
    if (this.#closed || this.#socket) return;
    this.#resuming = this.#epoch !== undefined || this.#s.since !== undefined;
    this.#run++;
    this.#runAbort = new AbortController();
    this.#ready = false;
    this.#fillRun = 0;
    // The replay sends everything past the cursor again, and the holes it leaves are told anew.
    this.#sequence.clearAhead();
    this.#needUpTo = 0;
    // Whether what was in flight arrived is unknown: its ack or echo tells, or the server
    // recognises its client_id when it is sent again.
    for (const entry of this.#pending.values()) entry.state = "queued";
    const url = this.#chatUrl();
    let socket;
    try {
      socket = /** @type {SocketLike} */ (/** @type {unknown} */ (new this.#s.WebSocket(url.href)));
    } catch (error) {
      void this.#finish(
        new ChatError("unreachable", `cannot open a socket: ${messageOf(error)}`, { cause: error }),
      );
      return;
    }
    this.#socket = socket;
    this.#watch(socket, url);
  }

  /**
   * @param {SocketLike} socket
   * @param {URL} url
   */
  #watch(socket, url) {
    let opened = false;
    /** @type {() => void} */
    let closed = () => {};
    const done = new Promise((resolve) => closed = () => resolve(undefined));
    const unclosed = done.then(() => {
      this.#unclosed.delete(unclosed);
    });
    this.#unclosed.add(unclosed);
    socket.onopen = () => {
      opened = true;
    };
    // A close event follows every error; npm ws throws an error nobody listens to.
    socket.onerror = () => {};
    socket.onmessage = (event) => {
      // A batched frame is several JSON frames, one per line (JSON holds no raw newline).
      for (const line of String(event.data).split("\n")) {
        if (this.#socket !== socket) return; // a frame of the batch closed it
        let frame;
        try {
          frame = JSON.parse(line);
        } catch {
          continue; // not JSON: nothing this SDK can use
        }
        if (typeof frame === "object" && frame !== null) this.#onFrame(frame);
      }
    };
    socket.onclose = (event) => {
      closed();
      if (this.#socket !== socket) return;
      this.#socket = null;
      void this.#onClose(event, opened, url);
    };
  }

  /**
   * @param {{ code: number, reason: string }} event
   * @param {boolean} opened
   * @param {URL} url
   */
  async #onClose(event, opened, url) {
    this.#ready = false;
    this.#runAbort.abort();
    if (this.#closed) return;
    if (event.code === TOKEN_EXPIRED_CLOSE) return await this.#tokenExpired();
    if (event.code === FRAME_TOO_LARGE_CLOSE) this.#tooBig();
    if (!opened) {
      // A refused upgrade is only a 1006 here; a plain GET of the same URL says why.
      const probe = await this.#probe(url);
      if (this.#closed || this.#socket || this.#retryTimer) return;
      if (probe.refusal) return await this.#refused(probe.refusal);
      return this.#reconnect(probe.retryAfterMs, { error: probe.error });
    }
    if (this.#liveAt && Date.now() - this.#liveAt > STABLE_CONNECTION_MS) this.#attempt = 0;
    this.#liveAt = 0;
    this.#reconnect(0, { close: { code: event.code, reason: event.reason } });
  }

  /**
   * Waits a random time under a cap doubling per attempt (full jitter), then connects. Each
   * wait is told as a `state` event with its `retryAt`, and why.
   *
   * @param {number} minMs
   * @param {Omit<StateEvent, "state" | "retryAt">} [why]
   */
  #reconnect(minMs, why = {}) {
    if (this.#closed || this.#socket) return;
    clearTimeout(this.#retryTimer);
    const delay = Math.max(minMs, jittered(this.#attempt++, this.#s.baseMs, this.#s.maxMs));
    this.#retryTimer = setTimeout(() => this.#open(), delay);
    this.#setState("reconnecting", { ...why, retryAt: Date.now() + delay });
  }

  /** Closes the current socket and connects again: its resume replays from the cursor. */
  #drop(/** @type {string} */ reason) {
    const socket = this.#socket;
    if (!socket) return;
    this.#socket = null;
    this.#ready = false;
    this.#runAbort.abort();
    socket.close(DROP_CLOSE, reason);
    this.#reconnect(0, { close: { code: DROP_CLOSE, reason } });
  }

  /**
   * Why the server refused a socket: a plain GET of its URL answers the same JSON error.
   *
   * @param {URL} socketUrl
   * @returns {Promise<{ refusal?: ChatError, error?: ChatError, retryAfterMs: number }>}
   */
  async #probe(socketUrl) {
    const url = new URL(socketUrl);
    url.protocol = url.protocol === "wss:" ? "https:" : "http:";
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), PROBE_TIMEOUT_MS);
    try {
      const response = await fetch(url, {
        signal: anySignal([this.#closeAbort.signal, timeout.signal]),
      });
      const { code, message } = errorOf(await response.json().catch(() => null));
      const wait = retryAfterMs(response.headers.get("retry-after"));
      if (!REFUSAL_STATUSES.has(response.status)) {
        const text = message || `the server did not take the connection (HTTP ${response.status})`;
        const error = new ChatError(code || `http_${response.status}`, text, {
          status: response.status,
          retryAfterMs: wait,
          retryable: true,
        });
        return { error, retryAfterMs: wait };
      }
      const text = message || `the server refused the connection (HTTP ${response.status})`;
      const refusal = new ChatError(code || `http_${response.status}`, text, {
        status: response.status,
      });
      return { refusal, retryAfterMs: wait };
    } catch (cause) {
      // Unreachable, or closed meanwhile: the caller looks.
      const text = "the server cannot be reached";
      return {
        error: new ChatError("unreachable", text, { cause, retryable: true }),
        retryAfterMs: 0,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /** A refusal before the upgrade: a 401 gets fresh tokens a few times; the rest is final. */
  async #refused(/** @type {ChatError} */ refusal) {
    const renewable = refusal.status === 401 && typeof this.#s.token === "function";
    if (!renewable || this.#tokenRefusals >= TOKEN_REFUSALS) return await this.#finish(refusal);
    this.#tokenRefusals++;
    await this.#refreshToken();
    this.#reconnect(0);
  }

  /** Close 4001: a token function gives a fresh token at once; a string token is the end. */
  async #tokenExpired() {
    if (typeof this.#s.token !== "function") {
      const text = "the token expired; pass a function as token to renew it";
      return await this.#finish(new ChatError("token_expired", text, { status: 401 }));
    }
    this.#setState("reconnecting");
    this.#attempt = 0;
    if (await this.#refreshToken()) this.#open();
    else this.#reconnect(0);
  }

  /**
   * Asks the token function for a fresh token. If it fails, the first connect fails with it;
   * later, the failure is reported (the caller goes on with the token it has).
   *
   * @returns {Promise<boolean>} whether a fresh token came and the room is still open
   */
  async #refreshToken() {
    const source = this.#s.token;
    if (typeof source !== "function") return !this.#closed;
    try {
      const token = await source();
      if (typeof token !== "string" || !token) throw new TypeError("it returned no token");
      this.#token = token;
      return !this.#closed;
    } catch (error) {
      if (this.#closed) return false;
      const failure = new ChatError(
        "token_unavailable",
        `the token function failed: ${messageOf(error)}`,
        { cause: error, retryable: true },
      );
      if (this.#welcomed) this.#emit("error", failure);
      else await this.#finish(failure);
      return false;
    }
  }

  /**
   * The end: state `closed`, the socket closed with 1000, pending sends and `connect` rejected
   * with `error`, every timer stopped. Resolves once every socket closed (or after a while).
   *
   * @param {ChatError} error
   * @returns {Promise<void>}
   */
  #finish(error) {
    if (this.#closing) return this.#closing;
    const byUser = error.code === "closed";
    this.#closed = true;
    this.#unlisten();
    this.#closeAbort.abort(error);
    this.#runAbort.abort(error);
    for (const timer of [this.#retryTimer, this.#pumpTimer, this.#connectTimer]) {
      clearTimeout(timer);
    }
    this.#retryTimer = undefined;
    this.#sequence.stop();
    const socket = this.#socket;
    this.#socket = null;
    this.#ready = false;
    socket?.close(1000, byUser ? "closed" : error.code);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) entry.reject(error);
    if (this.#joining) {
      this.#joining.reject(error);
      this.#joining = undefined;
    } else if (!byUser) this.#emit("error", error);
    this.#setState("closed");
    // What the first welcome held goes out now, in order, before the room is gone.
    if (this.#welcomed) this.#release();
    return this.#closing = this.#settled();
  }

  async #settled() {
    /** @type {Timer | undefined} */
    let timer;
    const waited = new Promise((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS));
    try {
      await Promise.race([Promise.all(this.#unclosed), waited]);
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- frames ------------------------------------------------------------------------

  /** @param {Frame} frame */
  #onFrame(frame) {
    switch (frame.type) {
      case "welcome":
        return this.#welcome(frame);
      case "message":
        return this.#message(frame);
      case "ack":
        return this.#acked(frame);
      case "resume":
        return this.#resumed(frame);
      case "gap":
        if (frame.epoch === this.#epoch && isSeq(frame.to_seq)) {
          this.#needUpTo = Math.max(this.#needUpTo, Number(frame.to_seq));
          this.#fillGaps();
        }
        return;
      case "edit":
      case "delete":
      case "react":
        return this.#changed(frame);
      case "presence":
        return this.#presence(frame);
      case "read":
        return this.#receipt(frame);
      case "typing":
        if (typeof frame.user === "string" && frame.user !== this.user) {
          this.#emit("typing", { room: this.name, user: frame.user });
        }
        return;
      case "error":
        return this.#serverError(frame);
    }
  }

  /** @param {Frame} frame */
  #welcome(frame) {
    if (typeof frame.epoch !== "string" || !isSeq(frame.last_seq)) {
      const text = "the server does not speak protocol 2 (its welcome has no epoch)";
      return void this.#finish(new ChatError("unsupported_protocol", text));
    }
    if (typeof frame.user === "string") this.#user = frame.user;
    if (typeof frame.room === "string") this.#roomName = frame.room;
    this.#limitsOf(frame.limits);
    this.#setMembers(frame.members);
    this.#readSeq = isSeq(frame.read_seq) ? Number(frame.read_seq) : 0;
    this.#unread = isSeq(frame.unread) ? Number(frame.unread) : 0;
    this.#moderator = frame.moderator === true;
    this.#joinSeq = Number(frame.last_seq);
    this.#liveAt = Date.now();
    this.#tokenRefusals = 0;
    // No epoch yet: the first socket, or one resuming from `since: { seq: 0 }`.
    this.#epoch ??= frame.epoch;
    if (!this.#resuming) this.#sequence.reset(this.#joinSeq);
    if (!this.#welcomed) {
      this.#welcomed = true;
      clearTimeout(this.#connectTimer);
      this.#joining?.resolve(this);
      this.#joining = undefined;
      this.#holdTimer = setTimeout(() => this.#release(), 0);
    }
    // A resuming socket is ready at its `resume` frame, after the replay.
    if (!this.#resuming) this.#becomeReady();
  }

  /** The end of a replay: what it could not send is read from /history; a reset starts over. */
  #resumed(/** @type {Frame} */ frame) {
    if (this.#ready || !this.#resuming) return;
    if (frame.complete === false && frame.reason === "epoch_changed") {
      if (typeof frame.epoch !== "string") return;
      const previous = this.#epoch ?? frame.epoch;
      this.#epoch = frame.epoch;
      this.#sequence.reset(this.#joinSeq);
      this.#needUpTo = 0;
      this.#emit("epoch", { epoch: frame.epoch, previous, last_seq: this.#joinSeq });
    } else if (frame.complete === false) {
      // `limit` or `unavailable`: the seqs up to the welcome's last_seq exist.
      this.#needUpTo = Math.max(this.#needUpTo, this.#joinSeq);
    }
    this.#becomeReady();
  }

  #becomeReady() {
    this.#ready = true;
    this.#setState("open");
    this.#fillGaps();
    this.#pump();
  }

  /** @param {Frame} frame */
  #message(frame) {
    const message = toMessage(frame);
    if (message) this.#arrived({ seq: message.seq, type: "message", event: message });
  }

  /** @param {Frame} frame an `edit`, `delete` or `react` frame */
  #changed(frame) {
    const item = toChange(frame);
    if (item) this.#arrived(item);
  }

  /** A live or replayed item: delivered in order; too many held past a hole drop the socket. */
  #arrived(/** @type {Item} */ item) {
    this.#take(item);
    if (this.#sequence.heldSize > MAX_AHEAD) {
      this.#drop("too many items wait for missing ones");
    } else {
      if (this.#sequence.doneSize > MAX_DONE) this.#giveUpOldestHole();
      this.#fillGaps();
    }
  }

  /** The store stayed unreadable for MAX_DONE messages: the oldest hole is reported gone. */
  #giveUpOldestHole() {
    const first = this.#sequence.firstAhead();
    if (first === undefined) return;
    for (const [from, to] of this.#sequence.skipTo(first - 1)) {
      const text = `messages ${from} to ${to} of ${this.name} could not be read in time`;
      this.#emit("error", new ChatError("messages_unavailable", text));
    }
  }

  /** A read receipt; this user's own (another device's, or this one's) moves `readSeq`. */
  #receipt(/** @type {Frame} */ frame) {
    if (typeof frame.user !== "string" || !isSeq(frame.seq)) return;
    const seq = Number(frame.seq);
    if (frame.user === this.#user) this.#readSeq = Math.max(this.#readSeq, seq);
    this.#emit("read", { room: this.name, user: frame.user, seq });
  }

  /** An item from the socket or /history: settles its send, and is delivered in order. */
  #take(/** @type {Item} */ item) {
    const event = item.event;
    const author = item.type === "message" ? item.event.sender : item.event.user;
    if (typeof event.client_id === "string" && author === this.#user) {
      this.#settle(event.client_id, event.id, item.seq);
    }
    this.#sequence.add(item);
  }

  /** @param {Frame} frame */
  #presence(frame) {
    const { user, event } = frame;
    // This connection's own name stays while it is connected, whatever a late frame says.
    if (typeof user !== "string" || user === this.#user) return;
    if (event === "join" && !this.#members.has(user)) this.#members.add(user);
    else if (!(event === "leave" && this.#members.delete(user))) return;
    this.#sortedMembers = Object.freeze([...this.#members].sort());
    this.#emit("presence", { event, user, members: this.#sortedMembers });
  }

  /**
   * The welcome's list; after a reconnect, the difference from the list known before is told
   * as joins and leaves.
   *
   * @param {unknown} list
   */
  #setMembers(list) {
    const next = new Set(Array.isArray(list) ? list.filter((m) => typeof m === "string") : []);
    if (this.#user !== undefined) next.add(this.#user);
    const before = this.#members;
    this.#members = next;
    this.#sortedMembers = Object.freeze([...next].sort());
    if (!this.#welcomed) return;
    for (const user of before) {
      if (!next.has(user)) this.#emit("presence", { event: "leave", user, members: this.members });
    }
    for (const user of next) {
      if (!before.has(user)) this.#emit("presence", { event: "join", user, members: this.members });
    }
  }

  /** @param {Frame} frame */
  #serverError(frame) {
    const code = typeof frame.code === "string" ? frame.code : "error";
    const text = typeof frame.message === "string" ? frame.message : code;
    if (typeof frame.client_id === "string") {
      const entry = this.#pending.get(frame.client_id);
      if (!entry) return; // about a send settled already
      // A server going away refuses what it cannot finish: the next socket sends it again.
      if (code === "shutting_down") return void (entry.state = "queued");
      this.#pending.delete(entry.clientId);
      const retryable = RETRYABLE_CODES.has(code);
      entry.reject(new ChatError(code, text, { clientId: entry.clientId, retryable }));
      return;
    }
    if (code === "rate_limited") this.#slowDown();
    this.#emit("error", new ChatError(code, text, { retryable: RETRYABLE_CODES.has(code) }));
  }

  // ---- sending -----------------------------------------------------------------------

  /** @param {unknown} limits the welcome's `limits` */
  #limitsOf(limits) {
    const given = typeof limits === "object" && limits !== null
      ? /** @type {Frame} */ (limits)
      : {};
    /** @type {Record<string, number>} */
    const numbers = {};
    for (const [key, value] of Object.entries(given)) {
      if (typeof value === "number" && Number.isFinite(value)) numbers[key] = value;
    }
    this.#limits = Object.freeze(numbers);
    const { rate_per_second: perSecond, rate_burst: burst, max_frame_bytes: frameBytes } = given;
    if (typeof perSecond === "number" && perSecond > 0) this.#rate.perSecond = perSecond / 2;
    if (typeof burst === "number" && burst >= 1) this.#rate.burst = Math.max(1, burst / 2);
    if (typeof frameBytes === "number" && frameBytes > 0) this.#maxFrameBytes = frameBytes;
  }

  /** Sends the queued messages, oldest first, as fast as the pacing allows. */
  #pump() {
    clearTimeout(this.#pumpTimer);
    this.#pumpTimer = undefined;
    const socket = this.#socket;
    if (!this.#ready || !socket || socket.readyState !== OPEN) return; // ready() sends them
    for (const entry of this.#pending.values()) {
      if (entry.state !== "queued") continue;
      if (entry.bytes > this.#maxFrameBytes) {
        this.#reject(entry, "frame_too_large", `the message is over ${this.#maxFrameBytes} bytes`);
        continue;
      }
      const wait = this.#sendWait();
      if (wait > 0) {
        this.#pumpTimer = setTimeout(() => this.#pump(), wait);
        return;
      }
      socket.send(entry.frame);
      entry.state = "sent";
    }
  }

  /** Milliseconds until the next frame may go out (a token bucket); 0 takes a token. */
  #sendWait() {
    const now = Date.now();
    if (now < this.#pausedUntil) return this.#pausedUntil - now;
    const refill = ((now - this.#tokensAt) * this.#rate.perSecond) / 1000;
    this.#tokens = Math.min(this.#rate.burst, this.#tokens + refill);
    this.#tokensAt = now;
    if (this.#tokens < 1) return Math.ceil(((1 - this.#tokens) * 1000) / this.#rate.perSecond);
    this.#tokens--;
    return 0;
  }

  /**
   * `rate_limited` names no message (the server dropped the frame unread): everything in flight
   * goes again after a pause; what got in is recognised by its client_id.
   */
  #slowDown() {
    for (const entry of this.#pending.values()) entry.state = "queued";
    this.#pausedUntil = this.#tokensAt = Date.now() + RATE_LIMITED_PAUSE_MS;
    this.#tokens = 0;
    this.#pump();
  }

  /** Close 1009: the biggest frame in flight was too big; it fails instead of going again. */
  #tooBig() {
    let biggest;
    for (const entry of this.#pending.values()) {
      if (entry.state === "sent" && entry.bytes > (biggest?.bytes ?? 0)) biggest = entry;
    }
    if (biggest) this.#reject(biggest, "frame_too_large", "the server refused a frame this big");
  }

  /** @param {Frame} frame */
  #acked(frame) {
    if (typeof frame.client_id !== "string" || typeof frame.id !== "string") return;
    if (!isSeq(frame.seq)) return;
    this.#settle(frame.client_id, frame.id, Number(frame.seq));
  }

  /**
   * Resolves the send of `clientId` with its ack: `{ id, seq }` for a message, `{ id,
   * event_seq }` for a change (whose ack frame names its own seq `seq`).
   *
   * @param {string} clientId
   * @param {string} id
   * @param {number} seq the item's own seq
   */
  #settle(clientId, id, seq) {
    const entry = this.#pending.get(clientId);
    if (!entry) return; // settled by its echo already, or a re-send acknowledged again
    this.#pending.delete(clientId);
    entry.resolve(entry.kind === "change" ? { id, event_seq: seq } : { id, seq });
  }

  /**
   * @param {PendingSend} entry
   * @param {string} code
   * @param {string} text
   */
  #reject(entry, code, text) {
    this.#pending.delete(entry.clientId);
    entry.reject(new ChatError(code, text, { clientId: entry.clientId }));
  }

  // ---- filling gaps from /history ----------------------------------------------------

  /**
   * Tells whether filling holes waits for a store that cannot be read now (`fill` events): once
   * when it starts waiting (again at each new wait), once when nothing is missing any more.
   *
   * @param {boolean} waiting
   * @param {{ retryAt?: number, error?: ChatError }} [detail]
   */
  #fillWaits(waiting, detail = {}) {
    if (!waiting && !this.#fillWaiting) return;
    this.#fillWaiting = waiting;
    this.#emit("fill", Object.freeze({ waiting, ...detail }));
  }

  /** The newest seq known to exist that must be delivered before what waits past a hole. */
  #fillTarget() {
    return Math.max(this.#needUpTo, (this.#sequence.firstAhead() ?? 0) - 1);
  }

  #fillGaps() {
    if (this.#fillRun !== 0 || !this.#ready || this.#closed) return;
    if (this.#fillTarget() <= this.#sequence.cursor) return this.#fillWaits(false);
    const run = this.#run;
    const signal = this.#runAbort.signal;
    this.#fillRun = run;
    this.#fill(run, signal).catch(async (error) => {
      if (signal.aborted || this.#closed) return; // a new socket's replay covers it
      await this.#finish(
        error instanceof ChatError
          ? error
          : new ChatError("unreachable", messageOf(error), { cause: error }),
      );
    }).finally(() => {
      if (this.#fillRun === run) this.#fillRun = 0;
      if (this.#run === run && !signal.aborted) this.#fillGaps(); // more may be missing now
    });
  }

  /**
   * Reads the missing seqs in pages, oldest first, delivering each page; what a complete page
   * lacks is gone for good (retention). Failures and incomplete pages are read again after a
   * growing wait, for as long as this socket lives.
   *
   * @param {number} run
   * @param {AbortSignal} signal
   */
  async #fill(run, signal) {
    let attempt = 0;
    for (;;) {
      const target = this.#fillTarget();
      const after = this.#sequence.cursor;
      if (run !== this.#run) return;
      if (target <= after) return this.#fillWaits(false);
      // With the changes: they are items of the sequence too, and a page without them would
      // show holes where they sit.
      /** @type {PageQuery} */
      const query = { after_seq: after, before_seq: target + 1, limit: FILL_PAGE, changes: 1 };
      /** @type {HistoryPage} */
      let page;
      try {
        page = await this.#readPageAuthorized(query, signal);
      } catch (error) {
        if (signal.aborted || !isWorthRetrying(error)) throw error;
        const chatError = error instanceof ChatError
          ? error
          : new ChatError("unreachable", messageOf(error), { cause: error, retryable: true });
        const wait = historyDelay(attempt++, chatError.retryAfterMs);
        this.#fillWaits(true, { retryAt: Date.now() + wait, error: chatError });
        await sleep(wait, signal);
        continue;
      }
      if (run !== this.#run) return;
      if (page.epoch !== undefined && page.epoch !== this.#epoch) {
        // Its seqs name other messages: the resume says epoch_changed and starts over.
        return this.#drop("the room's epoch changed");
      }
      for (const item of page.items) this.#take(item);
      if (page.incomplete) {
        if (this.#sequence.cursor === after) {
          const wait = historyDelay(attempt++, 0);
          this.#fillWaits(true, { retryAt: Date.now() + wait });
          await sleep(wait, signal);
        }
        continue;
      }
      attempt = 0;
      const last = page.items.at(-1)?.seq;
      const through = page.items.length >= FILL_PAGE && last !== undefined ? last : target;
      for (const [from, to] of this.#sequence.skipTo(through)) {
        const text = `messages ${from} to ${to} of ${this.#s.room} are no longer stored`;
        this.#emit("error", new ChatError("messages_unavailable", text));
      }
    }
  }

  // ---- /history ------------------------------------------------------------------------

  /**
   * One page, retried a bounded number of times (503, 429, network errors, incomplete pages),
   * never sooner than the server's Retry-After.
   *
   * @param {PageQuery} query
   * @param {AbortSignal} signal
   * @returns {Promise<HistoryPage>}
   */
  async #readPageRetrying(query, signal) {
    for (let attempt = 0;; attempt++) {
      const last = attempt === HISTORY_ATTEMPTS - 1;
      try {
        const page = await this.#readPageAuthorized(query, signal);
        if (!page.incomplete) return page;
        if (last) {
          const text = "the server could not read all of this history; try again later";
          throw new ChatError("history_incomplete", text, { retryable: true });
        }
        await sleep(historyDelay(attempt, 0), signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason; // the room's close error, or the caller's
        if (last || !isWorthRetrying(error)) throw error;
        const wait = error instanceof ChatError ? error.retryAfterMs : 0;
        await sleep(historyDelay(attempt, wait), signal);
      }
    }
  }

  /**
   * One page; a 401 with a token function is asked again once with a fresh token.
   *
   * @param {PageQuery} query
   * @param {AbortSignal} signal
   */
  async #readPageAuthorized(query, signal) {
    try {
      return await this.#readPage(query, signal);
    } catch (error) {
      const renewable = typeof this.#s.token === "function";
      if (!(error instanceof ChatError && error.status === 401 && renewable)) throw error;
      if (!(await this.#refreshToken())) throw error;
      return await this.#readPage(query, signal);
    }
  }

  /**
   * @param {PageQuery} query
   * @param {AbortSignal} signal
   * @returns {Promise<HistoryPage>}
   * @throws {ChatError} the server's error code with `status` and `retryAfterMs`
   */
  async #readPage(query, signal) {
    const url = new URL(this.#s.historyUrl);
    url.searchParams.set("r", this.#s.room);
    // Who reads: each reaction's `me` is about them (with a token, the server takes its `sub`).
    if (this.#s.user !== undefined) url.searchParams.set("u", this.#s.user);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    /** @type {Record<string, string>} */
    const headers = {};
    // A header, not ?token=: URLs end up in access logs.
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    const response = await fetch(url, { signal, headers });
    const body = await response.json().catch(() => undefined);
    if (!response.ok) {
      const { code, message } = errorOf(body);
      throw new ChatError(code || `http_${response.status}`, message || `HTTP ${response.status}`, {
        status: response.status,
        retryAfterMs: retryAfterMs(response.headers.get("retry-after")),
        retryable: !REFUSAL_STATUSES.has(response.status),
      });
    }
    if (!Array.isArray(body)) {
      throw new ChatError("invalid_response", "the server sent history in an unknown shape");
    }
    const items = /** @type {Item[]} */ (body.map(toItem).filter(Boolean))
      .sort((a, b) => a.seq - b.seq);
    /** @type {ChatMessage[]} */
    const messages = [];
    for (const item of items) if (item.type === "message") messages.push(item.event);
    return {
      messages,
      items,
      epoch: response.headers.get("x-chat-epoch") ?? undefined,
      incomplete: response.headers.get("x-chat-incomplete") === "true",
    };
  }

  // ---- events --------------------------------------------------------------------------

  /**
   * Tells a new state; `reconnecting` is told again for each new wait (a new `retryAt`).
   *
   * @param {ConnectionState} state
   * @param {Omit<StateEvent, "state">} [detail]
   */
  #setState(state, detail = {}) {
    if (this.#state === state && detail.retryAt === undefined) return;
    this.#state = state;
    this.#emit("state", Object.freeze({ state, ...detail }));
  }

  /**
   * @template {keyof RoomEventMap} K
   * @param {K} type
   * @param {RoomEventMap[K]} event
   */
  #emit(type, event) {
    if (!this.#welcomed) return; // no one can listen before connect resolves
    if (this.#holding) {
      this.#held.push([type, event]);
      return;
    }
    const listeners = this.#listeners.get(type);
    if (!listeners) return;
    for (const listener of [...listeners]) {
      try {
        /** @type {(event: RoomEventMap[K]) => void} */ (listener)(event);
      } catch (error) {
        report(error);
      }
    }
  }

  #release() {
    clearTimeout(this.#holdTimer);
    if (!this.#holding) return;
    this.#holding = false;
    const held = this.#held;
    this.#held = [];
    for (const [type, event] of held) this.#emit(type, /** @type {never} */ (event));
  }
}

/**
 * The seqs an incomplete page of `range` should have held but lacks, as ranges: the `limit`
 * oldest after `afterSeq`, or the `limit` newest before `beforeSeq`.
 *
 * @param {readonly ChatMessage[]} messages ascending by seq
 * @param {{ afterSeq: number | undefined, beforeSeq: number | undefined, limit: number }} range
 * @returns {readonly { readonly from_seq: number, readonly to_seq: number }[]}
 */
function holesOf(messages, { afterSeq, beforeSeq, limit }) {
  const last = messages.at(-1)?.seq;
  let from;
  let to;
  if (afterSeq !== undefined) {
    from = afterSeq + 1;
    to = beforeSeq === undefined ? (last ?? afterSeq) : Math.min(beforeSeq - 1, afterSeq + limit);
  } else {
    to = beforeSeq === undefined ? (last ?? 0) : beforeSeq - 1;
    from = Math.max(1, to - limit + 1);
  }
  const have = new Set(messages.map((message) => message.seq));
  /** @type {{ from_seq: number, to_seq: number }[]} */
  const holes = [];
  for (let seq = from; seq <= to; seq++) {
    if (have.has(seq)) continue;
    const open = holes.at(-1);
    if (open && open.to_seq === seq - 1) open.to_seq = seq;
    else holes.push({ from_seq: seq, to_seq: seq });
  }
  return Object.freeze(holes.map((hole) => Object.freeze(hole)));
}

/** Whether a failed read of /history may succeed later (not a refusal, not a closed room). */
function isWorthRetrying(/** @type {unknown} */ error) {
  if (error instanceof ChatError) return error.retryable;
  return error instanceof TypeError; // fetch's network error
}

/**
 * Joins a room; resolves at the server's first welcome (see chat.d.ts).
 *
 * @param {ConnectOptions} options
 * @returns {Promise<RoomApi>}
 */
export function connect(options) {
  let settings;
  try {
    settings = settingsOf(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return Room.join(settings);
}
