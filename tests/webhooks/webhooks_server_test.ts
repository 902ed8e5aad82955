/**
 * Webhooks of one server (no Redis): a real server on 127.0.0.1, real WebSockets, and a local
 * receiver; what the receiver gets is asserted once the server has shut down, since shutdown
 * delivers everything queued (and ends every offline grace).
 */
import assert from "node:assert/strict";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";
import { TEST_SECRET, WebhookReceiver } from "./_receiver.ts";

const GRACE_MS = 400;

function webhookEnv(receiver: WebhookReceiver, env: Record<string, string> = {}) {
  return {
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: TEST_SECRET,
    WEBHOOK_OFFLINE_GRACE: `${GRACE_MS}ms`,
    ...env,
  };
}

async function join(url: string): Promise<TestSocket> {
  const socket = await TestSocket.open(url);
  await socket.nextOfType("welcome");
  return socket;
}

/** The events received, as "type name" lines in arrival order. */
function lines(receiver: WebhookReceiver): string[] {
  return receiver.requests.map(({ type, data }) =>
    `${type} ${type === "message.created" ? data.content : data.room ?? data.user}`
  );
}

Deno.test("Webhooks: first connections send user.online and room.occupied, last ones room.vacated at once and user.offline after WEBHOOK_OFFLINE_GRACE", async () => {
  const receiver = WebhookReceiver.start();
  const app = startTestServer(webhookEnv(receiver));
  const annLobby = await join(app.chatUrl("lobby", "ann"));
  await receiver.untilCount("room.occupied", 1, "lobby");
  const annSide = await join(app.chatUrl("side", "ann"));
  const bob = await join(app.chatUrl("lobby", "bob"));
  await receiver.untilCount("user.online", 1, "bob");
  await receiver.untilCount("room.occupied", 1, "side");
  await annLobby.close(); // ann is still in side, lobby still has bob: nothing
  // Taken before the close: the server may see it before the client's close() resolves.
  const bobLeft = performance.now();
  await bob.close();
  await receiver.untilCount("room.vacated", 1, "lobby");
  const annLeft = performance.now();
  await annSide.close();
  await receiver.untilCount("user.offline", 1, "bob");
  await receiver.untilCount("user.offline", 1, "ann");
  const [bobOffline] = receiver.of("user.offline", "bob");
  const [annOffline] = receiver.of("user.offline", "ann");
  assert.ok(bobOffline && bobOffline.at - bobLeft >= GRACE_MS, "bob: not before the grace");
  assert.ok(annOffline && annOffline.at - annLeft >= GRACE_MS, "ann: not before the grace");
  assert.ok(Date.parse(String(annOffline.data.last_seen)) <= Date.parse(annOffline.time));
  await app.close();
  assert.deepEqual(lines(receiver).sort(), [
    "room.occupied lobby",
    "room.occupied side",
    "room.vacated lobby",
    "room.vacated side",
    "user.offline ann",
    "user.offline bob",
    "user.online ann",
    "user.online bob",
  ]);
  assert.ok(receiver.requests.every((received) => received.verified), "every one signed");
  await receiver.close();
});

Deno.test("Webhooks: a reconnect within WEBHOOK_OFFLINE_GRACE sends neither user.offline nor a new user.online", async () => {
  const receiver = WebhookReceiver.start();
  const app = startTestServer(webhookEnv(receiver));
  const first = await join(app.chatUrl("lobby", "ann"));
  await receiver.untilCount("user.online", 1, "ann");
  for (let i = 0; i < 3; i++) {
    // Closed, then back at once (another room even): well within the grace.
    await (i === 0 ? first : await join(app.chatUrl(`room-${i}`, "ann"))).close();
  }
  const last = await join(app.chatUrl("lobby", "ann"));
  const left = performance.now();
  await last.close();
  await receiver.untilCount("user.offline", 1, "ann");
  const offline = receiver.of("user.offline", "ann")[0];
  assert.ok(offline && offline.at - left >= GRACE_MS, "the grace counts from the last close");
  await app.close();
  assert.equal(receiver.of("user.online", "ann").length, 1, "one online");
  assert.equal(receiver.of("user.offline", "ann").length, 1, "one offline, after the last close");
  await receiver.close();
});

Deno.test("Webhooks: message.created carries the message as /history lists it, once", async () => {
  const receiver = WebhookReceiver.start();
  const app = startTestServer(webhookEnv(receiver));
  const ann = await join(app.chatUrl("lobby", "ann"));
  const first = JSON.stringify({ type: "message", content: "hello 👋", client_id: "c-1" });
  ann.send(first);
  const ack = await ann.nextOfType("ack");
  ann.send(first); // a re-send: acknowledged again, not a new message
  assert.equal((await ann.nextOfType("ack")).id, ack.id);
  ann.send("second");
  while ((await ann.nextOfType("message")).content !== "second");
  await receiver.untilCount("message.created", 2);
  const history = await (await fetch(app.url("/history?r=lobby"))).json();
  await ann.close();
  await app.close();
  assert.deepEqual(receiver.of("message.created").map((received) => received.data), history);
  assert.deepEqual(history.map((item: { content: string }) => item.content), [
    "hello 👋",
    "second",
  ]);
  await receiver.close();
});

