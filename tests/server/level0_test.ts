/**
 * Protocol level 0 and Unicode names: a client written to the description of the Go server this
 * one replaces (raw text out, message objects in, cross-origin history) against our server.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";

const MESSAGE_KEYS = ["content", "room", "sender", "timestamp"];

/** What the legacy client does: every frame it gets is a message object, and nothing else. */
class LegacyClient {
  readonly socket: TestSocket;

  private constructor(socket: TestSocket) {
    this.socket = socket;
  }

  static async open(base: string, query: string): Promise<LegacyClient> {
    return new LegacyClient(await TestSocket.open(`${base}/chat${query}`));
  }

  async next(): Promise<Frame> {
    const frame = await this.socket.next();
    assert.deepEqual(Object.keys(frame).sort(), MESSAGE_KEYS, JSON.stringify(frame));
    assert.ok(!Number.isNaN(Date.parse(frame.timestamp)), frame.timestamp);
    return frame;
  }

  /** The next frame as `sender: content`. */
  async line(): Promise<string> {
    const frame = await this.next();
    return `${frame.sender}: ${frame.content}`;
  }
}

Deno.test("Level 0: message objects only; joins, leaves and errors as SYSTEM lines; raw text out; room café crème", async () => {
  const app = startTestServer({ DEFAULT_PROTOCOL: "0", ALLOWED_ORIGINS: "*" });
  const ws = `ws://127.0.0.1:${app.port}`;
  try {
    const room = encodeURIComponent("café crème");
    const zoe = await LegacyClient.open(ws, `?r=${room}&u=${encodeURIComponent("Zoë")}`);
    assert.equal(await zoe.line(), "SYSTEM: User Zoë entered the chat");
    const bob = await LegacyClient.open(ws, `?r=${room}&u=Bob`);
    assert.equal(await bob.line(), "SYSTEM: User Bob entered the chat");
    assert.equal(await zoe.line(), "SYSTEM: User Bob entered the chat");

    // Raw text, JSON-looking or not, is the message.
    zoe.socket.send("bonjour à tous");
    zoe.socket.send('{"type":"message","content":"not parsed"}');
    for (const client of [zoe, bob]) {
      assert.equal(await client.line(), "Zoë: bonjour à tous");
      assert.equal(await client.line(), 'Zoë: {"type":"message","content":"not parsed"}');
    }
    const echo = await (async () => {
      bob.socket.send("salut");
      await bob.next();
      return await zoe.next();
    })();
    assert.deepEqual([echo.sender, echo.room, echo.content], ["Bob", "café crème", "salut"]);

    // An error is a SYSTEM line to its sender only.
    zoe.socket.send("   ");
    const error = await zoe.next();
    assert.equal(error.sender, "SYSTEM");
    assert.match(error.content, /^Error: /);

    await bob.socket.close();
    assert.equal(await zoe.line(), "SYSTEM: User Bob left the chat");

    // History from another origin, as the Go server answered it: a plain array of those objects.
    const response = await fetch(app.url(`/history?r=${room}`), {
      headers: { origin: "http://legacy.example" },
    });
    assert.equal(response.headers.get("access-control-allow-origin"), "*");
    const items = await response.json();
    assert.ok(Array.isArray(items));
    assert.deepEqual(
      items.map((item: Frame) => `${item.sender}: ${item.content}`),
      ["Zoë: bonjour à tous", 'Zoë: {"type":"message","content":"not parsed"}', "Bob: salut"],
    );
    for (const item of items) assert.equal(item.room, "café crème");
    await zoe.socket.close();
  } finally {
    await app.close();
  }
});

