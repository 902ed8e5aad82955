/**
 * The multi-instance acceptance: several `deno task start` child processes on 127.0.0.1 share
 * rooms through a real Redis (TEST_REDIS_URL), each deployment under its own key prefix.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { serviceGate } from "../support/services.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";
import { Instance } from "./_instance.ts";

const redis = serviceGate("TEST_REDIS_URL", "Redis");
const PRESENCE_TTL_MS = 2_000;
/** A dead instance is noticed by the next heartbeat (every TTL/3) after its key expires. */
const PRESENCE_SLACK_MS = 1_500;
const BASE_ENV: Readonly<Record<string, string>> = {
  PRESENCE_TTL: `${PRESENCE_TTL_MS}ms`,
  RATE_LIMIT_PER_SECOND: "100000",
  RATE_LIMIT_BURST: "100000",
  LOG_LEVEL: "info",
};

/** Instances sharing one key prefix, and a Redis client of the test's own to look at it. */
interface Deployment {
  readonly prefix: string;
  readonly probe: Redis;
  readonly instances: readonly Instance[];
  /**
   * Stops every instance, asserting a clean exit of those not crashed, and that no key but the
   * rooms' sequences and streams is left.
   */
  stopCleanly(): Promise<void>;
}

/** Starts `count` instances, waits until each is connected, runs `body`, then cleans up. */
async function withDeployment(
  count: number,
  options: { redisUrl: string },
  body: (deployment: Deployment) => Promise<void>,
): Promise<void> {
  const prefix = `test:${crypto.randomUUID()}:`;
  const probe = new Redis(redis.url ?? "");
  const started = await Promise.allSettled(
    Array.from(
      { length: count },
      () => Instance.start({ ...BASE_ENV, REDIS_URL: options.redisUrl, REDIS_PREFIX: prefix }),
    ),
  );
  const instances = started.flatMap((result) =>
    result.status === "fulfilled" ? [result.value] : []
  );
  const stopAll = () => Promise.all(instances.map((instance) => instance.stop()));
  try {
    for (const result of started) if (result.status === "rejected") throw result.reason;
    await Promise.all(instances.map((instance) => instance.untilCluster("ok")));
    // "ok" can come before the first heartbeat is written (when the subscriber connection is
    // ready before the command one, that beat fails and the next is PRESENCE_TTL/3 later); until
    // then the others take the instance for dead. These tests are about what comes after.
    const keys = instances.map((instance) => `${prefix}instance:${instance.id}`);
    await waitFor("every instance's heartbeat", async () => {
      return (await probe.exists(...keys)) === keys.length || undefined;
    });
    await body({
      prefix,
      probe,
      instances,
      stopCleanly: async () => {
        const exits = await stopAll();
        for (const [i, { code, stderr }] of exits.entries()) {
          if (!instances[i]?.crashed) assert.equal(code, 0, stderr);
        }
        // The rooms' sequences (and streams) outlive the instances, so the next ones continue
        // them; presence and heartbeats go with a clean shutdown.
        const left = (await probe.keys(`${prefix}*`)).map((key) => key.slice(prefix.length));
        assert.deepEqual(
          left.filter((key) => !/^(seq|stream):/.test(key)),
          [],
          "a clean shutdown leaves only the rooms' sequences",
        );
      },
    });
  } finally {
    await stopAll();
    const left = await probe.keys(`${prefix}*`);
    if (left.length > 0) await probe.del(...left);
    await probe.quit();
  }
}

function three(instances: readonly Instance[]): [Instance, Instance, Instance] {
  const [a, b, c] = instances;
  if (!a || !b || !c) throw new Error("three instances expected");
  return [a, b, c];
}

/** Opens a socket and reads its welcome (kept in `skipped`). */
async function join(instance: Instance, room: string, user: string): Promise<TestSocket> {
  const socket = await TestSocket.open(instance.chatUrl(room, user));
  const welcome = await socket.next();
  assert.equal(welcome.type, "welcome", `${user} is welcomed first`);
  skipped.set(socket, [welcome]);
  return socket;
}

