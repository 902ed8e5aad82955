/**
 * Entry point: reads the configuration, starts the server (one instance in this thread, or
 * `WORKERS` threads of them), handles signals.
 *
 * @module
 */
import denoConfig from "./deno.json" with { type: "json" };
import { LineLogger, type LogFormat, type Logger } from "./log/logger.ts";
import { loadEnvFile } from "./server/env_file.ts";
import { type Config, ConfigError, configFromEnv, configHelp } from "./server/config.ts";
import { Instance, type RunningServer, StartupError } from "./server/instance.ts";
import { WorkerPool } from "./server/workers.ts";

function fail(message: string, exitCode: number): never {
  console.error(`error: ${message}`);
  Deno.exit(exitCode);
}

/** One instance in this thread (`WORKERS=1`), or a pool of worker threads. */
async function start(
  config: Config,
  options: { logger: Logger; logFormat: LogFormat },
): Promise<RunningServer> {
  try {
    if (config.workers === 1) return await Instance.start(config, options);
    return await WorkerPool.start(config, options);
  } catch (error) {
    if (error instanceof StartupError) fail(error.message, error.exitCode);
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
  const logFormat = config.logFormat ?? (Deno.stdout.isTerminal() ? "text" : "json");
  const logger = new LineLogger({ level: config.logLevel, format: logFormat });
  const server = await start(config, { logger, logFormat });
  let stopping = false;
  const stop = async (failure?: string) => {
    if (stopping) {
      if (failure !== undefined) return;
      // A second signal: the operator wants out now. Say what that costs.
      const unstored = await server.unstored();
      console.error(
        `error: second signal: exiting before shutdown finished; ${unstored} messages were not stored`,
      );
      Deno.exit(1);
    }
    stopping = true;
    logger.info("server.stopping", {});
    const report = await server.stop();
    if (failure !== undefined) console.error(`error: ${failure}`);
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
    Deno.exit(report.unsaved > 0 || failure !== undefined ? 1 : 0);
  };
  Deno.addSignalListener("SIGINT", () => stop());
  Deno.addSignalListener("SIGTERM", () => stop());
  // A worker that crashed takes the others down with it, as one server would go down.
  void server.failed.then(stop);
  // Said only once a signal would stop the server gracefully: whoever waits for this line may
  // send one at once.
  const base = baseUrl(server.addr);
  logger.info("server.listening", {
    host: server.addr.hostname,
    port: server.addr.port,
    url: `${base}/`,
    metrics: `${base}/metrics`,
    health: `${base}/healthz`,
    ...(config.workers > 1 && { workers: config.workers }),
  });
}

if (import.meta.main) await main();
