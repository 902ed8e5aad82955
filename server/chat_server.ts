/**
 * Wires a hub, its persistence pipeline and the HTTP server into one running chat server.
 *
 * @module
 */
import { type Cluster, SoloCluster } from "../chat/cluster.ts";
import { Hub } from "../chat/hub.ts";
import { type BudgetListener, MemoryBudget } from "../chat/memory_budget.ts";
import type { Logger } from "../log/logger.ts";
import type { ReadPosition } from "../chat/client.ts";
import { type PersistReport, PersistWorkers } from "../storage/persist_workers.ts";
import { RetentionJob } from "../storage/retention_job.ts";
import type { MessageRepository } from "../storage/repository.ts";
import { WriteBehindLog } from "../storage/write_behind_log.ts";
import type { Config } from "./config.ts";
import { OpenSockets } from "./open_sockets.ts";
import { TokenVerifier } from "./auth.ts";
import { ConnectionLimits } from "./connection_limits.ts";
import { ServerMetrics } from "./metrics.ts";
import { OriginPolicy } from "./origin_policy.ts";
import { createHandler, type Readiness, type RouteDeps } from "./routes.ts";
import { clientPage } from "./client_page.ts";
import { RequestRate } from "./request_rate.ts";
import { WebhookListener } from "../webhooks/webhook_listener.ts";
import { CorsPolicy } from "./cors.ts";
import { LEVEL_0_DEFAULTS } from "./request_params.ts";

/** What a running server offers its owner. */
export interface ChatServer {
  /** The address it listens on (the real port when `PORT=0`). */
  readonly addr: Deno.NetAddr;
  /**
   * Stops accepting, closes every socket with 1001, stores what was queued within
   * `SHUTDOWN_TIMEOUT`, and reports what it could not store. Calling it twice returns the
   * same report.
   */
  shutdown(): Promise<PersistReport>;
  /**
   * Messages broadcast and not yet stored nor given up on: queued, being batched, or being
   * written. What is lost if the process exits now.
   */
  readonly unstored: number;
  /** This server's own metrics (a worker's alone under `WORKERS`), as Prometheus text. */
  metrics(): Promise<string>;
  /** This server's own readiness (a worker's alone under `WORKERS`). */
  readiness(): Promise<Readiness>;
}

/**
 * The part of one of the `WORKERS` threads sharing a port: `/metrics` and `/readyz` answer for
 * all of them, whichever gets the request.
 */
export interface WorkerRole {
  /** 0 to `WORKERS - 1`: the `worker` label of its metrics. */
  readonly index: number;
  /** Every worker's metrics, as one exposition. */
  metrics(): Promise<string>;
  /** Ready only if every worker is, with each one's readiness. */
  readiness(): Promise<Readiness>;
}

/** What the server is given rather than builds. */
export interface ChatServerDeps {
  readonly repository: MessageRepository;
  readonly logger: Logger;
  /** Other instances sharing the rooms (Redis); a single instance without it. */
  readonly cluster?: Cluster;
  /** Set when this server is one of `WORKERS` threads listening on the same port. */
  readonly worker?: WorkerRole;
}

/** Time kept after the last write's timeout for telling clients and closing. */
const CLOSING_MARGIN_MS = 500;
const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 5_000;
/** How long shutdown waits for peers to answer the 1001 close frame. */
const CLOSE_HANDSHAKE_MS = 2_000;

/**
 * Starts listening at once.
 *
 * @example
 * ```ts
 * const server = startChatServer(config, { repository: new MemoryStore(...), logger });
 * // ...
 * const { unsaved } = await server.shutdown();
 * ```
 */
