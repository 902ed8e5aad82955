import assert from "node:assert/strict";
import { CONFIG_VARIABLES, ConfigError, parseConfig } from "../../server/config.ts";
import { runTask } from "../support/child_server.ts";

Deno.test("parseConfig() gives the documented defaults", () => {
  const config = parseConfig({});
  assert.equal(config.port, 8080);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.databaseUrl, undefined);
  assert.equal(config.outboxLimit, 256);
  assert.equal(config.maxContentChars, 4000);
  assert.equal(config.memoryMaxPerRoom, 10_000);
  assert.equal(config.persistWorkers, 4);
  assert.equal(config.persistBatchSize, 500);
  assert.equal(config.persistBatchWaitMs, 10);
  assert.equal(config.persistQueueLimit, 100_000);
  assert.equal(config.shutdownTimeoutMs, 10_000);
  assert.ok(Object.isFrozen(config));
});

Deno.test("parseConfig() reads values, durations with units, and treats empty as unset", () => {
  const config = parseConfig({
    PORT: "9000",
    HOST: "127.0.0.1",
    DATABASE_URL: "postgres://u@h/db",
    SHUTDOWN_TIMEOUT: "1500ms",
    IDLE_TIMEOUT: "2m",
    OUTBOX_LIMIT: "",
  });
  assert.equal(config.port, 9000);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.databaseUrl, "postgres://u@h/db");
  assert.equal(config.shutdownTimeoutMs, 1500);
  assert.equal(config.idleTimeoutMs, 120_000);
  assert.equal(config.outboxLimit, 256);
  assert.equal(parseConfig({ SHUTDOWN_TIMEOUT: "3" }).shutdownTimeoutMs, 3000);
  assert.equal(parseConfig({ RETENTION_INTERVAL: "1h30m" }).retentionIntervalMs, 5_400_000);
  assert.equal(parseConfig({ IDEMPOTENCY_WINDOW: "2d" }).idempotencyWindowMs, 172_800_000);
  assert.equal(parseConfig({ IDLE_TIMEOUT: " 1m30s " }).idleTimeoutMs, 90_000);
});

Deno.test("parseConfig() refuses a duration outside its bounds and shows the syntax", () => {
  assert.throws(
    () => parseConfig({ RETENTION_INTERVAL: "500ms" }),
    new ConfigError(
      "RETENTION_INTERVAL",
      'must be a duration such as "10s", "500ms", "2m" or "1h30m" (from 1000 to 86400000 ms), got "500ms"',
    ),
  );
  assert.throws(
    () => parseConfig({ SHUTDOWN_TIMEOUT: "2h" }),
    /^ConfigError: SHUTDOWN_TIMEOUT must be a duration .* \(at most 3600000 ms\), got "2h"$/,
  );
});

Deno.test("parseConfig() names the variable of a bad value", () => {
  const bad: [string, string][] = [
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["PORT", "80.5"],
    ["OUTBOX_LIMIT", "0"],
    ["PERSIST_WORKERS", "-2"],
    ["SHUTDOWN_TIMEOUT", "soon"],
    ["SHUTDOWN_TIMEOUT", "30m1h"],
    ["SHUTDOWN_TIMEOUT", "1.5s"],
    ["IDLE_TIMEOUT", "-1s"],
    ["LOG_LEVEL", "loud"],
    ["DATABASE_URL", "mysql://x"],
  ];
  for (const [name, value] of bad) {
    assert.throws(
      () => parseConfig({ [name]: value }),
      (error) =>
        error instanceof ConfigError && error.variable === name && error.message.startsWith(name),
      `${name}=${value}`,
    );
  }
});

Deno.test("Every config variable is documented in the README table", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  for (const spec of Object.values(CONFIG_VARIABLES)) {
    const row = readme.split("\n").find((line) =>
      new RegExp(`^\\|\\s*\`${spec.name}\`\\s*\\|`).test(line)
    );
    assert.ok(row, `${spec.name} is missing from the README`);
    if (spec.fallback !== undefined) {
      assert.ok(row.includes(`\`${spec.fallback}\``), `${spec.name} default`);
    }
  }
});

Deno.test("deno task start with PORT=abc exits 2 with one line naming PORT", async () => {
  const { code, stderr } = await runTask("start", { PORT: "abc" });
  assert.equal(code, 2);
  const lines = stderr.split("\n").filter((line) => line.trim() && !line.includes("--env-file"));
  assert.deepEqual(lines, ['error: PORT must be an integer from 0 to 65535, got "abc"']);
});
