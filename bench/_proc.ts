/**
 * What the kernel says about a process: CPU time from `/proc/<pid>/stat` and resident memory
 * from `/proc/<pid>/status`. Linux only; the benchmarks run on 127.0.0.1 of one machine.
 *
 * Deno 2.9 refuses to read anything under `/proc` without `--allow-all`, so the files are read
 * by `cat` (`--allow-run=cat`): about 1 ms per reading, taken only between steps.
 *
 * @module
 */

/**
 * Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`). It is 100 on every Linux
 * x86-64 kernel; Deno offers no `sysconf` to ask.
 */
const CLOCK_TICKS_PER_SECOND = 100;

/** One reading of a process. */
export interface ProcSample {
  /** utime + stime, in seconds of CPU, all threads. */
  readonly cpuSeconds: number;
  /** VmRSS in KiB. */
  readonly rssKiB: number;
  /** When it was taken (performance.now()). */
  readonly atMs: number;
}

/** One reading of the whole machine, from the first line of `/proc/stat`. */
export interface MachineSample {
  /** CPU seconds of all CPUs not idle, waiting or stolen: user, nice, system, irq, softirq. */
  readonly busySeconds: number;
  readonly atMs: number;
}

/** CPU and memory of a process over an interval. */
export interface ProcUsage {
  /** CPU time over wall time, in percent of one core (200 = both cores of this machine). */
  readonly cpuPercent: number;
  /** VmRSS at the end, in KiB. */
  readonly rssKiB: number;
  /** CPU seconds used over the interval. */
  readonly cpuSeconds: number;
}

/**
 * Reads a process now.
 *
 * @example
 * ```ts
 * const before = await sampleProc(Deno.pid);
 * ```
 * @throws {Error} if the process is gone.
 */
export async function sampleProc(pid: number): Promise<ProcSample> {
  const [stat, status] = await readFiles([`/proc/${pid}/stat`, `/proc/${pid}/status`]);
  const atMs = performance.now();
  // The command name (field 2) may hold spaces and parentheses: count from the last ")".
  const fields = (stat ?? "").slice((stat ?? "").lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5) are utime and stime; fields[0] here is field 3.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status ?? "");
  return { cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND, rssKiB: Number(rss?.[1] ?? NaN), atMs };
}

/**
 * Usage between an earlier sample and now.
 *
 * @example
 * ```ts
 * const before = await sampleProc(pid);
 * // ... load ...
 * const { cpuPercent, rssKiB } = await usageSince(pid, before);
 * ```
 */
export async function usageSince(pid: number, before: ProcSample): Promise<ProcUsage> {
  const now = await sampleProc(pid);
  const wallSeconds = (now.atMs - before.atMs) / 1000;
  const cpuSeconds = now.cpuSeconds - before.cpuSeconds;
  return {
    cpuPercent: wallSeconds > 0 ? (cpuSeconds / wallSeconds) * 100 : 0,
    rssKiB: now.rssKiB,
    cpuSeconds,
  };
}

/**
 * Reads the machine's CPU counters now. Interrupt and softirq time count as busy: Linux charges
 * softirq work (where loopback TCP is delivered) to the task it interrupted as well, so our own
 * processes' times include theirs.
 *
 * @example
 * ```ts
 * const before = await sampleMachine();
 * ```
 */
export async function sampleMachine(): Promise<MachineSample> {
  const [stat] = await readFiles(["/proc/stat"]);
  const atMs = performance.now();
  const fields = (stat ?? "").slice(0, (stat ?? "").indexOf("\n")).trim().split(/\s+/);
  // cpu user nice system idle iowait irq softirq steal ...
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields.slice(1).map(Number);
  return { busySeconds: (user + nice + system + irq + softirq) / CLOCK_TICKS_PER_SECOND, atMs };
}

/**
 * CPU used since `before` by every task other than the processes in `pids`, in percent of one
 * core: other work on the machine competing with the benchmark.
 *
 * @example
 * ```ts
 * const other = otherCpuPercent(machineBefore, await sampleMachine(), [serverCpuSeconds]);
 * ```
 */
