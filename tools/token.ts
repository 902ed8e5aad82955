/**
 * `deno task token --user alice --rooms "general,team-*" --ttl 1h30m`: prints a signed token for
 * the server's `AUTH_SECRET` (read from the environment or `.env`). `--help` explains the options.
 *
 * @module
 */
import { SignJWT } from "jose";
import { parseArgs } from "node:util";
import { ConfigError, configFromEnv } from "../server/config.ts";
import { parseDuration } from "../server/duration.ts";
import { loadEnvFile } from "../server/env_file.ts";
import { BadRequestError, parseUserName } from "../server/request_params.ts";

// `exp` counts whole seconds: a shorter token would be expired when printed.
const MIN_TTL_MS = 1_000;
// A token cannot be revoked short of rotating AUTH_SECRET; the cap bounds what a leaked one opens.
const MAX_TTL_MS = 365 * 86_400_000;

const USAGE =
  'usage: deno task token --user <name> --rooms "<pattern>,..." [--ttl <duration>] (--help: more)';

const HELP = `Prints a signed token (an HS256 JWT) for the server's AUTH_SECRET, which is read from
the environment or from .env in the working directory.

usage: deno task token --user <name> --rooms "<pattern>,..." [--ttl <duration>]

  --user <name>      who the token is for (its "sub"; same rules as the u= parameter)
  --rooms <list>     comma-separated rooms it opens: general (exact), team-* (prefix), * (any)
  --ttl <duration>   how long it is valid, from 1s to 365d (default: 24h)
  --api              also opens the server API (/api/*) for those rooms (the "api" scope)
  -h, --help         print this help and exit

A duration is one or more <integer><unit> parts, largest unit first, each unit at most once;
units are d, h, m, s and ms: 90s, 15m, 1h30m, 7d. A bare integer means seconds.

example:
  deno task token --user alice --rooms "general,team-*" --ttl 1h30m`;

/** Bad input on the command line: reported in one line with the usage, exit code 2. */
class UsageError extends Error {
  readonly code = "usage";

  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

interface TokenRequest {
  readonly user: string;
  readonly rooms: readonly string[];
  readonly ttlMs: number;
  /** Whether it carries the `api` scope. */
  readonly api: boolean;
}

const OPTIONS = {
  user: { type: "string" },
  rooms: { type: "string" },
  ttl: { type: "string", default: "24h" },
  api: { type: "boolean", default: false },
  help: { type: "boolean", short: "h" },
} as const;

/** @throws {UsageError} for any option missing, unknown or malformed. */
function parseRequest(args: string[]): TokenRequest | "help" {
  const values = parseOptions(args);
  if (values.help) return "help";
  const ttlMs = parseDuration(values.ttl);
  if (ttlMs === undefined || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    throw new UsageError(
      `--ttl must be a duration from 1s to 365d such as 90s, 15m, 1h30m or 7d, got ${
        JSON.stringify(values.ttl)
      }`,
    );
  }
  if (values.user === undefined) throw new UsageError("--user is required");
  let user: string;
  try {
    user = parseUserName(values.user);
  } catch (error) {
    // The rule is worded for the u= query parameter.
    if (error instanceof BadRequestError) {
      throw new UsageError(error.message.replace(/^u /, "--user "));
    }
    throw error;
  }
  // NFC, as the server compares room names.
  const rooms = (values.rooms ?? "").split(",").map((room) => room.trim().normalize("NFC"))
    .filter(Boolean);
  if (rooms.length === 0) throw new UsageError("--rooms needs at least one room or pattern");
  return { user, rooms, ttlMs, api: values.api };
}

/** @throws {UsageError} for an unknown option, a missing value or a positional argument. */
function parseOptions(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS }).values;
  } catch (error) {
    // parseArgs words some errors over several lines; the contract is one line.
    if (isParseArgsError(error)) throw new UsageError(error.message.replaceAll("\n", " "));
    throw error;
  }
}

function isParseArgsError(error: unknown): error is Error {
  return error instanceof Error && "code" in error && typeof error.code === "string" &&
    error.code.startsWith("ERR_PARSE_ARGS");
}

/** @throws {UsageError} when AUTH_SECRET (or another variable) is unset or invalid. */
function authSecret(): string {
  let secret: string | undefined;
  try {
    secret = configFromEnv().authSecret;
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  if (secret === undefined) throw new UsageError("AUTH_SECRET is not set: nothing to sign with");
  return secret;
}

async function main(): Promise<void> {
  loadEnvFile();
  let request: TokenRequest | "help";
  let secret: string;
  try {
    request = parseRequest(Deno.args);
    if (request === "help") {
      console.log(HELP);
      return;
    }
    secret = authSecret();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}\n${USAGE}`);
    Deno.exit(2);
  }
  const claims = { rooms: request.rooms, ...(request.api && { scope: "api" }) };
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(request.user)
    .setIssuedAt()
    .setExpirationTime(Math.floor((Date.now() + request.ttlMs) / 1000))
    .sign(new TextEncoder().encode(secret));
  console.log(token);
}

if (import.meta.main) await main();
