/**
 * Servers under test as child processes: started on a free port of 127.0.0.1, awaited until
 * they accept connections, stopped with SIGTERM (SIGKILL if they linger). Also the scratch
 * PostgreSQL database of a run, created and dropped like bench/persist.ts does.
 *
 * @module
 */
import postgres from "postgres";

/** A server child process. */
export interface RunningServer {
  readonly pid: number;
  /** `ws://127.0.0.1:<port>` */
  readonly url: string;
  /** Stops it; resolves once it has exited. */
  stop(): Promise<void>;
}

/** What to start. */
export interface ServerSpec {
  /** Script path, run with `deno run --allow-net --allow-env`. */
  readonly entry: string;
  /** Added to this process's environment (PORT and HOST are set here). */
  readonly env: Readonly<Record<string, string>>;
  /** Extra `deno run` flags, e.g. `--inspect=127.0.0.1:9229`. */
  readonly denoFlags?: readonly string[];
}

/**
 * The real server's environment in benchmarks: `main.ts` defaults with the client-facing limits
 * lifted. The rate limits are at the largest value server/config.ts accepts: 100,000 (1,000,000
 * makes the server exit with code 2).
 */
export const BENCH_SERVER_ENV = {
  RATE_LIMIT_PER_SECOND: "100000",
  RATE_LIMIT_BURST: "100000",
  MAX_CONNECTIONS: "100000",
  MAX_CONNECTIONS_PER_IP: "100000",
  LOG_LEVEL: "warn",
  // One node, open mode: unset whatever this shell may have set.
  AUTH_SECRET: "",
  REDIS_URL: "",
};

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_MS = 50;

/**
 * Starts a server and waits until its port accepts connections. The port is chosen here rather
 * than read from the server's log, because `LOG_LEVEL=warn` hides the real server's
 * `server.listening` line.
 *
 * @example
 * ```ts
 * const server = await startServer({ entry: "bench/baseline.ts", env: {} });
 * await server.stop();
 * ```
 * @throws {Error} if the server exits or does not listen within 20 s.
 */
export async function startServer(spec: ServerSpec): Promise<RunningServer> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", ...(spec.denoFlags ?? []), spec.entry],
    env: { ...spec.env, PORT: String(port), HOST: "127.0.0.1" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // Drain its output so that it never blocks on a full pipe.
  const drained = child.stdout.pipeTo(new WritableStream());
  let exited = false;
  const status = child.status.then((result) => {
    exited = true;
    return result;
  });
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    const timer = setTimeout(() => exited || child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await status;
    clearTimeout(timer);
    await drained;
  };
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (exited) {
      throw new Error(`${spec.entry} exited with ${(await status).code} before listening`);
    }
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`${spec.entry} did not listen within ${READY_TIMEOUT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return { pid: child.pid, url: `ws://127.0.0.1:${port}`, stop };
}

/** A TCP port of 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function accepts(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    throw error;
  }
}

/** A database that exists for one server run. */
export interface ScratchDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/**
 * Creates an empty database next to the one `adminUrl` names (BENCH_DATABASE_URL, else
 * TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test, as in bench/persist.ts).
 *
 * @example
 * ```ts
 * const database = await createScratchDatabase(adminUrl);
 * await database.drop();
 * ```
 */
export async function createScratchDatabase(adminUrl: string): Promise<ScratchDatabase> {
  const name = `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin`create database ${admin(name)}`;
  } catch (error) {
    await admin.end();
    throw error;
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin`drop database if exists ${admin(name)} with (force)`;
      await admin.end();
    },
  };
}
