/**
 * Entry point: reads the configuration, picks the store, starts the server, handles signals.
 *
 * @module
 */
import { RedisCluster } from "./cluster/redis_cluster.ts";
import denoConfig from "./deno.json" with { type: "json" };
import { LineLogger, type Logger } from "./log/logger.ts";
import { loadEnvFile } from "./server/env_file.ts";
import { type Config, ConfigError, configFromEnv, configHelp } from "./server/config.ts";
import { type ChatServer, type ChatServerDeps, startChatServer } from "./server/chat_server.ts";
import { MemoryStore } from "./storage/memory_store.ts";
import {
  DatabaseRefusedError,
  DatabaseUnavailableError,
  PostgresStore,
} from "./storage/postgres_store.ts";
import type { MessageRepository } from "./storage/repository.ts";
import { TracedRepository } from "./storage/traced_repository.ts";

function fail(message: string, exitCode: number): never {
  console.error(`error: ${message}`);
  Deno.exit(exitCode);
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
    if (error instanceof DatabaseUnavailableError) fail(error.message, 1);
    // A database or role that does not exist, a wrong password: a bad setting.
    if (error instanceof DatabaseRefusedError) fail(error.message, 2);
    throw error;
  }
}

/** Starts the server, or exits 2 with one line when its address cannot be had. */
function listen(config: Config, deps: ChatServerDeps): ChatServer {
  try {
    return startChatServer(config, deps);
  } catch (error) {
    const where = `${config.host}:${config.port}`;
    if (error instanceof Deno.errors.AddrInUse) {
      fail(
        `port ${config.port} is already in use (${where}): stop what listens there, or pick another port, e.g. PORT=8081`,
        2,
      );
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      fail(`HOST ${config.host} is not an address of this machine: use e.g. HOST=0.0.0.0`, 2);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      fail(
        `not allowed to listen on ${where}: ports below 1024 need privileges; use e.g. PORT=8080`,
        2,
      );
    }
    throw error;
  }
}

/** Where people reach the server: a wildcard address means this machine, so `localhost`. */
function baseUrl(addr: Deno.NetAddr): string {
  const wildcard = addr.hostname === "0.0.0.0" || addr.hostname === "::";
  const host = wildcard
    ? "localhost"
    : addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return `http://${host}:${addr.port}`;
}

const USAGE = `chat-server ${denoConfig.version}: a multi-room WebSocket chat server

Usage: chat-server [--help] [--version]
       (or: deno task start)

Configuration is read from the environment (and .env when started with deno task start):
`;

async function main(): Promise<void> {
  if (Deno.args.includes("--version")) return console.log(denoConfig.version);
  if (Deno.args.includes("--help")) return console.log(USAGE + configHelp());
  loadEnvFile();
  let config: Config;
  try {
    config = configFromEnv();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  const logger = new LineLogger({
    level: config.logLevel,
    format: config.logFormat ?? (Deno.stdout.isTerminal() ? "text" : "json"),
  });
  // Spans for batches and history queries when OTEL_DENO=true; otherwise a pass-through.
  const repository = new TracedRepository(await openStore(config, logger));
  logger.info("store.selected", { store: repository.kind });
  if (config.authSecret === undefined) {
    logger.warn("auth.open_mode", {
      detail: "AUTH_SECRET is unset: anyone may join any room under any name",
    });
  }
  const cluster = config.redisUrl === undefined ? undefined : RedisCluster.start(config.redisUrl, {
    prefix: config.redisPrefix,
    presenceTtlMs: config.presenceTtlMs,
    sentWindowMs: config.idempotencyWindowMs,
    logger,
  });
  if (cluster) {
    logger.info("cluster.enabled", { instance: cluster.instance, prefix: config.redisPrefix });
  }
  const server = listen(config, { repository, logger, cluster });
  let stopping = false;
  const onSignal = async () => {
    if (stopping) {
      // A second signal: the operator wants out now. Say what that costs.
      console.error(
        `error: second signal: exiting before shutdown finished; ${server.unstored} messages were not stored`,
      );
      Deno.exit(1);
    }
    stopping = true;
    logger.info("server.stopping", {});
    const report = await server.shutdown();
    await cluster?.close();
    // Every seq handed out is stored: the next run may keep the rooms' epochs. (A rejected
    // message's seq is not in the store: a new epoch keeps it from being handed out again.)
    if (report.unsaved === 0 && report.rejected === 0) {
      await repository.releaseRooms().catch((error) =>
        logger.warn("store.release_failed", { error: error instanceof Error ? error.name : "" })
      );
    }
    await repository.close();
    if (report.unsaved > 0) {
      console.error(`error: ${report.unsaved} messages could not be stored before shutdown`);
    }
    if (report.rejected > 0) {
      console.error(
        `error: the store refused ${report.rejected} messages (logged as persist.rejected)`,
      );
    }
    logger.info("server.stopped", {
      saved: report.saved,
      unsaved: report.unsaved,
      rejected: report.rejected,
    });
    Deno.exit(report.unsaved > 0 ? 1 : 0);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  // Said only once a signal would stop the server gracefully: whoever waits for this line may
  // send one at once.
  const base = baseUrl(server.addr);
  logger.info("server.listening", {
    host: server.addr.hostname,
    port: server.addr.port,
    url: `${base}/`,
    metrics: `${base}/metrics`,
    health: `${base}/healthz`,
  });
}

if (import.meta.main) await main();
