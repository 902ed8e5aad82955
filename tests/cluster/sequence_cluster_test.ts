/**
 * Acceptance of the shared room sequence (issue 13): three real instances (`deno task start`)
 * over one Redis, each test under its own REDIS_PREFIX and, where /history must agree across
 * instances, one scratch PostgreSQL database. Clients send concurrently, move between instances
 * resuming with since_seq and epoch, and must end holding seqs 1..N exactly once with the same
 * message at each seq, through a Redis cut and a SIGKILL.
 */
import assert from "node:assert/strict";
import { serviceGate } from "../support/services.ts";
import { waitFor } from "../support/wait_for.ts";
import { type Deployment, withDeployment } from "./_deployment.ts";
import type { Instance } from "./_instance.ts";
import type { HeldMessage, Participant } from "./_participant.ts";
import { prng } from "./_prng.ts";
import { picker, Traffic } from "./_traffic.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");
const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const ROOM = "seq";
const ENV: Readonly<Record<string, string>> = {
  PRESENCE_TTL: "2000ms",
  RATE_LIMIT_PER_SECOND: "100000",
  RATE_LIMIT_BURST: "100000",
  LOG_LEVEL: "info",
};

/** Three instances as the test needs them (memory stores unless `postgres`). */
function deploy(
  options: { postgres: boolean; proxyFirst: boolean; workers?: number },
  body: (deployment: Deployment) => Promise<void>,
): Promise<void> {
  return withDeployment({
    redisUrl: redis.url ?? "",
    databaseUrl: options.postgres ? database.url : undefined,
    proxyFirst: options.proxyFirst,
    workers: options.workers,
    env: ENV,
  }, body);
}

/** Every page of a room's history on `instance`, read forward with after_seq. */
async function historyOf(instance: Instance): Promise<Map<number, HeldMessage>> {
  const all = new Map<number, HeldMessage>();
  for (let after = 0;;) {
    const response = await fetch(instance.url(`/history?r=${ROOM}&after_seq=${after}&limit=100`));
    assert.equal(response.status, 200);
    const page: (Omit<HeldMessage, "clientId"> & { seq: number; client_id?: string })[] =
      await response.json();
    if (page.length === 0) return all;
    for (const { seq, id, sender, content, timestamp, client_id } of page) {
      assert.ok(seq > after, `/history pages in seq order on ${instance.id}`);
      all.set(seq, { id, sender, content, timestamp, clientId: client_id });
      after = seq;
    }
  }
}

function seqs(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * Brings every participant up to the room's last seq (live, then /history for what it was told
 * it misses) and checks the outcome: no problem, seqs 1..N, one message per seq everywhere,
 * every sender's messages there exactly once (however often they were re-sent), each ack naming
 * its message, and `/history` equal on `historyOn`.
 *
 * @returns N.
 */
async function verify(
  deployment: Deployment,
  participants: readonly Participant[],
  options: {
    sent: ReadonlyMap<Participant, number>;
    fillFrom: readonly Instance[];
    historyOn: readonly Instance[];
  },
): Promise<number> {
  const last = Number(await deployment.probe.hget(`${deployment.prefix}seq:${ROOM}`, "seq"));
  const pick = picker(deployment.alive, prng(last));
  for (const participant of participants) await participant.syncTo(last, pick);
  for (const participant of participants) await participant.fillFromHistory(options.fillFrom);
  assert.deepEqual(participants.flatMap((participant) => participant.problems), []);
  // The room's Redis stream holds every seq of these tests: a hole is always filled from it.
  const gaps = participants.filter((participant) => participant.stats.gapFrames > 0);
  assert.deepEqual(gaps.map((participant) => participant.user), [], "no gap frames");
  const reference = participants[0]?.held ?? new Map();
  for (const participant of participants) {
    const held = [...participant.held.keys()].sort((a, b) => a - b);
    assert.deepEqual(held, seqs(1, last), `${participant.user} holds 1..${last}`);
    for (const seq of held) {
      assert.deepEqual(participant.held.get(seq), reference.get(seq), `${participant.user}@${seq}`);
    }
  }
  // Each message once, under the client id it was sent with, whatever was re-sent.
  const logical = new Map<string, number>();
  for (const [seq, message] of reference) {
    const [user, k] = message.content.split(":", 2);
    assert.equal(message.clientId, `${user}-${k}`, `client_id of ${seq}`);
    const key = `${user}:${k}`;
    assert.equal(logical.get(key), undefined, `${key} at seq ${logical.get(key)} and ${seq}`);
    logical.set(key, seq);
  }
  for (const [sender, count] of options.sent) {
    for (let k = 0; k < count; k++) {
      assert.ok(logical.has(`${sender.user}:${k}`), `${sender.user}'s message ${k} is there`);
    }
    // Every message it got through was acknowledged with the id and seq it has in the room.
    assert.deepEqual([...sender.acks.keys()].sort((a, b) => a - b), seqs(0, count - 1));
    for (const [k, ack] of sender.acks) {
      const seq = logical.get(`${sender.user}:${k}`);
      assert.equal(ack.seq, seq, `${sender.user}'s ack of ${k}`);
      assert.equal(ack.id, reference.get(ack.seq)?.id, `${sender.user}'s ack of ${k}`);
    }
  }
  for (const instance of options.historyOn) {
    // Other instances may still be storing the last messages: wait for them, then compare.
    const history = await waitFor(`/history of ${instance.id} up to ${last}`, async () => {
      const history = await historyOf(instance);
      return history.size >= last ? history : undefined;
    });
    assert.deepEqual([...history.keys()], seqs(1, last), `/history of ${instance.id}`);
    for (const [seq, message] of history) {
      assert.deepEqual(message, reference.get(seq), `/history of ${instance.id} at ${seq}`);
    }
  }
  return last;
}

