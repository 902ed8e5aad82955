import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

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

Deno.test("GET /history pages by after_seq and before_seq, with the room's epoch in X-Chat-Epoch", async () => {
  const app = startTestServer();
  const ann = await TestSocket.open(app.chatUrl("seqs", "ann"));
  const { epoch } = await ann.next();
  const count = 120;
  for (let i = 0; i < count; i++) ann.send(`message ${i}`);
  const broadcast = (await ann.collect("message", count)).map(({ type: _, ...message }) => message);
  await app.repository.waitForSaved(count);
  const page = async (query: string) => {
    const response = await fetch(app.url(`/history?r=seqs${query}`));
    assert.equal(response.status, 200, query);
    assert.equal(response.headers.get("x-chat-epoch"), epoch, "the epoch the seqs belong to");
    return await response.json() as Frame[];
  };

  assert.deepEqual(await page(""), broadcast.slice(-50));
  assert.deepEqual(await page("&after_seq=10&before_seq=21"), broadcast.slice(10, 20));
  assert.deepEqual(await page("&limit=3&after_seq=10&before_seq=21"), broadcast.slice(10, 13));
  assert.deepEqual(await page(`&after_seq=${count}`), []);
  assert.deepEqual(await page("&before_seq=1"), []);

  // Scrolling back with before_seq, then catching up with after_seq, from 0.
  const pages: Frame[][] = [];
  let before = "";
  for (;;) {
    const older = await page(`&limit=50${before}`);
    if (older.length === 0) break;
    pages.unshift(older);
    before = `&before_seq=${older[0]?.seq}`;
  }
  assert.deepEqual(pages.map((older) => older.length), [20, 50, 50]);
  assert.deepEqual(pages.flat(), broadcast);
  const forward: Frame[] = [];
  let after = 0;
  for (;;) {
    const newer = await page(`&limit=40&after_seq=${after}`);
    if (newer.length === 0) break;
    forward.push(...newer);
    after = newer.at(-1)?.seq;
  }
  assert.deepEqual(forward, broadcast);

  // The room closed: its epoch now comes from the store, unchanged.
  await ann.close();
  await waitFor("the room to close", async () => {
    const rooms = await (await fetch(app.url("/rooms"))).json();
    return rooms.length === 0 || undefined;
  });
  assert.deepEqual(await page("&limit=1"), broadcast.slice(-1));
  const unknown = await fetch(app.url("/history?r=nobody-here"));
  assert.deepEqual(await unknown.json(), []);
  assert.equal(unknown.headers.get("x-chat-epoch"), null, "a room that never had an epoch");
  await app.close();
});

Deno.test("GET /history answers bad parameters with 400 and a JSON error", async () => {
  const app = startTestServer();
  const cursorId = "0190a000-0000-7000-8000-000000000001";
  const cases: [string, string][] = [
    ["/history", "invalid_room"],
    ["/history?r=", "invalid_room"],
    ["/history?r=has%2Fslash", "invalid_room"],
    [`/history?r=${"x".repeat(65)}`, "invalid_room"],
    ["/history?r=a&limit=0", "invalid_limit"],
    ["/history?r=a&limit=501", "invalid_limit"],
    ["/history?r=a&limit=ten", "invalid_limit"],
    ["/history?r=a&limit=-1", "invalid_limit"],
    ["/history?r=a&limit=1.5", "invalid_limit"],
    ["/history?r=a&before=42", "invalid_cursor"],
    ["/history?r=a&after=x'%20OR%201=1", "invalid_cursor"],
    ["/history?r=a&after_seq=-1", "invalid_cursor"],
    ["/history?r=a&before_seq=ten", "invalid_cursor"],
    ["/history?r=a&after_seq=1.5", "invalid_cursor"],
    ["/history?r=a&before_seq=", "invalid_cursor"],
    // Seq cursors and id cursors are not mixed in one request.
    [`/history?r=a&after_seq=1&after=${cursorId}`, "invalid_cursor"],
    [`/history?r=a&before_seq=9&before=${cursorId}`, "invalid_cursor"],
    [`/history?r=a&after_seq=1&before=${cursorId}`, "invalid_cursor"],
    [`/history?r=a&after=${cursorId}&before_seq=9`, "invalid_cursor"],
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
