// deno-lint-ignore-file no-import-prefix
import assert from "node:assert/strict";
import { SignJWT } from "jose";
// A test-only dependency, imported here rather than in deno.json: `deno task start` installs
// every package of the import map.
import { Validator } from "npm:@seriousme/openapi-schema-validator@2.11.0";
import { API_METHODS } from "../../server/api.ts";
import { API_DESCRIPTION } from "../../server/openapi.ts";
import { startTestServer, type TestServer } from "../support/test_server.ts";
import type { RecordingStore } from "../support/recording_store.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";

const SECRET = "an API test secret of at least 32 bytes long";
const KEY = "backend-key-0123456789";

function server(env: Record<string, string> = {}): TestServer<RecordingStore> {
  return startTestServer({ API_KEYS: `${KEY},second-key-0123456789`, AUTH_SECRET: SECRET, ...env });
}

async function token(claims: Record<string, unknown>, sub = "backend"): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(sub)
    .setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));
}

async function call(
  app: TestServer<RecordingStore>,
  method: string,
  path: string,
  options: { auth?: string; body?: unknown } = {},
): Promise<{ status: number; body: Frame; headers: Headers }> {
  const response = await fetch(app.url(path), {
    method,
    headers: {
      ...(options.auth !== undefined && { authorization: `Bearer ${options.auth}` }),
      ...(options.body !== undefined && { "content-type": "application/json" }),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text ? JSON.parse(text) : undefined,
    headers: response.headers,
  };
}

async function member(app: TestServer<RecordingStore>, room: string, user: string) {
  const jwt = await token({ rooms: ["*"] }, user);
  const socket = await TestSocket.open(
    `ws://127.0.0.1:${app.port}/chat?r=${encodeURIComponent(room)}&token=${jwt}`,
  );
  assert.equal((await socket.next()).type, "welcome");
  return socket;
}

Deno.test("API: publish with a server key reaches the room's members as the named sender", async () => {
  const app = server();
  try {
    const ann = await member(app, "lobby", "ann");
    const published = await call(app, "POST", "/api/rooms/lobby/messages", {
      auth: KEY,
      body: { sender: "Deploy Bot", content: "build 42 is out", client_id: "build-42" },
    });
    assert.equal(published.status, 201);
    assert.equal(published.body.sender, "Deploy Bot");
    assert.equal(published.body.content, "build 42 is out");
    assert.equal(published.body.client_id, "build-42");
    assert.equal(typeof published.body.timestamp, "string");
    const frame = await ann.nextOfType("message");
    assert.deepEqual(
      [frame.sender, frame.content, frame.seq, frame.id],
      ["Deploy Bot", "build 42 is out", published.body.seq, published.body.id],
    );
    // Into a room nobody is in: it is opened for the message, and the message is kept.
    const quiet = await call(
      app,
      "POST",
      `/api/rooms/${encodeURIComponent("café crème")}/messages`,
      {
        auth: KEY,
        body: { sender: "bot", content: "anyone?" },
      },
    );
    assert.equal(quiet.status, 201);
    assert.equal(quiet.body.room, "café crème");
    await ann.close();
  } finally {
    await app.close();
  }
});

Deno.test("API: a bad or missing key is 401; a token without the api scope or room is 403", async () => {
  const app = server();
  try {
    const body = { sender: "bot", content: "hi" };
    for (const auth of [undefined, "not-the-key-0123456789", "x.y.z"]) {
      const answer = await call(app, "POST", "/api/rooms/lobby/messages", { auth, body });
      assert.equal(answer.status, 401, String(auth));
      assert.equal(answer.body.error.code, "api_unauthorized");
    }
    const noScope = await call(app, "POST", "/api/rooms/lobby/messages", {
      auth: await token({ rooms: ["*"] }),
      body,
    });
    assert.deepEqual([noScope.status, noScope.body.error.code], [403, "api_forbidden"]);

    const scoped = await token({ rooms: ["ops-*"], scope: "read api" });
    const allowed = await call(app, "POST", "/api/rooms/ops-1/messages", { auth: scoped, body });
    assert.equal(allowed.status, 201);
    const forbidden = await call(app, "POST", "/api/rooms/hr/messages", { auth: scoped, body });
    assert.deepEqual([forbidden.status, forbidden.body.error.code], [403, "room_forbidden"]);
    const members = await call(app, "GET", "/api/rooms/hr/members", { auth: scoped });
    assert.equal(members.status, 403);
  } finally {
    await app.close();
  }
});

Deno.test("API: a retried publish with the same client_id is one message", async () => {
  const app = server();
  try {
    const body = { sender: "bot", content: "once", client_id: "retry-1" };
    const first = await call(app, "POST", "/api/rooms/r/messages", { auth: KEY, body });
    const again = await call(app, "POST", "/api/rooms/r/messages", { auth: KEY, body });
    assert.equal(first.status, 201);
    assert.equal(again.status, 201);
    assert.deepEqual([again.body.id, again.body.seq], [first.body.id, first.body.seq]);
    const history =
      await (await fetch(app.url(`/history?r=r&token=${await token({ rooms: ["*"] })}`)))
        .json();
    assert.deepEqual(history.map((item: Frame) => item.content), ["once"]);
  } finally {
    await app.close();
  }
});

Deno.test("API: input is checked as a socket's is; wrong methods get 405", async () => {
  const app = server({ MAX_CONTENT_CHARS: "10" });
  try {
    const cases: [unknown, string][] = [
      [{ sender: "bot", content: "   " }, "empty_content"],
      [{ sender: "bot", content: "x".repeat(11) }, "content_too_long"],
      [{ sender: "", content: "hi" }, "invalid_user"],
      [{ sender: "bot\u202e", content: "hi" }, "invalid_user"],
      [{ content: "hi" }, "invalid_user"],
      [{ sender: "bot", content: "hi", client_id: "no spaces" }, "invalid_client_id"],
      [{ sender: "bot", content: 42 }, "invalid_frame"],
      [[1, 2], "invalid_body"],
    ];
    for (const [body, code] of cases) {
      const answer = await call(app, "POST", "/api/rooms/r/messages", { auth: KEY, body });
      assert.deepEqual([answer.status, answer.body.error.code], [400, code], JSON.stringify(body));
    }
    const badRoom = await call(app, "POST", "/api/rooms/a*b/messages", {
      auth: KEY,
      body: { sender: "bot", content: "hi" },
    });
    assert.deepEqual([badRoom.status, badRoom.body.error.code], [400, "invalid_room"]);
    const wrong = await call(app, "GET", "/api/rooms/r/messages", { auth: KEY });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "POST");
    const unknown = await call(app, "GET", "/api/rooms/r/nothing", { auth: KEY });
    assert.equal(unknown.status, 404);
  } finally {
    await app.close();
  }
});

Deno.test("API: members lists who is in the room; delete is a moderator's delete change the members get", async () => {
  const app = server();
  try {
    const ann = await member(app, "mod", "ann");
    const bob = await member(app, "mod", "bob");
    const members = await call(app, "GET", "/api/rooms/mod/members", { auth: KEY });
    assert.deepEqual(members.body, { room: "mod", members: ["ann", "bob"] });

    bob.send("something to remove");
    const { seq } = await ann.nextOfType("message");
    ann.send("something to keep");
    await ann.nextOfType("message");
    const removed = await call(app, "DELETE", `/api/rooms/mod/messages/${seq}`, { auth: KEY });
    assert.equal(removed.status, 200);
    const change = await ann.nextOfType("delete");
    assert.deepEqual(removed.body, change);
    assert.deepEqual([change.user, change.seq, change.event_seq], ["api", seq, seq + 2]);
    const page = await fetch(app.url(`/history?r=mod&token=${await token({ rooms: ["*"] })}`));
    const epoch = page.headers.get("x-chat-epoch");
    const history = await page.json();
    assert.deepEqual(history.map((item: Frame) => [item.content, item.deleted]), [
      [undefined, true],
      ["something to keep", undefined],
    ]);
    const again = await call(app, "DELETE", `/api/rooms/mod/messages/${seq}`, { auth: KEY });
    assert.equal(again.status, 404);

    // A resume through the deleted seq gets the tombstone in its place and the change, complete.
    const jwt = await token({ rooms: ["*"] }, "cat");
    const cat = await TestSocket.open(
      `ws://127.0.0.1:${app.port}/chat?r=mod&token=${jwt}&since_seq=0&epoch=${epoch}`,
    );
    const replay: Frame[] = [];
    for (;;) {
      const frame = await cat.next();
      if (frame.type === "resume") {
        assert.equal(frame.complete, true);
        break;
      }
      if (frame.type !== "welcome") replay.push(frame);
    }
    assert.deepEqual(replay.map((frame) => [frame.type, frame.deleted]), [
      ["message", true],
      ["message", undefined],
      ["delete", undefined],
    ]);
    assert.ok(!JSON.stringify(replay).includes("something to remove"));
    await Promise.all([ann.close(), bob.close(), cat.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("API: the OpenAPI document is well-formed and names exactly the routes served", async () => {
  const app = server();
  try {
    const served = await call(app, "GET", "/api/openapi.json");
    assert.equal(served.status, 200);
    assert.deepEqual(served.body, JSON.parse(JSON.stringify(API_DESCRIPTION)));
    const document = served.body;
    assert.deepEqual(await new Validator().validate(document), { valid: true });
    assert.equal(document.openapi, "3.1.0");
    assert.ok(document.info.title && document.info.version);
    // Every $ref resolves.
    const refs = JSON.stringify(document).match(/"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
    for (const ref of refs) {
      const name = JSON.parse(ref).split("/").at(-1);
      assert.ok(document.components.schemas[name], ref);
    }
    // Each documented operation is answered (not 404, not 405) and each served route documented.
    const documented = new Set<string>();
    for (const [path, operations] of Object.entries(document.paths as Record<string, object>)) {
      for (const method of Object.keys(operations)) {
        documented.add(`${method.toUpperCase()} ${path}`);
        const concrete = path.replace("{room}", "doc").replace("{seq}", "1");
        const answer = await call(app, method.toUpperCase(), concrete, {
          auth: KEY,
          ...(method === "post" && { body: { sender: "bot", content: "documented" } }),
        });
        assert.ok(
          ![404, 405].includes(answer.status) || path.endsWith("{seq}"),
          `${method} ${path}: ${answer.status}`,
        );
        for (
          const status of Object.keys(
            (operations as Record<string, { responses: object }>)[method]?.responses ?? {},
          )
        ) {
          assert.match(status, /^[1-5][0-9][0-9]$/);
        }
      }
    }
    const routeOf: Record<string, string> = {
      messages: "/api/rooms/{room}/messages",
      message: "/api/rooms/{room}/messages/{seq}",
      members: "/api/rooms/{room}/members",
      openapi: "/api/openapi.json",
    };
    for (const [kind, methods] of Object.entries(API_METHODS)) {
      const method = methods[0] as string;
      assert.ok(
        documented.has(`${method} ${routeOf[kind]}`),
        `${method} ${routeOf[kind]} undocumented`,
      );
    }
    const preflight = await fetch(app.url("/api/rooms/r/messages"), {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST" },
    });
    await preflight.body?.cancel();
    assert.equal(preflight.status, 204);
  } finally {
    await app.close();
  }
});
