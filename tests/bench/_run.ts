/**
 * Runs the bench scripts as child processes for the tests of tests/bench/, and the check every
 * traffic step of a correct server passes.
 *
 * @module
 */
import assert from "node:assert/strict";

const LOAD = new URL("../../bench/load.ts", import.meta.url).pathname;

/**
 * Runs `deno run <args>` to its end (at most `timeoutMs`) and returns its stdout; it must exit 0.
 */
export async function runDeno(
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    env: options.env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

/** Runs the load generator against `url` (or a server of its own) and returns its JSON lines. */
export async function runLoad(
  url: string | undefined,
  args: string[],
  timeoutMs?: number,
): Promise<Record<string, unknown>[]> {
  // Without a URL it starts main.ts itself: --allow-read for Deno.execPath(), any --allow-run.
  const permissions = url === undefined
    ? ["--allow-net", "--allow-read", "--allow-run"]
    : ["--allow-net", "--allow-run=cat,sh"];
  const stdout = await runDeno([...permissions, LOAD, ...(url ? [url] : []), "--json", ...args], {
    timeoutMs,
  });
  return stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
}

/** Every message of a step reached each of a room's `members` once, in order, in seq order. */
export function assertIntact(step: Record<string, unknown>, members: number): void {
  assert.equal(step.lost, 0);
  assert.equal(step.duplicated, 0);
  assert.equal(step.reordered, 0);
  assert.equal(step.seqBroken, 0, "each member saw the room seq go up by one");
  assert.equal(step.gaps, 0);
  assert.equal(step.delivered, step.expected);
  assert.equal(step.expected, (step.sent as number) * members, "every member gets every message");
  assert.equal(step.acked, step.sent, "every message acknowledged to its sender once");
}
