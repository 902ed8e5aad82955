/**
 * Gates for tests that need a real service: PostgreSQL, Redis or Chromium.
 *
 * A set variable (`TEST_DATABASE_URL`, `TEST_REDIS_URL`, `CHROME_PATH`) is used as given. Without
 * it the gate looks for the usual local service (PostgreSQL on 127.0.0.1:5432, Redis on
 * 127.0.0.1:6379, Chromium on the PATH), so a fresh machine with those running runs every test.
 * When nothing is found the module's dependent tests are ignored with a one-line reason, and
 * `deno task test` ends with `with_skip_report.ts` counting them and naming the command that
 * enables them. Under `CI=true` nothing is looked for: a missing variable is a failing test.
 *
 * Discovery runs when this module loads, for the unset variables only and in parallel, so gates
 * stay synchronous. Deno runs each test module in its own isolate, so that is once per test
 * module; it is bounded by {@link DISCOVERY_TIMEOUT_MS} and takes milliseconds when all is up.
 */
import { relative } from "node:path";
import postgres from "postgres";
import { SKIP_LOG_FILE, SKIP_REPORT_VARIABLE, type SkipRecord } from "./with_skip_report.ts";

/** Where discovery looks for PostgreSQL; the same URL `.ci/run` exports. */
export const POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test";
/** Where discovery looks for Redis; the same URL `.ci/run` exports. */
export const REDIS_URL = "redis://127.0.0.1:6379";
/** The executables discovery looks for on the PATH, in order of preference. */
export const CHROMIUM_NAMES: readonly string[] = [
  "chromium",
  "chromium-browser",
  "google-chrome",
  "google-chrome-stable",
];
/** The longest one probe may take before its service counts as absent. */
export const DISCOVERY_TIMEOUT_MS = 2_000;

/** What a gate decided for a module's tests. */
export interface ServiceGate {
  /** The service URL (or executable path), when the tests run. */
  readonly url: string | undefined;
  /** Pass as `ignore` to Deno.test. */
  readonly ignore: boolean;
}

/** What a probe found: a usable URL, or why there is none. */
export type Discovery =
  | { readonly kind: "found"; readonly url: string }
  | { readonly kind: "absent"; readonly reason: string };

interface KnownService {
  readonly discover: () => Promise<Discovery>;
  /** The one command that makes the skipped tests run. */
  readonly enable: string;
}

const KNOWN: Readonly<Record<string, KnownService>> = {
  TEST_DATABASE_URL: {
    discover: () => discoverPostgres(),
    enable: "TEST_DATABASE_URL=postgres://user@host:5432/db deno task test",
  },
  TEST_REDIS_URL: {
    discover: () => discoverRedis(),
    enable: "TEST_REDIS_URL=redis://host:6379 deno task test",
  },
  CHROME_PATH: {
    discover: () => Promise.resolve(discoverChromium()),
    enable: "apt-get install -y chromium (or CHROME_PATH=/path/to/chromium deno task test)",
  },
};

const underCi = Deno.env.get("CI") === "true";
const discovered: ReadonlyMap<string, Discovery> = await discoverUnset();
const announced = new Set<string>();

/**
 * Decides whether the tests that need the service behind `variable` run, and where it is.
 *
 * @example
 * ```ts
 * const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
 * Deno.test({ name: "rows survive a restart", ignore: database.ignore, fn: async () => {} });
 * ```
 * @throws never for a missing service: it is an ignored test, or a failing one under CI=true.
 */
export function serviceGate(variable: string, what: string): ServiceGate {
  const url = Deno.env.get(variable) || undefined;
  if (url) return { url, ignore: false };
  if (underCi) {
    if (!announced.has(variable)) {
      announced.add(variable);
      Deno.test(`${what} is available (${variable} must be set under CI=true)`, () => {
        throw new Error(`${variable} is not set: ${what} tests cannot run, and CI requires them`);
      });
    }
    return { url: undefined, ignore: true };
  }
  const found = discovered.get(variable) ?? absent("there is no discovery for it");
  if (found.kind === "found") return { url: found.url, ignore: false };
  if (!announced.has(variable)) {
    announced.add(variable);
    recordSkip(variable, what, found.reason);
  }
  return { url: undefined, ignore: true };
}

/**
 * The URL of an optional service: the variable, else what discovery finds, else undefined.
 * Nothing is skipped or required; for tests that fall back to an in-memory double.
 *
 * @example
 * ```ts
 * const database = serviceUrl("TEST_DATABASE_URL"); // undefined: use a MemoryStore
 * ```
 * @throws never.
 */
export function serviceUrl(variable: string): string | undefined {
  const found = discovered.get(variable);
  return Deno.env.get(variable) || (found?.kind === "found" ? found.url : undefined);
}

/** Probes, in parallel, for each known service whose variable is unset; nothing under CI. */
async function discoverUnset(): Promise<Map<string, Discovery>> {
  if (underCi) return new Map();
  const unset = Object.entries(KNOWN).filter(([variable]) => !Deno.env.get(variable));
  const found = await Promise.all(unset.map(([, service]) => service.discover()));
  return new Map(unset.map(([variable], i) => [variable, found[i] ?? absent("not probed")]));
}

