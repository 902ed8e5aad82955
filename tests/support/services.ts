/**
 * Gates for tests that need a real service. Without the variable the test is skipped with a
 * one-line reason; under CI=true a missing service is a failing test instead.
 */

const announced = new Set<string>();

export interface ServiceGate {
  /** The service URL, when set. */
  readonly url: string | undefined;
  /** Pass as `ignore` to Deno.test. */
  readonly ignore: boolean;
}

/** Reads `variable` (e.g. TEST_DATABASE_URL) and decides whether dependent tests run. */
export function serviceGate(variable: string, what: string): ServiceGate {
  const url = Deno.env.get(variable) || undefined;
  if (url) return { url, ignore: false };
  if (Deno.env.get("CI") === "true") {
    if (!announced.has(variable)) {
      announced.add(variable);
      Deno.test(`${what} is available (${variable} must be set under CI=true)`, () => {
        throw new Error(`${variable} is not set: ${what} tests cannot run, and CI requires them`);
      });
    }
  } else if (!announced.has(variable)) {
    announced.add(variable);
    console.error(`skipping ${what} tests: ${variable} is not set`);
  }
  return { url: undefined, ignore: true };
}
