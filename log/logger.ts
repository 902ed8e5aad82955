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

/** How a log line is written. */
export const LOG_FORMATS = ["json", "text"] as const;
/** One of {@linkcode LOG_FORMATS}. */
export type LogFormat = typeof LOG_FORMATS[number];

/** Options of {@linkcode LineLogger}. */
export interface LineLoggerOptions {
  /** Lines below this level are skipped. */
  readonly level: LogLevel;
  /** `json`: one JSON object per line; `text`: `time level event key=value ...` for people. */
  readonly format: LogFormat;
  /** Where each line goes; standard output by default. */
  readonly write?: (line: string) => void;
  /** Fields every line carries, after its event (e.g. `{ worker: 1 }` under `WORKERS`). */
  readonly fields?: LogFields;
}

const encoder = new TextEncoder();

/**
 * Writes one line per event: a JSON object `{"time","level","event",...fields}`, or the same
 * as `time level event key=value` text.
 *
 * @example
 * ```ts
 * const logger = new LineLogger({ level: "info", format: "json" });
 * logger.warn("store.retry", { attempt: 2 });
 * ```
 */
export class LineLogger implements Logger {
  readonly #threshold: number;
  readonly #format: LogFormat;
  readonly #write: (line: string) => void;
  readonly #fields: LogFields | undefined;
  #dropped = 0;

  constructor(options: LineLoggerOptions) {
    this.#threshold = LOG_LEVELS.indexOf(options.level);
    this.#format = options.format;
    this.#write = options.write ?? writeToStdout;
    this.#fields = options.fields;
  }

  /** Lines that could not be written (standard output closed or failing); never an exception. */
  get dropped(): number {
    return this.#dropped;
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
    try {
      this.#writeLine(level, event, fields);
    } catch {
      // A log line must never be what ends the process or a room's turn.
      this.#dropped++;
    }
  }

  #writeLine(level: number, event: string, own: LogFields | undefined): void {
    const fields = this.#fields === undefined ? own : { ...this.#fields, ...own };
    const time = new Date().toISOString();
    if (this.#format === "json") {
      this.#write(JSON.stringify({ time, level: LOG_LEVELS[level], event, ...fields }) + "\n");
      return;
    }
    let line = `${time} ${LOG_LEVELS[level]?.toUpperCase().padEnd(5)} ${event}`;
    for (const [key, value] of Object.entries(fields ?? {})) {
      if (value !== undefined) line += ` ${key}=${JSON.stringify(value)}`;
    }
    this.#write(line + "\n");
  }
}

/** Writes all of `line`: a write to a pipe may take only part of it. */
function writeToStdout(line: string): void {
  const bytes = encoder.encode(line);
  for (let offset = 0; offset < bytes.length;) {
    offset += Deno.stdout.writeSync(bytes.subarray(offset));
  }
}

/** A logger that drops everything: for tests and benchmarks that assert on behaviour instead. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
