/**
 * Reads `.env` from the working directory when there is one. Deno's `--env-file` warns on every
 * start without the file, and a missing `.env` is the normal case.
 *
 * @module
 */
import { parseEnv } from "node:util";

/**
 * Sets each variable of the file at `path` that the environment does not set already (the
 * environment wins, as with `--env-file`). No file, or no permission to read it: nothing happens.
 */
export function loadEnvFile(path = ".env"): void {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return;
    }
    throw error;
  }
  for (const [name, value] of Object.entries(parseEnv(text))) {
    if (value !== undefined && Deno.env.get(name) === undefined) Deno.env.set(name, value);
  }
}