/** One line of what happened, for the test output. */
function report(label: string, last: number, participants: readonly Participant[], ms: number) {
  const sum = (pick: (p: Participant) => number) =>
    participants.reduce((total, participant) => total + pick(participant), 0);
  const moves = sum((p) => p.stats.resumes.filter((resume) => resume.since > 0).length);
  console.error(
    `  ${label}: ${last} seqs in ${Math.round(ms)} ms; ${moves} resumes, ` +
      `${sum((p) => p.stats.incomplete)} incomplete, ${
        sum((p) => p.stats.gapFrames)
      } gap frames, ` +
      `${sum((p) => p.stats.unavailable)} unavailable, ${sum((p) => p.stats.again)} again, ` +
      `${sum((p) => p.stats.fromHistory)} from /history, ${sum((p) => p.stats.resent)} re-sent ` +
      `(${sum(ackedEarlier)} answered with an earlier attempt's ack)`,
  );
  return moves;
}

/** Acks of `participant` that answered a re-send with the message an earlier attempt made. */
function ackedEarlier(participant: Participant): number {
  let count = 0;
  for (const ack of participant.acks.values()) {
    const attempt = participant.held.get(ack.seq)?.content.split(":")[2];
    if (attempt !== String(ack.attempt)) count++;
  }
  return count;
}

/** Two senders and one roaming reader per instance, joined there. */
async function joinEveryone(deployment: Deployment, traffic: Traffic) {
  const senders: Participant[] = [];
  const readers: Participant[] = [];
  for (const [i, instance] of deployment.instances.entries()) {
    senders.push(await traffic.join(`s${i}a`, instance), await traffic.join(`s${i}b`, instance));
    readers.push(await traffic.join(`r${i}`, instance));
  }
  return { senders, readers, everyone: [...senders, ...readers] };
}

/** Runs the senders (`count` each) with roaming readers until every sender is done. */
async function runTraffic(
  deployment: Deployment,
  traffic: Traffic,
  group: { senders: readonly Participant[]; readers: readonly Participant[] },
  options: { count: number; moveRate: number; seed: number },
): Promise<void> {
  const { seed } = options;
  group.readers.forEach((reader, i) => {
    traffic.roam(reader, prng(seed + 100 + i), picker(deployment.alive, prng(seed + i)));
  });
  group.senders.forEach((sender, i) => {
    traffic.send(sender, {
      count: options.count,
      random: prng(seed + 200 + i),
      pick: picker(deployment.alive, prng(seed + 300 + i)),
      moveRate: options.moveRate,
    });
  });
  await traffic.sendersDone();
  await traffic.stop();
}

// Once more with WORKERS=2 (issue 19): six cluster instances in three processes, the kernel
// placing each connection on either thread of its process.
for (const workers of [1, 2]) {
  Deno.test({
    name: `Three instances${
      workers > 1 ? ` of WORKERS=${workers}` : ""
    }: concurrent senders and roaming resumes end with seqs 1..N, one message each, on every client and /history`,
    ignore: redis.ignore || database.ignore,
    fn: () =>
      deploy({ postgres: true, proxyFirst: false, workers }, async (deployment) => {
        const traffic = new Traffic(ROOM);
        try {
          const started = performance.now();
          const group = await joinEveryone(deployment, traffic);
          await runTraffic(deployment, traffic, group, {
            count: 40,
            moveRate: 0.1,
            seed: 1,
          });
          const last = await verify(deployment, group.everyone, {
            sent: traffic.sent,
            fillFrom: deployment.alive(),
            historyOn: deployment.alive(),
          });
          assert.equal(last, 6 * 40, "nothing was sent twice: no sender was ever refused");
          const moves = report("no faults", last, group.everyone, performance.now() - started);
          assert.ok(moves >= 10, `clients moved between instances (${moves} resumes)`);
        } finally {
          await traffic.close();
        }
      }),
  });
}