Deno.test("Level 0: no r means room general, no u means Anonymous; v=2 still gets the current protocol", async () => {
  const app = startTestServer({ DEFAULT_PROTOCOL: "0" });
  const ws = `ws://127.0.0.1:${app.port}`;
  try {
    const anonymous = await LegacyClient.open(ws, "");
    const entered = await anonymous.next();
    assert.deepEqual([entered.room, entered.content], [
      "general",
      "User Anonymous entered the chat",
    ]);
    anonymous.socket.send("hi");
    assert.equal(await anonymous.line(), "Anonymous: hi");
    const history = await (await fetch(app.url("/history"))).json();
    assert.deepEqual(history.map((item: Frame) => item.content), ["hi"]);

    const current = await TestSocket.open(`${ws}/chat?r=general&u=ann&v=2`);
    const welcome = await current.next();
    assert.equal(welcome.type, "welcome");
    assert.deepEqual(welcome.members, ["Anonymous", "ann"]);
    assert.equal(await anonymous.line(), "SYSTEM: User ann entered the chat");
    await Promise.all([anonymous.socket.close(), current.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("DEFAULT_PROTOCOL is 2: no v gets the current protocol; a bad v is refused", async () => {
  const app = startTestServer();
  try {
    const socket = await TestSocket.open(app.chatUrl("r", "ann"));
    assert.equal((await socket.next()).type, "welcome");
    await socket.close();
    const bad = await fetch(app.url("/chat?r=r&u=ann&v=7"));
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, "invalid_version");
  } finally {
    await app.close();
  }
});

Deno.test("Room names: letters of any script, digits, spaces, punctuation, in NFC; no slash, star or bidi", async () => {
  const app = startTestServer();
  try {
    for (const room of ["my room", "général", "日本語の部屋", "Q&A (v2)!", "café crème"]) {
      const socket = await TestSocket.open(app.chatUrl(room, "ann"));
      const welcome = await socket.next();
      assert.equal(welcome.room, room);
      await socket.close();
    }
    // "é" typed as e + combining accent is the same room as the precomposed one.
    const decomposed = await TestSocket.open(app.chatUrl("cafe\u0301", "ann"));
    assert.equal((await decomposed.next()).room, "café");
    decomposed.send("one room");
    await decomposed.nextOfType("message");
    await decomposed.close();
    const page = await (await fetch(app.url(`/history?r=${encodeURIComponent("café")}`))).json();
    assert.deepEqual(page.map((item: Frame) => item.content), ["one room"]);

    for (const room of ["a/b", "a*", "evil\u202eroom", "tab\there", "x".repeat(65), " "]) {
      const response = await fetch(app.url(`/chat?r=${encodeURIComponent(room)}&u=ann`));
      assert.equal(response.status, 400, JSON.stringify(room));
      assert.equal((await response.json()).error.code, "invalid_room");
    }
  } finally {
    await app.close();
  }
});

Deno.test("CORS: /history answers the origins of ALLOWED_ORIGINS (preflight too), no one else; none when unset", async () => {
  const app = startTestServer({ ALLOWED_ORIGINS: "https://app.example" });
  const closed = startTestServer();
  try {
    const allowed = await fetch(app.url("/history?r=r"), {
      headers: { origin: "https://app.example" },
    });
    await allowed.body?.cancel();
    assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example");
    assert.match(allowed.headers.get("access-control-expose-headers") ?? "", /x-chat-epoch/);
    assert.equal(allowed.headers.get("vary"), "Origin");

    const other = await fetch(app.url("/history?r=r"), {
      headers: { origin: "https://evil.example" },
    });
    await other.body?.cancel();
    assert.equal(other.headers.get("access-control-allow-origin"), null);

    const preflight = await fetch(app.url("/history?r=r"), {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "GET" },
    });
    await preflight.body?.cancel();
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /GET/);
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/);

    const unset = await fetch(closed.url("/history?r=r"), {
      headers: { origin: "https://app.example" },
    });
    await unset.body?.cancel();
    assert.equal(unset.headers.get("access-control-allow-origin"), null);
  } finally {
    await Promise.all([app.close(), closed.close()]);
  }
});

Deno.test("FRAME_ANCESTORS: the page may be framed by the listed origins only; by none by default", async () => {
  const framable = startTestServer({
    FRAME_ANCESTORS: "https://app.example,https://intranet.example:8443",
  });
  const plain = startTestServer();
  try {
    const page = await fetch(framable.url("/client.html"));
    await page.body?.cancel();
    assert.match(
      page.headers.get("content-security-policy") ?? "",
      /frame-ancestors https:\/\/app\.example https:\/\/intranet\.example:8443(;|$)/,
    );
    assert.equal(page.headers.get("x-frame-options"), null);

    const closed = await fetch(plain.url("/client.html"));
    await closed.body?.cancel();
    assert.match(closed.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
    assert.equal(closed.headers.get("x-frame-options"), "DENY");
  } finally {
    await Promise.all([framable.close(), plain.close()]);
  }
});
