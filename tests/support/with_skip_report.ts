/**
 * Runs `deno <args>` (the test task's `deno test ...`), then says which services were not found,
 * how many tests were ignored for them (from Deno's JUnit report), and the one command per
 * service that makes them run; exits with the test run's code. Adds nothing when every service
 * was there, or under CI=true (where a missing service is a failing test instead).
 *
 * Wrapping, rather than a step after `deno test` in the task, keeps `deno task test --filter x`
 * working: a task's extra arguments go to the end of its last command.
 *
 * Usage: `deno run --allow-run --allow-read --allow-write=/tmp --allow-env
 * tests/support/with_skip_report.ts test [deno test flags] tests/`
 */

/**
 * Set for the test run to a fresh directory: the service gates (`services.ts`) append
 * {@link SkipRecord}s to {@link SKIP_LOG_FILE} in it, and Deno writes {@link JUNIT_FILE} there.
 */
export const SKIP_REPORT_VARIABLE = "TEST_SKIP_REPORT";
/** The gates' JSON-lines file in the run's directory. */
export const SKIP_LOG_FILE = "skips.jsonl";
/** The JUnit file `deno test --junit-path` writes in the run's directory. */
export const JUNIT_FILE = "junit.xml";

/** One line of the skip log: a test module whose tests that need `service` were ignored. */
export interface SkipRecord {
  readonly service: string;
  readonly variable: string;
  /** The test module, relative to the working directory (`tests/...`). */
  readonly module: string;
  /** Why, e.g. `TEST_REDIS_URL is not set and no Redis answered at 127.0.0.1:6379 (...)`. */
  readonly reason: string;
  /** The one command that makes them run. */
  readonly enable: string;
}

/** The report's line width (a single module name longer than that gets a line of its own). */
const WIDTH = 100;
/** The prefix of tests ignored on purpose until a known bug is fixed (not for a service). */
export const KNOWN_BUG_PREFIX = "KNOWN BUG";

/**
 * The report's lines for `records`; with Deno's `junit` report, the count of ignored tests too.
 *
 * Deno's JUnit report files a test under the file that called `Deno.test` (a shared contract or
 * fixture, not always the module that gated it), so tests are counted in total, not per service:
 * the ignored ones not named {@link KNOWN_BUG_PREFIX} are the ones the gates turned off.
 *
 * @example
 * ```ts
 * const lines = skipReport(records, await Deno.readTextFile("junit.xml"));
 * ```
 * @throws never.
 */
export function skipReport(records: readonly SkipRecord[], junit: string | undefined): string[] {
  const ignored = junit === undefined ? undefined : ignoredTests(junit);
  const knownBugs = ignored?.filter((name) => name.startsWith(KNOWN_BUG_PREFIX)).length ?? 0;
  // With a --filter, the modules that skipped may have had no test left to run.
  if (records.length === 0 || ignored?.length === knownBugs) return [];
  const lines = [headline(ignored, knownBugs)];
  const services = new Map<string, { first: SkipRecord; modules: Set<string> }>();
  for (const record of records) {
    const service = services.get(record.variable) ?? { first: record, modules: new Set() };
    service.modules.add(record.module);
    services.set(record.variable, service);
  }
  for (const { first, modules } of services.values()) {
    lines.push(`- ${first.service}: ${first.reason}.`);
    lines.push(`    to run them: ${first.enable}`);
    lines.push(...wrapped("    ignored in: ", [...modules].toSorted()));
  }
  return lines;
}

function headline(ignored: readonly string[] | undefined, knownBugs: number): string {
  const because = "because a service was not found:";
  if (ignored === undefined) return `Tests were ignored ${because}`;
  const all = plural(ignored.length, "test");
  if (knownBugs === 0) return `${all} ignored ${because}`;
  const bugs = plural(knownBugs, `${KNOWN_BUG_PREFIX} test`);
  return `${all} ignored: ${bugs}, and ${ignored.length - knownBugs} ${because}`;
}

/**
 * The names of the ignored tests in a JUnit report. Deno 2.9.6 marks tests left out by --filter
 * `<skipped/>` too, but gives only the ones it reached (ignored ones included) a `time`.
 */
function ignoredTests(junit: string): string[] {
  return [...junit.matchAll(/<testcase name="([^"]*)"([^>]*)>\s*<skipped\/>/g)]
    .filter((testcase) => / time="/.test(testcase[2] ?? ""))
    .map((testcase) => testcase[1] ?? "");
}

/** `items` after `lead`, comma-separated, in lines of at most {@link WIDTH} characters. */
function wrapped(lead: string, items: readonly string[]): string[] {
  const indent = " ".repeat(lead.length);
  const lines = [lead];
  for (const [i, item] of items.entries()) {
    const text = i === items.length - 1 ? item : `${item},`;
    const last = lines.length - 1;
    const line = lines[last] ?? "";
    const fits = line.length + 1 + text.length <= WIDTH;
    if (fits || i === 0) lines[last] = `${line}${i === 0 ? "" : " "}${text}`;
    else lines.push(indent + text);
  }
  return lines;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Runs `deno <args>` with a fresh report directory; returns its exit code and the report. */
async function run(args: readonly string[]): Promise<{ code: number; lines: string[] }> {
  const directory = await Deno.makeTempDir({ dir: "/tmp", prefix: "chat-server-test-" });
  try {
    const junitPath = `${directory}/${JUNIT_FILE}`;
    const [command = "test", ...rest] = args;
    const child = new Deno.Command(Deno.execPath(), {
      args: [command, `--junit-path=${junitPath}`, ...rest],
      env: { [SKIP_REPORT_VARIABLE]: directory },
    }).spawn();
    // Ctrl-C reaches the child too; a SIGTERM to the task reaches only us: pass both on, and wait.
    const forward = (signal: Deno.Signal) => () => child.kill(signal);
    const handlers = [["SIGINT", forward("SIGINT")], ["SIGTERM", forward("SIGTERM")]] as const;
    for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
    const { code } = await child.status;
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    const log = await readIfThere(`${directory}/${SKIP_LOG_FILE}`);
    const records = (log ?? "").split("\n").filter((line) => line !== "")
      .map((line) => JSON.parse(line) as SkipRecord);
    return { code, lines: skipReport(records, await readIfThere(junitPath)) };
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
}

if (import.meta.main) {
  const { code, lines } = await run(Deno.args);
  if (lines.length > 0) console.log(["", ...lines].join("\n"));
  Deno.exit(code);
}
