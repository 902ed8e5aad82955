import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import { CONFIG_VARIABLES } from "../../server/config.ts";
import { runTask, startChildServer } from "../support/child_server.ts";
import { TestSocket } from "../support/test_socket.ts";

Deno.test("--help lists every environment variable with its default, from the parser's table", async () => {
  const { code, stdout } = await runTask("start", {}, ["--help"]);
  assert.equal(code, 0);
  for (const spec of Object.values(CONFIG_VARIABLES)) {
    const line = stdout.split("\n").find((row) => row.trimStart().startsWith(`${spec.name} `));
    assert.ok(line, `${spec.name} is in --help`);
    assert.ok(line.includes(`(default: ${spec.fallback ?? "unset"})`), `${spec.name} default`);
  }
});

Deno.test("--version prints the version from deno.json", async () => {
  const { code, stdout } = await runTask("start", {}, ["--version"]);
  assert.equal(code, 0);
  assert.equal(stdout.trim(), denoConfig.version);
});

Deno.test("Logs are JSON lines with time, level and event, and no message content", async () => {
  const child = await startChildServer({ LOG_LEVEL: "info" });
  const ann = await TestSocket.open(`ws://127.0.0.1:${child.port}/chat?r=logs&u=ann`);
  await ann.nextOfType("welcome");
  ann.send("a secret message");
  await ann.nextOfType("message");
  await ann.close();
  child.process.kill("SIGTERM");
  const { code } = await child.finished();
  assert.equal(code, 0);
  for (const line of child.logs) {
    assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(["debug", "info", "warn", "error"].includes(String(line.level)));
    assert.equal(typeof line.event, "string");
  }
  const connected = child.logs.find((line) => line.event === "client.connected");
  const disconnected = child.logs.find((line) => line.event === "client.disconnected");
  assert.equal(connected?.level, "info", "connections are logged at info");
  assert.equal(typeof connected?.client, "number", "with their id");
  assert.deepEqual(
    [connected?.room, connected?.user, connected?.remote],
    ["logs", "ann", "127.0.0.1"],
  );
  assert.equal(disconnected?.client, connected?.client);
  assert.equal(disconnected?.code, 1000, "the close code");
  assert.equal(typeof disconnected?.duration_ms, "number");
  assert.ok(!JSON.stringify(child.logs).includes("a secret message"), "no message content");
});

Deno.test("LOG_FORMAT=text writes readable lines", async () => {
  const { code, stdout } = await runTask("start", { LOG_FORMAT: "text", PORT: "abc" });
  assert.equal(code, 2, "a bad PORT still fails first");
  assert.equal(stdout, "");
  const started = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-net", new URL("../../main.ts", import.meta.url).pathname],
    env: { LOG_FORMAT: "text", PORT: "0", HOST: "127.0.0.1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = started.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("server.listening")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  started.kill("SIGTERM");
  while (!(await reader.read()).done);
  await started.status;
  assert.match(text, /^\d{4}-\d\d-\d\dT\S+Z INFO {2}store\.selected store="memory"$/m);
  assert.match(
    text,
    /^\S+ INFO {2}server\.listening host="127\.0\.0\.1" port=(\d+) url="http:\/\/127\.0\.0\.1:\1\/" /m,
  );
});
