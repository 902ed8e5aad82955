/**
 * Conversation features across three real instances (`deno task start`) over one Redis and one
 * PostgreSQL database: an edit, a delete, a reaction and a typing indicator made on one instance
 * reach members on the others once; a client resuming on another instance after missing an edit
 * and a delete sees the latest state; read positions follow a user across instances, never
 * backwards.
 */
import assert from "node:assert/strict";
import { serviceGate } from "../support/services.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";
import { withDeployment } from "./_deployment.ts";
import type { Instance } from "./_instance.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");
const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
const ROOM = "talk";
const ENV: Readonly<Record<string, string>> = {
  PRESENCE_TTL: "2000ms",
  PRESENCE_LEAVE_GRACE: "0",
  RATE_LIMIT_PER_SECOND: "100000",
  RATE_LIMIT_BURST: "100000",
  HISTORY_RATE_LIMIT: "100000",
};

async function join(instance: Instance, user: string, query = ""): Promise<[TestSocket, Frame]> {
  const socket = await TestSocket.open(instance.chatUrl(ROOM, user) + query);
  const welcome = await socket.next();
  assert.equal(welcome.type, "welcome");
  return [socket, welcome];
}

/** Frames up to (not including) the first of `type` that `done` accepts. */
async function until(
  socket: TestSocket,
  done: (frame: Frame) => boolean,
): Promise<Frame[]> {
  const seen: Frame[] = [];
  for (let frame = await socket.next(); !done(frame); frame = await socket.next()) {
    seen.push(frame);
  }
  return seen;
}

function send(socket: TestSocket, frame: Record<string, unknown>): void {
  socket.send(JSON.stringify(frame));
}

Deno.test({
  name:
    "Cluster changes: edit, delete, reaction and typing on one instance reach the others once; a resume elsewhere sees the latest state",
  ignore: redis.ignore || database.ignore,
  fn: async () => {
    await withDeployment({
      redisUrl: redis.url ?? "",
      databaseUrl: database.url,
      proxyFirst: false,
      env: ENV,
    }, async ({ instances: [a, b, c] }) => {
      const [ann] = await join(a, "ann");
      const [bob] = await join(b, "bob");
      const [cat, catWelcome] = await join(c, "cat");
      // Bob must be subscribed before the changes: he is once ann hears of cat, who came later.
      while (ann.members.length < 3) await ann.nextOfType("presence");
      while (bob.members.length < 3) await bob.nextOfType("presence");
      send(ann, { type: "message", content: "one" });
      send(ann, { type: "message", content: "two" });
      const [one, two] = await cat.collect("message", 2);
      assert.ok(one && two);
      // Cat leaves before the changes and resumes later on another instance.
      const cursor = `&since_seq=${two.seq}&epoch=${catWelcome.epoch}`;
      await cat.close();

      send(ann, { type: "typing" });
      send(ann, { type: "edit", seq: one.seq, content: "one, edited" });
      await ann.nextOfType("edit"); // bob's reaction comes after it, in everyone's order
      send(bob, { type: "react", seq: one.seq, reaction: "🎉" });
      await ann.nextOfType("react");
      send(ann, { type: "delete", seq: two.seq });
      send(ann, { type: "message", content: "marker" });
      // Every other member sees each change once, in the room's one order.
      for (const member of [bob]) {
        const seen = await until(member, (frame) => frame.content === "marker");
        const relevant = seen.filter((frame) =>
          ["typing", "edit", "react", "delete"].includes(frame.type)
        );
        assert.deepEqual(relevant.map((frame) => frame.type), [
          "typing",
          "edit",
          "react",
          "delete",
        ]);
        const events = relevant.slice(1);
        assert.deepEqual(events.map((frame) => frame.event_seq), [
          two.seq + 1,
          two.seq + 2,
          two.seq + 3,
        ]);
      }
      const annSaw = await until(ann, (frame) => frame.content === "marker");
      assert.deepEqual(
        annSaw.filter((frame) => ["edit", "react", "delete"].includes(frame.type)).map((f) =>
          f.type
        ),
        ["delete"],
      );

      // Cat resumes on another instance: the missed changes come in place.
      const [again] = await join(b, "cat", cursor);
      const replay = await until(again, (frame) => frame.type === "resume");
      assert.deepEqual(replay.map((frame) => frame.type), [
        "edit",
        "react",
        "delete",
        "message",
      ]);
      assert.equal(replay[0]?.content, "one, edited");
      // /history shows the latest state: at once on the instances that delivered the changes
      // (stored, or held and merged in); on c, which has no member left, once they are stored.
      const latestState = async (instance: Instance) => {
        const page: Frame[] = await (await fetch(instance.url(`/history?r=${ROOM}&u=bob`)))
          .json();
        const [first, second] = page;
        assert.equal(first?.content, "one, edited");
        assert.ok(first?.edited_at);
        assert.deepEqual(first?.reactions, { "🎉": { count: 1, me: true } });
        assert.deepEqual([second?.deleted, second?.content], [true, undefined]);
        return true;
      };
      for (const instance of [a, b]) await latestState(instance);
      await waitFor("the latest state in /history of c", () => latestState(c));
      await Promise.all([ann.close(), bob.close(), again.close()]);
    });
  },
});

Deno.test({
  name:
    "Cluster changes: read positions follow a user across instances and never go backwards; receipts reach every instance",
  ignore: redis.ignore || database.ignore,
  fn: async () => {
    await withDeployment({
      redisUrl: redis.url ?? "",
      databaseUrl: database.url,
      proxyFirst: false,
      env: ENV,
    }, async ({ instances: [a, b, c] }) => {
      const [bob] = await join(a, "bob");
      for (let i = 1; i <= 5; i++) send(bob, { type: "message", content: `m${i}` });
      const sent = await bob.collect("message", 5);
      const seqOf = (i: number) => sent[i - 1]?.seq as number;
      const [annOnB] = await join(b, "ann");
      send(annOnB, { type: "read", seq: seqOf(4) });
      await annOnB.nextOfType("read");
      // The receipt reaches members on the other instances too.
      const receipt = await bob.nextOfType("read");
      assert.deepEqual([receipt.user, receipt.seq], ["ann", seqOf(4)]);
      const [annOnC] = await join(c, "ann");
      send(annOnC, { type: "read", seq: seqOf(2) }); // behind: changes nothing
      const mine = async (instance: Instance) =>
        await (await fetch(instance.url("/me/rooms?u=ann"))).json();
      await waitFor("the position stored", async () => {
        const rooms = await mine(a);
        return rooms[0]?.read_seq === seqOf(4) || undefined;
      });
      for (const instance of [a, b, c]) {
        assert.deepEqual(await mine(instance), [{
          room: ROOM,
          unread: 1,
          read_seq: seqOf(4),
          last_seq: seqOf(5),
        }]);
      }
      // A new connection anywhere is welcomed with it.
      const [annOnA, welcome] = await join(a, "ann");
      assert.deepEqual([welcome.read_seq, welcome.unread], [seqOf(4), 1]);
      await Promise.all([bob.close(), annOnB.close(), annOnC.close(), annOnA.close()]);
    });
  },
});