async function joinExpecting(
  instance: Instance,
  room: string,
  user: string,
  members: string[],
): Promise<TestSocket> {
  const socket = await TestSocket.open(instance.chatUrl(room, user));
  const welcome = await socket.next();
  assert.match(String(welcome.epoch), /^[0-9a-f]{16}$/);
  assert.equal(typeof welcome.last_seq, "number");
  assert.deepEqual(welcome, {
    type: "welcome",
    protocol: 2,
    room,
    user,
    members,
    epoch: welcome.epoch,
    last_seq: welcome.last_seq,
    limits: welcome.limits,
  });
  return socket;
}

/** Joins, reads the welcome's member list, and leaves. */
async function welcomeMembers(instance: Instance, room: string, user: string): Promise<unknown> {
  const socket = await join(instance, room, user);
  await socket.close();
  return (skipped.get(socket) ?? [])[0]?.members;
}

async function expectPresence(
  socket: TestSocket,
  expected: {
    event: "join" | "leave";
    room: string;
    user: string;
    members: readonly string[];
  },
  timeoutMs?: number,
): Promise<void> {
  let frame: Frame;
  try {
    frame = await socket.nextOfType("presence", timeoutMs);
  } catch (error) {
    throw new Error(`no presence ${expected.event} of ${expected.user}`, { cause: error });
  }
  const { members, ...change } = expected;
  assert.deepEqual(frame, { type: "presence", ...change });
  assert.deepEqual(socket.members, members, "the members after it");
}

/** Frames {@linkcode nextMessage} skipped, by socket, for tests that look at them afterwards. */
const skipped = new WeakMap<TestSocket, Frame[]>();

/** The next message frame's sender and content; other frames are kept in `skipped`. */
async function nextMessage(socket: TestSocket, timeoutMs?: number): Promise<[string, string]> {
  for (;;) {
    const frame: Frame = await socket.next(timeoutMs);
    if (frame.type === "message") return [frame.sender, frame.content];
    skipped.set(socket, [...(skipped.get(socket) ?? []), frame]);
  }
}

/** Waits for a presence frame of `user`, looking first at what {@linkcode nextMessage} skipped. */
async function presenceOf(
  socket: TestSocket,
  expected: { event: "join" | "leave"; user: string },
  timeoutMs: number,
): Promise<Frame> {
  const matches = (frame: Frame) =>
    frame.type === "presence" && frame.event === expected.event && frame.user === expected.user;
  const seen = (skipped.get(socket) ?? []).find(matches);
  if (seen) return seen;
  for (;;) {
    const frame = await socket.next(timeoutMs);
    if (matches(frame)) return frame;
  }
}

const CROSSING_TIMEOUT_MS = 15_000;

/**
 * Sends probes from `from` every 250 ms until one reaches `to`, and asserts that the first
 * message of `sender` to reach `to` is a probe (nothing sent during an outage).
 *
 * @returns when it arrived (performance.now()).
 */
async function untilCrossed(from: TestSocket, sender: string, to: TestSocket): Promise<number> {
  const deadline = performance.now() + CROSSING_TIMEOUT_MS;
  for (let probe = 0; performance.now() < deadline; probe++) {
    from.send(`probe ${probe}`);
    for (;;) {
      let message: [string, string];
      try {
        message = await nextMessage(to, 250);
      } catch (error) {
        if (error instanceof Error && error.message === "timed out waiting for a frame") break;
        throw error;
      }
      if (message[0] !== sender) continue; // the probes of the other direction
      assert.match(message[1], /^probe \d+$/, `the first of ${sender}'s messages to cross`);
      return performance.now();
    }
  }
  throw new Error(`no probe from ${sender} crossed in ${CROSSING_TIMEOUT_MS} ms`);
}

