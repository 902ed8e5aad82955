import assert from "node:assert/strict";
import { runTask } from "../support/child_server.ts";

/** A port on 127.0.0.1 that nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test("Start-up against an unreachable database exits 1 with one clear line, within the timeout", async () => {
  const started = Date.now();
  const { code, stdout, stderr } = await runTask("start", {
    DATABASE_URL: `postgres://postgres:s3cret@127.0.0.1:${closedPort()}/test`,
    DB_CONNECT_TIMEOUT: "1s",
  });
  const elapsedMs = Date.now() - started;
  assert.equal(code, 1);
  const lines = stderr.split("\n").filter((line) => line.trim() && !line.includes("--env-file"));
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: .*database/i);
  assert.ok(!stderr.includes("s3cret"), "the password never reaches the output");
  assert.ok(!stdout.includes("s3cret"), "the password never reaches the logs");
  assert.ok(!stdout.includes('"store.selected"'), "it did not fall back to another store");
  assert.ok(elapsedMs < 1_000 + 8_000, `took ${elapsedMs} ms`);
});
