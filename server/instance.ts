/**
 * One server instance: its store, its place in the cluster (Redis) and its chat server, started
 * and stopped as a unit. `main.ts` runs one in its own thread (`WORKERS=1`); under `WORKERS=n`
 * each worker thread runs one ({@linkcode WorkerPool}).
 *
 * @module
 */
import { RedisCluster } from "../cluster/redis_cluster.ts";
import type { Logger } from "../log/logger.ts";
import { MemoryStore } from "../storage/memory_store.ts";
import type { PersistReport } from "../storage/persist_workers.ts";
import {
  DatabaseRefusedError,
  DatabaseUnavailableError,
  PostgresStore,
} from "../storage/postgres_store.ts";
import type { MessageRepository } from "../storage/repository.ts";
import { TracedRepository } from "../storage/traced_repository.ts";
import {
  type ChatServer,
  type ChatServerDeps,
  startChatServer,
  type WorkerRole,
} from "./chat_server.ts";
import type { Config } from "./config.ts";

/**
 * The server could not start; `message` is the one line to print (after `error: `), `exitCode`
 * what to exit with: 2 for a setting to change, 1 for a dependency out of reach.
 */
export class StartupError extends Error {
  readonly code = "startup_failed";
  readonly exitCode: 1 | 2;

  constructor(message: string, exitCode: 1 | 2, options?: ErrorOptions) {
    super(message, options);
    this.name = "StartupError";
    this.exitCode = exitCode;
  }
}

/**
 * A started server as `main.ts` drives it: one {@linkcode Instance}, or a
 * {@linkcode WorkerPool} of them behaving as one from the outside.
 */
export interface RunningServer {
  /** The address it listens on (the real port when `PORT=0`). */
  readonly addr: Deno.NetAddr;
  /** Stops gracefully (sockets closed with 1001, queued messages stored, Redis left). */
  stop(): Promise<PersistReport>;
  /** Messages broadcast and not yet stored: what is lost if the process exits now. */
  unstored(): Promise<number>;
  /** Settles with what went wrong if the server fails while running (a worker crashed). */
  readonly failed: Promise<string>;
}

/** Options of {@linkcode Instance.start}. */
export interface InstanceOptions {
  readonly logger: Logger;
  /** Set when the instance is one of `WORKERS` threads. */
  readonly worker?: WorkerRole;
}

/**
 * Store, cluster and chat server of one instance.
 *
 * @example
 * ```ts
 * const instance = await Instance.start(config, { logger });
 * const { unsaved } = await instance.stop();
 * ```
 */
export class Instance implements RunningServer {
  readonly server: ChatServer;
  readonly #repository: MessageRepository;
  readonly #cluster: RedisCluster | undefined;
  readonly #logger: Logger;
  /** One instance only fails by throwing: this never settles. */
  readonly failed: Promise<string> = new Promise(() => {});

  private constructor(
    server: ChatServer,
    parts: { repository: MessageRepository; cluster?: RedisCluster; logger: Logger },
  ) {
    this.server = server;
    this.#repository = parts.repository;
    this.#cluster = parts.cluster;
    this.#logger = parts.logger;
  }

  /**
   * Opens the store, joins the cluster when `REDIS_URL` is set, and starts listening.
   *
   * @throws {StartupError} when the store or the address cannot be had.
   */
  static async start(config: Config, options: InstanceOptions): Promise<Instance> {
    const { logger } = options;
    // Spans for batches and history queries when OTEL_DENO=true; otherwise a pass-through.
    const repository = new TracedRepository(await openStore(config, logger));
    logger.info("store.selected", { store: repository.kind });
    if (config.authSecret === undefined) {
      logger.warn("auth.open_mode", {
        detail: "AUTH_SECRET is unset: anyone may join any room under any name",
      });
    }
    const cluster = config.redisUrl === undefined
      ? undefined
      : RedisCluster.start(config.redisUrl, {
        prefix: config.redisPrefix,
        presenceTtlMs: config.presenceTtlMs,
        sentWindowMs: config.idempotencyWindowMs,
        logger,
      });
    if (cluster) {
      logger.info("cluster.enabled", { instance: cluster.instance, prefix: config.redisPrefix });
    }
    try {
      const server = listen(config, { repository, logger, cluster, worker: options.worker });
      return new Instance(server, { repository, cluster, logger });
    } catch (error) {
      await cluster?.close();
      await repository.close();
      throw error;
    }
  }

  get addr(): Deno.NetAddr {
    return this.server.addr;
  }

  unstored(): Promise<number> {
    return Promise.resolve(this.server.unstored);
  }

  async stop(): Promise<PersistReport> {
    const report = await this.server.shutdown();
    await this.#cluster?.close();
    // Every seq handed out is stored: the next run may keep the rooms' epochs. (A rejected
    // message's seq is not in the store: a new epoch keeps it from being handed out again.)
    if (report.unsaved === 0 && report.rejected === 0) {
      await this.#repository.releaseRooms().catch((error) =>
        this.#logger.warn("store.release_failed", {
          error: error instanceof Error ? error.name : "",
        })
      );
    }
    await this.#repository.close();
    return report;
  }
}

async function openStore(config: Config, logger: Logger): Promise<MessageRepository> {
  if (config.databaseUrl === undefined) {
    return new MemoryStore({
      maxPerRoom: config.memoryMaxPerRoom,
      maxRooms: config.memoryMaxRooms,
      maxBytes: config.memoryMaxBytes,
    });
  }
  try {
    return await PostgresStore.connect(config.databaseUrl, {
      connectTimeoutMs: config.dbConnectTimeoutMs,
      batchTimeoutMs: config.dbQueryTimeoutMs,
      logger,
    });
  } catch (error) {
    // Never fall back to memory when the operator asked for a database.
    if (error instanceof DatabaseUnavailableError) {
      throw new StartupError(error.message, 1, { cause: error });
    }
    // A database or role that does not exist, a wrong password: a bad setting.
    if (error instanceof DatabaseRefusedError) {
      throw new StartupError(error.message, 2, { cause: error });
    }
    throw error;
  }
}

/** Starts the chat server, or says in one line why its address cannot be had. */
function listen(config: Config, deps: ChatServerDeps): ChatServer {
  try {
    return startChatServer(config, deps);
  } catch (error) {
    throw addressError(config, error) ?? error;
  }
}

/**
 * The one line for an address that cannot be listened on, as a {@linkcode StartupError};
 * `undefined` for any other error.
 */
export function addressError(config: Config, error: unknown): StartupError | undefined {
  const where = `${config.host}:${config.port}`;
  const options = { cause: error };
  if (error instanceof Deno.errors.AddrInUse) {
    return new StartupError(
      `port ${config.port} is already in use (${where}): stop what listens there, or pick another port, e.g. PORT=8081`,
      2,
      options,
    );
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new StartupError(
      `HOST ${config.host} is not an address of this machine: use e.g. HOST=0.0.0.0`,
      2,
      options,
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new StartupError(
      `not allowed to listen on ${where}: ports below 1024 need privileges; use e.g. PORT=8080`,
      2,
      options,
    );
  }
  return undefined;
}
