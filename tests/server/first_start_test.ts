/**
 * What a newcomer sees on the first start: no warning, one line for a busy port, where to go.
 */
import assert from "node:assert/strict";
import { loadEnvFile } from "../../server/env_file.ts";
import { runTask, startChildServer } from "../support/child_server.ts";

Deno.test("A start without .env prints no warning, and every line of its log is JSON", async () => {
  const child = await startChildServer({});
  child.process.kill("SIGTERM");
  const { code, stderr } = await child.finished();
  assert.equal(code, 0);
  assert.equal(stderr, "", "nothing on stderr: no --env-file warning");
  assert.ok(child.logs.length > 0);
});

Deno.test("Once it listens, the log says where the page, /metrics and /healthz are", async () => {
  const child = await startChildServer({});
  try {
    const listening = child.logs.find((line) => line.event === "server.listening");
    const base = `http://127.0.0.1:${child.port}`;
    assert.equal(listening?.url, `${base}/`);
    assert.equal(listening?.metrics, `${base}/metrics`);
    assert.equal(listening?.health, `${base}/healthz`);
    for (const url of [listening?.url, listening?.metrics, listening?.health]) {
      const response = await fetch(String(url));
      await response.body?.cancel();
      assert.equal(response.status, 200, String(url));
    }
  } finally {
    child.process.kill("SIGTERM");
    await child.finished();
  }
});

Deno.test("A busy port ends start-up with one line naming the port, and exit code 2", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const { code, stdout, stderr } = await runTask("start", {
    PORT: String(port),
    HOST: "127.0.0.1",
  });
  assert.equal(code, 2);
  const lines = stderr.split("\n").filter((line) => line.trim());
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", new RegExp(`^error: port ${port} is already in use.*PORT=`));
  assert.ok(!stdout.includes("server.listening"));
});

Deno.test("A HOST that is not this machine's ends start-up with one line, and exit code 2", async () => {
  const { code, stderr } = await runTask("start", { PORT: "0", HOST: "192.0.2.1" });
  assert.equal(code, 2);
  const lines = stderr.split("\n").filter((line) => line.trim());
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: HOST 192\.0\.2\.1 is not an address of this machine/);
});

Deno.test(".env fills in what the environment does not set, and is optional", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/.env`;
  const name = `CHAT_ENV_FILE_TEST_${crypto.randomUUID().slice(0, 8)}`;
  try {
    loadEnvFile(path); // absent: nothing happens, nothing is printed
    assert.equal(Deno.env.get(`${name}_A`), undefined);
    await Deno.writeTextFile(path, `# comment\n${name}_A=from-file\n${name}_B="quoted value"\n`);
    Deno.env.set(`${name}_A`, "from-environment");
    loadEnvFile(path);
    assert.equal(Deno.env.get(`${name}_A`), "from-environment", "the environment wins");
    assert.equal(Deno.env.get(`${name}_B`), "quoted value");
  } finally {
    Deno.env.delete(`${name}_A`);
    Deno.env.delete(`${name}_B`);
    await Deno.remove(dir, { recursive: true });
  }
});
