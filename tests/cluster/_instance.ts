/**
 * One chat server instance for the cluster tests: the real entry point (`deno task start`) as a
 * child process, run as an operator would, that a test can stop, kill, and ask for its state.
 */
import assert from "node:assert/strict";
import { type ChildServer, startChildServer } from "../support/child_server.ts";
import { waitFor } from "../support/wait_for.ts";

export class Instance {
  readonly #child: ChildServer;
  #exit: Promise<{ code: number; stderr: string }> | undefined;
  /** Whether the test killed it (then it exits 137, not 0). */
  crashed = false;

  private constructor(child: ChildServer) {
    this.#child = child;
  }

  /**
   * Starts `deno task start` with `env` and waits until it listens. Leaves are told at once
   * (`PRESENCE_LEAVE_GRACE=0`) unless `env` says otherwise.
   */
  static async start(env: Record<string, string>): Promise<Instance> {
    return new Instance(await startChildServer({ PRESENCE_LEAVE_GRACE: "0", ...env }));
  }

  /** Its id in the cluster, from its `cluster.enabled` log line (its first worker's). */
  get id(): string {
    const [id] = this.ids;
    if (id === undefined) throw new Error("no cluster.enabled log line");
    return id;
  }

  /** Its ids in the cluster: one, or one per worker under `WORKERS`. */
  get ids(): string[] {
    return this.#child.logs.flatMap((entry) =>
      entry.event === "cluster.enabled" && typeof entry.instance === "string"
        ? [entry.instance]
        : []
    );
  }

  /** Its log lines so far, parsed. */
  get logs(): readonly Record<string, unknown>[] {
    return this.#child.logs;
  }

  /** An http:// URL of this instance. */
  url(path: string): string {
    return `http://127.0.0.1:${this.#child.port}${path}`;
  }

  chatUrl(room: string, user: string): string {
    return `ws://127.0.0.1:${this.#child.port}/chat?r=${room}&u=${user}`;
  }

  async readiness(): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(this.url("/readyz"));
    return { status: response.status, body: await response.json() };
  }

  /** Polls `/readyz` until it reports the cluster `state`. */
  async untilCluster(state: "ok" | "degraded", timeoutMs = 10_000): Promise<void> {
    await waitFor(`/readyz cluster "${state}"`, async () => {
      const { body } = await this.readiness();
      return body.cluster === state || undefined;
    }, timeoutMs);
  }

  /** SIGTERM through `deno task` (idempotent). @returns how it exited. */
  stop(): Promise<{ code: number; stderr: string }> {
    if (!this.#exit) {
      this.#child.process.kill("SIGTERM");
      this.#exit = this.#child.finished();
    }
    return this.#exit;
  }

  /** `kill -9` of the real server, the child deno that `deno task` started. */
  async crash(): Promise<void> {
    const pgrep = await new Deno.Command("pgrep", {
      args: ["-P", String(this.#child.process.pid)],
      stdout: "piped",
    }).output();
    const pids = new TextDecoder().decode(pgrep.stdout).split(/\s+/).filter(Boolean);
    assert.equal(pids.length, 1, `one server process under deno task, got ${pids}`);
    Deno.kill(Number(pids[0]), "SIGKILL");
    this.crashed = true;
    this.#exit = this.#child.finished();
    await this.#exit;
  }
}
