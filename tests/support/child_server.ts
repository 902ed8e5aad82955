/** Runs the real entry point (`deno task start`) as a child process, as an operator would. */

const root = new URL("../../", import.meta.url);

export interface ChildServer {
  readonly process: Deno.ChildProcess;
  readonly port: number;
  /** Log lines read so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** Waits for the exit and returns the code and what went to stderr. */
  finished(): Promise<{ code: number; stderr: string }>;
}

/** Runs `deno task <task>` with `env`, and returns its output once it exits. */
export async function runTask(
  task: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", task, ...args],
    cwd: root,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Starts `deno task start` on a free port and waits for its `server.listening` log line. */
export async function startChildServer(env: Record<string, string> = {}): Promise<ChildServer> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "start"],
    cwd: root,
    env: { NO_COLOR: "1", PORT: "0", HOST: "127.0.0.1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderrText = new Response(process.stderr).text();
  const logs: Record<string, unknown>[] = [];
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
  const reader = lines.getReader();
  let port = 0;
  const signal = AbortSignal.timeout(20_000);
  while (port === 0) {
    signal.throwIfAborted();
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited before listening: ${await stderrText}`);
    const line = JSON.parse(value);
    logs.push(line);
    if (line.event === "server.listening") port = line.port;
  }
  // Keep reading so the child never blocks on a full pipe.
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      logs.push(JSON.parse(value));
    }
  })();
  return {
    process,
    port,
    logs,
    finished: async () => {
      const status = await process.status;
      await rest;
      return { code: status.code, stderr: await stderrText };
    },
  };
}

function lineSplitter(): TransformStream<string, string> {
  let pending = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (pending + chunk).split("\n");
      pending = parts.pop() ?? "";
      for (const part of parts) if (part.trim()) controller.enqueue(part);
    },
    flush(controller) {
      if (pending.trim()) controller.enqueue(pending);
    },
  });
}