Deno.test({
  name:
    "A Redis cut on one instance: its sends are refused and retried; no client ends with a silent hole",
  ignore: redis.ignore || database.ignore,
  fn: () =>
    deploy({ postgres: true, proxyFirst: true }, async (deployment) => {
      const { instances: [a], proxy, probe, prefix } = deployment;
      const traffic = new Traffic(ROOM);
      try {
        const started = performance.now();
        const group = await joinEveryone(deployment, traffic);
        // Messages keep coming from b through the restore, so a's subscription gets some before
        // a's catch-up has read the stream (a hole it must fill before letting them through).
        const background = await traffic.join("bg", deployment.instances[1]);
        traffic.send(background, {
          count: Infinity,
          random: prng(20),
          pick: () => deployment.instances[1],
          moveRate: 0,
          pauseMs: 10,
        });
        const outage = (async () => {
          await traffic.progress.reached(40);
          proxy?.cut();
          const atCut = traffic.progress.count;
          await a.untilCluster("degraded");
          // Several seconds: until a's heartbeat expired, and the others went on meanwhile.
          await waitFor("a's heartbeat expired", async () => {
            return (await probe.exists(`${prefix}instance:${a.id}`)) === 0 || undefined;
          });
          await traffic.progress.reached(atCut + 20);
          proxy?.restore();
          await a.untilCluster("ok", 15_000);
        })();
        await runTraffic(deployment, traffic, group, {
          count: 30,
          moveRate: 0.05,
          seed: 2,
        });
        await outage;
        await verify(deployment, [...group.everyone, background], {
          sent: traffic.sent,
          fillFrom: deployment.alive(),
          historyOn: deployment.alive(),
        }).then((last) => report("Redis cut", last, group.everyone, performance.now() - started));
        const refused = group.everyone.reduce((n, p) => n + p.stats.unavailable, 0);
        assert.ok(refused > 0, "sends on the cut instance were refused with unavailable");
      } finally {
        await traffic.close();
      }
    }),
});

Deno.test({
  name:
    "An instance killed with SIGKILL: its clients resume elsewhere; no silent hole, every told gap closed",
  ignore: redis.ignore || database.ignore,
  fn: () =>
    deploy({ postgres: true, proxyFirst: false }, async (deployment) => {
      const { instances: [, , c] } = deployment;
      const traffic = new Traffic(ROOM);
      try {
        const started = performance.now();
        const group = await joinEveryone(deployment, traffic);
        const onC = group.everyone.filter((participant) => participant.instance === c);
        const kill = traffic.progress.reached(60).then(() => c.crash());
        await runTraffic(deployment, traffic, group, {
          count: 30,
          moveRate: 0.05,
          seed: 3,
        });
        await kill;
        const last = await verify(deployment, group.everyone, {
          sent: traffic.sent,
          fillFrom: deployment.alive(),
          historyOn: deployment.alive(),
        });
        report("SIGKILL", last, group.everyone, performance.now() - started);
        assert.ok(onC.length > 0 && onC.every((p) => p.instance !== c), "c's clients moved");
      } finally {
        await traffic.close();
      }
    }),
});

for (const store of ["memory", "postgres"] as const) {
  Deno.test({
    name:
      `A room kept open on A through a Redis cut (${store} stores): a resume on B after it replays every message or says why not`,
    ignore: redis.ignore || (store === "postgres" && database.ignore),
    fn: () =>
      deploy({ postgres: store === "postgres", proxyFirst: true }, async (deployment) => {
        const { instances: [a, b, c], proxy, probe, prefix } = deployment;
        const traffic = new Traffic(ROOM);
        try {
          const started = performance.now();
          // The room is on A (kept open by ka) and C (the senders); B has nobody in it.
          const ka = await traffic.join("ka", a);
          const movers = [await traffic.join("kb", a), await traffic.join("kc", a)];
          const stayer = await traffic.join("kd", a);
          const senders = [await traffic.join("sc0", c), await traffic.join("sc1", c)];
          const onlyC = () => c;
          senders.forEach((sender, i) =>
            traffic.send(sender, {
              count: Infinity,
              random: prng(40 + i),
              pick: onlyC,
              moveRate: 0,
              pauseMs: 40,
            })
          );
          await traffic.progress.reached(20);
          proxy?.cut();
          const atCut = traffic.progress.count;
          await a.untilCluster("degraded");
          await waitFor("a's heartbeat expired", async () => {
            return (await probe.exists(`${prefix}instance:${a.id}`)) === 0 || undefined;
          });
          await traffic.progress.reached(atCut + 30);
          proxy?.restore();
          // Right after the cut: A may not have caught up yet, B opens the room fresh.
          const [kb, kc] = movers as [Participant, Participant];
          await Promise.all([kb.moveTo(b), kc.moveTo(c), stayer.moveTo(a)]);
          const onB = kb.stats.resumes.at(-1);
          assert.ok(onB && onB.since < onB.lastSeq, "kb had missed messages to resume on B");
          await traffic.progress.reached(traffic.progress.count + 20);
          await traffic.stop();
          const everyone = [ka, kb, kc, stayer, ...senders];
          // With memory stores B holds only what it delivered since kb came: fill from C.
          const last = await verify(deployment, everyone, {
            sent: traffic.sent,
            fillFrom: [c],
            historyOn: store === "postgres" ? [a, b, c] : [a, c],
          });
          const resumeOnB = `since ${onB.since}, last_seq ${onB.lastSeq}: ${
            JSON.stringify(onB.frame)
          }`;
          console.error(`  resume on B after the cut: ${resumeOnB}`);
          report(`kept open (${store})`, last, everyone, performance.now() - started);
        } finally {
          await traffic.close();
        }
      }),
  });
}
