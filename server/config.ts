/**
 * Configuration: every environment variable the server reads, parsed once into a frozen object.
 * The table below is the single source of truth for names, defaults and documentation.
 *
 * @module
 */
import { LOG_FORMATS, LOG_LEVELS } from "../log/logger.ts";
import { parseDuration } from "./duration.ts";
import { PROTOCOL_LEVELS, type ProtocolLevel } from "./request_params.ts";

/** A variable has a bad value; the message names it. Start-up exits with code 2. */
export class ConfigError extends Error {
  readonly code = "invalid_config";
  /** The environment variable at fault. */
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(`${variable} ${message}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/** What an acknowledgement means (`PERSIST_MODE`). */
export const PERSIST_MODES = ["async", "durable"] as const;

interface VariableSpec<T> {
  /** Environment variable name. */
  readonly name: string;
  /** Value used when the variable is unset or empty; `undefined` means "no value". */
  readonly fallback: string | undefined;
  /** One line for `--help` and the README. */
  readonly doc: string;
  /** Turns the raw string into the value, or returns an error text ("must be ..."). */
  readonly parse: (raw: string) => T | ParseFailure;
}

class ParseFailure {
  constructor(readonly message: string) {}
}

function integer(min: number, max: number): (raw: string) => number | ParseFailure {
  return (raw) => {
    const value = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
    return Number.isSafeInteger(value) && value >= min && value <= max
      ? value
      : new ParseFailure(`must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  };
}

/** A {@linkcode parseDuration} duration from `minMs` to `maxMs`. */
function duration(maxMs: number, minMs = 0): (raw: string) => number | ParseFailure {
  const bounds = minMs > 0 ? `from ${minMs} to ${maxMs} ms` : `at most ${maxMs} ms`;
  return (raw) => {
    // Blanks around the value have always been ignored here; existing .env files may have them.
    const ms = parseDuration(raw.trim());
    return ms !== undefined && ms >= minMs && ms <= maxMs ? ms : new ParseFailure(
      `must be a duration such as "10s", "500ms", "2m" or "1h30m" (${bounds}), got ${
        JSON.stringify(raw)
      }`,
    );
  };
}

function oneOf<T extends string>(values: readonly T[]): (raw: string) => T | ParseFailure {
  return (raw) =>
    (values as readonly string[]).includes(raw)
      ? raw as T
      : new ParseFailure(`must be one of ${values.join(", ")}, got ${JSON.stringify(raw)}`);
}

function text(raw: string): string {
  return raw;
}

/** A comma-separated list; blanks are dropped. */
function list(raw: string): readonly string[] {
  return Object.freeze(raw.split(",").map((item) => item.trim()).filter((item) => item !== ""));
}

/** A comma list of origins (`https://host[:port]`), as CSP `frame-ancestors` takes them. */
function origins(raw: string): readonly string[] | ParseFailure {
  const items = list(raw);
  const bad = items.find((item) => !/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(item));
  return bad === undefined ? items : new ParseFailure(
    `must be origins such as https://app.example.com, got ${JSON.stringify(bad)}`,
  );
}

function protocolLevel(raw: string): ProtocolLevel | ParseFailure {
  const level = PROTOCOL_LEVELS.find((each) => String(each) === raw.trim());
  return level ??
    new ParseFailure(`must be one of ${PROTOCOL_LEVELS.join(", ")}, got ${JSON.stringify(raw)}`);
}

function redisUrl(raw: string): string | ParseFailure {
  return /^rediss?:\/\//.test(raw) ? raw : new ParseFailure("must be a redis:// or rediss:// URL");
}

function secret(raw: string): string | ParseFailure {
  // HS256 keys shorter than the hash are brute-forceable; refuse them rather than warn.
  return new TextEncoder().encode(raw).length >= 32
    ? raw
    : new ParseFailure("must be at least 32 bytes long (use e.g. `openssl rand -base64 48`)");
}

