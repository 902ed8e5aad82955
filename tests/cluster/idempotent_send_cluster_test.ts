/**
 * Sends that can be retried across instances (issue 14): three real instances (`deno task start`)
 * over one Redis. A message whose sender lost its socket before the ack, re-sent on another
 * instance, is neither broadcast nor stored again, and the sender gets the first ack; copies of
 * one client id sent at once through two instances become one message.
 *
 * "Nothing more was broadcast" is proved with a marker sent after the re-sends: the room's
 * sequence is one order for every member, so a broadcast re-send would reach a member first.
 */
import assert from "node:assert/strict";
import { createDatabase, query } from "../support/postgres_schema.ts";
import {
  framesUntil,
  isMessageOf,
  messageFrame,
  resend,
  sendThenDestroy,
} from "../support/retried_sends.ts";
import { serviceGate } from "../support/services.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";
import { type Deployment, withDeployment } from "./_deployment.ts";
import type { Instance } from "./_instance.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");
const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const ROOM = "retries";
const ENV: Readonly<Record<string, string>> = {
  PRESENCE_TTL: "2000ms",
  RATE_LIMIT_PER_SECOND: "100000",
  RATE_LIMIT_BURST: "100000",
  LOG_LEVEL: "info",
};

/**
 * Three instances over one Redis, sharing one scratch database when `postgres` (made here rather
 * than by `withDeployment`, so that the test can read its table).
 */
async function deploy(
  postgres: boolean,
  body: (deployment: Deployment, databaseUrl: string | undefined) => Promise<void>,
): Promise<void> {
  const scratch = postgres ? await createDatabase(database.url ?? "") : undefined;
  try {
    await withDeployment({
      redisUrl: redis.url ?? "",
      proxyFirst: false,
      env: { ...ENV, DATABASE_URL: scratch?.url ?? "" },
    }, (deployment) => body(deployment, scratch?.url));
  } finally {
    await scratch?.drop();
  }
}

function portOf(instance: Instance): number {
  return Number(new URL(instance.url("/")).port);
}

async function join(instance: Instance, user: string): Promise<TestSocket> {
  const socket = await TestSocket.open(instance.chatUrl(ROOM, user));
  assert.equal((await socket.next()).type, "welcome");
  return socket;
}

/** The entries of the room's `/history` on `instance` that `sender` sent with `clientId`. */
async function historyEntries(instance: Instance, sender: string, clientId: string) {
  const response = await fetch(instance.url(`/history?r=${ROOM}&limit=100`));
  assert.equal(response.status, 200);
  const page: Frame[] = await response.json();
  return page.filter((entry) => entry.sender === sender && entry.client_id === clientId);
}

/** How many seqs the shared sequencer handed out in the room. */
async function seqsTaken(deployment: Deployment): Promise<number> {
  return Number(await deployment.probe.hget(`${deployment.prefix}seq:${ROOM}`, "seq"));
}