export function otherCpuPercent(
  before: MachineSample,
  after: MachineSample,
  ownCpuSeconds: readonly number[],
): number {
  const wallSeconds = (after.atMs - before.atMs) / 1000;
  const own = ownCpuSeconds.reduce((sum, seconds) => sum + seconds, 0);
  const other = after.busySeconds - before.busySeconds - own;
  return wallSeconds > 0 ? Math.max(0, (other / wallSeconds) * 100) : 0;
}

/**
 * CPU seconds used so far by every process whose command name is `command` (as in
 * `/proc/<pid>/comm`, e.g. `postgres`): a part of the system under test that runs in processes
 * of its own. Read with one `sh -c` running `cat` on every process's stat file
 * (`--allow-run=cat,sh`).
 *
 * @example
 * ```ts
 * const before = await commandCpuSeconds("postgres");
 * ```
 */
export async function commandCpuSeconds(command: string): Promise<number> {
  const output = await new Deno.Command("sh", {
    // Processes may end while being read: their errors are expected and dropped.
    args: ["-c", "cat /proc/[0-9]*/stat 2>/dev/null; true"],
    stdout: "piped",
    stderr: "null",
  }).output();
  let ticks = 0;
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    const open = line.indexOf(" (");
    const close = line.lastIndexOf(")");
    if (open < 0 || close < 0 || line.slice(open + 2, close) !== command) continue;
    const fields = line.slice(close + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/**
 * The soft limit on open files of this process (`ulimit -n`), from `/proc/<pid>/limits`.
 *
 * @example
 * ```ts
 * if (await openFileLimit() < 10_100) throw new Error("raise ulimit -n");
 * ```
 */
export async function openFileLimit(): Promise<number> {
  const [limits] = await readFiles([`/proc/${Deno.pid}/limits`]);
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits ?? "");
  if (!match || match[1] === "unlimited") return Infinity;
  return Number(match[1]);
}

/**
 * Each file's text, in order; one `cat` for all of them. Only the last may span several lines
 * (stat files are one line).
 */
async function readFiles(paths: readonly string[]): Promise<string[]> {
  const output = await new Deno.Command("cat", {
    args: [...paths],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `cannot read ${paths.join(" ")}: ${new TextDecoder().decode(output.stderr).trim()}`,
    );
  }
  const text = new TextDecoder().decode(output.stdout);
  const parts: string[] = [];
  let rest = text;
  for (let i = 0; i < paths.length - 1; i++) {
    const newline = rest.indexOf("\n");
    parts.push(rest.slice(0, newline));
    rest = rest.slice(newline + 1);
  }
  parts.push(rest);
  return parts;
}

/** CPU over an interval: the server's, this process's and every other task's (see below). */
export interface IntervalUsage {
  /** Percent of one core; absent without a server pid. */
  readonly serverCpuPercent: number | undefined;
  readonly serverRssKiB: number | undefined;
  readonly clientCpuPercent: number;
  /** Every other task on the machine, in percent of one core ({@linkcode otherCpuPercent}). */
  readonly otherCpuPercent: number;
}

/**
 * Starts measuring CPU; the returned function ends the interval and reports it.
 *
 * @example
 * ```ts
 * const stop = await meterUsage(serverPid);
 * // ... load ...
 * const { serverCpuPercent, clientCpuPercent, otherCpuPercent } = await stop();
 * ```
 */
export async function meterUsage(
  serverPid: number | undefined,
): Promise<() => Promise<IntervalUsage>> {
  const [server, client, machine] = await Promise.all([
    serverPid === undefined ? undefined : sampleProc(serverPid),
    sampleProc(Deno.pid),
    sampleMachine(),
  ]);
  return async () => {
    const [serverUsage, clientUsage, machineAfter] = await Promise.all([
      serverPid === undefined || server === undefined ? undefined : usageSince(serverPid, server),
      usageSince(Deno.pid, client),
      sampleMachine(),
    ]);
    const own = [serverUsage?.cpuSeconds ?? 0, clientUsage.cpuSeconds];
    const round = (value: number) => Math.round(value * 100) / 100;
    return {
      serverCpuPercent: serverUsage && round(serverUsage.cpuPercent),
      serverRssKiB: serverUsage?.rssKiB,
      clientCpuPercent: round(clientUsage.cpuPercent),
      otherCpuPercent: round(otherCpuPercent(machine, machineAfter, own)),
    };
  };
}
