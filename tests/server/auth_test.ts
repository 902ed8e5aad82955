import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { runTask } from "../support/child_server.ts";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket, UPGRADE_HEADERS } from "../support/test_socket.ts";

const SECRET = "test-secret-that-is-long-enough-for-hs256";
const key = new TextEncoder().encode(SECRET);
const nowS = () => Math.floor(Date.now() / 1000);

function sign(claims: Record<string, unknown>, options: { expS?: number; sub?: string } = {}) {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" });
  if (options.sub !== undefined) jwt.setSubject(options.sub);
  return jwt.setExpirationTime(options.expS ?? nowS() + 3600).sign(key);
}

async function refusal(url: string, headers: Record<string, string> = UPGRADE_HEADERS) {
  const response = await fetch(url, { headers });
  const body = await response.json();
  return { status: response.status, code: body.error?.code };
}

function base64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
}

Deno.test("Tokens: each bad token gets its exact status and code before any upgrade", async () => {
  const app = startTestServer({ AUTH_SECRET: SECRET });
  const chat = (token: string) => app.url(`/chat?r=general&u=ignored&token=${token}`);
  const wrongKey = await new SignJWT({ rooms: ["*"] }).setProtectedHeader({ alg: "HS256" })
    .setSubject("ann").setExpirationTime(nowS() + 60)
    .sign(new TextEncoder().encode("another-secret-that-is-long-enough!!"));
  const unsigned = `${base64url({ alg: "none", typ: "JWT" })}.${
    base64url({ sub: "ann", rooms: ["*"], exp: nowS() + 60 })
  }.`;
  const cases: [string, string, number, string][] = [
    ["missing", app.url("/chat?r=general&u=ann"), 401, "token_missing"],
    ["garbage", chat("not.a.token"), 401, "token_invalid"],
    [
      "expired",
      chat(await sign({ rooms: ["*"] }, { sub: "ann", expS: nowS() - 10 })),
      401,
      "token_expired",
    ],
    ["wrong signature", chat(wrongKey), 401, "token_invalid"],
    ["alg none", chat(unsigned), 401, "token_invalid"],
    ["missing sub", chat(await sign({ rooms: ["*"] })), 401, "token_invalid"],
    [
      "sub not a valid name",
      chat(await sign({ rooms: ["*"] }, { sub: "a\u0007b" })),
      401,
      "token_invalid",
    ],
    ["rooms missing", chat(await sign({}, { sub: "ann" })), 401, "token_invalid"],
    [
      "room outside rooms",
      chat(await sign({ rooms: ["team-*", "random"] }, { sub: "ann" })),
      403,
      "room_forbidden",
    ],
  ];
  for (const [name, url, status, code] of cases) {
    assert.deepEqual(await refusal(url), { status, code }, name);
  }
  await app.close();
});

Deno.test("Tokens: a valid token joins as its sub, and room patterns match as documented", async () => {
  const app = startTestServer({ AUTH_SECRET: SECRET });
  const token = await sign({ rooms: ["general", "team-*"] }, { sub: "alice" });
  const allowed = ["general", "team-a", "team-"];
  for (const room of allowed) {
    const socket = await TestSocket.open(app.chatUrl(room, "mallory") + `&token=${token}`);
    const welcome = await socket.nextOfType("welcome");
    assert.equal(welcome.user, "alice", "sub overrides u");
    await socket.close();
  }
  for (const room of ["generals", "teams", "team"]) {
    const { status, code } = await refusal(app.url(`/chat?r=${room}&token=${token}`));
    assert.deepEqual({ status, code }, { status: 403, code: "room_forbidden" }, room);
  }
  const everywhere = await sign({ rooms: ["*"] }, { sub: "root" });
  const any = await TestSocket.open(
    app.url(`/chat?r=anything.at-all&token=${everywhere}`).replace("http", "ws"),
  );
  assert.equal((await any.nextOfType("welcome")).user, "root");
  await any.close();
  await app.close();
});

Deno.test("Tokens: a connection is closed with 4001 when its token expires", async () => {
  const app = startTestServer({ AUTH_SECRET: SECRET });
  const token = await sign({ rooms: ["*"] }, { sub: "ann", expS: nowS() + 2 });
  const socket = await TestSocket.open(app.chatUrl("expiring", "ann") + `&token=${token}`);
  await socket.nextOfType("welcome");
  const { close } = await socket.untilClosed(5_000);
  assert.deepEqual(close, { code: 4001, reason: "token expired" });
  await app.close();
});

Deno.test("/history enforces the same token and room rules, with ?token= or Bearer", async () => {
  const app = startTestServer({ AUTH_SECRET: SECRET });
  const token = await sign({ rooms: ["general"] }, { sub: "ann" });
  assert.deepEqual(await refusal(app.url("/history?r=general"), {}), {
    status: 401,
    code: "token_missing",
  });
  assert.deepEqual(await refusal(app.url(`/history?r=secret&token=${token}`), {}), {
    status: 403,
    code: "room_forbidden",
  });
  const viaQuery = await fetch(app.url(`/history?r=general&token=${token}`));
  assert.equal(viaQuery.status, 200);
  assert.deepEqual(await viaQuery.json(), []);
  const viaHeader = await fetch(app.url("/history?r=general"), {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(viaHeader.status, 200);
  await viaHeader.body?.cancel();
  await app.close();
});

Deno.test("deno task token prints a token the server accepts", async () => {
  const { code, stdout, stderr } = await runTask("token", {
    AUTH_SECRET: SECRET,
  }, ["--user", "alice", "--rooms", "general,team-*", "--ttl", "1h"]);
  assert.equal(code, 0, stderr);
  const token = stdout.trim();
  const app = startTestServer({ AUTH_SECRET: SECRET });
  const socket = await TestSocket.open(
    app.url(`/chat?r=team-x&token=${token}`).replace("http", "ws"),
  );
  assert.equal((await socket.nextOfType("welcome")).user, "alice");
  await socket.close();
  await app.close();
  const missing = await runTask("token", {}, ["--user", "alice", "--rooms", "general"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /AUTH_SECRET is not set/);
});

Deno.test("A short AUTH_SECRET stops start-up with exit code 2", async () => {
  const { code, stderr } = await runTask("start", { AUTH_SECRET: "short" });
  assert.equal(code, 2);
  assert.match(stderr, /^error: AUTH_SECRET must be at least 32 bytes/m);
});

Deno.test("A plain GET of /chat learns of a bad token (401/403) before it is told to upgrade (426)", async () => {
  const app = startTestServer({ AUTH_SECRET: SECRET });
  try {
    const expired = await sign({ rooms: ["*"] }, { sub: "ann", expS: nowS() - 10 });
    const elsewhere = await sign({ rooms: ["team-*"] }, { sub: "ann" });
    const good = await sign({ rooms: ["*"] }, { sub: "ann" });
    const plain = (token: string) => refusal(app.url(`/chat?r=general&token=${token}`), {});
    assert.deepEqual(await plain(expired), { status: 401, code: "token_expired" });
    assert.deepEqual(await plain(elsewhere), { status: 403, code: "room_forbidden" });
    assert.deepEqual(await plain(good), { status: 426, code: "upgrade_required" });
  } finally {
    await app.close();
  }
});
