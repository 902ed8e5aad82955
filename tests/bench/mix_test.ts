import assert from "node:assert/strict";
import { ConversationMix, MIX_EVERY, reactFrame } from "../../bench/_mix.ts";
import { StepSink } from "../../bench/_step_sink.ts";
import { framer } from "../../bench/_traffic.ts";
import { startTestServer } from "../support/test_server.ts";
import { assertIntact, runDeno, runLoad } from "./_run.ts";

const COMPARE = new URL("../../bench/compare.ts", import.meta.url).pathname;
const encoder = new TextEncoder();

// 2 rooms of 5, 200 frames/s in total for 1 s: 100 frames per sender, 5 typing frames and up to
// 5 reactions each. The test process is the server, so its CPU is not counted as noise.
const SMALL_MIX = [
  "--scenario=fanout",
  "--frames=mix",
  "--rooms=2",
  "--members=5",
  "--rates=200",
  "--step-ms=1000",
  "--retries=0",
  `--pid=${Deno.pid}`,
];

interface MixCounts {
  messagesSent: number;
  reactionsSent: number;
  typingSent: number;
  reactionsDelivered: number;
  typingDelivered: number;
}

Deno.test("bench/load.ts --frames mix against the server: reactions delivered to everyone in the room's sequence, typing counted, nothing lost", async () => {
  const server = startTestServer();
  try {
    const lines = await runLoad(`ws://127.0.0.1:${server.port}`, SMALL_MIX, 90_000);
    const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
    assert.ok(steps.length > 0, JSON.stringify(lines));
    for (const step of steps) {
      assert.equal(step.frames, "mix");
      const mix = step.mix as MixCounts;
      assert.ok(mix, JSON.stringify(step));
      // Sequenced frames: the messages and the reactions; typing frames are neither.
      assert.equal(step.sent, mix.messagesSent + mix.reactionsSent);
      assert.ok(mix.reactionsSent > 0, "the senders reacted");
      assert.ok(mix.typingSent > 0, "the senders typed");
      // Each react frame reached every member and took its place in the room's sequence: the
      // members saw no hole where reactions sit (seqBroken 0), and every one was acked.
      assertIntact(step, 5);
      assert.equal(mix.reactionsDelivered, mix.reactionsSent * 5);
      // Passed on to the 4 others, at most once per 2 s per user.
      assert.ok(mix.typingDelivered > 0, "typing frames reached the others");
      assert.ok(mix.typingDelivered <= mix.typingSent * 4);
    }
    const summary = lines.find((line) => line.summary);
    assert.ok(summary?.sustainedMix, JSON.stringify(summary));
    assert.equal(typeof summary?.peakDeliveriesPerSecond, "number");
  } finally {
    await server.close();
  }
});

Deno.test("StepSink.frame() takes a react frame's event_seq as the room's next item, not its target seq", () => {
  const sink = new StepSink(1, { rooms: 1, members: 2, senders: 1 }, 10);
  const message = (seq: number, n: number) =>
    encoder.encode(
      `{"type":"message","id":"x","room":"r","seq":${seq},"sender":"m0","content":"0 1 ${n} 0"}`,
    );
  const react = (eventSeq: number, target: number) =>
    encoder.encode(
      `{"type":"react","id":"y","room":"r","event_seq":${eventSeq},"user":"m0","seq":${target},` +
        `"reaction":"👍","on":true,"timestamp":"2026-12-01T00:00:00.000Z"}`,
    );
  sink.frame(1, message(7, 0));
  sink.frame(1, react(8, 7));
  sink.frame(1, message(9, 1));
  sink.frame(1, encoder.encode('{"type":"typing","room":"r","user":"m0"}'));
  assert.deepEqual([sink.seqBroken, sink.delivered, sink.reactions, sink.typing], [0, 3, 1, 1]);
  assert.equal(sink.lastMessageSeq(1), 9, "a reaction is no message to react to");
  // A member that missed the reaction sees the hole.
  sink.frame(0, message(7, 0));
  sink.frame(0, message(9, 1));
  assert.equal(sink.seqBroken, 1);
});

Deno.test("ConversationMix.frame(): one frame in ten typing or a reaction in turn, reactions on then off the newest message seen", () => {
  let seen = 0;
  const mix = new ConversationMix({ lastMessageSeq: () => seen }, {
    peers: 1,
    message: framer("json"),
  });
  const frames = Array.from({ length: 8 * MIX_EVERY }, (_, n) => {
    if (n === 3 * MIX_EVERY) seen = 12;
    if (n === 6 * MIX_EVERY) seen = 40;
    return mix.frame(0, 1, n, 0);
  });
  const odd = frames.filter((_, n) => n % MIX_EVERY === MIX_EVERY - 1);
  assert.deepEqual(odd, [
    '{"type":"typing"}',
    // No message seen yet: a message instead of the reaction.
    '{"type":"message","content":"0 1 19 0"}',
    '{"type":"typing"}',
    reactFrame(12, true),
    '{"type":"typing"}',
    reactFrame(12, false),
    '{"type":"typing"}',
    reactFrame(40, true),
  ]);
  assert.deepEqual(mix.sent, { messages: 8 * MIX_EVERY - 7, reactions: 3, typing: 4 });
  assert.deepEqual(JSON.parse(reactFrame(12, true)), {
    type: "react",
    seq: 12,
    reaction: "👍",
    on: true,
  });
});

Deno.test("bench/compare.ts --compare-mix (tiny): plain and mix on the real server, intact, a ratio and the issue 18 target", async () => {
  const stdout = await runDeno([
    "--allow-net",
    "--allow-env",
    "--allow-run",
    "--allow-read",
    COMPARE,
    "--compare-mix",
    "--rounds=1",
    "--rates=200",
    "--step-ms=1000",
    "--budget-s=5",
    "--time-limit-s=100",
  ], { timeoutMs: 120_000 });
  const lines: Record<string, unknown>[] = stdout.split("\n").filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
  const steps = lines.filter((line) => line.scenario === "fanout" && !line.summary);
  assert.deepEqual([...new Set(steps.map((step) => step.target))], ["server", "server+mix"]);
  for (const step of steps) {
    assert.equal(step.frames, step.target === "server+mix" ? "mix" : "json");
    assertIntact(step, 100);
    assert.equal(step.mix !== undefined, step.target === "server+mix");
  }
  assert.match(stdout, /mix \/ plain/);
  assert.match(stdout, /issue 18 \(5\): fanout with 10% typing\/reactions >= 90% of plain/);
});
