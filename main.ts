/**
 * Entry point: reads the configuration, picks the store, starts the server, handles signals.
 *
 * @module
 */
import { RedisCluster } from "./cluster/redis_cluster.ts";
import denoConfig from "./deno.json" with { type: "json" };
import { LineLogger, type Logger } from "./log/logger.ts";
import { type Config, ConfigError, configFromEnv, configHelp } from "./server/config.ts";
import { startChatServer } from "./server/chat_server.ts";
import { MemoryStore } from "./storage/memory_store.ts";
import { DatabaseUnavailableError, PostgresStore } from "./storage/postgres_store.ts";
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
    throw error;
  }
}

const USAGE = `chat-server ${denoConfig.version}: a multi-room WebSocket chat server

Usage: chat-server [--help] [--version]
       (or: deno task start)

Configuration is read from the environment (and .env when started with deno task start):
`;

async function main(): Promise<void> {
  if (Deno.args.includes("--version")) return console.log(denoConfig.version);
  if (Deno.args.includes("--help")) return console.log(USAGE + configHelp());
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
  const server = startChatServer(config, { repository, logger, cluster });
  logger.info("server.listening", { host: server.addr.hostname, port: server.addr.port });

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
    // Every seq handed out is stored: the next run may keep the rooms' epochs.
    if (report.unsaved === 0) {
      await repository.releaseRooms().catch((error) =>
        logger.warn("store.release_failed", { error: error instanceof Error ? error.name : "" })
      );
    }
    await repository.close();
    if (report.unsaved > 0) {
      console.error(`error: ${report.unsaved} messages could not be stored before shutdown`);
    }
    logger.info("server.stopped", { saved: report.saved, unsaved: report.unsaved });
    Deno.exit(report.unsaved > 0 ? 1 : 0);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
}

if (import.meta.main) await main();
