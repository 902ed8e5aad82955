/**
 * Wires a hub, its persistence pipeline and the HTTP server into one running chat server.
 *
 * @module
 */
import { type Cluster, SoloCluster } from "../chat/cluster.ts";
import { Hub } from "../chat/hub.ts";
import type { Logger } from "../log/logger.ts";
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
import { createHandler, type RouteDeps } from "./routes.ts";
import { clientPage } from "./client_page.ts";

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
}

/** What the server is given rather than builds. */
export interface ChatServerDeps {
  readonly repository: MessageRepository;
  readonly logger: Logger;
  /** Other instances sharing the rooms (Redis); a single instance without it. */
  readonly cluster?: Cluster;
}

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
  const log = new WriteBehindLog(repository, {
    queueLimit: config.persistQueueLimit,
    batchSize: config.persistBatchSize,
    batchWaitMs: config.persistBatchWaitMs,
    historyShowsQueued: config.persistMode === "async",
  });
  const metrics: ServerMetrics = new ServerMetrics({
    connections: () => hub.clientCount,
    rooms: () => hub.roomCount,
    largestRooms: (limit) => hub.largestRooms(limit),
    persistQueueDepth: () => log.queued,
    persisted: () => workers.saved,
    storeUp: () => repository.ping(),
    clusterUp: () => cluster.state !== "degraded",
  });
  const hub: Hub = new Hub({
    metrics,
    outbox: { frames: config.outboxLimit, bytes: config.outboxLimitBytes },
    roomInboxLimit: config.roomQueueLimit,
    log,
    resumeLimit: config.resumeLimit,
    sentWindow: { windowMs: config.idempotencyWindowMs, maxBytes: config.idempotencyMaxBytes },
    persistMode: config.persistMode,
    cluster,
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
  const http = Deno.serve(
    { port: config.port, hostname: config.host, onListen: () => {} },
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
      }),
    ),
  );

  let stopped: Promise<PersistReport> | undefined;
  const shutdown = async (): Promise<PersistReport> => {
    draining = true;
    const deadline = AbortSignal.timeout(config.shutdownTimeoutMs);
    // Durable rooms wait for their messages' commits before they close; past the deadline the
    // workers give those up, so that the rooms (and this shutdown) end.
    workers.giveUpAt(deadline);
    const retentionStopped = retention.stop();
    // New sockets are refused from here on (draining). The hub closes the open ones itself,
    // after their rooms broadcast what they accepted: Deno's own shutdown would close them
    // with 1001 at once, cutting that short.
    await hub.close();
    await sockets.allClosed(AbortSignal.any([deadline, AbortSignal.timeout(CLOSE_HANDSHAKE_MS)]));
    const httpStopped = http.shutdown();
    log.close();
    const report = await workers.stop(deadline);
    await Promise.all([httpStopped, retentionStopped]);
    return report;
  };
  return {
    addr: http.addr,
    shutdown: () => stopped ??= shutdown(),
    get unstored() {
      return log.unstored;
    },
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
}

function routeDeps(config: Config, parts: ServerParts): RouteDeps {
  const { repository, workers, log, isDraining } = parts;
  const verifier = config.authSecret === undefined
    ? undefined
    : new TokenVerifier(config.authSecret);
  return {
    log,
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
      draining: isDraining,
      refused: (code) => parts.metrics.requestRefused(code),
      logger: parts.logger,
    },
    metrics: parts.metrics,
    page: clientPage(config.maxContentChars),
    activeRooms: () => parts.hub.largestRooms(Infinity),
    readiness: async () => {
      // A lost Redis degrades cross-instance delivery, not this instance: it stays ready.
      const base = {
        store: repository.kind,
        queued: log.queued,
        cluster: parts.cluster.state,
      };
      if (isDraining()) return { ready: false, reason: "shutting down", ...base };
      if (!(await repository.ping())) {
        return { ready: false, reason: "store not answering", ...base };
      }
      if (workers.failingBatches > 0) {
        return { ready: false, reason: "store writes failing, retrying", ...base };
      }
      return { ready: true, ...base };
    },
  };
}