function recordSkip(variable: string, what: string, reason: string): void {
  const module = relative(Deno.cwd(), new URL(Deno.mainModule).pathname);
  const why = `${variable} is not set and ${reason}`;
  console.error(`skipping ${what} tests in ${module}: ${why}`);
  const directory = Deno.env.get(SKIP_REPORT_VARIABLE);
  if (!directory) return;
  const enable = KNOWN[variable]?.enable ?? `${variable}=... deno task test`;
  const record: SkipRecord = { service: what, variable, module, reason: why, enable };
  Deno.writeTextFileSync(`${directory}/${SKIP_LOG_FILE}`, JSON.stringify(record) + "\n", {
    append: true,
  });
}

/**
 * Looks for the PostgreSQL server of `url` and makes sure its database exists (tests create
 * their own schemas and databases inside it), connecting as `url`'s user to `postgres`.
 *
 * @example
 * ```ts
 * const found = await discoverPostgres(); // { kind: "found", url: POSTGRES_URL } when it runs
 * ```
 * @throws never: a refused, silent or failing server is `absent`, with the reason.
 */
export async function discoverPostgres(
  url: string = POSTGRES_URL,
  timeoutMs: number = DISCOVERY_TIMEOUT_MS,
): Promise<Discovery> {
  const target = new URL(url);
  const database = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const sql = postgres(admin.href, {
    max: 1,
    onnotice: () => {},
    connect_timeout: timeoutMs / 1_000,
    // Its default (30 to 60 minutes) is a timer that outlives `end({ timeout: 0 })`.
    max_lifetime: null,
  });
  try {
    await within(timeoutMs, ensureDatabase(sql, database));
    return { kind: "found", url };
  } catch (error) {
    if (error instanceof postgres.PostgresError) {
      return absent(`the PostgreSQL at ${target.host} said: ${error.message}`);
    }
    return absent(`no PostgreSQL answered at ${target.host} (${messageOf(error)})`);
  } finally {
    // timeout 0 closes the socket at once, even under a query that hangs (see PLATFORM.md).
    await sql.end({ timeout: 0 });
  }
}

async function ensureDatabase(sql: postgres.Sql, database: string): Promise<void> {
  if (database === "" || database === "postgres") {
    await sql`select 1`;
    return;
  }
  const rows = await sql`select 1 from pg_database where datname = ${database}`;
  if (rows.length > 0) return;
  try {
    await sql`create database ${sql(database)}`;
  } catch (error) {
    // Another run created it between our look and our create: 42P04, or 23505 mid-create.
    const code = (error as { code?: unknown }).code;
    if (code !== "42P04" && code !== "23505") throw error;
  }
}

/**
 * Looks for the Redis of `url`: a TCP connect and a `PING` answered with `+PONG`.
 *
 * @example
 * ```ts
 * const found = await discoverRedis(); // { kind: "found", url: REDIS_URL } when it runs
 * ```
 * @throws never: a refused, silent or other server is `absent`, with the reason.
 */
export async function discoverRedis(
  url: string = REDIS_URL,
  timeoutMs: number = DISCOVERY_TIMEOUT_MS,
): Promise<Discovery> {
  const target = new URL(url);
  const hostname = target.hostname || "127.0.0.1";
  const port = Number(target.port || 6379);
  const where = `${hostname}:${port}`;
  const signal = AbortSignal.timeout(timeoutMs);
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname, port, signal });
  } catch (error) {
    return absent(`no Redis answered at ${where} (${messageOf(error)})`);
  }
  // Closing the connection is what ends a read that the server never answers.
  const cut = () => conn.close();
  signal.addEventListener("abort", cut, { once: true });
  try {
    await conn.write(new TextEncoder().encode("*1\r\n$4\r\nPING\r\n"));
    const reply = await firstLine(conn);
    if (reply === "+PONG") return { kind: "found", url };
    return absent(`the server at ${where} answered PING with ${JSON.stringify(reply)}`);
  } catch (error) {
    const why = signal.aborted ? `no answer to PING within ${timeoutMs} ms` : messageOf(error);
    return absent(`no Redis answered at ${where} (${why})`);
  } finally {
    signal.removeEventListener("abort", cut);
    if (!signal.aborted) conn.close();
  }
}

async function firstLine(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(256);
  let text = "";
  while (!text.includes("\r\n") && text.length < buffer.length) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text.split("\r\n")[0] ?? "";
}

/**
 * Looks for Chromium on `path` (a PATH-style list): the first of {@link CHROMIUM_NAMES} found.
 *
 * @example
 * ```ts
 * const found = discoverChromium("/usr/bin"); // { kind: "found", url: "/usr/bin/chromium" }
 * ```
 * @throws never: no executable is `absent`.
 */
export function discoverChromium(path: string = Deno.env.get("PATH") ?? ""): Discovery {
  const directories = path.split(":").filter((directory) => directory !== "");
  for (const name of CHROMIUM_NAMES) {
    for (const directory of directories) {
      const file = `${directory}/${name}`;
      if (isExecutable(file)) return { kind: "found", url: file };
    }
  }
  return absent(`none of ${CHROMIUM_NAMES.join(", ")} is on the PATH`);
}

function isExecutable(file: string): boolean {
  try {
    const info = Deno.statSync(file);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory ||
      error instanceof Deno.errors.PermissionDenied
    ) return false;
    throw error;
  }
}

/** `work`, or a rejection after `timeoutMs` (work that never settles is left behind). */
async function within<T>(timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

function absent(reason: string): Discovery {
  return { kind: "absent", reason };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
