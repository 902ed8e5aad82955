import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket, UPGRADE_HEADERS } from "../support/test_socket.ts";

Deno.test("Origin: cross-site upgrades get 403; same host, localhost and allowed origins pass", async () => {
  const app = startTestServer();
  const path = "/chat?r=origins&u=ann";
  const withOrigin = async (origin: string) => {
    const response = await fetch(app.url(path), { headers: { ...UPGRADE_HEADERS, origin } });
    await response.body?.cancel();
    return response.status;
  };
  assert.equal(await withOrigin("https://evil.example"), 403);
  assert.equal(await withOrigin("null"), 403);
  const sameHost = new WebSocket(app.chatUrl("origins", "ann"), {
    headers: { origin: `http://127.0.0.1:${app.port}` },
  } as unknown as string[]);
  await new Promise((resolve, reject) => {
    sameHost.onopen = resolve;
    sameHost.onerror = reject;
  });
  sameHost.close();
  await new Promise((resolve) => sameHost.onclose = resolve);
  await app.close();

  const strict = startTestServer({
    ALLOWED_ORIGINS: "https://chat.example.com, https://app.example.com/",
  });
  const strictStatus = async (origin: string) => {
    const response = await fetch(strict.url(path), { headers: { ...UPGRADE_HEADERS, origin } });
    await response.body?.cancel();
    return response.status;
  };
  assert.equal(await strictStatus("http://localhost:3000"), 403, "the list replaces the defaults");
  assert.equal(await strictStatus("https://chat.example.com"), 101);
  assert.equal(await strictStatus("https://app.example.com"), 101);
  await strict.close();
});

Deno.test("Limits: a frame over MAX_FRAME_BYTES closes the connection with 1009", async () => {
  const app = startTestServer({ MAX_FRAME_BYTES: "1024" });
  const ann = await TestSocket.open(app.chatUrl("frames", "ann"));
  await ann.nextOfType("welcome");
  ann.send("é".repeat(300)); // 600 bytes: fine
  assert.equal((await ann.nextOfType("message")).content, "é".repeat(300));
  ann.send("é".repeat(600)); // 1200 bytes, 600 characters: too large
  const { close } = await ann.untilClosed();
  assert.deepEqual(close, { code: 1009, reason: "frame too large" });
  await app.close();
});

Deno.test("Limits: over the rate a frame gets rate_limited; sustained abuse is closed with 1008", async () => {
  const app = startTestServer({
    RATE_LIMIT_PER_SECOND: "1",
    RATE_LIMIT_BURST: "5",
    RATE_LIMIT_STRIKES: "3",
  });
  const ann = await TestSocket.open(app.chatUrl("rate", "ann"));
  await ann.nextOfType("welcome");
  for (let i = 0; i < 12; i++) ann.send(`m${i}`);
  const { frames, close } = await ann.untilClosed();
  // Each accepted message is echoed, then acknowledged with its seq; refusals are errors.
  const kinds = frames.map((frame) => {
    if (frame.type === "error") return frame.code;
    if (frame.type === "ack") return `ack ${frame.seq}`;
    return `${frame.content} ${frame.seq}`;
  });
  assert.deepEqual(kinds, [
    "m0 1",
    "ack 1",
    "m1 2",
    "ack 2",
    "m2 3",
    "ack 3",
    "m3 4",
    "ack 4",
    "m4 5",
    "ack 5",
    "rate_limited",
    "rate_limited",
    "rate_limited",
  ]);
  assert.deepEqual(close, { code: 1008, reason: "rate limit exceeded" });
  const metrics = await (await fetch(app.url("/metrics"))).text();
  assert.match(metrics, /^chat_disconnects_total\{code="1008"\} 1$/m, "counted by close code");
  assert.match(metrics, /^chat_messages_refused_total\{reason="rate_limited"\} 3$/m);
  await app.close();
});