for (const postgres of [true, false]) {
  const store = postgres ? "PostgreSQL" : "memory stores";
  Deno.test({
    name:
      `Three instances (${store}): a send whose socket was destroyed before the ack, re-sent on another instance, is broadcast and stored once, with the same ack`,
    ignore: redis.ignore || (postgres && database.ignore),
    fn: () =>
      deploy(postgres, async (deployment, databaseUrl) => {
        const [a, b, c] = deployment.instances;
        const bob = await join(c, "bob");
        await sendThenDestroy(
          portOf(a),
          `/chat?r=${ROOM}&u=ann`,
          messageFrame("lost-ack", "did this go out?"),
        );
        const [echo] = await framesUntil(bob, (frame) => frame.type === "message");
        assert.equal(echo?.client_id, "lost-ack", "it went out: bob, on another instance, saw it");
        const original = { type: "ack", client_id: "lost-ack", id: echo?.id, seq: echo?.seq };

        const ann = await TestSocket.open(b.chatUrl(ROOM, "ann"));
        assert.equal((await ann.next()).last_seq, 1);
        assert.deepEqual(await resend(ann, "lost-ack"), original, "the ack of the first send");
        assert.deepEqual(await resend(ann, "lost-ack"), original, "and again");
        // Back on the first instance too.
        const annOnA = await join(a, "ann");
        assert.deepEqual(await resend(annOnA, "lost-ack"), original, "and on the first instance");

        ann.send(messageFrame("marker"));
        const seen = await framesUntil(bob, isMessageOf("marker"));
        assert.deepEqual(seen.map((frame) => frame.client_id), ["marker"], "bob saw it once");
        assert.equal(await seqsTaken(deployment), 2, "the re-sends took no seq");
        await Promise.all([ann.close(), annOnA.close(), bob.close()]);

        // An instance stores what it delivered: with one database every /history has the
        // message; with memory stores, bob's instance has it, and none has it twice.
        for (const instance of deployment.instances) {
          const entries = await waitFor(`the marker in /history of ${instance.id}`, async () => {
            const marker = await historyEntries(instance, "ann", "marker");
            return marker.length > 0
              ? await historyEntries(instance, "ann", "lost-ack")
              : undefined;
          });
          const found = entries.map((entry) => [entry.id, entry.seq]);
          const mustHave = postgres || instance === c;
          const once: unknown[][] = [[echo?.id, echo?.seq]];
          assert.deepEqual(found, mustHave || found.length > 0 ? once : [], instance.id);
        }
        if (databaseUrl) {
          const rows = await waitFor("both rows in the table", async () => {
            const rows = await query(databaseUrl, "public", (sql) =>
              sql<{ client_id: string; id: string; seq: string }[]>`
                select client_id, id::text, seq from messages where room = ${ROOM} order by seq`);
            return rows.length >= 2 ? rows : undefined;
          });
          assert.deepEqual(
            rows.map((row) => [row.client_id, row.id, Number(row.seq)]),
            [["lost-ack", echo?.id, 1], ["marker", rows[1]?.id, 2]],
            "one row for the re-sent message",
          );
        }
      }),
  });
}

Deno.test({
  name:
    "Three instances (PostgreSQL): the same client ids sent at once, twice through one instance and once through another, become one message each, with the same ack for every copy",
  ignore: redis.ignore || database.ignore,
  fn: () =>
    deploy(true, async (deployment, databaseUrl) => {
      const [a, b, c] = deployment.instances;
      const count = 40;
      const onA = await join(a, "ann");
      const onB = await join(b, "ann");
      const bob = await join(c, "bob");
      // Neither instance knows these ids when they arrive: only the shared sequencer can tell.
      // Each goes twice through A (most likely in one turn of the room there) and once through B.
      for (let k = 0; k < count; k++) {
        onA.send(messageFrame(`both-${k}`));
        onA.send(messageFrame(`both-${k}`));
        onB.send(messageFrame(`both-${k}`));
      }
      /** Reads `copies` acks per id; every copy of an id must be acknowledged alike. */
      const acksOf = async (socket: TestSocket, copies: number) => {
        const acks = new Map<string, string>();
        for (let answered = 0; answered < count * copies;) {
          const frame = await socket.next(10_000);
          if (frame.type === "error") assert.fail(`refused: ${JSON.stringify(frame)}`);
          if (frame.type !== "ack") continue;
          const placed = `${frame.id} ${frame.seq}`;
          assert.equal(acks.get(frame.client_id) ?? placed, placed, `copies of ${frame.client_id}`);
          acks.set(frame.client_id, placed);
          answered++;
        }
        return acks;
      };
      const [fromA, fromB] = await Promise.all([acksOf(onA, 2), acksOf(onB, 1)]);
      assert.equal(fromA.size, count);
      assert.deepEqual(fromA, fromB, "the copies through both instances acknowledged as one");

      onA.send(messageFrame("marker"));
      const seen = (await framesUntil(bob, isMessageOf("marker"))).filter((frame) =>
        frame.type === "message"
      );
      assert.deepEqual(
        seen.map((frame) => frame.client_id).sort(),
        [...Array.from({ length: count }, (_, k) => `both-${k}`), "marker"].sort(),
        "bob saw each id once",
      );
      for (const frame of seen.slice(0, -1)) {
        assert.equal(fromA.get(frame.client_id), `${frame.id} ${frame.seq}`);
      }
      assert.equal(await seqsTaken(deployment), count + 1);
      await Promise.all([onA.close(), onB.close(), bob.close()]);

      const rows = await waitFor("every row in the table", async () => {
        const rows = await query(databaseUrl ?? "", "public", (sql) =>
          sql<{ client_id: string }[]>`select client_id from messages where room = ${ROOM}`);
        return rows.length >= count + 1 ? rows : undefined;
      });
      assert.equal(rows.length, count + 1);
      assert.equal(
        new Set(rows.map((row) =>
          row.client_id
        )).size,
        count + 1,
      );
    }),
});
