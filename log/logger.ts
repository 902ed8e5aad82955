/**
 * The one logger every layer is given: JSON lines of level, event and fields.
 *
 * @module
 */

/** Log levels from most to least verbose. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** Structured fields of a log line; message contents never belong here at info level. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/**
 * Writes structured events. Injected everywhere so tests can record or silence it.
 *
 * @example
 * ```ts
 * logger.info("server.listening", { port: 8080 });
 * ```
 */
export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** Options of {@linkcode JsonLogger}. */
export interface JsonLoggerOptions {
  /** Lines below this level are skipped. */
  readonly level: LogLevel;
  /** Where each line goes; standard output by default. */
  readonly write?: (line: string) => void;
}

const encoder = new TextEncoder();

/**
 * Writes one JSON object per line: `{"time","level","event",...fields}`.
 *
 * @example
 * ```ts
 * const logger = new JsonLogger({ level: "info" });
 * logger.warn("store.retry", { attempt: 2 });
 * ```
 */
export class JsonLogger implements Logger {
  readonly #threshold: number;
  readonly #write: (line: string) => void;

  constructor(options: JsonLoggerOptions) {
    this.#threshold = LOG_LEVELS.indexOf(options.level);
    this.#write = options.write ?? ((line) => Deno.stdout.writeSync(encoder.encode(line)));
  }

  debug(event: string, fields?: LogFields): void {
    this.#log(0, event, fields);
  }
  info(event: string, fields?: LogFields): void {
    this.#log(1, event, fields);
  }
  warn(event: string, fields?: LogFields): void {
    this.#log(2, event, fields);
  }
  error(event: string, fields?: LogFields): void {
    this.#log(3, event, fields);
  }

  #log(level: number, event: string, fields: LogFields | undefined): void {
    if (level < this.#threshold) return;
    const line = { time: new Date().toISOString(), level: LOG_LEVELS[level], event, ...fields };
    this.#write(JSON.stringify(line) + "\n");
  }
}

/** A logger that drops everything: for tests and benchmarks that assert on behaviour instead. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