/** Subscribers of each channel under `prefix` (prefix taken off), from PUBSUB. */
async function subscriberCounts(probe: Redis, prefix: string): Promise<Record<string, unknown>> {
  const channels = (await probe.pubsub("CHANNELS", `${prefix}*`)) as string[];
  if (channels.length === 0) return {};
  const counts = (await probe.pubsub("NUMSUB", ...channels.sort())) as unknown[];
  return Object.fromEntries(
    channels.map((channel, i) => [channel.slice(prefix.length), counts[2 * i + 1]]),
  );
}

const LOAD_TOTAL = 10_000;
/** Own messages a sender may have unechoed: 5 senders x 20 stays far below OUTBOX_LIMIT (256). */
const LOAD_WINDOW = 20;
const LOAD_TIMEOUT_MS = 40_000;

/**
 * A member of the load test on a raw WebSocket: it records every message as it arrives (no
 * promise per frame), and, as a sender, keeps at most {@linkcode LOAD_WINDOW} of its own unechoed.
 */
class LoadMember {
  readonly user: string;
  readonly instance: number;
  /** Ids of load messages, in arrival order. */
  readonly ids: string[] = [];
  /** Their senders, in the same order. */
  readonly senders: string[] = [];
  /** Sequence numbers of load messages by sender, in arrival order. */
  readonly bySender = new Map<string, number[]>();
  /** The room's seq of every message (marks included), in arrival order. */
  readonly seqs: number[] = [];
  readonly problems: string[] = [];
  members: string[] = [];
  /** `mark:` messages received: they bracket the load, one from each instance. */
  marks = 0;
  /** Messages this member sent (marks included), and acks it got for them. */
  sends = 0;
  acks = 0;
  /**
   * Own messages echoed but not acknowledged yet, and acks whose echo has not come yet, by id:
   * the sequencer's answer (the ack) and the broadcast (the echo) race, so either may be first.
   */
  readonly #echoedUnacked = new Map<string, number>();
  readonly #ackedUnechoed = new Map<string, number>();
  readonly #socket: WebSocket;
  readonly #closed: Promise<void>;
  #quota = 0;
  #sent = 0;
  #echoed = 0;
  #check: (() => void) | undefined;