export function startChatServer(config: Config, deps: ChatServerDeps): ChatServer {
  const { repository, logger } = deps;
  const cluster = deps.cluster ?? new SoloCluster();
  const budget = new MemoryBudget(config.memoryBudgetBytes);
  budget.listen(budgetLog(logger, budget));
  const log = new WriteBehindLog(repository, {
    budget,
    queueLimit: config.persistQueueLimit,
    batchSize: config.persistBatchSize,
    batchWaitMs: config.persistBatchWaitMs,
    historyShowsQueued: config.persistMode === "async",
  });
  const metrics: ServerMetrics = new ServerMetrics({
    connections: () => hub.clientCount,
    rooms: () => hub.roomCount,
    largestRooms: config.metricsRoomLabels ? (limit) => hub.largestRooms(limit) : undefined,
    persistQueueDepth: () => log.queued,
    persisted: () => workers.saved,
    storeUp: () => repository.ping(),
    clusterUp: () => cluster.state !== "degraded",
    budget,
    webhookQueue: config.webhookUrl === undefined
      ? undefined
      : () => ({ events: webhooks?.queuedEvents ?? 0, bytes: webhooks?.queuedBytes ?? 0 }),
  }, { labels: deps.worker && { worker: String(deps.worker.index) } });
  const webhooks = startWebhooks(config, { metrics, logger });
  const hub: Hub = new Hub({
    metrics,
    outbox: { frames: config.outboxLimit, bytes: config.outboxLimitBytes },
    roomInboxLimit: config.roomQueueLimit,
    log,
    resumeLimit: config.resumeLimit,
    sentWindow: { windowMs: config.idempotencyWindowMs, maxBytes: config.idempotencyMaxBytes },
    persistMode: config.persistMode,
    presenceLeaveGraceMs: config.presenceLeaveGraceMs,
    editWindowMs: config.editWindowMs,
    budget,
    cluster,
    events: webhooks,
    limits: {
      max_content_chars: config.maxContentChars,
      max_frame_bytes: config.maxFrameBytes,
      rate_per_second: config.rateLimitPerSecond,
      rate_burst: config.rateLimitBurst,
    },
    logger,
  });
  const workers = new PersistWorkers(
    repository,
    log.batches(),
    {
      workers: config.persistWorkers,
      retryBaseMs: RETRY_BASE_MS,
      retryMaxMs: RETRY_MAX_MS,
      logger,
      onBatch: (seconds, ok) => metrics.batchWritten(seconds, ok ? "ok" : "failed"),
      onSettled: (batch, stored) => log.settled(batch, stored),
      onRejected: (_message, code) => metrics.messageRejected(code),
    },
  );
  const retention = new RetentionJob(repository, {
    days: config.retentionDays,
    maxPerRoom: config.retentionMaxPerRoom,
    intervalMs: config.retentionIntervalMs,
    logger,
    onRemoved: (count) => metrics.messagesPruned(count),
  });
  retention.start();
  const limits = new ConnectionLimits({
    total: config.maxConnections,
    perIp: config.maxConnectionsPerIp,
  });
  const sockets = new OpenSockets(limits);
  let draining = false;
  const isDraining = () => draining;
  const readiness = readinessOf({ repository, log, workers, cluster, isDraining });
  const http = Deno.serve(
    {
      port: config.port,
      hostname: config.host,
      // Workers share the port; the kernel spreads new connections over them.
      ...(deps.worker && { reusePort: true }),
      onListen: () => {},
    },
    createHandler(
      routeDeps(config, {
        hub,
        sockets,
        limits,
        log,
        repository,
        logger,
        workers,
        isDraining,
        cluster,
        metrics,
        readiness,
        worker: deps.worker,
      }),
    ),
  );

  let stopped: Promise<PersistReport> | undefined;
  const shutdown = async (): Promise<PersistReport> => {
    draining = true;
    const deadline = AbortSignal.timeout(config.shutdownTimeoutMs);
    // Storing stops early enough that a write in flight then still ends (it times out after
    // DB_QUERY_TIMEOUT) and its senders are told, before the deadline. Durable rooms wait for
    // their messages' commits before they close; from then on the workers give those up, so
    // that the rooms (and this shutdown) end.
    const storing = AbortSignal.timeout(storingMs(config));
    workers.giveUpAt(storing);
    const retentionStopped = retention.stop();
    // New sockets are refused from here on (draining). The hub closes the open ones itself,
    // after their rooms broadcast what they accepted: Deno's own shutdown would close them
    // with 1001 at once, cutting that short.
    // Every wait below ends at the deadline, however a dependency behaves (a room that never
    // drains, a store call that never returns): SHUTDOWN_TIMEOUT bounds the whole shutdown.
    await untilAborted(hub.close(), deadline);
    await sockets.allClosed(AbortSignal.any([deadline, AbortSignal.timeout(CLOSE_HANDSHAKE_MS)]));
    const httpStopped = http.shutdown();
    log.close();
    // Webhooks deliver what the closed connections decided (vacated, offline) and what was
    // queued, for as long as storing may go on.
    const webhooksStopped = webhooks?.close(storing);
    const report = await untilAborted(workers.stop(storing), deadline) ?? {
      // An in-flight save did not return: what is not known to be stored counts as unsaved.
      saved: workers.saved,
      unsaved: log.unstored,
      rejected: workers.rejected,
    };
    await untilAborted(Promise.all([httpStopped, retentionStopped, webhooksStopped]), deadline);
    return report;
  };
  return {
    addr: http.addr,
    shutdown: () => stopped ??= shutdown(),
    get unstored() {
      return log.unstored;
    },
    metrics: () => metrics.render(),
    readiness,
  };
}

