import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket, UPGRADE_HEADERS } from "../support/test_socket.ts";

Deno.test("GET /chat refuses a bad room or user with 400 and a JSON error, before upgrading", async () => {
  const app = startTestServer();
  const cases: [string, string][] = [
    ["/chat?u=ann", "invalid_room"],
    ["/chat?r=&u=ann", "invalid_room"],
    ["/chat?r=a%2Fb&u=ann", "invalid_room"],
    ["/chat?r=a*&u=ann", "invalid_room"],
    ["/chat?r=evil%E2%80%AEroom&u=ann", "invalid_room"],
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
    ['{"type":"shout"}', "unknown_type"],
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
    assert.deepEqual(Object.keys(frame), ["type", "code", "message"], "no client_id: none given");
  }
  // 100 emoji are 200 UTF-16 units but 100 characters: allowed, and acknowledged to the sender.
  ann.send("😀".repeat(100));
  await expectAccepted(ann, "😀".repeat(100));

  // Still connected, and the room still works for everyone; bob saw no error frames.
  ann.send("still here");
  await expectAccepted(ann, "still here");
  const seenByBob = await bob.collect("message", 2);
  assert.deepEqual(seenByBob.map((frame) => frame.content), ["😀".repeat(100), "still here"]);
  await Promise.all([ann.close(), bob.close()]);
  await app.close();
});

/**
 * The next frames are the message `content` sent by `socket`'s user (with `clientId` if given),
 * then its ack naming that message's id and seq; returns the message frame.
 */
async function expectAccepted(
  socket: TestSocket,
  content: string,
  clientId?: string,
): Promise<Frame> {
  const message = await socket.next();
  assert.equal(message.type, "message", content);
  assert.equal(message.content, content);
  assert.equal(message.client_id, clientId);
  const ack = await socket.next();
  const expected = clientId === undefined
    ? { type: "ack", id: message.id, seq: message.seq }
    : { type: "ack", client_id: clientId, id: message.id, seq: message.seq };
  assert.deepEqual(ack, expected, `ack of ${content}`);
  assert.deepEqual(Object.keys(ack), Object.keys(expected), "ack keys in protocol order");
  return message;
}

Deno.test("A client_id that breaks the rules gets invalid_client_id; refusals name a valid one", async () => {
  const app = startTestServer({ MAX_CONTENT_CHARS: "100" });
  const ann = await TestSocket.open(app.chatUrl("ids", "ann"));
  const bob = await TestSocket.open(app.chatUrl("ids", "bob"));
  await ann.nextOfType("welcome");
  await bob.nextOfType("welcome");
  await ann.nextOfType("presence");
  const frameWith = (clientId: unknown, content: unknown = "hello") =>
    JSON.stringify({ type: "message", client_id: clientId, content });

  // Refused whatever the content: the message is not sent, and the error names no client_id.
  const invalid: [string, string][] = [
    ["a number", frameWith(42)],
    ["null", frameWith(null)],
    ["an array", frameWith(["a"])],
    ["an object", frameWith({ id: "a" })],
    ["true", frameWith(true)],
    ["empty", frameWith("")],
    ["65 characters", frameWith("a".repeat(65))],
    ["a space", frameWith("a b")],
    ["a dot", frameWith("a.b")],
    ["a slash", frameWith("a/b")],
    ["a plus", frameWith("a+b")],
    ["base64 padding", frameWith("YQ==")],
    ["a newline", frameWith("a\nb")],
    ["a trailing newline", frameWith("abc\n")],
    ["a NUL", frameWith("a\u0000b")],
    ["a non-ASCII letter", frameWith("é")],
    ["an emoji", frameWith("😀")],
    ["a fullwidth digit", frameWith("１")],
    ["and bad content", frameWith("", "   ")],
    ["and no content", JSON.stringify({ type: "message", client_id: 7 })],
  ];
  for (const [what, data] of invalid) {
    ann.send(data);
    const frame = await ann.next();
    assert.deepEqual(Object.keys(frame), ["type", "code", "message"], what);
    assert.equal(frame.type, "error", what);
    assert.equal(frame.code, "invalid_client_id", what);
    assert.equal(typeof frame.message, "string", what);
  }

  // A valid client_id on a message that is refused for another reason comes back in the error.
  const refused: [string, string, string][] = [
    ["c-empty", frameWith("c-empty", "   "), "empty_content"],
    ["c_long", frameWith("c_long", "x".repeat(101)), "content_too_long"],
    ["C1", frameWith("C1", 42), "invalid_frame"],
    ["C2", JSON.stringify({ type: "message", client_id: "C2" }), "invalid_frame"],
    ["nul", frameWith("nul", "nul \u0000 inside"), "invalid_text"],
    ["lone", '{"type":"message","client_id":"lone","content":"a \\ud800 b"}', "invalid_text"],
  ];
  for (const [clientId, data, code] of refused) {
    ann.send(data);
    const frame = await ann.next();
    assert.deepEqual(Object.keys(frame), ["type", "code", "message", "client_id"], clientId);
    assert.equal(frame.type, "error", clientId);
    assert.equal(frame.code, code, clientId);
    assert.equal(typeof frame.message, "string", clientId);
    assert.equal(frame.client_id, clientId);
  }

  // The longest and shortest valid ids, every allowed character: accepted, broadcast with the
  // id after the timestamp, acknowledged with it. A refused id was not used up: it goes through.
  const longest = "AZaz09_-".repeat(8);
  const accepted: [string, string][] = [
    [longest, "the longest id"],
    ["x", "the shortest id"],
    ["c-empty", "after its refusal"],
  ];
  for (const [clientId, content] of accepted) {
    ann.send(frameWith(clientId, content));
    const message = await expectAccepted(ann, content, clientId);
    assert.deepEqual(Object.keys(message), [
      "type",
      "id",
      "room",
      "seq",
      "sender",
      "content",
      "timestamp",
      "client_id",
    ]);
    assert.deepEqual(await bob.nextOfType("message"), message, "bob sees the same frame");
  }
  // Nothing refused was broadcast: bob's next message is the one sent now.
  ann.send("last");
  await expectAccepted(ann, "last");
  assert.equal((await bob.nextOfType("message")).content, "last");
  await Promise.all([ann.close(), bob.close()]);
  await app.close();
});
