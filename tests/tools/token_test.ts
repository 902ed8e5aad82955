import assert from "node:assert/strict";
import { TokenVerifier } from "../../server/auth.ts";
import { runTask } from "../support/child_server.ts";

const SECRET = "a-test-secret-that-is-long-enough-for-hs256";

/** Runs `deno task token` with a valid AUTH_SECRET unless `env` says otherwise. */
function token(args: string[], env: Record<string, string> = {}) {
  return runTask("token", { AUTH_SECRET: SECRET, ...env }, args);
}

/** Deno's own noise (`--env-file` without a file, permission prompts) must never show. */
function assertNoDenoNoise(stderr: string): void {
  for (const line of stderr.split("\n")) {
    assert.doesNotMatch(line, /--env-file|Warning/, line);
  }
}

/** Exit 2 with exactly `error: ...` and the usage line: no stack trace, nothing on stdout. */
async function assertUsageError(
  args: string[],
  expected: RegExp,
  env: Record<string, string> = {},
): Promise<void> {
  const { code, stdout, stderr } = await token(args, env);
  const label = JSON.stringify(args);
  assert.equal(code, 2, `${label}: ${stderr}`);
  assert.equal(stdout, "", label);
  assert.doesNotMatch(stderr, /Uncaught|^\s+at /m, label);
  assertNoDenoNoise(stderr);
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 2, `${label}: ${stderr}`);
  assert.match(lines[0] ?? "", /^error: /, label);
  assert.match(lines[0] ?? "", expected, label);
  assert.match(lines[1] ?? "", /^usage: deno task token /, label);
}

Deno.test("deno task token --help prints the options, an example and the duration syntax", async () => {
  for (const flag of ["--help", "-h"]) {
    const { code, stdout, stderr } = await token([flag]);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
    for (const part of ["usage: deno task token", "--user", "--rooms", "--ttl", "1h30m", "365d"]) {
      assert.ok(stdout.includes(part), `${flag} mentions ${part}`);
    }
    assert.match(stdout, /example:\n\s+deno task token --user \S+ --rooms/);
  }
});

Deno.test("deno task token --help needs no AUTH_SECRET", async () => {
  const { code, stderr } = await token(["--help"], { AUTH_SECRET: "" });
  assert.equal(code, 0, stderr);
});

Deno.test("deno task token refuses a bad --ttl in one line", async () => {
  const good = ["--user", "alice", "--rooms", "general"];
  await assertUsageError([...good, "--ttl", "-5m"], /--ttl/);
  await assertUsageError([...good, "--ttl=-5m"], /--ttl must be a duration .*"-5m"/);
  await assertUsageError([...good, "--ttl", "0"], /--ttl must be a duration .*"0"/);
  await assertUsageError([...good, "--ttl", "abc"], /--ttl must be a duration .*"abc"/);
  await assertUsageError([...good, "--ttl", "1.5h"], /--ttl must be a duration/);
  await assertUsageError([...good, "--ttl", "366d"], /from 1s to 365d/);
  await assertUsageError([...good, "--ttl"], /--ttl/);
});

Deno.test("deno task token refuses unknown options, positionals and missing values", async () => {
  await assertUsageError(["--user", "alice", "--rooms", "general", "--bogus"], /--bogus/);
  await assertUsageError(["--user", "alice", "--rooms", "general", "extra"], /extra/);
  await assertUsageError(["--user", "alice"], /--rooms needs at least one room/);
  await assertUsageError(["--user", "alice", "--rooms", " , "], /--rooms needs at least one room/);
  await assertUsageError(["--rooms", "general"], /--user is required/);
  await assertUsageError(["--user", " ", "--rooms", "general"], /^error: --user must be/);
});

Deno.test("deno task token refuses a missing or short AUTH_SECRET in one line", async () => {
  const args = ["--user", "alice", "--rooms", "general"];
  await assertUsageError(args, /AUTH_SECRET is not set/, { AUTH_SECRET: "" });
  await assertUsageError(args, /AUTH_SECRET must be at least 32 bytes/, { AUTH_SECRET: "short" });
});

Deno.test("deno task token prints a token the server accepts, valid for --ttl", async () => {
  const before = Math.floor(Date.now() / 1000);
  const { code, stdout, stderr } = await token([
    "--user",
    "alice",
    "--rooms",
    "general,team-*",
    "--ttl",
    "1h30m",
  ]);
  const after = Math.ceil(Date.now() / 1000);
  assert.equal(code, 0, stderr);
  assertNoDenoNoise(stderr);
  const jwt = stdout.trim();
  assert.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const identity = await new TokenVerifier(SECRET).verify(jwt);
  assert.equal(identity.user, "alice");
  assert.deepEqual(identity.rooms, ["general", "team-*"]);
  const exp = identity.expiresAtMs / 1000;
  assert.ok(exp >= before + 5400 && exp <= after + 5400, `exp ${exp} is now + 1h30m`);
  assert.deepEqual(identity.scopes, [], "no API access unless asked");
});

Deno.test("deno task token --api adds the api scope; room names are in NFC", async () => {
  const { code, stdout, stderr } = await token(["--user", "bot", "--rooms", "cafe\u0301", "--api"]);
  assert.equal(code, 0, stderr);
  const identity = await new TokenVerifier(SECRET).verify(stdout.trim());
  assert.deepEqual(identity.scopes, ["api"]);
  assert.deepEqual(identity.rooms, ["café"]);
});

Deno.test("deno task token reads AUTH_SECRET from .env in the working directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "token_test_" });
  try {
    await Deno.writeTextFile(`${dir}/.env`, `AUTH_SECRET=${SECRET}\n`);
    const root = new URL("../../", import.meta.url);
    // runTask cannot unset a variable, and `deno task` runs in the repository: run the script
    // itself, with only what Deno needs to find its cache.
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--config=${new URL("deno.json", root).pathname}`,
        "--allow-env",
        "--allow-read=.env",
        new URL("tools/token.ts", root).pathname,
        "--user=alice",
        "--rooms=general",
      ],
      cwd: dir,
      clearEnv: true,
      env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assertNoDenoNoise(stderr);
    const identity = await new TokenVerifier(SECRET).verify(
      new TextDecoder().decode(output.stdout).trim(),
    );
    assert.equal(identity.user, "alice");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