function bearerToken(raw: string): string | ParseFailure {
  // Short tokens invite guessing, and /metrics has no rate limit. Anything outside visible ASCII
  // could not be sent in an `Authorization` header: /metrics would stay locked without saying why.
  return /^[\x21-\x7e]{16,}$/.test(raw) ? raw : new ParseFailure(
    "must be at least 16 visible ASCII characters, no blanks (use e.g. `openssl rand -hex 24`)",
  );
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

/** A size in bytes: a whole number with an optional unit `B`, `KiB`, `MiB` or `GiB`. */
function bytes(min: number, max: number): (raw: string) => number | ParseFailure {
  return (raw) => {
    const match = raw.trim().match(/^(\d+)\s*(B|KiB|MiB|GiB)?$/);
    const value = match ? Number(match[1]) * (BYTE_UNITS[match[2] ?? ""] as number) : NaN;
    return Number.isSafeInteger(value) && value >= min && value <= max ? value : new ParseFailure(
      `must be a size such as "256MiB", "1GiB" or "65536" (bytes), from ${min} to ${max} bytes, got ${
        JSON.stringify(raw)
      }`,
    );
  };
}

function bearerTokens(raw: string): readonly string[] | ParseFailure {
  const tokens = list(raw);
  for (const token of tokens) {
    const checked = bearerToken(token);
    if (checked instanceof ParseFailure) return new ParseFailure(`each key ${checked.message}`);
  }
  return tokens;
}

/** `true` or `false`, nothing else: a typo must not silently mean either. */
function flag(raw: string): boolean | ParseFailure {
  if (raw === "true" || raw === "false") return raw === "true";
  return new ParseFailure(`must be true or false, got ${JSON.stringify(raw)}`);
}

function webhookUrl(raw: string): string | ParseFailure {
  const url = URL.parse(raw);
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
    return new ParseFailure(`must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  // fetch refuses URLs with credentials: say so now rather than fail every delivery.
  if (url.username !== "" || url.password !== "") {
    return new ParseFailure("must not hold credentials (user:password@): sign with WEBHOOK_SECRET");
  }
  return url.href;
}

function postgresUrl(raw: string): string | ParseFailure {
  return /^postgres(ql)?:\/\//.test(raw)
    ? raw
    : new ParseFailure("must be a postgres:// or postgresql:// URL");
}

const MAX_COUNT = 10_000_000;
/** Threads of one process: beyond a few per core they only add Redis round trips. */
const MAX_WORKERS = 256;

/** Every variable the server reads, in the order `--help` lists them. */
export const CONFIG_VARIABLES = {
  port: {
    name: "PORT",
    fallback: "8080",
    doc: "TCP port to listen on (0: any free port)",
    parse: integer(0, 65535),
  },
  host: { name: "HOST", fallback: "0.0.0.0", doc: "interface to listen on", parse: text },
  workers: {
    name: "WORKERS",
    fallback: "1",
    doc:
      "server threads sharing PORT, e.g. one per core (above 1: needs REDIS_URL, through which they share the rooms)",
    parse: integer(1, MAX_WORKERS),
  },
  databaseUrl: {
    name: "DATABASE_URL",
    fallback: undefined,
    doc: "PostgreSQL URL; unset: in-memory store",
    parse: postgresUrl,
  },
  dbConnectTimeoutMs: {
    name: "DB_CONNECT_TIMEOUT",
    fallback: "10s",
    doc: "how long start-up retries an unreachable database before exiting 1",
    parse: duration(3_600_000),
  },
  dbQueryTimeoutMs: {
    name: "DB_QUERY_TIMEOUT",
    fallback: "5s",
    doc: "longest a database write or read may take before it is retried on a new connection",
    parse: duration(600_000),
  },
  redisUrl: {
    name: "REDIS_URL",
    fallback: undefined,
    doc: "Redis URL shared by several instances serving the same rooms; unset: one instance",
    parse: redisUrl,
  },
  redisPrefix: {
    name: "REDIS_PREFIX",
    fallback: "chat:",
    doc: "prefix of every Redis key and channel (several deployments can share one Redis)",
    parse: text,
  },
  presenceTtlMs: {
    name: "PRESENCE_TTL",
    fallback: "15s",
    doc: "members of an instance that stopped heartbeating leave everyone's presence after this",
    parse: duration(3_600_000),
  },
  authSecret: {
    name: "AUTH_SECRET",
    fallback: undefined,
    doc: "HS256 secret for JWTs (at least 32 bytes); unset: open mode, anyone joins any room",
    parse: secret,
  },
  apiKeys: {
    name: "API_KEYS",
    fallback: undefined,
    doc:
      "server keys for /api/* (comma list, each at least 16 visible ASCII characters), sent as Authorization: Bearer; a JWT with the api scope works too",
    parse: bearerTokens,
  },
  metricsToken: {
    name: "METRICS_TOKEN",
    fallback: undefined,
    doc:
      "bearer token /metrics requires (at least 16 visible ASCII characters); unset: /metrics is open, or answers 401 when AUTH_SECRET is set",
    parse: bearerToken,
  },
  metricsRoomLabels: {
    name: "METRICS_ROOM_LABELS",
    fallback: "false",
    doc: "true: /metrics names the largest rooms (chat_room_members{room=...}); false: counts only",
    parse: flag,
  },
  allowedOrigins: {
    name: "ALLOWED_ORIGINS",
    fallback: undefined,
    doc:
      "browser origins allowed to open sockets and to read /history and /api/* (CORS), comma list; * allows any; unset: same host and localhost, no CORS",
    parse: list,
  },
  frameAncestors: {
    name: "FRAME_ANCESTORS",
    fallback: undefined,
    doc:
      "origins that may embed the page in a frame (comma list, e.g. https://app.example.com); unset: none",
    parse: origins,
  },
  defaultProtocol: {
    name: "DEFAULT_PROTOCOL",
    fallback: "2",
    doc:
      "protocol level of a connection that does not ask for one with v=: 2 (current) or 0 (the Go server's clients: message objects only, joins, leaves and errors as SYSTEM messages)",
    parse: protocolLevel,
  },
  maxFrameBytes: {
    name: "MAX_FRAME_BYTES",
    fallback: "16384",
    doc: "largest frame a client may send; larger: close 1009",
    parse: integer(256, 16 << 20),
  },
  rateLimitPerSecond: {
    name: "RATE_LIMIT_PER_SECOND",
    fallback: "10",
    doc: "frames per second one connection may send, sustained",
    parse: integer(1, 100_000),
  },
  rateLimitBurst: {
    name: "RATE_LIMIT_BURST",
    fallback: "20",
    doc: "frames one connection may send at once above the sustained rate",
    parse: integer(1, 100_000),
  },
  rateLimitStrikes: {
    name: "RATE_LIMIT_STRIKES",
    fallback: "50",
    doc: "refused (rate_limited) frames tolerated, recovering 1 per second; beyond: close 1008",
    parse: integer(1, 100_000),
  },
  maxConnections: {
    name: "MAX_CONNECTIONS",
    fallback: "20000",
    doc: "open sockets in total; beyond: HTTP 503",
    parse: integer(1, MAX_COUNT),
  },
  maxConnectionsPerIp: {
    name: "MAX_CONNECTIONS_PER_IP",
    fallback: "100",
    doc: "open sockets per client IP; beyond: HTTP 429",
    parse: integer(1, MAX_COUNT),
  },
  retentionDays: {
    name: "RETENTION_DAYS",
    fallback: undefined,
    doc: "messages older than this many days are deleted; unset: no age limit",
    parse: integer(1, 36_500),
  },
  retentionMaxPerRoom: {
    name: "RETENTION_MAX_PER_ROOM",
    fallback: undefined,
    doc: "newest messages kept per room, older ones deleted; unset: no count limit",
    parse: integer(1, MAX_COUNT),
  },
  retentionIntervalMs: {
    name: "RETENTION_INTERVAL",
    fallback: "60m",
    doc: "time between retention runs (the first runs at start-up)",
    parse: duration(86_400_000, 1_000),
  },
  logLevel: {
    name: "LOG_LEVEL",
    fallback: "info",
    doc: "debug, info, warn or error",
    parse: oneOf(LOG_LEVELS),
  },
  logFormat: {
    name: "LOG_FORMAT",
    fallback: undefined,
    doc: "json or text; unset: text on a terminal, json otherwise",
    parse: oneOf(LOG_FORMATS),
  },
  outboxLimit: {
    name: "OUTBOX_LIMIT",
    fallback: "256",
    doc: "frames that may wait for one client before it is cut off with 1013",
    parse: integer(1, MAX_COUNT),
  },
  outboxLimitBytes: {
    name: "OUTBOX_LIMIT_BYTES",
    fallback: "1048576",
    doc:
      "bytes that may wait in one client's socket before it is cut off with 1013 (checked every eighth of it written)",
    parse: integer(1024, 1 << 30),
  },
  maxContentChars: {
    name: "MAX_CONTENT_CHARS",
    fallback: "4000",
    doc: "longest message content, in characters, after trimming",
    parse: integer(1, 1_000_000),
  },
  roomQueueLimit: {
    name: "ROOM_QUEUE_LIMIT",
    fallback: "4096",
    doc: "messages that may wait for a room's loop; beyond: error room_busy",
    parse: integer(1, MAX_COUNT),
  },
  resumeLimit: {
    name: "RESUME_LIMIT",
    fallback: "1000",
    doc: "messages a reconnecting client (since_seq=) is replayed at most; also kept per room",
    parse: integer(1, 100_000),
  },
  memoryMaxPerRoom: {
    name: "MEMORY_MAX_PER_ROOM",
    fallback: "10000",
    doc: "items (messages and changes) the in-memory store keeps per room",
    parse: integer(1, MAX_COUNT),
  },
  memoryMaxRooms: {
    name: "MEMORY_MAX_ROOMS",
    fallback: "10000",
    doc: "rooms the in-memory store keeps (least recently written forgotten first)",
    parse: integer(1, MAX_COUNT),
  },
  memoryMaxBytes: {
    name: "MEMORY_MAX_BYTES",
    fallback: "268435456",
    doc:
      "estimated bytes of messages the in-memory store keeps (256 MiB; beyond it the oldest messages of the least recently written rooms go first)",
    parse: integer(1 << 20, Number.MAX_SAFE_INTEGER),
  },
  historyRateLimit: {
    name: "HISTORY_RATE_LIMIT",
    fallback: "20",
    doc: "/history requests per second per client address (bursts of twice that); beyond: 429",
    parse: integer(1, 100_000),
  },
  memoryBudgetBytes: {
    name: "MEMORY_BUDGET",
    fallback: "256MiB",
    doc:
      "estimated bytes the server may hold for clients: rooms' resume buffers (trimmed first), messages not yet stored, sockets' buffers; past it new messages get error backlog (KiB, MiB, GiB suffixes)",
    parse: bytes(1 << 20, 2 ** 50),
  },
  idempotencyWindowMs: {
    name: "IDEMPOTENCY_WINDOW",
    fallback: "10m",
    doc:
      "how long a client_id is remembered in memory and Redis: a re-send within it is acknowledged, not sent again (PostgreSQL: as long as the row exists)",
    parse: duration(7 * 86_400_000, 1_000),
  },
  idempotencyMaxBytes: {
    name: "IDEMPOTENCY_MAX_BYTES",
    fallback: "33554432",
    doc:
      "estimated bytes of remembered client_ids in memory (32 MiB, about 150,000); beyond it the oldest go first",
    parse: integer(1 << 20, Number.MAX_SAFE_INTEGER),
  },
  persistMode: {
    name: "PERSIST_MODE",
    fallback: "async",
    doc:
      "async: a message is broadcast and acknowledged at once, stored within milliseconds; durable (PostgreSQL only): only once the batch holding it committed",
    parse: oneOf(PERSIST_MODES),
  },
  persistWorkers: {
    name: "PERSIST_WORKERS",
    fallback: "4",
    doc: "persistence workers writing batches concurrently",
    parse: integer(1, 64),
  },
  persistBatchSize: {
    name: "PERSIST_BATCH_SIZE",
    fallback: "500",
    doc: "messages per persistence batch at most",
    parse: integer(1, 10_000),
  },
  persistBatchWaitMs: {
    name: "PERSIST_BATCH_WAIT_MS",
    fallback: "10",
    doc: "how long a batch waits to fill, in milliseconds",
    parse: integer(0, 10_000),
  },
  persistQueueLimit: {
    name: "PERSIST_QUEUE_LIMIT",
    fallback: "100000",
    doc: "messages waiting to be stored at most; beyond: error backlog, not broadcast",
    parse: integer(1, MAX_COUNT),
  },
  shutdownTimeoutMs: {
    name: "SHUTDOWN_TIMEOUT",
    fallback: "10s",
    doc: "how long shutdown may take to store queued messages",
    parse: duration(3_600_000),
  },
  presenceLeaveGraceMs: {
    name: "PRESENCE_LEAVE_GRACE",
    fallback: "5s",
    doc:
      "how long a user stays listed after its last connection closed: a reconnect within it shows no leave and no join (0: leaves at once)",
    parse: duration(600_000),
  },
  editWindowMs: {
    name: "EDIT_WINDOW",
    fallback: undefined,
    doc:
      "how long after sending a message its author may edit or delete it (e.g. 15m); unset: no limit (moderators' deletes have none)",
    parse: duration(10 * 365 * 86_400_000),
  },
  idleTimeoutMs: {
    name: "IDLE_TIMEOUT",
    fallback: "60s",
    doc: "a socket silent this long (no pong to pings) is closed; 0 disables",
    parse: duration(3_600_000),
  },
  webhookUrl: {
    name: "WEBHOOK_URL",
    fallback: undefined,
    doc:
      "URL every chat event is POSTed to (room.occupied, room.vacated, user.online, user.offline, message.created); unset: no webhooks",
    parse: webhookUrl,
  },
  webhookSecret: {
    name: "WEBHOOK_SECRET",
    fallback: undefined,
    doc:
      "HMAC-SHA256 key of each webhook's X-Chat-Signature (at least 32 bytes); required with WEBHOOK_URL",
    parse: secret,
  },
  webhookOfflineGraceMs: {
    name: "WEBHOOK_OFFLINE_GRACE",
    fallback: "30s",
    doc:
      "how long a user without connections anywhere stays online: user.offline after it, a reconnect within it sends nothing",
    parse: duration(86_400_000),
  },
  webhookTimeoutMs: {
    name: "WEBHOOK_TIMEOUT",
    fallback: "5s",
    doc: "longest one webhook request may take, answer included; then it is retried",
    parse: duration(600_000, 100),
  },
  webhookRetryWindowMs: {
    name: "WEBHOOK_RETRY_WINDOW",
    fallback: "10m",
    doc:
      "how long after its event a webhook is still retried (backoff 1s doubling to 60s, jittered); then given up",
    parse: duration(7 * 86_400_000),
  },
  webhookQueueBytes: {
    name: "WEBHOOK_QUEUE_BYTES",
    fallback: "16MiB",
    doc:
      "estimated bytes of webhook events waiting to be sent; beyond it the oldest are dropped (KiB, MiB, GiB suffixes)",
    parse: bytes(64 * 1024, 2 ** 40),
  },
  webhookConcurrency: {
    name: "WEBHOOK_CONCURRENCY",
    fallback: "4",
    doc: "webhook requests in flight at most",
    parse: integer(1, 256),
  },
} as const satisfies Record<string, VariableSpec<unknown>>;

type Specs = typeof CONFIG_VARIABLES;
type ValueOf<S> = S extends VariableSpec<infer T> ? Exclude<T, ParseFailure> : never;
type FallbackOf<S> = S extends { fallback: undefined } ? undefined : never;

/** The parsed configuration. Units are in the names where they matter. */
export type Config = { readonly [K in keyof Specs]: ValueOf<Specs[K]> | FallbackOf<Specs[K]> };

/**
 * Parses an environment into a frozen {@linkcode Config}; an empty value counts as unset.
 *
 * @throws {ConfigError} naming the first variable with a bad value.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(CONFIG_VARIABLES) as [string, VariableSpec<unknown>][]) {
    const raw = env[spec.name] || spec.fallback;
    if (raw === undefined) {
      config[key] = undefined;
      continue;
    }
    const value = spec.parse(raw);
    if (value instanceof ParseFailure) throw new ConfigError(spec.name, value.message);
    config[key] = value;
  }
  if (config.persistMode === "durable" && config.databaseUrl === undefined) {
    throw new ConfigError("PERSIST_MODE", "durable needs DATABASE_URL (a PostgreSQL store)");
  }
  if (config.persistMode === "durable" && config.redisUrl !== undefined) {
    throw new ConfigError(
      "PERSIST_MODE",
      "durable is for a single instance; with REDIS_URL use async (see docs/protocol.md)",
    );
  }
  if ((config.workers as number) > 1 && config.redisUrl === undefined) {
    throw workersWithoutRedis(config.workers as number);
  }
  if (config.webhookUrl !== undefined && config.webhookSecret === undefined) {
    throw new ConfigError(
      "WEBHOOK_SECRET",
      "must be set when WEBHOOK_URL is: receivers verify X-Chat-Signature with it",
    );
  }
  return Object.freeze(config) as Config;
}

function workersWithoutRedis(workers: number): ConfigError {
  const error = new ConfigError("WORKERS", "needs REDIS_URL");
  // Said as the operator wrote it: `WORKERS=2 needs ...`.
  error.message = `WORKERS=${workers} needs REDIS_URL: the workers share the rooms through ` +
    "Redis, as several instances do (start one, e.g. REDIS_URL=redis://127.0.0.1:6379, or use " +
    "WORKERS=1)";
  return error;
}

/**
 * The `--help` text: every variable with its default and meaning, from the same table the
 * parser uses, so the two cannot drift apart.
 */
export function configHelp(): string {
  const rows = Object.values(CONFIG_VARIABLES) as VariableSpec<unknown>[];
  const width = Math.max(...rows.map((spec) => spec.name.length));
  return rows
    .map((spec) =>
      `  ${spec.name.padEnd(width)}  ${spec.doc} (default: ${spec.fallback ?? "unset"})`
    )
    .join("\n");
}

/**
 * Reads the process environment once.
 *
 * @throws {ConfigError} naming the first variable with a bad value.
 */
export function configFromEnv(): Config {
  return parseConfig(Deno.env.toObject());
}
