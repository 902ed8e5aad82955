import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../server/config.ts";
import { runTask } from "../support/child_server.ts";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";

const AUTH_SECRET = "metrics-access-secret-long-enough-for-hs256";
const METRICS_TOKEN = "metrics-token-0123456789abcdef";

/** Fetches `/metrics` and returns its status, `WWW-Authenticate` and body. */
async function scrape(
  url: string,
  authorization?: string,
): Promise<{ status: number; challenge: string | null; body: string }> {
  const response = await fetch(url, { headers: authorization ? { authorization } : {} });
  return {
    status: response.status,
    challenge: response.headers.get("www-authenticate"),
    body: await response.text(),
  };
}

function assertUnauthorized(answer: { status: number; challenge: string | null; body: string }) {
  assert.equal(answer.status, 401);
  assert.equal(answer.challenge, "Bearer");
  const { error } = JSON.parse(answer.body);
  assert.equal(error.code, "metrics_unauthorized");
  assert.equal(typeof error.message, "string");
  assert.doesNotMatch(answer.body, /chat_/, "no metric leaks into a refusal");
}

Deno.test("GET /metrics in open mode (no AUTH_SECRET, no METRICS_TOKEN) answers anyone", async () => {
  const app = startTestServer();
  const answer = await scrape(app.url("/metrics"));
  assert.equal(answer.status, 200);
  assert.match(answer.body, /^chat_connections 0$/m);
  await app.close();
});

Deno.test("GET /metrics with AUTH_SECRET and no METRICS_TOKEN answers 401, even to a bearer", async () => {
  const app = startTestServer({ AUTH_SECRET });
  const anonymous = await scrape(app.url("/metrics"));
  assertUnauthorized(anonymous);
  assert.match(JSON.parse(anonymous.body).error.message, /METRICS_TOKEN/);
  assertUnauthorized(await scrape(app.url("/metrics"), `Bearer ${METRICS_TOKEN}`));
  await app.close();
});

Deno.test("GET /metrics with METRICS_TOKEN needs exactly that bearer token", async () => {
  const envs: Record<string, string>[] = [{ METRICS_TOKEN }, { METRICS_TOKEN, AUTH_SECRET }];
  for (const env of envs) {
    const app = startTestServer(env);
    const url = app.url("/metrics");
    assertUnauthorized(await scrape(url));
    assertUnauthorized(await scrape(url, "Bearer wrong-token-0123456789abcdef"));
    assertUnauthorized(await scrape(url, `Bearer ${METRICS_TOKEN}x`));
    assertUnauthorized(await scrape(url, `Basic ${METRICS_TOKEN}`));
    assertUnauthorized(await scrape(app.url(`/metrics?token=${METRICS_TOKEN}`)));
    const allowed = await scrape(url, `Bearer ${METRICS_TOKEN}`);
    assert.equal(allowed.status, 200, Object.keys(env).join("+"));
    assert.match(allowed.body, /^chat_requests_refused_total\{reason="metrics_unauthorized"\} 5$/m);
    await app.close();
  }
});

Deno.test("GET /metrics names no room by default, and names them with METRICS_ROOM_LABELS=true", async () => {
  for (const [labels, named] of [[undefined, false], ["false", false], ["true", true]] as const) {
    const app = startTestServer(labels === undefined ? {} : { METRICS_ROOM_LABELS: labels });
    const member = await TestSocket.open(app.chatUrl("private-hr-layoffs", "ann"));
    await member.nextOfType("welcome");
    const { body } = await scrape(app.url("/metrics"));
    assert.match(body, /^chat_rooms 1$/m, "the room count stays");
    if (named) {
      assert.match(body, /^chat_room_members\{room="private-hr-layoffs"\} 1$/m);
    } else {
      assert.doesNotMatch(body, /chat_room_members/, `METRICS_ROOM_LABELS=${labels}`);
      assert.doesNotMatch(body, /private-hr-layoffs/);
    }
    await member.close();
    await app.close();
  }
});

Deno.test("parseConfig() reads METRICS_TOKEN and METRICS_ROOM_LABELS, refusing bad values", () => {
  const defaults = parseConfig({});
  assert.equal(defaults.metricsToken, undefined);
  assert.equal(defaults.metricsRoomLabels, false);
  const set = parseConfig({ METRICS_TOKEN, METRICS_ROOM_LABELS: "true" });
  assert.equal(set.metricsToken, METRICS_TOKEN);
  assert.equal(set.metricsRoomLabels, true);
  const bad: [string, string][] = [
    ["METRICS_TOKEN", "a".repeat(15)],
    ["METRICS_TOKEN", "has a blank in it, 0123"],
    ["METRICS_TOKEN", "nön-ascii-token-0123456789"],
    ["METRICS_ROOM_LABELS", "yes"],
    ["METRICS_ROOM_LABELS", "TRUE"],
  ];
  for (const [name, value] of bad) {
    assert.throws(
      () => parseConfig({ [name]: value }),
      (error) => error instanceof ConfigError && error.variable === name,
      `${name}=${value}`,
    );
  }
  assert.equal(parseConfig({ METRICS_TOKEN: "a".repeat(16) }).metricsToken, "a".repeat(16));
});

Deno.test("deno task start with a 15-character METRICS_TOKEN exits 2 with one line naming it", async () => {
  const { code, stderr } = await runTask("start", { METRICS_TOKEN: "a".repeat(15) });
  assert.equal(code, 2);
  const lines = stderr.split("\n").filter((line) => line.trim() && !line.includes("--env-file"));
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0] ?? "", /^error: METRICS_TOKEN must be at least 16 /);
  assert.doesNotMatch(stderr, /aaaaaaaaaaaaaaa/, "the rejected token is not echoed");
});
