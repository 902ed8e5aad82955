import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../server/config.ts";
import { runTask } from "../support/child_server.ts";

const SECRET = "a-webhook-secret-of-32-bytes-ok!";

Deno.test("parseConfig() leaves webhooks off by default, with documented defaults for when they are on", () => {
  const config = parseConfig({});
  assert.equal(config.webhookUrl, undefined);
  assert.equal(config.webhookSecret, undefined);
  assert.equal(config.webhookOfflineGraceMs, 30_000);
  assert.equal(config.webhookTimeoutMs, 5_000);
  assert.equal(config.webhookRetryWindowMs, 600_000);
  assert.equal(config.webhookQueueBytes, 16 * 1024 * 1024);
  assert.equal(config.webhookConcurrency, 4);
  const on = parseConfig({
    WEBHOOK_URL: "https://hooks.example.com/chat?via=1",
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_OFFLINE_GRACE: "2m",
    WEBHOOK_TIMEOUT: "750ms",
    WEBHOOK_RETRY_WINDOW: "1h",
    WEBHOOK_QUEUE_BYTES: "64MiB",
    WEBHOOK_CONCURRENCY: "16",
  });
  assert.equal(on.webhookUrl, "https://hooks.example.com/chat?via=1");
  assert.equal(on.webhookOfflineGraceMs, 120_000);
  assert.equal(on.webhookTimeoutMs, 750);
  assert.equal(on.webhookRetryWindowMs, 3_600_000);
  assert.equal(on.webhookQueueBytes, 64 * 1024 * 1024);
  assert.equal(on.webhookConcurrency, 16);
  assert.equal(parseConfig({ WEBHOOK_OFFLINE_GRACE: "0" }).webhookOfflineGraceMs, 0);
});

Deno.test("parseConfig() refuses WEBHOOK_URL without WEBHOOK_SECRET, and bad webhook values, naming the variable", () => {
  assert.throws(
    () => parseConfig({ WEBHOOK_URL: "https://hooks.example.com/chat" }),
    (error) => error instanceof ConfigError && error.variable === "WEBHOOK_SECRET",
  );
  const bad: [string, string][] = [
    ["WEBHOOK_URL", "hooks.example.com/chat"],
    ["WEBHOOK_URL", "ftp://hooks.example.com/chat"],
    ["WEBHOOK_URL", "https://user:password@hooks.example.com/chat"],
    ["WEBHOOK_SECRET", "short"],
    ["WEBHOOK_OFFLINE_GRACE", "soon"],
    ["WEBHOOK_TIMEOUT", "10ms"],
    ["WEBHOOK_QUEUE_BYTES", "1KiB"],
    ["WEBHOOK_CONCURRENCY", "0"],
  ];
  for (const [name, value] of bad) {
    assert.throws(
      () =>
        parseConfig({ WEBHOOK_URL: "http://127.0.0.1:9/", WEBHOOK_SECRET: SECRET, [name]: value }),
      (error) => error instanceof ConfigError && error.variable === name,
      `${name}=${value}`,
    );
  }
});

Deno.test("deno task start with WEBHOOK_URL and no WEBHOOK_SECRET exits 2 with one line naming it", async () => {
  const { code, stderr } = await runTask("start", {
    WEBHOOK_URL: "https://hooks.example.com/chat",
  });
  assert.equal(code, 2);
  const lines = stderr.split("\n").filter((line) => line.trim() && !line.includes("--env-file"));
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: WEBHOOK_SECRET must be set when WEBHOOK_URL is/);
});
