import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket, UPGRADE_HEADERS } from "../support/test_socket.ts";

Deno.test("GET /chat refuses a bad room or user with 400 and a JSON error, before upgrading", async () => {
  const app = startTestServer();
  const cases: [string, string][] = [
    ["/chat?u=ann", "invalid_room"],
    ["/chat?r=&u=ann", "invalid_room"],
    ["/chat?r=a%20b&u=ann", "invalid_room"],
    ["/chat?r=caf%C3%A9&u=ann", "invalid_room"],
    [`/chat?r=${"r".repeat(65)}&u=ann`, "invalid_room"],
    ["/chat?r=a", "invalid_user"],
    ["/chat?r=a&u=", "invalid_user"],
    ["/chat?r=a&u=%20%20%20", "invalid_user"],
    [`/chat?r=a&u=${"u".repeat(33)}`, "invalid_user"],
    ["/chat?r=a&u=ann%07", "invalid_user"],
    ["/chat?r=a&u=an%0An", "invalid_user"],
    ["/chat?r=a&u=evil%E2%80%AEgnp", "invalid_user"],
  ];
  for (const [path, code] of cases) {
    const response = await fetch(app.url(path), { headers: UPGRADE_HEADERS });
    assert.equal(response.status, 400, path);
    assert.notEqual(response.headers.get("upgrade"), "websocket");
    const body = await response.json();
    assert.equal(body.error.code, code, path);
  }
  // Limits that are just inside the rules are accepted.
  const longest = await TestSocket.open(app.chatUrl("r".repeat(64), ` ${"é".repeat(32)} `));
  assert.equal((await longest.next()).user, "é".repeat(32), "user is trimmed");
  await longest.close();

  const plain = await fetch(app.url("/chat?r=a&u=ann"));
  assert.equal(plain.status, 426);
  assert.equal((await plain.json()).error.code, "upgrade_required");
  await app.close();
});

Deno.test("Client frames that break the protocol get an error frame and the connection stays open", async () => {
  const app = startTestServer({ MAX_CONTENT_CHARS: "100" });
  const ann = await TestSocket.open(app.chatUrl("bad", "ann"));
  const bob = await TestSocket.open(app.chatUrl("bad", "bob"));
  await ann.nextOfType("welcome");
  await bob.nextOfType("welcome");
  await ann.nextOfType("presence");

  const cases: [string | Uint8Array<ArrayBuffer>, string][] = [
    [new Uint8Array([1, 2, 3]), "binary_frame"],
    ['{"type":"typing"}', "unknown_type"],
    ['{"content":"no type"}', "invalid_frame"],
    ['{"type":"message","content":42}', "invalid_frame"],
    ['{"type":"message"}', "invalid_frame"],
    ["   \n\t ", "empty_content"],
    ['{"type":"message","content":"   "}', "empty_content"],
    ["x".repeat(101), "content_too_long"],
    ["😀".repeat(101), "content_too_long"],
    ["nul \u0000 inside", "invalid_text"],
    ['{"type":"message","content":"lone \\ud800 surrogate"}', "invalid_text"],
  ];
  for (const [data, code] of cases) {
    ann.send(data);
    const frame = await ann.next();
    assert.equal(frame.type, "error", String(data));
    assert.equal(frame.code, code, String(data));
    assert.equal(typeof frame.message, "string");
  }
  // 100 emoji are 200 UTF-16 units but 100 characters: allowed.
  ann.send("😀".repeat(100));
  assert.equal((await ann.next()).content, "😀".repeat(100));

  // Still connected, and the room still works for everyone; bob saw no error frames.
  ann.send("still here");
  assert.equal((await ann.next()).content, "still here");
  const seenByBob = await bob.collect("message", 2);
  assert.deepEqual(seenByBob.map((frame) => frame.content), ["😀".repeat(100), "still here"]);
  await Promise.all([ann.close(), bob.close()]);
  await app.close();
});
