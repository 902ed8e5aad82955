import assert from "node:assert/strict";
import { explainCompileFailure } from "../../tools/compile.ts";
import { runTask } from "../support/child_server.ts";

// What deno compile 2.9.6 prints without internet (RUST_BACKTRACE=1 adds the backtrace).
const OFFLINE_STDERR =
  `error: Writing deno compile executable to temporary file 'dist/chat-server.tmp-1'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error: failed to lookup address information: Name or service not known
    2: client error (Connect)

Stack backtrace:
   0: <unknown>
`;

Deno.test("A compile that cannot download Deno's runtime is explained in one line", () => {
  const line = explainCompileFailure(OFFLINE_STDERR);
  assert.doesNotMatch(line, /\n/);
  assert.match(line, /^error: deno compile needs to download Deno's runtime/);
});

Deno.test("Other compile failures keep Deno's first line and drop the backtrace", () => {
  const line = explainCompileFailure(
    'error: Module not found "file:///x.ts".\n\nStack backtrace:\n',
  );
  assert.equal(line, 'error: Module not found "file:///x.ts".');
});

Deno.test("deno task compile either builds the executable or fails with one line, never a backtrace", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A dead proxy for dl.deno.land: offline here, and offline on a machine with internet, unless
    // the runtime is cached already (then it compiles).
    const { code, stderr } = await runTask("compile", {
      HTTPS_PROXY: "http://127.0.0.1:9",
      NO_PROXY: "registry.npmjs.org",
      RUST_BACKTRACE: "1",
    }, [`${dir}/chat-server`]);
    if (code === 0) {
      assert.ok((await Deno.stat(`${dir}/chat-server`)).isFile);
      return;
    }
    assert.equal(code, 1);
    const lines = stderr.split("\n").filter((line) => line.trim());
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0] ?? "", /^error: deno compile needs to download Deno's runtime/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