  private constructor(socket: WebSocket, user: string, instance: number) {
    this.#socket = socket;
    this.user = user;
    this.instance = instance;
    socket.onmessage = (event) => this.#receive(JSON.parse(event.data));
    this.#closed = new Promise((resolve) => {
      socket.onclose = (event) => {
        if (event.code !== 1000) this.problems.push(`closed with ${event.code} ${event.reason}`);
        this.#check?.();
        resolve();
      };
    });
  }

  static open(url: string, user: string, instance: number): Promise<LoadMember> {
    const socket = new WebSocket(url);
    const member = new LoadMember(socket, user, instance);
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve(member);
      socket.onerror = () => reject(new Error(`cannot open ${url}`));
    });
  }

  get received(): number {
    return this.ids.length;
  }

  send(content: string): void {
    this.sends++;
    this.#socket.send(content);
  }

  /** Own messages and acks not matched to each other, by id; none once every ack came. */
  unmatched(): { echoed: string[]; acked: string[] } {
    return { echoed: [...this.#echoedUnacked.keys()], acked: [...this.#ackedUnechoed.keys()] };
  }

  /** Starts sending `quota` load messages. */
  startSending(quota: number): void {
    this.#quota = quota;
    this.#pump();
  }

  /** Resolves once `done()` holds, checked after every frame; rejects on a problem or timeout. */
  until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = AbortSignal.timeout(timeoutMs);
      const fail = (why: string) => {
        this.#check = undefined;
        reject(new Error(`${this.user}: ${why} waiting for ${what} (${this.received} received)`));
      };
      const onAbort = () => fail("timed out");
      this.#check = () => {
        if (this.problems.length > 0) fail(this.problems.join("; "));
        else if (done()) {
          this.#check = undefined;
          signal.removeEventListener("abort", onAbort);
          resolve();
        }
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#check();
    });
  }

  async close(): Promise<void> {
    this.#socket.close(1000);
    await this.#closed;
  }

  #receive(frame: Frame): void {
    if (frame.type === "welcome") this.members = [...frame.members];
    else if (frame.type === "presence") this.#presence(frame);
    else if (frame.type === "message") this.#message(frame);
    else if (frame.type === "ack") this.#ack(frame);
    else this.problems.push(`unexpected frame ${JSON.stringify(frame)}`);
    this.#check?.();
  }

  /** A presence delta: the list stays sorted, a repeated change changes nothing. */
  #presence(frame: Frame): void {
    const others = this.members.filter((user) => user !== frame.user);
    this.members = frame.event === "join" ? [...others, frame.user].sort() : others;
  }

  /** Each ack names an own message by its id and seq, once; no client_id was given. */
  #ack(frame: Frame): void {
    this.acks++;
    if (this.acks > this.sends) this.problems.push(`ack ${JSON.stringify(frame)} of nothing sent`);
    if ("client_id" in frame) this.problems.push(`ack with a client_id: ${JSON.stringify(frame)}`);
    this.#match(this.#echoedUnacked, this.#ackedUnechoed, frame, "ack");
  }

  /** Settles `frame` against the other kind's unmatched entries, or leaves it for them. */
  #match(
    other: Map<string, number>,
    own: Map<string, number>,
    frame: Frame,
    kind: string,
  ): void {
    const seq = other.get(frame.id);
    if (seq === undefined) {
      if (own.has(frame.id)) this.problems.push(`${kind} of ${frame.id} twice`);
      own.set(frame.id, frame.seq);
      return;
    }
    other.delete(frame.id);
    if (seq !== frame.seq) this.problems.push(`${kind} of ${frame.id} at ${frame.seq}, not ${seq}`);
  }

  #message(frame: Frame): void {
    this.seqs.push(frame.seq);
    if (frame.sender === this.user) {
      this.#match(this.#ackedUnechoed, this.#echoedUnacked, frame, "echo");
    }
    const [kind, sender, seq] = String(frame.content).split(":");
    if (kind === "mark") {
      this.marks++;
      return;
    }
    if (kind !== "load" || sender === undefined) {
      this.problems.push(`unexpected message ${frame.content}`);
      return;
    }
    this.ids.push(frame.id);
    this.senders.push(sender);
    const seen = this.bySender.get(sender) ?? [];
    seen.push(Number(seq));
    this.bySender.set(sender, seen);
    if (sender === this.user) {
      this.#echoed++;
      this.#pump();
    }
  }

  #pump(): void {
    while (this.#sent < this.#quota && this.#sent - this.#echoed < LOAD_WINDOW) {
      this.send(`load:${this.user}:${this.#sent++}`);
    }
  }
}

/** Where a sequence 0..count-1 first goes wrong, or undefined if it does not. */
function sequenceFault(seqs: readonly number[] | undefined, count: number): string | undefined {
  if (!seqs) return "nothing received";
  for (let i = 0; i < Math.max(seqs.length, count); i++) {
    if (seqs[i] !== i) return `at position ${i}: ${seqs[i]} (of ${seqs.length}, expected ${count})`;
  }
  return undefined;
}