Deno.test("Limits: connections per IP (429) and in total (503) are refused before the upgrade", async () => {
  const perIp = startTestServer({ MAX_CONNECTIONS_PER_IP: "2" });
  const first = await TestSocket.open(perIp.chatUrl("a", "one"));
  const second = await TestSocket.open(perIp.chatUrl("a", "two"));
  const third = await fetch(perIp.url("/chat?r=a&u=three"), { headers: UPGRADE_HEADERS });
  assert.equal(third.status, 429);
  assert.equal((await third.json()).error.code, "too_many_from_ip");
  const metrics = await (await fetch(perIp.url("/metrics"))).text();
  assert.match(metrics, /^chat_requests_refused_total\{reason="too_many_from_ip"\} 1$/m);
  await first.close();
  // The slot is free again once a socket closed.
  const again = await TestSocket.open(perIp.chatUrl("a", "again"));
  await Promise.all([second.close(), again.close()]);
  await perIp.close();

  const total = startTestServer({ MAX_CONNECTIONS: "1" });
  const only = await TestSocket.open(total.chatUrl("a", "one"));
  const refused = await fetch(total.url("/chat?r=a&u=two"), { headers: UPGRADE_HEADERS });
  assert.equal(refused.status, 503);
  assert.equal((await refused.json()).error.code, "too_many_connections");
  await only.close();
  await total.close();
});

Deno.test("Security headers: strict CSP on the page, nosniff and no-referrer everywhere", async () => {
  const app = startTestServer();
  const page = await fetch(app.url("/client.html"));
  const html = await page.text();
  const csp = page.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  // The page's module script imports the SDK from this server (/sdk/chat.js): 'self', no more.
  assert.match(csp, /script-src 'self' 'sha256-/);
  // Every inline script of the page is allowed by its hash, and nothing else is.
  const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)];
  assert.ok(scripts.length > 0);
  for (const [, body] of scripts) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
    const hash = btoa(String.fromCharCode(...new Uint8Array(digest)));
    assert.ok(csp.includes(`'sha256-${hash}'`), "script hash in CSP");
  }
  for (const path of ["/client.html", "/healthz", "/nope", "/history?r=a"]) {
    const response = await fetch(app.url(path));
    await response.body?.cancel();
    assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
    assert.equal(response.headers.get("referrer-policy"), "no-referrer", path);
  }
  await app.close();
});

Deno.test("welcome tells each client the limits it is held to, as configured", async () => {
  const app = startTestServer({
    MAX_CONTENT_CHARS: "123",
    MAX_FRAME_BYTES: "2048",
    RATE_LIMIT_PER_SECOND: "7",
    RATE_LIMIT_BURST: "9",
  });
  try {
    const ann = await TestSocket.open(app.chatUrl("limits", "ann"));
    const welcome = await ann.nextOfType("welcome");
    assert.deepEqual(welcome.limits, {
      max_content_chars: 123,
      max_frame_bytes: 2048,
      rate_per_second: 7,
      rate_burst: 9,
    });
    await ann.close();
  } finally {
    await app.close();
  }
});

Deno.test("The page is served with the server's own rules for names and messages", async () => {
  const app = startTestServer({ MAX_CONTENT_CHARS: "321" });
  try {
    const response = await fetch(app.url("/client.html"));
    const html = await response.text();
    const block = /<script id="chat-rules" type="application\/json">(.*?)<\/script>/.exec(html);
    const rules = JSON.parse(block?.[1] ?? "null");
    assert.equal(rules.max_content_chars, 321);
    assert.equal(rules.max_user_chars, 32);
    const room = new RegExp(rules.room_pattern, "u");
    assert.ok(room.test("team-1.a_b") && room.test("café crème") && !room.test("a/b"));
    assert.ok(!room.test("r".repeat(65)));
    assert.ok(new RegExp(rules.user_forbidden_pattern, "u").test("a\u202eb"), "bidi override");
    // The data block is an inline script: the policy allows it by the hash of what is served.
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(block?.[1]));
    const hash = btoa(String.fromCharCode(...new Uint8Array(digest)));
    assert.ok(response.headers.get("content-security-policy")?.includes(`'sha256-${hash}'`));
  } finally {
    await app.close();
  }
});
