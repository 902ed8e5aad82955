/**
 * Three chat server instances (`deno task start`) sharing one Redis under a fresh REDIS_PREFIX
 * and, when asked, one scratch PostgreSQL database; the first may reach Redis through a proxy
 * the test can cut.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { createDatabase, viaPort } from "../support/postgres_schema.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { waitFor } from "../support/wait_for.ts";
import { Instance } from "./_instance.ts";

/** Three instances sharing a prefix (and a database), and a Redis client to look at them. */
export interface Deployment {
  readonly instances: readonly [Instance, Instance, Instance];
  readonly prefix: string;
  readonly probe: Redis;
  /** In front of the first instance's Redis, when asked for. */
  readonly proxy: TcpProxy | undefined;
  /** The instances not killed. */
  alive(): Instance[];
}

/** Options of {@linkcode withDeployment}. */
export interface DeploymentOptions {
  readonly redisUrl: string;
  /** A scratch database is made on this server for the three instances; none: memory stores. */
  readonly databaseUrl?: string;
  /** Whether the first instance reaches Redis through a {@linkcode TcpProxy}. */
  readonly proxyFirst: boolean;
  /** Server threads of each instance (`WORKERS`); 1 by default. */
  readonly workers?: number;
  readonly env: Readonly<Record<string, string>>;
}

/** Starts three instances, runs `body`, stops them (asserting clean exits), and cleans up. */
export async function withDeployment(
  options: DeploymentOptions,
  body: (deployment: Deployment) => Promise<void>,
): Promise<void> {
  const { redisUrl } = options;
  const prefix = `test:${crypto.randomUUID()}:`;
  const probe = new Redis(redisUrl);
  const target = new URL(redisUrl);
  const proxy = options.proxyFirst
    ? TcpProxy.start({ hostname: target.hostname, port: Number(target.port || 6379) })
    : undefined;
  const scratch = options.databaseUrl ? await createDatabase(options.databaseUrl) : undefined;
  const started = await Promise.allSettled([0, 1, 2].map((i) =>
    Instance.start({
      ...options.env,
      REDIS_URL: i === 0 && proxy ? viaPort(redisUrl, proxy.port) : redisUrl,
      REDIS_PREFIX: prefix,
      ...(options.workers !== undefined && { WORKERS: String(options.workers) }),
      ...(scratch && { DATABASE_URL: scratch.url }),
    })
  ));
  const instances = started.flatMap((result) =>
    result.status === "fulfilled" ? [result.value] : []
  );
  try {
    for (const result of started) if (result.status === "rejected") throw result.reason;
    const [a, b, c] = instances;
    if (!a || !b || !c) throw new Error("three instances");
    await Promise.all(instances.map((instance) => instance.untilCluster("ok")));
    const keys = instances.flatMap((instance) => instance.ids)
      .map((id) => `${prefix}instance:${id}`);
    await waitFor("every instance's heartbeat", async () => {
      return (await probe.exists(...keys)) === keys.length || undefined;
    });
    await body({
      instances: [a, b, c],
      prefix,
      probe,
      proxy,
      alive: () => instances.filter((instance) => !instance.crashed),
    });
    const exits = await Promise.all(instances.map((instance) => instance.stop()));
    for (const [i, { code, stderr }] of exits.entries()) {
      if (!instances[i]?.crashed) assert.equal(code, 0, stderr);
    }
  } finally {
    await Promise.all(instances.map((instance) => instance.stop()));
    const left = await probe.keys(`${prefix}*`);
    if (left.length > 0) await probe.del(...left);
    await probe.quit();
    await proxy?.close();
    await scratch?.drop();
  }
}
