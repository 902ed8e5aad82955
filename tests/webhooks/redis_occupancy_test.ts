/**
 * RedisOccupancy against a real Redis (TEST_REDIS_URL), several instances in this process, each
 * test under its own key prefix. Exact counts are asserted once every instance has closed:
 * close() waits for what is in flight and the last one out ends every grace.
 */
import assert from "node:assert/strict";
import { waitFor } from "../support/wait_for.ts";
import { Redis } from "ioredis";
import { silentLogger } from "../../log/logger.ts";
import type { WebhookEventType } from "../../webhooks/webhook_event.ts";
import { RedisOccupancy } from "../../webhooks/redis_occupancy.ts";
import { viaPort } from "../support/postgres_schema.ts";
import { serviceGate } from "../support/services.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");

interface Emitted {
  readonly type: WebhookEventType;
  readonly name: string;
  /** Which instance emitted it (its index). */
  readonly from: number;
}

/** What a set of instances emitted, and a way to await it. */
class EventLog {
  readonly events: Emitted[] = [];
  readonly #waiters = new Set<() => void>();

  emitter(from: number) {
    return (type: WebhookEventType, data: Readonly<Record<string, unknown>>) => {
      this.events.push({ type, name: String(data.user ?? data.room), from });
      for (const wake of [...this.#waiters]) wake();
    };
  }

  count(type: WebhookEventType, name: string): number {
    return this.events.filter((event) => event.type === type && event.name === name).length;
  }

  /** Resolves once `count` events of `type` about `name` were emitted. */
  until(type: WebhookEventType, name: string, count = 1, timeoutMs = 10_000): Promise<void> {
    const check = () => this.count(type, name) >= count;
    if (check()) return Promise.resolve();
    const signal = AbortSignal.timeout(timeoutMs);
    return new Promise((resolve, reject) => {
      const wake = () => {
        if (!check()) return;
        this.#waiters.delete(wake);
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#waiters.delete(wake);
        reject(new Error(`timed out waiting for ${count} ${type} ${name}`));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(wake);
    });
  }
}

/** `count` instances sharing a fresh prefix (the first through `urlOfFirst` if given). */
function instances(
  count: number,
  options: { graceMs: number; ttlMs?: number; urlOfFirst?: string },
) {
  const prefix = `test:${crypto.randomUUID()}:`;
  const log = new EventLog();
  const started = Array.from(
    { length: count },
    (_, i) =>
      RedisOccupancy.start(i === 0 && options.urlOfFirst ? options.urlOfFirst : redis.url ?? "", {
        prefix,
        ttlMs: options.ttlMs ?? 15_000,
        offlineGraceMs: options.graceMs,
        emit: log.emitter(i),
        logger: silentLogger,
      }),
  );
  return { prefix, log, started };
}

/** Runs `body` with `count` instances; closes them and removes their keys however it ends. */
async function withInstances(
  count: number,
  options: { graceMs: number; ttlMs?: number; urlOfFirst?: string },
  body: (parts: ReturnType<typeof instances>) => Promise<void>,
): Promise<void> {
  const parts = instances(count, options);
  try {
    // Connected first: a change told late (after the others' changes) is a real transition of
    // its own, which is not what these tests count.
    await waitFor("connected", () => parts.started.every((each) => each.connected) || undefined);
    await body(parts);
  } finally {
    await Promise.all(parts.started.map((occupancy) => occupancy.close())); // idempotent
    await leftover(parts.prefix);
  }
}

/** The keys left under `prefix`, removed. */
async function leftover(prefix: string): Promise<string[]> {
  const probe = new Redis(redis.url ?? "");
  const keys = await probe.keys(`${prefix}*`);
  if (keys.length > 0) await probe.del(...keys);
  await probe.quit();
  return keys.map((key) => key.slice(prefix.length));
}

Deno.test({
  name:
    "RedisOccupancy: holders on three instances at once make one room.occupied, one room.vacated, one user.online and one user.offline per cycle",
  ignore: redis.ignore,
  fn: () =>
    withInstances(3, { graceMs: 100 }, async ({ prefix, log, started }) => {
      const CYCLES = 5;
      for (let cycle = 1; cycle <= CYCLES; cycle++) {
        // All in the same tick: the three flushes race to Redis.
        for (const occupancy of started) {
          occupancy.held("user", "ann");
          occupancy.held("room", "lobby");
        }
        await log.until("room.occupied", "lobby", cycle);
        await log.until("user.online", "ann", cycle);
        for (const occupancy of started) {
          occupancy.released("room", "lobby");
          occupancy.released("user", "ann");
        }
        await log.until("room.vacated", "lobby", cycle);
        await log.until("user.offline", "ann", cycle);
      }
      await Promise.all(started.map((occupancy) => occupancy.close()));
      for (const type of ["room.occupied", "room.vacated"] as const) {
        assert.equal(log.count(type, "lobby"), CYCLES, type);
      }
      for (const type of ["user.online", "user.offline"] as const) {
        assert.equal(log.count(type, "ann"), CYCLES, type);
      }
      assert.deepEqual(await leftover(prefix), [], "a clean stop leaves no key");
    }),
});

Deno.test({
  name:
    "RedisOccupancy: a user back on another instance within the grace gets neither user.offline nor a new user.online",
  ignore: redis.ignore,
  fn: () =>
    withInstances(2, { graceMs: 300 }, async ({ prefix, log, started: [a, b] }) => {
      if (!a || !b) throw new Error("two instances");
      a.held("user", "ann");
      a.held("user", "zed");
      await log.until("user.online", "ann");
      await log.until("user.online", "zed");
      a.released("user", "ann");
      a.released("user", "zed");
      b.held("user", "ann"); // ann reconnects elsewhere at once; zed does not
      // zed's grace and ann's would end together and be popped by one script: when zed's offline
      // comes, ann's would have come with it.
      await log.until("user.offline", "zed");
      assert.equal(log.count("user.offline", "ann"), 0, "no offline within the grace");
      b.released("user", "ann");
      await log.until("user.offline", "ann");
      await Promise.all([a.close(), b.close()]);
      assert.equal(log.count("user.online", "ann"), 1);
      assert.equal(log.count("user.offline", "ann"), 1);
      assert.deepEqual(await leftover(prefix), []);
    }),
});

Deno.test({
  name:
    "RedisOccupancy: an instance cut from Redis past its TTL is reaped once by another (offline, vacated); back, it tells what it holds again",
  ignore: redis.ignore,
  fn: async () => {
    const target = new URL(redis.url ?? "");
    const proxy = TcpProxy.start({ hostname: target.hostname, port: Number(target.port || 6379) });
    const options = { graceMs: 200, ttlMs: 600, urlOfFirst: viaPort(redis.url ?? "", proxy.port) };
    try {
      await withInstances(2, options, async ({ prefix, log, started: [a, b] }) => {
        if (!a || !b) throw new Error("two instances");
        a.held("user", "ann");
        a.held("room", "a-only");
        a.held("room", "shared");
        b.held("user", "bob");
        b.held("room", "shared");
        await log.until("user.online", "ann");
        await log.until("room.occupied", "a-only");
        await log.until("user.online", "bob");
        const cutAt = performance.now();
        proxy.cut();
        await log.until("room.vacated", "a-only");
        await log.until("user.offline", "ann");
        const took = performance.now() - cutAt;
        assert.ok(took >= 200, `after the grace at least (${Math.round(took)} ms)`);
        assert.ok(
          took < 600 + 200 + 200 + 1_000,
          `within TTL + a beat + grace (${Math.round(took)} ms)`,
        );
        assert.deepEqual(
          log.events.filter((event) =>
            event.type === "room.vacated" || event.type === "user.offline"
          )
            .map((event) => [event.type, event.name, event.from]),
          [["room.vacated", "a-only", 1], ["user.offline", "ann", 1]],
          "told by the survivor, once; shared is still occupied, bob still online",
        );
        proxy.restore();
        await log.until("user.online", "ann", 2);
        await log.until("room.occupied", "a-only", 2);
        await Promise.all([a.close(), b.close()]);
        assert.equal(
          log.count("room.occupied", "shared"),
          1,
          "shared was never vacated in between",
        );
        assert.equal(log.count("room.vacated", "shared"), 1);
        assert.equal(log.count("user.online", "bob"), 1);
        assert.deepEqual(await leftover(prefix), []);
      });
    } finally {
      await proxy.close();
    }
  },
});

Deno.test({
  name: "RedisOccupancy.close(): the last instance out ends every grace at once",
  ignore: redis.ignore,
  fn: () =>
    withInstances(2, { graceMs: 3_600_000 }, async ({ prefix, log, started: [a, b] }) => {
      if (!a || !b) throw new Error("two instances");
      a.held("user", "ann");
      b.held("user", "cat");
      await log.until("user.online", "ann");
      await log.until("user.online", "cat");
      a.released("user", "ann");
      await a.close();
      assert.equal(log.count("user.offline", "ann"), 0, "b is alive: ann's grace goes on");
      await b.close();
      assert.deepEqual(
        log.events.filter((event) => event.type === "user.offline").map((event) => event.name)
          .sort(),
        ["ann", "cat"],
      );
      assert.ok(
        log.events.filter((event) => event.type === "user.offline").every((e) => e.from === 1),
      );
      assert.deepEqual(await leftover(prefix), []);
    }),
});