Deno.test({
  name: "Three instances: 10,000 messages reach every member once, in one seq order",
  ignore: redis.ignore,
  fn: () =>
    withDeployment(3, { redisUrl: redis.url ?? "" }, async ({ instances, stopCleanly }) => {
      // Three members per instance; senders on every instance, and a pure reader on each.
      const senders = new Map(["a0", "a1", "b0", "b1", "c0"].map((user) => [user, 2_000]));
      const members: LoadMember[] = [];
      for (const [index, instance] of instances.entries()) {
        for (let i = 0; i < 3; i++) {
          const user = `${"abc"[index]}${i}`;
          members.push(await LoadMember.open(instance.chatUrl("load", user), user, index));
        }
      }
      const everyone = members.map((member) => member.user).sort();
      await Promise.all(members.map((member) =>
        member.until("all nine members", () => member.members.length === 9, 10_000)
      ));
      for (const member of members) {
        assert.deepEqual(member.members, everyone);
      }
      // A mark from each instance reaching all nine proves every instance subscribed; after the
      // load, a second round proves nothing more (a duplicate) was on its way.
      const markers = [0, 3, 6];
      const markRound = async (round: number) => {
        for (const index of markers) {
          members[index]?.send(`mark:${round}`);
        }
        await Promise.all(members.map((member) =>
          member.until(`marks of round ${round}`, () =>
            member.marks === 3 * round, 10_000)
        ));
      };
      await markRound(1);

      const started = performance.now();
      for (const member of members) {
        member.startSending(senders.get(member.user) ?? 0);
      }
      await Promise.all(members.map((member) =>
        member.until("every load message", () =>
          member.received >= LOAD_TOTAL, LOAD_TIMEOUT_MS)
      ));
      const elapsedMs = performance.now() - started;
      await markRound(2);
      // The last acks may come after the last echoes (the sequencer's answer races them).
      await Promise.all(members.map((member) =>
        member.until("every ack", () =>
          member.acks === member.sends, 10_000)
      ));

      const reference = [...(members[0]?.ids ?? [])].sort();
      assert.equal(new Set(reference).size, LOAD_TOTAL, "ids are unique");
      for (const member of members) {
        assert.deepEqual(member.problems, [], member.user);
        assert.equal(member.received, LOAD_TOTAL, `${member.user}: each message once`);
        // Every message a member sent was acknowledged once, with the id and seq of its echo.
        const marksSent = markers.includes(members.indexOf(member)) ? 2 : 0;
        assert.equal(member.sends, (senders.get(member.user) ?? 0) + marksSent, member.user);
        assert.equal(member.acks, member.sends, `${member.user}: every send acknowledged`);
        assert.deepEqual(member.unmatched(), { echoed: [], acked: [] }, member.user);
        const ids = [...member.ids].sort();
        assert.ok(
          ids.every((id, i) =>
            id === reference[i]
          ),
          `${member.user}: everyone's ids`,
        );
        for (const [sender, count] of senders) {
          const fault = sequenceFault(member.bySender.get(sender), count);
          assert.equal(fault, undefined, `${member.user} got ${sender}'s messages out of order`);
        }
        // Seqs 1, 2, 3, ... with no hole: the three marks, the load, the three marks.
        const seqFault = sequenceFault(
          member.seqs.map((seq) =>
            seq - 1
          ),
          LOAD_TOTAL + 6,
        );
        assert.equal(seqFault, undefined, `${member.user}'s seqs`);
        // Every instance delivers in seq order, its own messages included: one order for all.
        assert.ok(
          member.ids.every((id, i) => id === members[0]?.ids[i]),
          `${member.user} saw the same order as ${members[0]?.user}`,
        );
      }
      // A sender's ids come from one instance's clock, so they increase in its sending order.
      const first = members[0];
      for (const sender of senders.keys()) {
        const ids = first?.ids.filter((_, i) => first.senders[i] === sender) ?? [];
        assert.ok(ids.every((id, i) => i === 0 || id > (ids[i - 1] ?? "")), `${sender}'s ids`);
      }
      console.error(
        `  ${LOAD_TOTAL} messages x 9 members in ${Math.round(elapsedMs)} ms ` +
          `(${Math.round(LOAD_TOTAL / (elapsedMs / 1000))} msg/s accepted)`,
      );
      await Promise.all(members.map((member) => member.close()));
      await stopCleanly();
    }),
});