interface ServerParts extends ChatServerDeps {
  readonly hub: Hub;
  readonly sockets: OpenSockets;
  readonly limits: ConnectionLimits;
  readonly log: WriteBehindLog;
  readonly workers: PersistWorkers;
  readonly isDraining: () => boolean;
  readonly cluster: Cluster;
  readonly metrics: ServerMetrics;
  /** This server's own readiness. */
  readonly readiness: () => Promise<Readiness>;
}

function routeDeps(config: Config, parts: ServerParts): RouteDeps {
  const { log, worker, isDraining } = parts;
  const verifier = config.authSecret === undefined
    ? undefined
    : new TokenVerifier(config.authSecret);
  return {
    log,
    historyRate: new RequestRate(config.historyRateLimit),
    unread: async (user) =>
      (await log.unread(user)).map(({ room, unread, readSeq, lastSeq }) => ({
        room,
        unread,
        read_seq: readSeq,
        last_seq: Math.max(lastSeq, parts.hub.sequenceOf(room)?.lastSeq ?? 0),
      })),
    epochOf: async (room) =>
      parts.hub.sequenceOf(room)?.epoch ?? await parts.cluster.epochOf(room) ??
        (await log.roomSequence(room))?.epoch,
    logger: parts.logger,
    verifier,
    chat: {
      hub: parts.hub,
      sockets: parts.sockets,
      limits: parts.limits,
      origins: new OriginPolicy(config.allowedOrigins),
      verifier,
      policy: {
        maxContentChars: config.maxContentChars,
        maxFrameBytes: config.maxFrameBytes,
        ratePerSecond: config.rateLimitPerSecond,
        rateBurst: config.rateLimitBurst,
        rateStrikes: config.rateLimitStrikes,
      },
      idleTimeoutMs: config.idleTimeoutMs,
      defaultLevel: config.defaultProtocol,
      readPosition: (user, room) => readPositionOf(log, user, room, parts.logger),
      draining: isDraining,
      refused: (code) => parts.metrics.requestRefused(code),
      logger: parts.logger,
    },
    metrics: parts.metrics,
    metricsToken: config.metricsToken,
    page: clientPage(config.maxContentChars, config.frameAncestors),
    cors: new CorsPolicy(config.allowedOrigins),
    historyDefaultRoom: config.defaultProtocol === 0 ? LEVEL_0_DEFAULTS.room : undefined,
    api: {
      keys: config.apiKeys ?? [],
      verifier,
      publish: (room, sender, submission) => parts.hub.publish(room, sender, submission),
      members: async (room) =>
        parts.hub.membersOf(room) ?? await parts.cluster.membersElsewhere(room) ?? [],
      remove: (room, seq, user) =>
        parts.hub.publishChange(room, user, { kind: "delete", target: seq }, true),
      messageAt: async (room, seq) =>
        (await log.history(room, { afterSeq: seq - 1, beforeSeq: seq + 1, limit: 1 }))[0],
      maxContentChars: config.maxContentChars,
      maxBodyBytes: config.maxFrameBytes,
      rate: new RequestRate(config.rateLimitPerSecond),
    },
    activeRooms: () => parts.hub.largestRooms(Infinity),
    // A worker's siblings answer for the whole server, whichever worker got the request.
    readiness: worker ? () => worker.readiness() : parts.readiness,
    scrape: worker ? () => worker.metrics() : () => parts.metrics.render(),
  };
}

