import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";

async function getJson(url: string): Promise<{ status: number; body: Frame }> {
  const response = await fetch(url);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  return { status: response.status, body: await response.json() };
}

Deno.test("GET /history returns stored messages ascending, with limit, before and after paging", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("hist", "ann"));
  await ann.next();
  const count = 120;
  for (let i = 0; i < count; i++) ann.send(`message ${i}`);
  const broadcast = (await ann.collect("message", count)).map(({ type: _, ...message }) => message);
  await app.repository.waitForSaved(count);

  const latest = await getJson(app.url("/history?r=hist"));
  assert.equal(latest.status, 200);
  assert.deepEqual(latest.body, broadcast.slice(-50), "default: the newest 50, ascending");

  assert.deepEqual((await getJson(app.url("/history?r=hist&limit=500"))).body, broadcast);
  assert.deepEqual((await getJson(app.url("/history?r=hist&limit=7"))).body, broadcast.slice(-7));

  // Walk backwards with `before` until the start.
  const pages: Frame[][] = [];
  let before = "";
  for (;;) {
    const page = (await getJson(app.url(`/history?r=hist&limit=50${before}`))).body as Frame[];
    if (page.length === 0) break;
    pages.unshift(page);
    before = `&before=${page[0]?.id}`;
  }
  assert.deepEqual(pages.map((page) => page.length), [20, 50, 50]);
  assert.deepEqual(pages.flat(), broadcast);

  // Walk forwards with `after`.
  const forward: Frame[] = [];
  let after = broadcast[9]?.id;
  for (;;) {
    const page = (await getJson(app.url(`/history?r=hist&limit=40&after=${after}`)))
      .body as Frame[];
    if (page.length === 0) break;
    forward.push(...page);
    after = page.at(-1)?.id;
  }
  assert.deepEqual(forward, broadcast.slice(10));

  assert.deepEqual((await getJson(app.url("/history?r=nobody-here"))).body, []);
  await ann.close();
  await app.close();
});

Deno.test("GET /history answers bad parameters with 400 and a JSON error", async () => {
  const app = startTestServer();
  const cases: [string, string][] = [
    ["/history", "invalid_room"],
    ["/history?r=", "invalid_room"],
    ["/history?r=has%20space", "invalid_room"],
    [`/history?r=${"x".repeat(65)}`, "invalid_room"],
    ["/history?r=a&limit=0", "invalid_limit"],
    ["/history?r=a&limit=501", "invalid_limit"],
    ["/history?r=a&limit=ten", "invalid_limit"],
    ["/history?r=a&limit=-1", "invalid_limit"],
    ["/history?r=a&limit=1.5", "invalid_limit"],
    ["/history?r=a&before=42", "invalid_cursor"],
    ["/history?r=a&after=x'%20OR%201=1", "invalid_cursor"],
  ];
  for (const [path, code] of cases) {
    const { status, body } = await getJson(app.url(path));
    assert.equal(status, 400, path);
    assert.equal(body.error.code, code, path);
    assert.equal(typeof body.error.message, "string");
  }
  await app.close();
});

Deno.test("HTTP routes: health, client page, redirect, 404 and 405", async () => {
  const app = startTestServer();
  const health = await getJson(app.url("/healthz"));
  assert.deepEqual(health, { status: 200, body: { status: "ok" } });

  const page = await fetch(app.url("/client.html"));
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(await page.text(), /<html/);

  const root = await fetch(app.url("/"), { redirect: "manual" });
  assert.equal(root.status, 302);
  assert.equal(root.headers.get("location"), "/client.html");
  await root.body?.cancel();

  const missing = await getJson(app.url("/nope"));
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, "not_found");

  const post = await fetch(app.url("/history?r=a"), { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal((await post.json()).error.code, "method_not_allowed");
  await app.close();
});
