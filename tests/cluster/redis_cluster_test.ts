import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisCluster } from "../../cluster/redis_cluster.ts";
import type { RemoteSink } from "../../chat/cluster.ts";
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
  name:
    "Redis cluster: a message reaches members on every instance once, in one seq order; presence spans instances",
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
    });
    assert.deepEqual(ann.members, ["ann", "bob"]);

    for (let i = 0; i < 100; i++) (i % 2 ? ann : bob).send(`m${i}`);
    const seenByAnn = await ann.collect("message", 100);
    const seenByBob = await bob.collect("message", 100);
    const sentBy = (sender: string, frames: Frame[]) =>
      frames.filter((frame) => frame.sender === sender).map((frame) => frame.content);
    const odd = Array.from({ length: 50 }, (_, i) => `m${2 * i + 1}`);
    const even = Array.from({ length: 50 }, (_, i) => `m${2 * i}`);
    for (const seen of [seenByAnn, seenByBob]) {
      assert.equal(new Set(seen.map((frame) => frame.id)).size, 100, "each message once");
      assert.deepEqual(seen.map((frame) => frame.seq), seqs(1, 100), "in seq order, no hole");
      assert.deepEqual(sentBy("ann", seen), odd, "in the order ann sent them");
      assert.deepEqual(sentBy("bob", seen), even, "in the order bob sent them");
    }
    // Each instance delivers its own messages as they come back from Redis: one order for all.
    assert.deepEqual(seenByAnn, seenByBob, "the same frames at the same seqs on both instances");

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
    const leftover = (await probe.keys(`${prefix}*`)).map((key) => key.slice(prefix.length));
    if (leftover.length > 0) await probe.del(...leftover.map((key) => prefix + key));
    await probe.quit();
    // The rooms' sequences (and the streams of rooms with messages) outlive the instances, so
    // the next one continues them; presence and heartbeats go with a clean shutdown.
    assert.deepEqual(
      leftover.sort(),
      ["seq:only-a", "seq:shared", "stream:shared"],
      "a clean shutdown leaves only the rooms' sequences",
    );
  },
});

Deno.test({
  name:
    "Redis cluster: a typing indicator made on one instance reaches members on the other once; a reply keeps its reply_to",
  ignore: redis.ignore,
  fn: async () => {
    const prefix = `test:${crypto.randomUUID()}:`;
    const [a, b] = instances(2, prefix);
    if (!a || !b) throw new Error("two instances");
    try {
      await waitFor(
        "both instances connected",
        () => a.cluster.state === "ok" && b.cluster.state === "ok" || undefined,
      );
      const ann = await TestSocket.open(a.app.chatUrl("typing", "ann"));
      await ann.nextOfType("welcome");
      const bob = await TestSocket.open(b.app.chatUrl("typing", "bob"));
      await bob.nextOfType("welcome");
      while ((await ann.nextOfType("presence")).user !== "bob") { /* until bob is seen */ }
      ann.send(JSON.stringify({ type: "typing" }));
      ann.send(JSON.stringify({ type: "typing" })); // within 2 s: not passed on
      ann.send("after typing");
      const seen: Frame[] = [];
      for (;;) {
        const frame = await bob.next();
        if (frame.type === "message") break;
        if (frame.type === "typing") seen.push(frame);
      }
      assert.deepEqual(seen, [{ type: "typing", room: "typing", user: "ann" }]);
      // A reply keeps its reply_to through the shared sequencer.
      bob.send(JSON.stringify({ type: "message", content: "re", reply_to: 1 }));
      for (;;) {
        const frame = await ann.nextOfType("message");
        if (frame.content !== "re") continue;
        assert.equal(frame.reply_to, 1);
        break;
      }
      // Stored by the other instance too, from what the sequencer carried.
      const history = await (await fetch(a.app.url("/history?r=typing"))).json();
      assert.equal(history.find((item: Frame) => item.content === "re")?.reply_to, 1);
      await Promise.all([ann.close(), bob.close()]);
    } finally {
      await a.app.close();
      await b.app.close();
      await Promise.all([a.cluster.close(), b.cluster.close()]);
      const probe = new Redis(redis.url ?? "");
      const keys = await probe.keys(`${prefix}*`);
      if (keys.length > 0) await probe.del(...keys);
      await probe.quit();
    }
  },
});

