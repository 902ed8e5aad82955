/**
 * `deno task start` fetches only what the server imports: Deno fetches every npm package of the
 * lockfile it runs with, so `deno.lock` holds the server's packages alone and the test tools
 * (Playwright) live in `tests/deno.lock`.
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);

interface Lockfile {
  readonly specifiers?: Record<string, string>;
  readonly npm?: Record<string, unknown>;
}

Deno.test("deno.lock names exactly the npm packages main.ts imports, and no test tool", async () => {
  const lock: Lockfile = JSON.parse(await Deno.readTextFile(new URL("deno.lock", root)));
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--no-lock", "main.ts"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { kind?: string; specifier: string }[];
  };
  const imported = graph.modules
    .filter((module) => module.kind === "npm")
    .map((module) => module.specifier.replace(/^npm:\//, "npm:"))
    .sort();
  assert.deepEqual(Object.keys(lock.specifiers ?? {}).sort(), imported);
  const packages = Object.keys(lock.npm ?? {});
  assert.ok(!packages.some((name) => name.startsWith("playwright")), packages.join(", "));
});
