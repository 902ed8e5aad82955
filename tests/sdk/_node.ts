/**
 * Real Node.js for the SDK tests: whether `node` (20 or later) is here, and npm `ws` (Node 20 has
 * no WebSocket) installed once with npm into a folder under /tmp that later runs reuse.
 */
import { join } from "node:path";

/** The `ws` the Node tests use, pinned: the cache folder is named after it. */
export const WS_PACKAGE = "ws@8.23.0";
const WS_CACHE = `/tmp/chat-sdk-node-${WS_PACKAGE.replace("@", "-")}`;
/** Bounds a slow registry: npm usually takes a second or two. */
const INSTALL_TIMEOUT_MS = 120_000;

/** What the gate decided: the Node version, or why the Node tests do not run. */
export interface NodeGate {
  readonly ignore: boolean;
  readonly version: string | undefined;
}

/**
 * Whether the Node tests run: `node --version` must say 20 or later. Without it they are
 * ignored with a reason on stderr, except under `CI=true`, where that is a failing test.
 */
export function nodeGate(): NodeGate {
  let version: string | undefined;
  try {
    const output = new Deno.Command("node", { args: ["--version"], stdout: "piped" }).outputSync();
    version = new TextDecoder().decode(output.stdout).trim();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const major = Number(version?.match(/^v(\d+)\./)?.[1] ?? 0);
  if (major >= 20) return { ignore: false, version };
  const why = version ? `node ${version} is older than 20` : "node is not on the PATH";
  if (Deno.env.get("CI") === "true") {
    Deno.test("Node.js 20+ is available (CI=true requires it)", () => {
      throw new Error(why);
    });
  } else console.error(`skipping the Node.js SDK tests: ${why}`);
  return { ignore: true, version };
}

/**
 * The folder whose `node_modules` holds {@linkcode WS_PACKAGE}: installed by npm the first time
 * (into a fresh folder, renamed into place, so concurrent runs never see half an install).
 *
 * @throws {Error} when npm fails or takes longer than {@linkcode INSTALL_TIMEOUT_MS}.
 */
export async function wsFolder(): Promise<string> {
  if (await isInstalled(WS_CACHE)) return WS_CACHE;
  const staging = await Deno.makeTempDir({ dir: "/tmp", prefix: "chat-sdk-ws-" });
  try {
    const output = await new Deno.Command("npm", {
      args: ["install", "--prefix", staging, "--no-save", "--no-audit", "--no-fund", WS_PACKAGE],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(INSTALL_TIMEOUT_MS),
    }).output();
    if (!output.success || !(await isInstalled(staging))) {
      const stderr = new TextDecoder().decode(output.stderr);
      throw new Error(`npm install ${WS_PACKAGE} failed (code ${output.code}): ${stderr}`);
    }
    await Deno.rename(staging, WS_CACHE).catch(async (error) => {
      // Another run put its copy there first: use that one.
      if (!(await isInstalled(WS_CACHE))) throw error;
    });
    return WS_CACHE;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error; // NotFound: renamed into place
    });
  }
}

async function isInstalled(folder: string): Promise<boolean> {
  try {
    const text = await Deno.readTextFile(join(folder, "node_modules", "ws", "package.json"));
    return `ws@${JSON.parse(text).version}` === WS_PACKAGE;
  } catch {
    return false;
  }
}