function seqs(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

Deno.test({
  name:
    "Redis cluster: a room whose sequence went back in Redis moves to a new epoch; no seq is handed out twice",
  ignore: redis.ignore,
  fn: async () => {
    const prefix = `test:${crypto.randomUUID()}:`;
    const [a, b] = instances(2, prefix);
    if (!a || !b) throw new Error("two instances");
    const probe = new Redis(redis.url ?? "");
    try {
      await waitFor(
        "both instances connected",
        () => a.cluster.state === "ok" && b.cluster.state === "ok" || undefined,
      );
      const ann = await TestSocket.open(a.app.chatUrl("rewind", "ann"));
      const { epoch } = await ann.nextOfType("welcome");
      const bob = await TestSocket.open(b.app.chatUrl("rewind", "bob"));
      await bob.nextOfType("welcome");
      for (let i = 0; i < 5; i++) ann.send(`m${i}`);
      for (const member of [ann, bob]) {
        assert.deepEqual((await member.collect("message", 5)).map((m) => m.seq), seqs(1, 5));
      }
      // Redis comes back with an older copy of the room's sequence (a snapshot, a failover to a
      // replica that was behind): same epoch, seq 2. Seqs 3, 4, 5 would be handed out again.
      await probe.hset(`${prefix}seq:rewind`, "seq", "2");
      // Found at the next catch-up (a heartbeat): the room moves on to a new epoch, and its
      // members are told to resume.
      for (const member of [ann, bob]) {
        assert.equal((await member.untilClosed()).close.code, 4002);
      }
      const [newEpoch, lastSeq] = await probe.hmget(`${prefix}seq:rewind`, "epoch", "seq");
      assert.notEqual(newEpoch, epoch);
      assert.equal(lastSeq, "5", "the new epoch continues after every seq handed out");
      const back = await TestSocket.open(
        a.app.chatUrl("rewind", "ann") + `&since_seq=5&epoch=${epoch}`,
      );
      const welcome = await back.next();
      assert.deepEqual([welcome.type, welcome.epoch, welcome.last_seq], ["welcome", newEpoch, 5]);
      assert.deepEqual(await back.next(), {
        type: "resume",
        complete: false,
        replayed: 0,
        epoch: newEpoch,
        reason: "epoch_changed",
      });
      back.send("after");
      const after = await back.nextOfType("message");
      assert.deepEqual([after.seq, after.content], [6, "after"]);
      await back.close();
    } finally {
      await a.app.close();
      await b.app.close();
      await Promise.all([a.cluster.close(), b.cluster.close()]);
      const left = await probe.keys(`${prefix}*`);
      if (left.length > 0) await probe.del(...left);
      await probe.quit();
    }
  },
});

/** Two instances on one fresh key prefix, linked to rooms by hand (no server around them). */
function twoClusters(): [RedisCluster, RedisCluster] {
  const prefix = `test:${crypto.randomUUID()}:`;
  const options = { prefix, presenceTtlMs: 1_500, logger: silentLogger };
  return [
    RedisCluster.start(redis.url ?? "", options),
    RedisCluster.start(redis.url ?? "", options),
  ];
}

/** A room's side of a link that only listens to presence. */
function sink(presence: (users: readonly string[]) => void): RemoteSink {
  return {
    messages() {},
    gap() {},
    reset() {},
    presence: (_instance, users) => presence(users),
    typing() {},
    read() {},
    seed: () => Promise.resolve(0),
  };
}

Deno.test({
  name: "Redis cluster: a room callback that throws is contained; other rooms still hear",
  ignore: redis.ignore,
  fn: async () => {
    const [here, there] = twoClusters();
    const heard: string[][] = [];
    const links = [
      here.link(
        "bad",
        sink(() => {
          throw new Error("room broke");
        }),
      ),
      here.link("good", sink((users) => heard.push([...users]))),
      there.link("bad", sink(() => {})),
      there.link("good", sink(() => {})),
    ];
    try {
      await Promise.all(links.map((link) => link.ready));
      links[2]?.announce(["bob"]);
      await waitFor("the fault is contained", () => here.faults === 1 || undefined);
      links[3]?.announce(["cat"]);
      await waitFor(
        "the other room hears",
        () => heard.some((users) => users[0] === "cat") || undefined,
      );
    } finally {
      for (const link of links) link.close();
      await Promise.all([here.close(), there.close()]);
    }
  },
});

Deno.test({
  name: "Redis cluster: a closing room's last announcement never speaks for a new room of its name",
  ignore: redis.ignore,
  fn: async () => {
    const [here, there] = twoClusters();
    const heard: string[][] = [];
    const listener = there.link("lobby", sink((users) => heard.push([...users])));
    const old = here.link("lobby", sink(() => {}));
    try {
      await Promise.all([listener.ready, old.ready]);
      old.announce(["ann"]);
      const fresh = here.link("lobby", sink(() => {})); // the old room is still ending
      await fresh.ready;
      fresh.announce(["bob"]);
      old.announce([]); // the old room's last word, after the new room's first
      old.close();
      await waitFor("bob announced", () => heard.some((users) => users[0] === "bob") || undefined);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(heard.at(-1), ["bob"], "the new room's members stand");
      fresh.close();
    } finally {
      listener.close();
      await Promise.all([here.close(), there.close()]);
    }
  },
});
