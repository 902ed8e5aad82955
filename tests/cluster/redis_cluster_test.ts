import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisCluster } from "../../cluster/redis_cluster.ts";
import { silentLogger } from "../../log/logger.ts";
import { serviceGate } from "../support/services.ts";
import { startTestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");

function instances(count: number, prefix: string) {
  return Array.from({ length: count }, () => {
    const cluster = RedisCluster.start(redis.url ?? "", {
      prefix,
      presenceTtlMs: 1_500,
      logger: silentLogger,
    });
    const app = startTestServer({}, undefined, cluster);
    return { cluster, app };
  });
}

Deno.test({
  name: "Redis cluster: a message reaches members on every instance once; presence spans instances",
  ignore: redis.ignore,
  fn: async () => {
    const prefix = `test:${crypto.randomUUID()}:`;
    const [a, b] = instances(2, prefix);
    if (!a || !b) throw new Error("two instances");
    await waitFor(
      "both instances connected",
      () => a.cluster.state === "ok" && b.cluster.state === "ok" || undefined,
    );
    const ann = await TestSocket.open(a.app.chatUrl("shared", "ann"));
    await ann.nextOfType("welcome");
    const bob = await TestSocket.open(b.app.chatUrl("shared", "bob"));
    assert.deepEqual((await bob.nextOfType("welcome")).members, ["ann", "bob"]);
    assert.deepEqual(await ann.nextOfType("presence"), {
      type: "presence",
      event: "join",
      room: "shared",
      user: "bob",
      members: ["ann", "bob"],
    });

    for (let i = 0; i < 100; i++) (i % 2 ? ann : bob).send(`m${i}`);
    const seenByAnn = await ann.collect("message", 100);
    const seenByBob = await bob.collect("message", 100);
    const sentBy = (sender: string, frames: Frame[]) =>
      frames.filter((frame) => frame.sender === sender).map((frame) => frame.content);
    const odd = Array.from({ length: 50 }, (_, i) => `m${2 * i + 1}`);
    const even = Array.from({ length: 50 }, (_, i) => `m${2 * i}`);
    for (const seen of [seenByAnn, seenByBob]) {
      assert.equal(new Set(seen.map((frame) => frame.id)).size, 100, "each message once");
      assert.deepEqual(sentBy("ann", seen), odd, "in the order ann sent them");
      assert.deepEqual(sentBy("bob", seen), even, "in the order bob sent them");
    }

    // A room with members on one instance only is subscribed by that instance only.
    const solo = await TestSocket.open(a.app.chatUrl("only-a", "cat"));
    await solo.nextOfType("welcome");
    const probe = new Redis(redis.url ?? "");
    const numsub = await probe.pubsub("NUMSUB", `${prefix}room:shared`, `${prefix}room:only-a`);
    assert.deepEqual(numsub, [`${prefix}room:shared`, 2, `${prefix}room:only-a`, 1]);

    await bob.close();
    assert.deepEqual((await ann.nextOfType("presence")).event, "leave");
    await Promise.all([ann.close(), solo.close()]);
    await a.app.close();
    await b.app.close();
    await Promise.all([a.cluster.close(), b.cluster.close()]);
    const leftover = await probe.keys(`${prefix}*`);
    await probe.quit();
    assert.deepEqual(leftover, [], "a clean shutdown leaves no keys");
  },
});