Deno.test({
  name: "A room on one instance is subscribed by that instance only; others get none of it",
  ignore: redis.ignore,
  fn: () =>
    withDeployment(
      3,
      { redisUrl: redis.url ?? "" },
      async ({ prefix, probe, instances, stopCleanly }) => {
        const [a, b, c] = three(instances);
        const ann = await join(a, "solo-a", "ann");
        const bea = await join(a, "pair", "bea");
        const dan = await join(b, "pair", "dan");
        await expectPresence(bea, {
          event: "join",
          room: "pair",
          user: "dan",
          members: ["bea", "dan"],
        });
        const cal = await join(a, "trio", "cal");
        const eve = await join(b, "trio", "eve");
        const gus = await join(c, "trio", "gus");
        const fay = await join(b, "elsewhere-b", "fay");
        const hal = await join(c, "elsewhere-c", "hal");
        const expected = {
          "room:elsewhere-b": 1,
          "room:elsewhere-c": 1,
          "room:pair": 2,
          "room:solo-a": 1,
          "room:trio": 3,
        };
        await waitFor("one subscriber per instance with members", async () => {
          const seen = await subscriberCounts(probe, prefix);
          return JSON.stringify(seen) === JSON.stringify(expected) || undefined;
        });

        for (let i = 0; i < 20; i++) ann.send(`only on a ${i}`);
        for (let i = 0; i < 20; i++) {
          assert.deepEqual(await nextMessage(ann), ["ann", `only on a ${i}`]);
        }
        // Published after solo-a's messages on the same connection: whatever of solo-a had crossed
        // to b or c would be there before it.
        cal.send("sentinel");
        for (const member of [cal, eve, gus]) {
          assert.deepEqual(await nextMessage(member), ["cal", "sentinel"]);
        }
        // The members of rooms only b or c has got nothing in between: their next frames after
        // the welcome are their own message and its ack (in either order: the sequencer's answer
        // races the broadcast).
        for (const [member, user] of [[fay, "fay"], [hal, "hal"]] as const) {
          member.send("mine");
          const frames = [await member.next(), await member.next()];
          const message = frames.find((frame) => frame.type === "message");
          const { type, sender, content } = message ?? {};
          assert.deepEqual({ type, sender, content }, {
            type: "message",
            sender: user,
            content: "mine",
          });
          const ack = frames.find((frame) => frame.type === "ack");
          assert.deepEqual(ack, { type: "ack", id: message?.id, seq: message?.seq });
        }

        // The last member of a room on an instance leaving unsubscribes that instance.
        await dan.close();
        await expectPresence(bea, { event: "leave", room: "pair", user: "dan", members: ["bea"] });
        await waitFor("pair subscribed by a only", async () => {
          const seen = await subscriberCounts(probe, prefix);
          return seen["room:pair"] === 1 || undefined;
        });
        await Promise.all([ann, bea, cal, eve, gus, fay, hal].map((member) => member.close()));
        await stopCleanly();
      },
    ),
});

