import assert from "node:assert/strict";
import { runTask } from "../support/child_server.ts";
import { serviceGate } from "../support/services.ts";

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
  const lines = stderr.split("\n").filter((line) => line.trim());
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: .*database/i);
  assert.ok(!stderr.includes("s3cret"), "the password never reaches the output");
  assert.ok(!stdout.includes("s3cret"), "the password never reaches the logs");
  assert.ok(!stdout.includes('"store.selected"'), "it did not fall back to another store");
  assert.ok(elapsedMs < 1_000 + 8_000, `took ${elapsedMs} ms`);
});

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");

/** `TEST_DATABASE_URL` with another user and database: the same server, refusing. */
function refusedUrl(user: string, name: string): string {
  const url = new URL(database.url ?? "postgres://127.0.0.1:5432/test");
  url.username = user;
  url.password = "s3cret";
  url.pathname = `/${name}`;
  return url.href;
}

for (
  const [what, user, name, said] of [
    ["a database that does not exist", "postgres", "no_such_db_x1", /database "no_such_db_x1"/],
    ["a role that does not exist", "no_such_role_x1", "postgres", /no_such_role_x1/],
  ] as const
) {
  Deno.test({
    name: `Start-up against ${what} fails at once with the server's own words, and exit code 2`,
    ignore: database.ignore,
    fn: async () => {
      const started = Date.now();
      const { code, stdout, stderr } = await runTask("start", {
        DATABASE_URL: refusedUrl(user, name),
        DB_CONNECT_TIMEOUT: "30s",
      });
      assert.equal(code, 2);
      const lines = stderr.split("\n").filter((line) => line.trim());
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0] ?? "", /^error: database refused the connection to postgres:/);
      assert.match(lines[0] ?? "", said);
      assert.ok(!(stderr + stdout).includes("s3cret"), "the password never reaches the output");
      assert.ok(!stdout.includes("store.connect_failed"), "no retries");
      assert.ok(Date.now() - started < 10_000, "well before DB_CONNECT_TIMEOUT");
    },
  });
}
