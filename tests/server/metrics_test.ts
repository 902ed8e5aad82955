import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket, UPGRADE_HEADERS } from "../support/test_socket.ts";

/** Parses Prometheus text exposition; throws on any line that is not valid. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const sample =
    /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (-?[0-9.eE+-]+|NaN|[+-]Inf)$/;
  for (const line of text.split("\n")) {
    if (line === "" || /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const match = sample.exec(line);
    if (!match) throw new Error(`not Prometheus exposition: ${JSON.stringify(line)}`);
    samples.set(match[1] ?? "", Number(match[2]));
  }
  return samples;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  return parseExposition(await response.text());
}

Deno.test("GET /metrics counts known traffic exactly, in valid Prometheus format", async () => {
  const app = startTestServer({ METRICS_ROOM_LABELS: "true" });
  const ann = await TestSocket.open(app.chatUrl("metrics", "ann"));
  const bob = await TestSocket.open(app.chatUrl("metrics", "bob"));
  await ann.nextOfType("welcome");
  await bob.nextOfType("welcome");
  for (let i = 0; i < 3; i++) ann.send(`m${i}`);
  await bob.collect("message", 3);
  await ann.collect("message", 3);
  ann.send(new Uint8Array([1]));
  assert.equal((await ann.nextOfType("error")).code, "binary_frame");
  ann.send("   ");
  assert.equal((await ann.nextOfType("error")).code, "empty_content");
  const refused = await fetch(app.url("/chat?r=bad%2Froom&u=x"), { headers: UPGRADE_HEADERS });
  await refused.body?.cancel();
  await app.repository.waitForSaved(3);

  const metrics = await scrape(app.url("/metrics"));
  const expected: Record<string, number> = {
    "chat_messages_received_total": 3, // valid ones only: the binary and blank frames were refused
    "chat_messages_delivered_total": 6,
    'chat_messages_refused_total{reason="binary_frame"}': 1,
    'chat_messages_refused_total{reason="empty_content"}': 1,
    'chat_requests_refused_total{reason="invalid_room"}': 1,
    "chat_broadcast_seconds_count": 3,
    "chat_messages_persisted_total": 3,
    "chat_connections": 2,
    "chat_rooms": 1,
    'chat_room_members{room="metrics"}': 2,
    "chat_persist_queue_depth": 0,
    "chat_store_up": 1,
    "chat_cluster_up": 1,
  };
  for (const [name, value] of Object.entries(expected)) {
    assert.equal(metrics.get(name), value, name);
  }
  await bob.close();
  await ann.close();
  const after = await scrape(app.url("/metrics"));
  assert.equal(after.get("chat_connections"), 0);
  assert.equal(after.get("chat_rooms"), 0);
  await app.close();
});

Deno.test("GET /rooms lists active rooms, largest first; with auth only the token's rooms", async () => {
  const open = startTestServer();
  const sockets = [
    await TestSocket.open(open.chatUrl("big", "a")),
    await TestSocket.open(open.chatUrl("big", "b")),
    await TestSocket.open(open.chatUrl("small", "c")),
  ];
  for (const socket of sockets) await socket.nextOfType("welcome");
  const listed = await (await fetch(open.url("/rooms"))).json();
  assert.deepEqual(listed, [{ room: "big", members: 2 }, { room: "small", members: 1 }]);
  assert.deepEqual(await (await fetch(open.url("/rooms?limit=1"))).json(), [{
    room: "big",
    members: 2,
  }]);
  const bad = await fetch(open.url("/rooms?limit=0"));
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
  for (const socket of sockets) await socket.close();
  await open.close();

  const secret = "rooms-test-secret-long-enough-for-hs256";
  const guarded = startTestServer({ AUTH_SECRET: secret });
  const token = await new SignJWT({ rooms: ["team-*"] }).setProtectedHeader({ alg: "HS256" })
    .setSubject("ann").setExpirationTime("1h").sign(new TextEncoder().encode(secret));
  const wide = await new SignJWT({ rooms: ["*"] }).setProtectedHeader({ alg: "HS256" })
    .setSubject("root").setExpirationTime("1h").sign(new TextEncoder().encode(secret));
  const members = [
    await TestSocket.open(guarded.url(`/chat?r=team-a&token=${token}`).replace("http", "ws")),
    await TestSocket.open(guarded.url(`/chat?r=secret&token=${wide}`).replace("http", "ws")),
  ];
  for (const socket of members) await socket.nextOfType("welcome");
  const anonymous = await fetch(guarded.url("/rooms"));
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  const seen = await (await fetch(guarded.url("/rooms"), {
    headers: { authorization: `Bearer ${token}` },
  })).json();
  assert.deepEqual(seen, [{ room: "team-a", members: 1 }], "rooms outside the token stay hidden");
  for (const socket of members) await socket.close();
  await guarded.close();
});
