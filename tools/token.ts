/**
 * `deno task token --user alice --rooms "general,team-*" --ttl 24h`: prints a signed token for
 * the server's `AUTH_SECRET` (read from the environment or `.env`).
 *
 * @module
 */
import { SignJWT } from "jose";
import { parseArgs } from "node:util";
import { ConfigError, configFromEnv } from "../server/config.ts";
import { BadRequestError, parseUserName } from "../server/request_params.ts";

const TTL_UNITS_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const USAGE = 'usage: deno task token --user <name> --rooms "<pattern>,<pattern>" [--ttl 24h]';

function fail(message: string): never {
  console.error(`error: ${message}\n${USAGE}`);
  Deno.exit(2);
}

/** Parses "90s", "15m", "24h", "7d" into seconds. */
function ttlSeconds(raw: string): number {
  const match = /^(\d+)(s|m|h|d)$/.exec(raw);
  const seconds = match ? Number(match[1]) * (TTL_UNITS_S[match[2] ?? ""] ?? NaN) : NaN;
  if (!(seconds > 0)) fail(`--ttl must look like 90s, 15m, 24h or 7d, got ${JSON.stringify(raw)}`);
  return seconds;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      user: { type: "string" },
      rooms: { type: "string" },
      ttl: { type: "string", default: "24h" },
    },
  });
  let secret: string | undefined;
  try {
    secret = configFromEnv().authSecret;
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  if (secret === undefined) fail("AUTH_SECRET is not set: there is nothing to sign with");
  let user: string;
  try {
    user = parseUserName(values.user ?? null);
  } catch (error) {
    if (error instanceof BadRequestError) fail(`--user: ${error.message}`);
    throw error;
  }
  const rooms = (values.rooms ?? "").split(",").map((room) => room.trim()).filter(Boolean);
  if (rooms.length === 0) fail("--rooms needs at least one room or pattern");
  const token = await new SignJWT({ rooms })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds(values.ttl))
    .sign(new TextEncoder().encode(secret));
  console.log(token);
}

if (import.meta.main) await main();
