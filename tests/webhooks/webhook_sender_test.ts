import assert from "node:assert/strict";
import { silentLogger } from "../../log/logger.ts";
import { WebhookSender, type WebhookSenderOptions } from "../../webhooks/webhook_sender.ts";
import { type Answer, type Received, TEST_SECRET, WebhookReceiver } from "./_receiver.ts";
import { RecordingMetrics } from "./_recording_metrics.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A sender to `receiver`, retrying fast, and what it counted. */
function senderTo(receiver: WebhookReceiver, options: Partial<WebhookSenderOptions> = {}) {
  const metrics = new RecordingMetrics();
  const sender = new WebhookSender({
    url: receiver.url,
    secret: TEST_SECRET,
    timeoutMs: 5_000,
    queueBytes: 1 << 20,
    concurrency: 4,
    retry: { baseMs: 10, maxMs: 40, windowMs: 60_000 },
    metrics,
    logger: silentLogger,
    ...options,
  });
  return { sender, metrics };
}

/** Answers each delivery id's attempts in turn from `answers`, the last one from then on. */
function answersPerId(answers: readonly Answer[]): (received: Received) => Answer {
  const attempts = new Map<string, number>();
  return ({ id }) => {
    const attempt = attempts.get(id) ?? 0;
    attempts.set(id, attempt + 1);
    return answers[Math.min(attempt, answers.length - 1)] as Answer;
  };
}

