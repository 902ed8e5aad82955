import assert from "node:assert/strict";
import { type SkipRecord, skipReport } from "./with_skip_report.ts";

const POSTGRES: Omit<SkipRecord, "module"> = {
  service: "PostgreSQL",
  variable: "TEST_DATABASE_URL",
  reason: "TEST_DATABASE_URL is not set and no PostgreSQL answered at 127.0.0.1:5432 (refused)",
  enable: "TEST_DATABASE_URL=postgres://user@host:5432/db deno task test",
};
const JUNIT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="6" failures="0" errors="0" time="1.000">
    <testsuite name="./tests/a_test.ts" tests="4" disabled="3" errors="0" failures="0">
        <testcase name="runs" classname="./tests/a_test.ts" time="0.002" line="3" col="6">
        </testcase>
        <testcase name="rows" classname="./tests/a_test.ts" time="0.000" line="4" col="6">
            <skipped/>
        </testcase>
        <testcase name="KNOWN BUG: &quot;x&quot;" classname="./tests/a_test.ts" time="0.000">
            <skipped/>
        </testcase>
        <testcase name="left out by --filter" classname="./tests/a_test.ts" line="6" col="6">
            <skipped/>
        </testcase>
    </testsuite>
    <testsuite name="./tests/_contract.ts" tests="2" disabled="2" errors="0" failures="0">
        <testcase name="store: a" classname="./tests/_contract.ts" time="0.000" line="9" col="6">
            <skipped/>
        </testcase>
        <testcase name="store: b" classname="./tests/_contract.ts" time="0.000" line="9" col="6">
            <skipped/>
        </testcase>
    </testsuite>
</testsuites>`;

Deno.test("skipReport() counts the ignored tests, names each missing service, its command", () => {
  const records = [
    { ...POSTGRES, module: "tests/b_test.ts" },
    { ...POSTGRES, module: "tests/a_test.ts" },
    { ...POSTGRES, module: "tests/b_test.ts" },
  ];
  assert.deepEqual(skipReport(records, JUNIT), [
    "4 tests ignored: 1 KNOWN BUG test, and 3 because a service was not found:",
    `- PostgreSQL: ${POSTGRES.reason}.`,
    `    to run them: ${POSTGRES.enable}`,
    "    ignored in: tests/a_test.ts, tests/b_test.ts",
  ]);
});

Deno.test("skipReport() says nothing when nothing was skipped", () => {
  assert.deepEqual(skipReport([], JUNIT), []);
});

Deno.test("skipReport() says nothing when --filter left none of the gated tests", () => {
  const filtered = JUNIT.replaceAll(/(<testcase name="(rows|store: .)"[^>]*?) time="[^"]*"/g, "$1");
  assert.deepEqual(skipReport([{ ...POSTGRES, module: "tests/a_test.ts" }], filtered), []);
});

Deno.test("skipReport() still names the services when Deno wrote no JUnit report", () => {
  const lines = skipReport([{ ...POSTGRES, module: "tests/a_test.ts" }], undefined);
  assert.equal(lines[0], "Tests were ignored because a service was not found:");
  assert.equal(lines[1], `- PostgreSQL: ${POSTGRES.reason}.`);
});

Deno.test("skipReport() wraps a long list of modules at 100 characters", () => {
  const modules = Array.from({ length: 12 }, (_, i) => `tests/server/module_number_${i}_test.ts`);
  const lines = skipReport(modules.map((module) => ({ ...POSTGRES, module })), undefined);
  const listed = lines.slice(3);
  assert.ok(listed.length > 1, lines.join("\n"));
  for (const line of listed) assert.ok(line.length <= 100, line);
  assert.deepEqual(
    listed.join(" ").replace("ignored in:", "").split(/[\s,]+/).filter(Boolean),
    [
      ...modules,
    ].toSorted(),
  );
});
