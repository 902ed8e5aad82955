/**
 * The SDK in real Node.js (20+) with npm `ws` as its WebSocket, against a real server: it joins,
 * sends, loses its connection and resumes, reads history, and exits by itself after close().
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";
import { nodeGate, wsFolder } from "./_node.ts";

const node = nodeGate();
const SDK = fileURLToPath(new URL("../../static/sdk/chat.js", import.meta.url));
const SCRIPT = fileURLToPath(new URL("./node_client.mjs", import.meta.url));
const TIMEOUT_MS = 15_000;

type Line = Record<string, unknown>;

/** `node node_client.mjs`, its stdout lines parsed, awaited one condition at a time. */
class NodeClient {
  readonly lines: Line[] = [];
  readonly #process: Deno.ChildProcess;
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;
  #wake: (() => void) | undefined;

  constructor(env: Record<string, string>) {
    this.#process = new Deno.Command("node", {
      args: [SCRIPT],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stderr = new Response(this.#process.stderr).text();
    this.#reading = this.#read();
  }

  /** The first line that `match` accepts, waiting for more output as long as it takes. */
  async until(what: string, match: (line: Line) => boolean): Promise<Line> {
    const signal = AbortSignal.timeout(TIMEOUT_MS);
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (signal.aborted) {
        throw new Error(`node did not say ${what}: ${JSON.stringify(this.lines)}`);
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.#wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** Waits for the exit; returns its code and stderr. */
  async finished(): Promise<{ code: number; stderr: string }> {
    const { code } = await this.#process.status;
    await this.#reading;
    return { code, stderr: await this.#stderr };
  }

  /** Kills the process if it still runs (a failed test), then waits for it. */
  async kill(): Promise<void> {
    try {
      this.#process.kill("SIGKILL");
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // TypeError: it exited already
    }
    await this.finished();
  }

  async #read(): Promise<void> {
    let pending = "";
    for await (const chunk of this.#process.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (pending + chunk).split("\n");
      pending = parts.pop() ?? "";
      for (const part of parts) if (part.trim()) this.lines.push(JSON.parse(part));
      this.#wake?.();
    }
    this.#wake?.();
  }
}

const event = (name: string) => (line: Line) => line.event === name;

Deno.test({
  name: "The SDK in Node.js with npm ws: join, send, resume after a lost connection, history",
  ignore: node.ignore,
  fn: async () => {
    const wsDir = await wsFolder();
    const server = startTestServer();
    const proxy = TcpProxy.start({ hostname: "127.0.0.1", port: server.port });
    const deno = await TestSocket.open(server.chatUrl("nodes", "deno"));
    await deno.nextOfType("welcome");
    const client = new NodeClient({
      CHAT_SDK: SDK,
      CHAT_URL: `http://127.0.0.1:${proxy.port}`,
      CHAT_ROOM: "nodes",
      WS_DIR: wsDir,
    });
    try {
      const open = await client.until("open", event("open"));
      assert.deepEqual(open.members, ["deno", "node"]);
      const ack = await client.until("its ack", event("ack"));
      const hello = await deno.nextOfType("message");
      assert.deepEqual([hello.sender, hello.content, hello.seq], ["node", "hello from node", 1]);
      assert.equal(ack.id, hello.id);

      proxy.cut();
      await client.until("reconnecting", (line) => line.state === "reconnecting");
      deno.send("while node was away");
      await deno.nextOfType("message");
      proxy.restore();
      await client.until("open again", (line) => line.state === "open");
      deno.send("bye");

      const history = await client.until("history", event("history"));
      assert.deepEqual(history.contents, ["hello from node", "while node was away", "bye"]);
      await client.until("closed", event("closed"));
      const { code, stderr } = await client.finished();
      assert.equal(code, 0, `node exited with ${code}: ${stderr}`);
      assert.equal(stderr, "");
      const messages = client.lines.filter(event("message")).map((
        line,
      ) => [line.seq, line.content]);
      assert.deepEqual(messages, [[1, "hello from node"], [2, "while node was away"], [3, "bye"]]);
      assert.deepEqual(client.lines.filter(event("error")), []);
    } finally {
      await client.kill();
      await deno.close();
      await proxy.close();
      await server.close();
    }
  },
});
