/**
 * `deno task compile`: builds `dist/chat-server`, one executable with the page embedded, from the
 * server's own lockfile (`deno.lock`; the test tools' is `tests/deno.lock`). Deno
 * downloads its runtime (`denort`) for that once; without internet that download fails with a
 * Rust backtrace, so a failure here is said in one line instead.
 *
 * @module
 */

const OUTPUT = "dist/chat-server";
/** The permissions the executable runs with: network and environment (it reads no `.env`). */
const PERMISSIONS = ["--allow-net", "--allow-env"];
/**
 * What `WORKERS` needs in the executable: the workers' entry (loaded by URL, so not found by the
 * module graph) and `reusePort` (unstable in Deno 2.9).
 */
const WORKER_FLAGS = ["--unstable-net", "--include=server/worker_main.ts"];

/** What went wrong, in one line, from `deno compile`'s standard error. */
export function explainCompileFailure(stderr: string): string {
  if (/Setting up base binary|denort|dl\.deno\.land/.test(stderr)) {
    return "error: deno compile needs to download Deno's runtime (denort) from dl.deno.land " +
      "once, and this machine could not reach it; run it once with internet access (it is " +
      "cached afterwards), or run the server with deno task start";
  }
  // Otherwise Deno's own first line says it; the backtrace under it never helps.
  const reason = stderr.split("\n").map((line) => line.trim()).find((line) => line !== "");
  return reason?.startsWith("error") ? reason : `error: deno compile failed: ${reason ?? "?"}`;
}

async function main(): Promise<void> {
  const output = Deno.args[0] ?? OUTPUT;
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.RUST_BACKTRACE;
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--lock=deno.lock",
      ...PERMISSIONS,
      ...WORKER_FLAGS,
      "--output",
      output,
      "main.ts",
    ],
    env,
    clearEnv: true,
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (result.success) {
    console.log(`compiled ${output}`);
    return;
  }
  console.error(explainCompileFailure(new TextDecoder().decode(result.stderr)));
  Deno.exit(1);
}

if (import.meta.main) await main();
