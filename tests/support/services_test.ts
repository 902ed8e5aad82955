/**
 * Service discovery: without TEST_DATABASE_URL the suite finds the PostgreSQL on 127.0.0.1:5432,
 * and every probe says "absent", within its timeout, when nothing (or something mute) listens.
 */
import assert from "node:assert/strict";
import {
  discoverChromium,
  discoverPostgres,
  discoverRedis,
  type Discovery,
  POSTGRES_URL,
  serviceGate,
} from "./services.ts";

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const redis = serviceGate("TEST_REDIS_URL", "Redis");
/** A probe given this long must answer well within {@link BOUND_MS}. */
const PROBE_MS = 500;
const BOUND_MS = 5_000;

/** `work`, or a rejection once `signal` aborts (so a hung probe fails the test, not the run). */
function bounded<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const abort = () => reject(new Error("the probe did not settle in time"));
    signal.addEventListener("abort", abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/** A port on 127.0.0.1 where nothing listens (it did a moment ago, so nothing else took it). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Runs `probe` against a listener that accepts connections and never says a word. */
async function againstMuteServer(probe: (port: number) => Promise<Discovery>): Promise<Discovery> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    return await bounded(probe(listener.addr.port), AbortSignal.timeout(BOUND_MS));
  } finally {
    listener.close();
    await accepting;
    for (const conn of accepted) conn.close();
  }
}

function assertAbsent(found: Discovery, mentions: string): void {
  assert.equal(found.kind, "absent", JSON.stringify(found));
  assert.ok(found.kind === "absent" && found.reason.includes(mentions), found.reason);
}

Deno.test({
  name: "serviceGate() without TEST_DATABASE_URL finds the PostgreSQL on 127.0.0.1:5432",
  // Runs where that server is the suite's: under CI (which exports this URL) or found here.
  ignore: database.url !== POSTGRES_URL,
  fn: async () => {
    const env = Deno.env.toObject();
    for (const name of ["TEST_DATABASE_URL", "CI", "TEST_SKIP_REPORT"]) delete env[name];
    const services = new URL("./services.ts", import.meta.url).href;
    const script = `import { serviceGate } from ${JSON.stringify(services)};
      console.log(JSON.stringify(serviceGate("TEST_DATABASE_URL", "PostgreSQL")));`;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env,
      clearEnv: true,
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    assert.equal(code, 0, decoder.decode(stderr));
    assert.deepEqual(JSON.parse(decoder.decode(stdout)), { url: POSTGRES_URL, ignore: false });
  },
});

Deno.test({
  name: "discoverPostgres() finds the suite's PostgreSQL and makes sure its database exists",
  ignore: database.ignore,
  fn: async () => {
    const url = database.url ?? "";
    assert.deepEqual(await discoverPostgres(url), { kind: "found", url });
  },
});

Deno.test("discoverPostgres() says absent for a port where nothing listens", async () => {
  const port = closedPort();
  const found = await bounded(
    discoverPostgres(`postgres://postgres@127.0.0.1:${port}/test`, PROBE_MS),
    AbortSignal.timeout(BOUND_MS),
  );
  assertAbsent(found, `127.0.0.1:${port}`);
});

Deno.test("discoverPostgres() gives up on a server that accepts and never answers", async () => {
  const found = await againstMuteServer((port) =>
    discoverPostgres(`postgres://postgres@127.0.0.1:${port}/test`, PROBE_MS)
  );
  assertAbsent(found, "no PostgreSQL answered");
});

Deno.test({
  name: "discoverRedis() finds the suite's Redis",
  ignore: redis.ignore,
  fn: async () => {
    const url = redis.url ?? "";
    assert.deepEqual(await discoverRedis(url), { kind: "found", url });
  },
});

Deno.test("discoverRedis() says absent for a port where nothing listens", async () => {
  const port = closedPort();
  const found = await bounded(
    discoverRedis(`redis://127.0.0.1:${port}`, PROBE_MS),
    AbortSignal.timeout(BOUND_MS),
  );
  assertAbsent(found, `127.0.0.1:${port}`);
});

Deno.test("discoverRedis() gives up on a server that accepts and never answers PING", async () => {
  const found = await againstMuteServer((port) =>
    discoverRedis(`redis://127.0.0.1:${port}`, PROBE_MS)
  );
  assertAbsent(found, `no answer to PING within ${PROBE_MS} ms`);
});

Deno.test("discoverChromium() takes the first executable chromium on the PATH", async () => {
  const empty = await Deno.makeTempDir({ dir: "/tmp", prefix: "services-test-" });
  const browsers = await Deno.makeTempDir({ dir: "/tmp", prefix: "services-test-" });
  try {
    // Not executable: skipped, like `command -v` does.
    await Deno.writeTextFile(`${empty}/chromium`, "", { mode: 0o644 });
    await Deno.writeTextFile(`${browsers}/google-chrome`, "", { mode: 0o755 });
    await Deno.writeTextFile(`${browsers}/chromium`, "", { mode: 0o755 });
    const path = `/nonexistent:${empty}:${browsers}`;
    assert.deepEqual(discoverChromium(path), { kind: "found", url: `${browsers}/chromium` });
    assertAbsent(discoverChromium(`/nonexistent:${empty}`), "chromium-browser");
  } finally {
    await Deno.remove(empty, { recursive: true });
    await Deno.remove(browsers, { recursive: true });
  }
});
