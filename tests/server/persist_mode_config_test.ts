/**
 * The configuration of issue 14: PERSIST_MODE (async by default; durable only with PostgreSQL and
 * without REDIS_URL), IDEMPOTENCY_WINDOW and IDEMPOTENCY_MAX_BYTES. A bad combination fails start-up
 * with exit code 2 and one line naming PERSIST_MODE.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../server/config.ts";

const DATABASE_URL = "postgres://postgres@127.0.0.1:1/never";
const REDIS_URL = "redis://127.0.0.1:1";

function refusal(env: Record<string, string>): ConfigError {
  try {
    parseConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail(`parseConfig accepted ${JSON.stringify(env)}`);
}

/**
 * Runs `deno task start` with `env`, as `runTask` does, but bounded: a server that starts instead
 * of refusing its configuration is stopped after a while, so the test fails instead of hanging.
 */
async function startRefused(
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "start"],
    cwd: new URL("../../", import.meta.url),
    env: { NO_COLOR: "1", PORT: "0", HOST: "127.0.0.1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGTERM"), 15_000);
  try {
    const output = await child.output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** The lines of stderr, without the warning `deno task` prints about a missing env file. */
function stderrLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.trim() && !line.includes("--env-file"));
}

Deno.test("PERSIST_MODE is async by default; the idempotency window is 10 minutes and 32 MiB", () => {
  const config = parseConfig({});
  assert.equal(config.persistMode, "async");
  assert.equal(config.idempotencyWindowMs, 600_000);
  assert.equal(config.idempotencyMaxBytes, 32 * 1024 * 1024);
});

Deno.test("PERSIST_MODE=durable is taken with DATABASE_URL; async needs no database", () => {
  assert.equal(parseConfig({ PERSIST_MODE: "durable", DATABASE_URL }).persistMode, "durable");
  assert.equal(parseConfig({ PERSIST_MODE: "async" }).persistMode, "async");
  assert.equal(parseConfig({ PERSIST_MODE: "async", REDIS_URL }).persistMode, "async");
});

Deno.test("PERSIST_MODE=durable without DATABASE_URL is refused, naming PERSIST_MODE", () => {
  const envs: Record<string, string>[] = [
    { PERSIST_MODE: "durable" },
    { PERSIST_MODE: "durable", DATABASE_URL: "" },
  ];
  for (const env of envs) {
    const error = refusal(env);
    assert.equal(error.variable, "PERSIST_MODE");
    assert.match(error.message, /^PERSIST_MODE .*DATABASE_URL/);
  }
});

Deno.test("PERSIST_MODE=durable with REDIS_URL is refused, naming PERSIST_MODE", () => {
  const error = refusal({ PERSIST_MODE: "durable", DATABASE_URL, REDIS_URL });
  assert.equal(error.variable, "PERSIST_MODE");
  assert.match(error.message, /^PERSIST_MODE .*REDIS_URL/);
});

Deno.test("PERSIST_MODE, IDEMPOTENCY_WINDOW and IDEMPOTENCY_MAX_BYTES refuse bad values", () => {
  const cases: [string, string][] = [
    ["PERSIST_MODE", "sync"],
    ["PERSIST_MODE", "DURABLE"],
    ["IDEMPOTENCY_WINDOW", "soon"],
    ["IDEMPOTENCY_WINDOW", "500ms"], // below a second
    ["IDEMPOTENCY_WINDOW", "10081m"], // beyond 7 days
    ["IDEMPOTENCY_MAX_BYTES", "12.5"],
    ["IDEMPOTENCY_MAX_BYTES", "1000"], // below 1 MiB
  ];
  for (const [name, value] of cases) {
    const error = refusal({ [name]: value, DATABASE_URL });
    assert.equal(error.variable, name, `${name}=${value}`);
  }
  assert.equal(parseConfig({ IDEMPOTENCY_WINDOW: "30s" }).idempotencyWindowMs, 30_000);
  assert.equal(parseConfig({ IDEMPOTENCY_WINDOW: "10080m" }).idempotencyWindowMs, 604_800_000);
  assert.equal(parseConfig({ IDEMPOTENCY_MAX_BYTES: "2097152" }).idempotencyMaxBytes, 2_097_152);
});

Deno.test("deno task start with PERSIST_MODE=durable and no DATABASE_URL exits 2 with one line", async () => {
  const { code, stdout, stderr } = await startRefused({
    PERSIST_MODE: "durable",
    DATABASE_URL: "",
    REDIS_URL: "",
  });
  assert.equal(code, 2, stderr);
  assert.equal(stdout, "", "nothing was started, so nothing was logged");
  const lines = stderrLines(stderr);
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: PERSIST_MODE .*DATABASE_URL/);
});

Deno.test("deno task start with PERSIST_MODE=durable and REDIS_URL exits 2 with one line", async () => {
  const { code, stdout, stderr } = await startRefused({
    PERSIST_MODE: "durable",
    // Nothing listens there: the refusal must come before any connection is tried.
    DATABASE_URL,
    REDIS_URL,
  });
  assert.equal(code, 2, stderr);
  assert.equal(stdout, "");
  const lines = stderrLines(stderr);
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: PERSIST_MODE .*REDIS_URL/);
});
