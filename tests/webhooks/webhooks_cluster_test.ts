/**
 * Webhooks of three instances (`deno task start` children) sharing one Redis, all posting to one
 * local receiver: each event is sent once, not once per instance. Exact counts are asserted once
 * the deployment has stopped, since a clean stop delivers what is queued and the last instance
 * out ends every offline grace: nothing can arrive after that.
 */
import assert from "node:assert/strict";
import { serviceGate } from "../support/services.ts";
import { TestSocket } from "../support/test_socket.ts";
import { withDeployment } from "../cluster/_deployment.ts";
import { type Received, TEST_SECRET, WebhookReceiver } from "./_receiver.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");

function env(receiver: WebhookReceiver, extra: Record<string, string>): Record<string, string> {
  return {
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: TEST_SECRET,
    LOG_LEVEL: "info",
    ...extra,
  };
}

async function join(url: string): Promise<TestSocket> {
  const socket = await TestSocket.open(url);
  await socket.nextOfType("welcome");
  return socket;
}

/** How many requests of each "type name" arrived, and whether any delivery id came twice. */
function tally(receiver: WebhookReceiver): Record<string, number> {
  const ids = receiver.requests.map((received) => received.id);
  assert.equal(new Set(ids).size, ids.length, "no delivery id twice (no retry was needed)");
  assert.ok(receiver.requests.every((received) => received.verified), "every one signed");
  const counts: Record<string, number> = {};
  for (const { type, data } of receiver.requests) {
    const key = `${type} ${type === "message.created" ? data.content : data.room ?? data.user}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

Deno.test({
  name:
    "Webhooks across three instances: each event once; user.offline once after the grace, none for a reconnect within it",
  ignore: redis.ignore,
  fn: async () => {
    const GRACE_MS = 1_500;
    const receiver = WebhookReceiver.start();
    let annLeft = 0;
    await withDeployment({
      redisUrl: redis.url ?? "",
      proxyFirst: false,
      env: env(receiver, { WEBHOOK_OFFLINE_GRACE: `${GRACE_MS}ms` }),
    }, async ({ instances: [a, b, c] }) => {
      const annOnA = await join(a.chatUrl("lobby", "ann"));
      const annOnB = await join(b.chatUrl("lobby", "ann"));
      const bobOnC = await join(c.chatUrl("lobby", "bob"));
      await receiver.untilCount("user.online", 1, "ann");
      await receiver.untilCount("user.online", 1, "bob");
      annOnA.send("from a");
      annOnB.send("from b");
      bobOnC.send("from c");
      await receiver.untilCount("message.created", 3);
      await annOnA.close();
      await annOnB.close();
      const annOnC = await join(c.chatUrl("lobby", "ann")); // back within the grace, elsewhere
      await annOnC.close();
      annLeft = performance.now();
      await bobOnC.close();
      await receiver.untilCount("room.vacated", 1, "lobby");
      await receiver.untilCount("user.offline", 1, "ann");
      await receiver.untilCount("user.offline", 1, "bob");
      // A later grace: by its end anything due earlier has been sent.
      const zed = await join(b.chatUrl("z-room", "zed"));
      await receiver.untilCount("user.online", 1, "zed");
      await zed.close();
      await receiver.untilCount("user.offline", 1, "zed");
    });
    const offline = receiver.of("user.offline", "ann")[0] as Received;
    assert.ok(offline.at - annLeft >= GRACE_MS, "ann goes offline a grace after her last close");
    assert.deepEqual(tally(receiver), {
      "user.online ann": 1,
      "user.online bob": 1,
      "user.online zed": 1,
      "room.occupied lobby": 1,
      "room.occupied z-room": 1,
      "message.created from a": 1,
      "message.created from b": 1,
      "message.created from c": 1,
      "room.vacated lobby": 1,
      "room.vacated z-room": 1,
      "user.offline ann": 1,
      "user.offline bob": 1,
      "user.offline zed": 1,
    });
    const messages = receiver.of("message.created").map((received) => received.data);
    assert.equal(new Set(messages.map((message) => message.id)).size, 3);
    assert.deepEqual(messages.map((message) => message.seq).sort(), [1, 2, 3]);
    await receiver.close();
  },
});

Deno.test({
  name:
    "Webhooks across three instances: members joining and leaving everywhere at once make one room.occupied and one room.vacated per room",
  ignore: redis.ignore,
  fn: async () => {
    const CYCLES = 3;
    const ROOMS = ["r1", "r2"];
    const receiver = WebhookReceiver.start();
    await withDeployment({
      redisUrl: redis.url ?? "",
      proxyFirst: false,
      env: env(receiver, { WEBHOOK_OFFLINE_GRACE: "1m" }),
    }, async ({ instances }) => {
      for (let cycle = 1; cycle <= CYCLES; cycle++) {
        // Every instance gets a member of every room at once; users move between instances.
        const sockets = await Promise.all(ROOMS.flatMap((room) =>
          instances.map((_, i) => {
            const instance = instances[(i + cycle) % instances.length];
            return join(instance?.chatUrl(room, `${room}-u${i}`) ?? "");
          })
        ));
        for (const room of ROOMS) await receiver.untilCount("room.occupied", cycle, room);
        await Promise.all(sockets.map((socket) => socket.close()));
        for (const room of ROOMS) await receiver.untilCount("room.vacated", cycle, room);
      }
    });
    const counts = tally(receiver);
    for (const room of ROOMS) {
      assert.equal(counts[`room.occupied ${room}`], CYCLES, `${room} occupied`);
      assert.equal(counts[`room.vacated ${room}`], CYCLES, `${room} vacated`);
      for (let i = 0; i < 3; i++) {
        // Back within the grace at every cycle (on another instance): online once; offline
        // once, when the last instance stopped.
        assert.equal(counts[`user.online ${room}-u${i}`], 1);
        assert.equal(counts[`user.offline ${room}-u${i}`], 1);
      }
    }
    await receiver.close();
  },
});

Deno.test({
  name:
    "Webhooks across three instances: a killed instance's users go offline and its rooms are vacated, once, within PRESENCE_TTL and the grace",
  ignore: redis.ignore,
  fn: async () => {
    const TTL_MS = 1_000;
    const GRACE_MS = 500;
    const receiver = WebhookReceiver.start();
    await withDeployment({
      redisUrl: redis.url ?? "",
      proxyFirst: false,
      env: env(receiver, { PRESENCE_TTL: `${TTL_MS}ms`, WEBHOOK_OFFLINE_GRACE: `${GRACE_MS}ms` }),
    }, async ({ instances: [a, b] }) => {
      const ann = await join(a.chatUrl("solo", "ann"));
      const cat = await join(a.chatUrl("both", "cat"));
      const bob = await join(b.chatUrl("both", "bob"));
      await receiver.untilCount("room.occupied", 1, "solo");
      await receiver.untilCount("user.online", 1, "cat");
      await receiver.untilCount("user.online", 1, "bob");
      const killedAt = performance.now();
      await a.crash();
      await receiver.untilCount("room.vacated", 1, "solo");
      await receiver.untilCount("user.offline", 1, "ann");
      await receiver.untilCount("user.offline", 1, "cat");
      const took = performance.now() - killedAt;
      console.log(`  users of the killed instance offline ${Math.round(took)} ms after the kill`);
      // Expired after TTL, noticed by a heartbeat (every TTL/3), then the grace.
      assert.ok(took < TTL_MS + TTL_MS / 3 + GRACE_MS + 1_500, `${Math.round(took)} ms`);
      assert.equal(receiver.of("room.vacated", "both").length, 0, "bob is still in both");
      for (const socket of [ann, cat]) await socket.closed;
      await bob.close();
      await receiver.untilCount("room.vacated", 1, "both");
    });
    assert.deepEqual(tally(receiver), {
      "room.occupied solo": 1,
      "room.occupied both": 1,
      "user.online ann": 1,
      "user.online cat": 1,
      "user.online bob": 1,
      "room.vacated solo": 1,
      "room.vacated both": 1,
      "user.offline ann": 1,
      "user.offline cat": 1,
      "user.offline bob": 1,
    });
    await receiver.close();
  },
});