Deno.test({
  name: "Presence spans instances; a killed instance's members leave everyone within PRESENCE_TTL",
  ignore: redis.ignore,
  fn: () =>
    withDeployment(
      3,
      { redisUrl: redis.url ?? "" },
      async ({ prefix, probe, instances, stopCleanly }) => {
        const [a, b, c] = three(instances);
        const room = "lobby";
        const ann = await joinExpecting(a, room, "ann", ["ann"]);
        const bob = await joinExpecting(b, room, "bob", ["ann", "bob"]);
        await expectPresence(ann, { event: "join", room, user: "bob", members: ["ann", "bob"] });
        const cat = await joinExpecting(c, room, "cat", ["ann", "bob", "cat"]);
        for (const member of [ann, bob]) {
          await expectPresence(member, {
            event: "join",
            room,
            user: "cat",
            members: ["ann", "bob", "cat"],
          });
        }
        const dan = await joinExpecting(b, room, "dan", ["ann", "bob", "cat", "dan"]);
        for (const member of [ann, bob, cat]) {
          await expectPresence(member, {
            event: "join",
            room,
            user: "dan",
            members: ["ann", "bob", "cat", "dan"],
          });
        }
        await dan.close();
        for (const member of [ann, bob, cat]) {
          await expectPresence(member, {
            event: "leave",
            room,
            user: "dan",
            members: ["ann", "bob", "cat"],
          });
        }

        const crashed = b.id;
        const killedAt = performance.now();
        await b.crash();
        assert.notEqual((await bob.closed).code, 1001, "bob's connection just drops");
        // Every other instance must drop the dead one's members, whichever notices first.
        const bound = PRESENCE_TTL_MS + PRESENCE_SLACK_MS;
        const leave = { event: "leave" as const, room, user: "bob", members: ["ann", "cat"] };
        const noticed = await Promise.allSettled([ann, cat].map(async (member) => {
          await expectPresence(member, leave, bound);
          return Math.round(performance.now() - killedAt);
        }));
        console.error(
          `  bob's leave after the kill, at ann (a) and cat (c): ${
            noticed.map((outcome) =>
              outcome.status === "fulfilled" ? `${outcome.value} ms` : "never"
            ).join(", ")
          }`,
        );
        for (const outcome of noticed) if (outcome.status === "rejected") throw outcome.reason;
        // Newcomers on either survivor are welcomed without bob.
        const eve = await joinExpecting(c, room, "eve", ["ann", "cat", "eve"]);
        await expectPresence(ann, {
          event: "join",
          room,
          user: "eve",
          members: ["ann", "cat", "eve"],
        });
        const fox = await joinExpecting(a, room, "fox", ["ann", "cat", "eve", "fox"]);
        assert.equal(
          await probe.exists(`${prefix}instance:${crashed}`),
          0,
          "its heartbeat expired",
        );
        assert.equal(
          await probe.hexists(`${prefix}presence:${room}`, crashed),
          0,
          "its members were taken out of the shared presence",
        );
        await Promise.all([ann, cat, eve, fox].map((member) => member.close()));
        await stopCleanly();
      },
    ),
});

