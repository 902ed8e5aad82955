/** The served process of a child server, read from `/proc`. */

/**
 * The process that actually serves: `deno task start` runs it as its child. Deno refuses to read
 * another process's `/proc` entries without `--allow-all`, so they are read through `sh`.
 */
export class ServedProcess {
  readonly pid: number;

  private constructor(pid: number) {
    this.pid = pid;
  }

  static async of(taskPid: number): Promise<ServedProcess> {
    const children = (await shell(`cat /proc/${taskPid}/task/*/children`)).trim().split(/\s+/);
    for (const pid of children.filter((pid) => /^\d+$/.test(pid))) {
      if ((await shell(`tr '\\0' ' ' < /proc/${pid}/cmdline`)).includes("main.ts")) {
        return new ServedProcess(Number(pid));
      }
    }
    throw new Error(`no child of ${taskPid} runs main.ts (children: ${children.join(", ")})`);
  }

  /** Resident memory now (`VmRSS`) and at its peak so far (`VmHWM`), in MiB. */
  async memory(): Promise<{ rssMiB: number; peakMiB: number }> {
    const status = await shell(`cat /proc/${this.pid}/status`);
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
    return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
  }

  /** Open file descriptors: every socket the server holds is one. */
  async openFds(): Promise<number> {
    return Number(await shell(`ls /proc/${this.pid}/fd | wc -l`));
  }
}

/** Runs a fixed command line (only numbers are interpolated) and returns its standard output. */
async function shell(command: string): Promise<string> {
  const output = await new Deno.Command("sh", { args: ["-c", command], stderr: "piped" }).output();
  const text = new TextDecoder();
  if (!output.success) throw new Error(`${command}: ${text.decode(output.stderr)}`);
  return text.decode(output.stdout);
}