Deno.test("WebhookSender.send() POSTs {id, type, time, data} with X-Chat-Signature over the raw body", async () => {
  const receiver = WebhookReceiver.start();
  const { sender, metrics } = senderTo(receiver);
  sender.send("user.online", { user: "ann" });
  sender.send("message.created", { room: "lobby", content: "héllo 👋 مرحبا" });
  await receiver.untilCount("message.created", 1);
  await receiver.untilCount("user.online", 1);
  for (const received of receiver.requests) {
    assert.ok(received.verified, `${received.signature} is the HMAC of ${received.raw}`);
    assert.deepEqual(Object.keys(JSON.parse(received.raw)), ["id", "type", "time", "data"]);
    assert.match(received.id, UUID);
    assert.match(received.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  assert.deepEqual(receiver.of("user.online")[0]?.data, { user: "ann" });
  assert.equal(receiver.of("message.created")[0]?.data.content, "héllo 👋 مرحبا");
  assert.notEqual(receiver.requests[0]?.id, receiver.requests[1]?.id);
  await sender.close(AbortSignal.timeout(1_000));
  assert.equal(metrics.delivered, 2);
  await receiver.close();
});

Deno.test("WebhookSender retries a failed delivery until the endpoint accepts it, with the same id, body and signature", async () => {
  const receiver = WebhookReceiver.start();
  receiver.answer = answersPerId([500, 429, 302, 503, 204]);
  const { sender, metrics } = senderTo(receiver);
  sender.send("room.occupied", { room: "lobby" });
  await receiver.untilCount("room.occupied", 5);
  await sender.close(AbortSignal.timeout(1_000));
  const attempts = receiver.of("room.occupied");
  assert.equal(attempts.length, 5, "no attempt after the accepted one");
  assert.equal(new Set(attempts.map((received) => received.id)).size, 1, "one id");
  assert.equal(new Set(attempts.map((received) => received.raw)).size, 1, "one body");
  assert.ok(attempts.every((received) => received.verified));
  assert.deepEqual(metrics.failed, { http_5xx: 2, http_4xx: 1, http_3xx: 1 });
  assert.equal(metrics.delivered, 1);
  assert.deepEqual(metrics.dropped, {});
  await receiver.close();
});

Deno.test("WebhookSender times a hanging request out after timeoutMs and retries it", async () => {
  const receiver = WebhookReceiver.start();
  receiver.answer = answersPerId(["hang", 204]);
  const { sender, metrics } = senderTo(receiver, { timeoutMs: 150 });
  const started = performance.now();
  sender.send("user.offline", { user: "ann" });
  await receiver.untilCount("user.offline", 2);
  const [first, second] = receiver.of("user.offline");
  assert.ok(first && second && second.at - first.at >= 150, "retried after the timeout");
  await sender.close(AbortSignal.timeout(1_000));
  assert.deepEqual(metrics.failed, { timeout: 1 });
  assert.equal(metrics.delivered, 1);
  assert.ok(performance.now() - started < 2_000);
  await receiver.close();
});

Deno.test("WebhookSender gives an event up once its retry window has passed (retries_exhausted)", async () => {
  const receiver = WebhookReceiver.start();
  receiver.answer = () => 500;
  const { sender, metrics } = senderTo(receiver, {
    retry: { baseMs: 20, maxMs: 40, windowMs: 150 },
  });
  sender.send("room.vacated", { room: "lobby" });
  // close() waits for the queue and the delivery in hand: it ends once the event is given up.
  await sender.close(AbortSignal.timeout(5_000));
  assert.deepEqual(metrics.dropped, { retries_exhausted: 1 });
  assert.equal(metrics.delivered, 0);
  const attempts = receiver.of("room.vacated").length;
  assert.ok(attempts >= 3, `${attempts} attempts within 150 ms at 10 to 40 ms apart`);
  assert.equal(metrics.failed.http_5xx, attempts);
  await receiver.close();
});

Deno.test("WebhookSender.send() drops the oldest queued events when the queue is full; the newest go out", async () => {
  const receiver = WebhookReceiver.start();
  let requests = 0;
  receiver.answer = () => requests++ === 0 ? "hang" : 204;
  const { sender, metrics } = senderTo(receiver, {
    concurrency: 1,
    queueBytes: 4_000,
    timeoutMs: 300,
  });
  for (let i = 0; i < 50; i++) sender.send("message.created", { seq: i, content: "x".repeat(100) });
  // The first is with the worker (its request hangs); the queue holds what fits of the rest.
  const kept = sender.queuedEvents;
  assert.ok(kept > 0 && kept < 49, `${kept} of 49 kept`);
  assert.ok(sender.queuedBytes <= 4_000);
  assert.deepEqual(metrics.dropped, { queue_full: 49 - kept });
  await sender.close(AbortSignal.timeout(5_000));
  const seqs = [...new Set(receiver.of("message.created").map((received) => received.data.seq))];
  const newest = Array.from({ length: kept }, (_, i) => 50 - kept + i);
  assert.deepEqual(seqs, [0, ...newest], "the one in flight, then the newest, in order");
  assert.equal(metrics.delivered, 1 + kept);
  await receiver.close();
});

Deno.test("WebhookSender.close() delivers what is queued, and gives up the rest (shutdown) when its signal aborts", async () => {
  const receiver = WebhookReceiver.start();
  const { sender, metrics } = senderTo(receiver, { concurrency: 2 });
  for (let i = 0; i < 20; i++) sender.send("user.online", { user: `u${i}` });
  await sender.close(AbortSignal.timeout(5_000));
  assert.equal(metrics.delivered, 20, "all delivered before close() resolved");
  assert.equal(receiver.of("user.online").length, 20);
  sender.send("user.online", { user: "late" });
  assert.deepEqual(metrics.dropped, { shutdown: 1 }, "nothing is taken after close()");

  receiver.answer = () => "hang";
  const stuck = senderTo(receiver, { concurrency: 2, timeoutMs: 30_000 });
  for (let i = 0; i < 5; i++) stuck.sender.send("user.offline", { user: `u${i}` });
  await receiver.untilCount("user.offline", 2);
  const started = performance.now();
  await stuck.sender.close(AbortSignal.timeout(200));
  const took = performance.now() - started;
  assert.ok(took < 1_000, `close() ended ${Math.round(took)} ms after being asked to`);
  assert.deepEqual(stuck.metrics.dropped, { shutdown: 5 }, "2 in flight and 3 queued");
  assert.equal(stuck.metrics.delivered, 0);
  await receiver.close();
});

Deno.test("WebhookSender.send() drops an event larger than the whole queue (oversized)", async () => {
  const receiver = WebhookReceiver.start();
  const { sender, metrics } = senderTo(receiver, { queueBytes: 2_000 });
  sender.send("message.created", { content: "x".repeat(2_000) });
  sender.send("message.created", { content: "small" });
  await sender.close(AbortSignal.timeout(1_000));
  assert.deepEqual(metrics.dropped, { oversized: 1 });
  assert.deepEqual(receiver.of("message.created").map((received) => received.data.content), [
    "small",
  ]);
  await receiver.close();
});