/** Whether this server can store messages right now, and why not. */
function readinessOf(parts: {
  repository: MessageRepository;
  log: WriteBehindLog;
  workers: PersistWorkers;
  cluster: Cluster;
  isDraining: () => boolean;
}): () => Promise<Readiness> {
  const { repository, log, workers, cluster, isDraining } = parts;
  return async () => {
    // A lost Redis degrades cross-instance delivery, not this instance: it stays ready.
    const base = { store: repository.kind, queued: log.queued, cluster: cluster.state };
    if (isDraining()) return { ready: false, reason: "shutting down", ...base };
    if (!(await repository.ping())) {
      return { ready: false, reason: "store not answering", ...base };
    }
    if (workers.failingBatches > 0) {
      return { ready: false, reason: "store writes failing, retrying", ...base };
    }
    return { ready: true, ...base };
  };
}

/** Longest a connection's upgrade waits for the user's read position (the welcome's `read_seq`). */
const READ_POSITION_TIMEOUT_MS = 250;

/**
 * The user's read position in the room with its unread count; `undefined` if it never reported
 * one or the store does not answer in time (the welcome leaves both out).
 */
async function readPositionOf(
  log: WriteBehindLog,
  user: string,
  room: string,
  logger: Logger,
): Promise<ReadPosition | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const [found] = await Promise.race([
      log.unread(user, room),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out")), READ_POSITION_TIMEOUT_MS);
      }),
    ]);
    return found && { readSeq: found.readSeq, unread: found.unread };
  } catch (error) {
    logger.warn("chat.read_position_failed", {
      room,
      error: error instanceof Error ? error.message : typeof error,
    });
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** Webhooks when `WEBHOOK_URL` is set, across instances through Redis when `REDIS_URL` is. */
function startWebhooks(
  config: Config,
  parts: { metrics: ServerMetrics; logger: Logger },
): WebhookListener | undefined {
  const { webhookUrl: url, webhookSecret: secret } = config;
  if (url === undefined || secret === undefined) return undefined;
  return WebhookListener.start({
    url,
    secret,
    offlineGraceMs: config.webhookOfflineGraceMs,
    timeoutMs: config.webhookTimeoutMs,
    retryWindowMs: config.webhookRetryWindowMs,
    queueBytes: config.webhookQueueBytes,
    concurrency: config.webhookConcurrency,
    redis: config.redisUrl === undefined
      ? undefined
      : { url: config.redisUrl, prefix: config.redisPrefix, ttlMs: config.presenceTtlMs },
    ...parts,
  });
}

/** `task`'s value, or `undefined` once `signal` aborts first (the task is left to itself). */
function untilAborted<T>(task: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  const aborted = new Promise<undefined>((resolve) => {
    if (signal.aborted) resolve(undefined);
    else signal.addEventListener("abort", () => resolve(undefined), { once: true });
  });
  // The task first: one that has already settled wins over a deadline already passed.
  return Promise.race([task, aborted]);
}

/** How long shutdown keeps storing before it gives up on what is left (at least half of it). */
function storingMs(config: Config): number {
  const lastWrite = config.databaseUrl === undefined ? 0 : config.dbQueryTimeoutMs;
  const total = config.shutdownTimeoutMs;
  return Math.max(total / 2, total - lastWrite - CLOSING_MARGIN_MS);
}

/** The budget's turns, logged once each: refusals start (warn, with what holds it), and end. */
function budgetLog(logger: Logger, budget: MemoryBudget): BudgetListener {
  return {
    exhausted: (used) =>
      logger.warn("memory.budget_exhausted", {
        limitBytes: budget.limitBytes,
        recentBytes: used.recent,
        unstoredBytes: used.unstored,
        outboxBytes: used.outbox,
      }),
    recovered: () => logger.info("memory.budget_recovered", { usedBytes: budget.usedBytes }),
  };
}