Deno.test({
  name:
    "Redis cut: sends are refused with unavailable, /readyz says degraded; after restore delivery resumes",
  ignore: redis.ignore,
  fn: async () => {
    const target = new URL(redis.url ?? "redis://127.0.0.1:6379");
    const proxy = TcpProxy.start({ hostname: target.hostname, port: Number(target.port || 6379) });
    const proxied = new URL(target);
    proxied.hostname = "127.0.0.1";
    proxied.port = String(proxy.port);
    try {
      await withDeployment(
        2,
        { redisUrl: proxied.href },
        async ({ prefix, probe, instances, stopCleanly }) => {
          const [a, b] = instances;
          if (!a || !b) throw new Error("two instances");
          const ann = await join(a, "shared", "ann");
          const amy = await join(a, "shared", "amy");
          const bob = await join(b, "shared", "bob");
          const ben = await join(b, "shared", "ben");
          const dot = await join(a, "late", "dot");
          const everyone = ["amy", "ann", "ben", "bob"];
          await expectPresence(ann, {
            event: "join",
            room: "shared",
            user: "amy",
            members: ["amy", "ann"],
          });
          await expectPresence(ann, {
            event: "join",
            room: "shared",
            user: "bob",
            members: ["amy", "ann", "bob"],
          });
          await expectPresence(ann, {
            event: "join",
            room: "shared",
            user: "ben",
            members: everyone,
          });
          ann.send("before");
          for (const member of [ann, amy, bob, ben]) {
            assert.deepEqual(await nextMessage(member), ["ann", "before"]);
          }

          proxy.cut();
          for (const member of [ann, bob]) skipped.delete(member);
          await Promise.all([a.untilCluster("degraded"), b.untilCluster("degraded")]);
          for (const instance of [a, b]) {
            const { status, body } = await instance.readiness();
            assert.equal(status, 200, "a lost Redis does not make an instance unready");
            assert.equal(body.cluster, "degraded");
          }
          // Without the shared sequencer no message gets a seq: each sender is told, nobody
          // (the sender included) gets the message, and the last seq stays where it was.
          ann.send("during a");
          bob.send("during b");
          for (const sender of [ann, bob]) {
            const { type, code } = await sender.nextOfType("error");
            assert.deepEqual({ type, code }, { type: "error", code: "unavailable" });
          }
          // A room that an instance first opens during the outage: its welcome waits for Redis.
          const cyd = await TestSocket.open(b.chatUrl("late", "cyd"));
          // Outlast the heartbeats, so the instances come back to expired keys.
          await waitFor("both heartbeats expired", async () => {
            const alive = await probe.exists(
              `${prefix}instance:${a.id}`,
              `${prefix}instance:${b.id}`,
            );
            return alive === 0 || undefined;
          });

          proxy.restore();
          const restoredAt = performance.now();
          const cydWelcome = await cyd.next(CROSSING_TIMEOUT_MS);
          assert.equal(cydWelcome.type, "welcome", "cyd's first frame, once Redis answers");
          assert.equal(cydWelcome.last_seq, 0);
          skipped.set(cyd, [cydWelcome]);
          const directions = await Promise.allSettled([
            untilCrossed(ann, "ann", bob),
            untilCrossed(ben, "ben", amy),
            untilCrossed(dot, "dot", cyd),
            untilCrossed(cyd, "cyd", dot),
          ]);
          const report = ["shared a->b", "shared b->a", "late a->b", "late b->a"].map((name, i) => {
            const outcome = directions[i];
            const ms = outcome?.status === "fulfilled" ? outcome.value - restoredAt : undefined;
            return `${name}: ${ms === undefined ? "never" : `${Math.round(ms)} ms`}`;
          });
          console.error(`  first probe across after restore: ${report.join(", ")}`);
          const presence = (socket: TestSocket) =>
            (skipped.get(socket) ?? []).filter((frame) => frame.type === "presence")
              .map((frame) => `${frame.event} ${frame.user}`);
          console.error(
            `  presence frames since the cut: ann [${presence(ann)}], bob [${presence(bob)}]`,
          );
          for (const outcome of directions) if (outcome.status === "rejected") throw outcome.reason;
          // The heartbeats spread the presence of a room opened during the cut.
          const bound = PRESENCE_TTL_MS + PRESENCE_SLACK_MS;
          await presenceOf(dot, { event: "join", user: "cyd" }, bound);
          assert.deepEqual(dot.members, ["cyd", "dot"]);
          // cyd was welcomed once Redis answered: with dot if a's heartbeat was back by then.
          if (!cydWelcome.members.includes("dot")) {
            await presenceOf(cyd, { event: "join", user: "dot" }, bound);
          }
          assert.deepEqual(cyd.members, ["cyd", "dot"]);
          await Promise.all([a.untilCluster("ok"), b.untilCluster("ok")]);
          // Whatever presence did right after the restore, it settles on everyone.
          for (const [instance, newcomer] of [[a, "zoe"], [b, "zed"]] as const) {
            const expected = [...everyone, newcomer].sort();
            await waitFor(`${newcomer} welcomed with everyone`, async () => {
              const members = await welcomeMembers(instance, "shared", newcomer);
              return JSON.stringify(members) === JSON.stringify(expected) || undefined;
            }, bound);
          }
          await Promise.all([ann, amy, bob, ben, cyd, dot].map((member) => member.close()));
          await stopCleanly();
        },
      );
    } finally {
      await proxy.close();
    }
  },
});