Deno.test("Webhooks: shutdown delivers what it decides (vacated, offline) and what is queued", async () => {
  const receiver = WebhookReceiver.start();
  const app = startTestServer(webhookEnv(receiver, { WEBHOOK_OFFLINE_GRACE: "1h" }));
  const sockets = await Promise.all(
    ["ann", "bob", "cat"].map((user) => join(app.chatUrl("r", user))),
  );
  for (const socket of sockets) socket.send("bye");
  for (const socket of sockets) await socket.collect("message", 3);
  await app.close();
  for (const socket of sockets) assert.equal((await socket.closed).code, 1001);
  // Delivered before shutdown resolved: nothing is awaited here.
  assert.deepEqual(lines(receiver).sort(), [
    "message.created bye",
    "message.created bye",
    "message.created bye",
    "room.occupied r",
    "room.vacated r",
    "user.offline ann",
    "user.offline bob",
    "user.offline cat",
    "user.online ann",
    "user.online bob",
    "user.online cat",
  ]);
  await receiver.close();
});

Deno.test("Webhooks: /metrics counts delivered, failed and queued webhooks", async () => {
  const receiver = WebhookReceiver.start();
  // The first user.online fails (whichever event the workers send first).
  let failed = false;
  receiver.answer = ({ type }) => {
    if (type !== "user.online" || failed) return 204;
    failed = true;
    return 500;
  };
  const app = startTestServer(webhookEnv(receiver));
  const ann = await join(app.chatUrl("lobby", "ann"));
  // user.online fails once and is retried (after 0.5 to 1 s); room.occupied goes through.
  await receiver.untilCount("user.online", 2, "ann", 5_000);
  const text = await (await fetch(app.url("/metrics"))).text();
  const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
  assert.equal(value('chat_webhook_failed_total\\{reason="http_5xx"\\}'), 1);
  assert.equal(value("chat_webhook_delivered_total"), 2);
  assert.equal(value("chat_webhook_queue_events"), 0);
  assert.equal(value("chat_webhook_queue_bytes"), 0);
  await ann.close();
  await app.close();
  await receiver.close();
});

/** Milliseconds from sending each of `count` messages to receiving it back, one at a time. */
async function roundTrips(socket: TestSocket, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const sent = performance.now();
    socket.send(`m${i}`);
    await socket.nextOfType("message");
    times.push(performance.now() - sent);
  }
  return times;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

Deno.test("Webhooks: a receiver that hangs does not slow message delivery, and shutdown stays bounded", async () => {
  const MESSAGES = 300;
  const measured: Record<string, number[]> = {};
  for (const mode of ["off", "answering", "hanging"] as const) {
    const receiver = WebhookReceiver.start();
    if (mode === "hanging") receiver.answer = () => "hang";
    const env = { WEBHOOK_TIMEOUT: "60s", SHUTDOWN_TIMEOUT: "1s" };
    const app = startTestServer(mode === "off" ? env : webhookEnv(receiver, env));
    const ann = await join(app.chatUrl("lobby", "ann"));
    await roundTrips(ann, 30); // warm-up
    measured[mode] = await roundTrips(ann, MESSAGES);
    if (mode === "hanging") {
      // Every worker is stuck on a request that will not end for a minute; the rest waits.
      assert.equal(receiver.requests.length, 4, "WEBHOOK_CONCURRENCY requests, all hanging");
      const text = await (await fetch(app.url("/metrics"))).text();
      const queued = Number(text.match(/^chat_webhook_queue_events (\S+)$/m)?.[1]);
      assert.ok(queued >= MESSAGES, `${queued} events wait behind the hanging requests`);
    }
    await ann.close();
    const started = performance.now();
    await app.close();
    const took = performance.now() - started;
    assert.ok(took < 3_000, `${mode}: shutdown took ${Math.round(took)} ms (SHUTDOWN_TIMEOUT 1s)`);
    await receiver.close();
  }
  const off = measured.off ?? [];
  const answering = measured.answering ?? [];
  const hanging = measured.hanging ?? [];
  const summary = (times: number[]) =>
    `median ${quantile(times, 0.5).toFixed(2)} ms, p95 ${quantile(times, 0.95).toFixed(2)} ms, ` +
    `max ${Math.max(...times).toFixed(2)} ms`;
  console.log(`round trips, no webhooks:        ${summary(off)}`);
  console.log(`round trips, receiver answering: ${summary(answering)}`);
  console.log(`round trips, receiver hanging:   ${summary(hanging)}`);
  // Generous bounds: anything that waited on the receiver would take WEBHOOK_TIMEOUT (60 s).
  const baselines: [string, number[]][] = [["no webhooks", off], ["answering", answering]];
  for (const [baseline, times] of baselines) {
    assert.ok(
      quantile(hanging, 0.5) < 3 * quantile(times, 0.5) + 5,
      `median ${quantile(hanging, 0.5)} ms with a hanging receiver, against ${baseline}`,
    );
  }
  assert.ok(Math.max(...hanging) < 1_000, `slowest round trip ${Math.max(...hanging)} ms`);
});
