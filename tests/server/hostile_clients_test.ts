/**
 * Hostile clients against the real server (`deno task start` as a child process), over real
 * sockets: every limit must hold, every refusal must carry its documented status or close code,
 * and the server must come out of it serving well-behaved clients, with its memory and file
 * descriptors back near where they started.
 */
import assert from "node:assert/strict";
import { type ChildServer, startChildServer } from "../support/child_server.ts";
import {
  encodeClientFrame,
  OPCODES,
  type RawEnding,
  RawWebSocket,
  UpgradeRefusedError,
} from "../support/raw_ws_client.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";
import { ServedProcess } from "../support/served_process.ts";

const PER_IP = 200;
const IDLE_TIMEOUT_MS = 2_000;
const MAX_FRAME_BYTES = 16_384;
const RATE_PER_SECOND = 10;
const RATE_BURST = 20;
const RATE_STRIKES = 50;
const ENV = {
  MAX_CONNECTIONS_PER_IP: String(PER_IP),
  IDLE_TIMEOUT: `${IDLE_TIMEOUT_MS}ms`,
  MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
  RATE_LIMIT_PER_SECOND: String(RATE_PER_SECOND),
  RATE_LIMIT_BURST: String(RATE_BURST),
  RATE_LIMIT_STRIKES: String(RATE_STRIKES),
  PRESENCE_LEAVE_GRACE: "0",
  // V8's memory reducer (full GCs once the heap goes quiet) starts 30 s after start-up and 8 s
  // after activity by default; sooner here, so the RSS after the suite shows what is retained
  // rather than garbage not yet collected. Collection itself is unchanged.
  DENO_V8_FLAGS: "--gc-memory-reducer-start-delay-ms=1000,--memory-reducer-delay-ms=1000",
};
/** How far above the baseline the RSS may stay after the suite; see the last step. */
const RSS_MARGIN_MIB = 64;
/** Where the RSS goes once V8 has collected (see the last step): the wait ends there. */
const RSS_COLLECTED_MIB = 48;
const MIB = 1 << 20;
const encoder = new TextEncoder();

function chatPath(room: string, user: string): string {
  return `/chat?r=${room}&u=${encodeURIComponent(user)}`;
}

function parse(texts: readonly string[]): Frame[] {
  return texts.map((text) => JSON.parse(text));
}

/** Errors a write gets once the peer (or the test itself) closed the connection. */
function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}

/** Opens a raw socket (answering pings when read), or returns the refusal's status and code. */
async function tryOpen(
  port: number,
  path: string,
): Promise<RawWebSocket | { status: number; code: string | undefined }> {
  try {
    return await RawWebSocket.open(port, path, { answerPings: true });
  } catch (error) {
    if (!(error instanceof UpgradeRefusedError)) throw error;
    const code = error.body === "" ? undefined : JSON.parse(error.body).error.code;
    return { status: error.status, code };
  }
}

/** Reads the `welcome` frame, so the join was handled before anything else is sent. */
async function expectWelcome(socket: RawWebSocket): Promise<void> {
  const frame = await socket.readFrame(AbortSignal.timeout(5_000));
  assert.equal(frame?.opcode, OPCODES.text);
  assert.equal(JSON.parse(new TextDecoder().decode(frame.payload)).type, "welcome");
}

/** Writes `frame` over and over until the connection ends or `stop()` (at most `maxFrames`). */
function flood(socket: RawWebSocket, frame: Uint8Array, maxFrames: number) {
  let sent = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped && sent < maxFrames) {
      try {
        await socket.write(frame);
      } catch (error) {
        if (isConnectionGone(error)) return sent;
        throw error;
      }
      sent++;
    }
    return sent;
  })();
  return { done, stop: () => stopped = true };
}

/** The raw sockets a step opened: their TCP connections are closed however the step ends. */
class Opened {
  readonly #sockets: RawWebSocket[] = [];
  add(socket: RawWebSocket): RawWebSocket {
    this.#sockets.push(socket);
    return socket;
  }
  closeAll(): void {
    for (const socket of this.#sockets.splice(0)) socket.close();
  }
}

/** Runs `body` with an {@linkcode Opened}, closing what it holds afterwards. */
async function withOpened(body: (opened: Opened) => Promise<void>): Promise<void> {
  const opened = new Opened();
  try {
    await body(opened);
  } finally {
    opened.closeAll();
  }
}

Deno.test("Hostile clients get their documented refusals and the server stays healthy", async (t) => {
  const child: ChildServer = await startChildServer(ENV);
  const { port } = child;
  const url = (path: string) => `ws://127.0.0.1:${port}${path}`;
  let exit: { code: number; stderr: string };
  try {
    const served = await ServedProcess.of(child.process.pid);
    // Warm-up: connections and broadcasts, so compiled code and the allocator's first arenas
    // are in the baseline rather than counted as growth.
    const warm = await Promise.all(
      Array.from({ length: 10 }, (_, i) => TestSocket.open(url(chatPath("warm", `w${i}`)))),
    );
    for (const socket of warm) socket.send("warming up");
    for (const socket of warm) await socket.collect("message", 10);
    await Promise.all(warm.map((socket) => socket.close()));
    const baseline = (await served.memory()).rssMiB;
    const baselineFds = await served.openFds();
    const stepMemory: string[] = [];
    const step = async (name: string, body: () => Promise<void>) => {
      await t.step(name, body);
      stepMemory.push(`${(await served.memory()).rssMiB.toFixed(0)}`);
    };

    await step("binary frames get error binary_frame and the connection stays open", async () => {
      const ann = await TestSocket.open(url(chatPath("binary", "ann")));
      await ann.nextOfType("welcome");
      for (const size of [0, 1, 1024, MAX_FRAME_BYTES]) ann.send(new Uint8Array(size));
      for (let i = 0; i < 4; i++) {
        const frame = await ann.next();
        assert.deepEqual([frame.type, frame.code], ["error", "binary_frame"]);
      }
      ann.send("still here");
      assert.equal((await ann.nextOfType("message")).content, "still here");
      await ann.close();
    });

    await step("invalid UTF-8 and malformed frames: the connection is dropped", async () => {
      const observer = await TestSocket.open(url(chatPath("utf8", "observer")));
      await observer.nextOfType("welcome");
      const violations: [string, Uint8Array][] = [
        ["invalid bytes", encodeClientFrame(OPCODES.text, new Uint8Array([0x68, 0xff, 0xfe]))],
        ["overlong NUL", encodeClientFrame(OPCODES.text, new Uint8Array([0xc0, 0x80]))],
        ["UTF-8 surrogate", encodeClientFrame(OPCODES.text, new Uint8Array([0xed, 0xa0, 0x80]))],
        ["reserved opcode 3", encodeClientFrame(0x3, new Uint8Array([1]))],
        // Only the header: Deno refuses a declared length above its 64 MiB message cap at once.
        [
          "length 2^53-1",
          encodeClientFrame(OPCODES.text, new Uint8Array(0), {
            declaredLength: Number.MAX_SAFE_INTEGER,
          }).subarray(0, 14),
        ],
      ];
      for (const [what, bytes] of violations) {
        await withOpened(async (opened) => {
          const mallory = opened.add(await RawWebSocket.open(port, chatPath("utf8", "mallory")));
          await expectWelcome(mallory);
          assert.equal((await observer.nextOfType("presence")).event, "join");
          await mallory.write(bytes);
          const { ending, texts } = await mallory.readUntilEnd(AbortSignal.timeout(5_000));
          // Deno 2.9.6 closes the TCP connection without a close frame (no 1007).
          assert.deepEqual(ending, { kind: "eof" }, what);
          assert.deepEqual(texts, [], what);
          assert.equal((await observer.nextOfType("presence")).event, "leave", what);
        });
      }
      observer.send("nothing crashed");
      assert.equal((await observer.nextOfType("message")).content, "nothing crashed");
      await observer.close();
    });

    await step("JSON bombs within the frame limit get error frames or are echoed", async () => {
      const ann = await TestSocket.open(url(chatPath("bombs", "ann")));
      await ann.nextOfType("welcome");
      const depth = Math.floor((MAX_FRAME_BYTES - 1) / 6); // `{"a":` and `}` per level
      const nested = (levels: number) => '{"a":'.repeat(levels) + "1" + "}".repeat(levels);
      const arrays = "[".repeat(2000) + "]".repeat(2000); // 4000 = MAX_CONTENT_CHARS
      const wide = JSON.stringify({ type: "message", content: "wide", junk: Array(5000).fill(0) });
      const cases: [string, Frame][] = [
        [nested(depth), { type: "error", code: "invalid_frame" }],
        [`{"type":"message","content":${nested(depth - 5)}}`, {
          type: "error",
          code: "invalid_frame",
        }],
        [`{"type":"x",${'"a":{'.repeat(depth - 10)}${"}".repeat(depth - 10)}}`, {
          type: "error",
          code: "unknown_type",
        }],
        // JSON.parse makes `__proto__` an own property: no prototype is polluted.
        ['{"__proto__":{"type":"message"},"content":"x"}', {
          type: "error",
          code: "invalid_frame",
        }],
        // Unterminated, so not JSON: plain text, longer than MAX_CONTENT_CHARS.
        ['{"a":'.repeat(depth), { type: "error", code: "content_too_long" }],
        [arrays, { type: "message", content: arrays }],
        [wide, { type: "message", content: "wide" }],
      ];
      for (const [data, expected] of cases) {
        assert.ok(encoder.encode(data).length <= MAX_FRAME_BYTES, data.slice(0, 40));
        ann.send(data);
        const frame = await ann.next();
        for (const [key, value] of Object.entries(expected)) {
          assert.equal(frame[key], value, `${data.slice(0, 40)}: ${key}`);
        }
        // An echoed message is acknowledged to its sender right after.
        if (frame.type === "message") {
          assert.deepEqual(await ann.next(), { type: "ack", id: frame.id, seq: frame.seq });
        }
      }
      ann.send("still serving");
      assert.equal((await ann.nextOfType("message")).content, "still serving");
      await ann.close();
    });

    await step("frames over MAX_FRAME_BYTES: close 1009", async () => {
      const big = encodeClientFrame(OPCODES.text, new Uint8Array(MIB).fill(0x61));
      const piece = new Uint8Array(1024).fill(0x62);
      // A fragmented message is judged whole, once its last fragment is in.
      const fragmented = [
        encodeClientFrame(OPCODES.text, piece, { fin: false }),
        ...Array.from(
          { length: 98 },
          () => encodeClientFrame(OPCODES.continuation, piece, { fin: false }),
        ),
        encodeClientFrame(OPCODES.continuation, piece),
      ];
      const justOver = encodeClientFrame(OPCODES.text, new Uint8Array(MAX_FRAME_BYTES + 1));
      // 5,462 UTF-16 units but 16,386 UTF-8 bytes: the limit counts bytes.
      const euros = encodeClientFrame(OPCODES.text, encoder.encode("€".repeat(5462)));
      const cases: [string, Uint8Array[]][] = [
        ["1 MiB frame", [big]],
        ["one byte over", [justOver]],
        ["multi-byte text over", [euros]],
        ["100 KiB in 100 fragments", fragmented],
      ];
      for (const [what, frames] of cases) {
        await withOpened(async (opened) => {
          const mallory = opened.add(await RawWebSocket.open(port, chatPath("big", "mallory")));
          await expectWelcome(mallory);
          for (const frame of frames) await mallory.write(frame);
          const { ending, texts } = await mallory.readUntilEnd(AbortSignal.timeout(5_000));
          assert.deepEqual(ending, { kind: "close", code: 1009, reason: "frame too large" }, what);
          assert.deepEqual(texts, [], what);
        });
      }
    });

    await step("1 MiB frames in a flood: the flooder is cut off, the room goes on", async () => {
      const observer = await TestSocket.open(url(chatPath("flood", "observer")));
      await observer.nextOfType("welcome");
      await withOpened(async (opened) => {
        const mallory = opened.add(await RawWebSocket.open(port, chatPath("flood", "mallory")));
        await expectWelcome(mallory);
        assert.equal((await observer.nextOfType("presence")).event, "join");
        const big = encodeClientFrame(OPCODES.text, new Uint8Array(MIB).fill(0x61));
        const flooding = flood(mallory, big, 32);
        const { ending, texts } = await mallory.readUntilEnd(AbortSignal.timeout(15_000));
        flooding.stop();
        mallory.close();
        const sentMiB = await flooding.done;
        console.log(`  ${sentMiB} MiB sent; the flooder saw ${JSON.stringify(ending)}`);
        assert.ok(sentMiB >= 2, "the client kept sending after its first big frame");
        assert.deepEqual(texts, []);
        // KNOWN BUG (reported): the close frame with 1009 is sent, but Deno closes the TCP
        // connection on the flood's next frame; with unread data that is a reset, and the
        // flooder's kernel may discard the close frame before it is read. The strict check is
        // the ignored test "close codes reach a client that keeps flooding" below.
        if (ending.kind === "close") {
          assert.deepEqual(ending, { kind: "close", code: 1009, reason: "frame too large" });
        } else assert.ok(ending.kind === "reset" || ending.kind === "eof");
      });
      assert.equal((await observer.nextOfType("presence")).event, "leave");
      observer.send("the room goes on");
      assert.equal((await observer.nextOfType("message")).content, "the room goes on");
      await observer.close();
    });

    await step(
      "10,000 frames in one burst: 20 accepted, then rate_limited, then 1008",
      async () => {
        const observer = await TestSocket.open(url(chatPath("burst", "observer")));
        await observer.nextOfType("welcome");
        let received: Frame[] = [];
        await withOpened(async (opened) => {
          const mallory = opened.add(await RawWebSocket.open(port, chatPath("burst", "mallory")));
          await expectWelcome(mallory);
          const frames = Array.from(
            { length: 10_000 },
            (_, i) => encodeClientFrame(OPCODES.text, encoder.encode(`m${i}`)),
          );
          const burst = new Uint8Array(frames.reduce((sum, frame) => sum + frame.length, 0));
          let offset = 0;
          for (const frame of frames) {
            burst.set(frame, offset);
            offset += frame.length;
          }
          const writing = mallory.write(burst).catch((error) => {
            if (!isConnectionGone(error)) throw error;
          });
          const { ending, texts } = await mallory.readUntilEnd(AbortSignal.timeout(10_000));
          mallory.close();
          await writing;
          assert.deepEqual(ending, { kind: "close", code: 1008, reason: "rate limit exceeded" });
          received = parse(texts);
        });
        const accepted = received.filter((frame) => frame.type === "message");
        const acks = received.filter((frame) => frame.type === "ack");
        const refused = received.filter((frame) => frame.type === "error");
        assert.deepEqual(
          accepted.slice(0, RATE_BURST).map((frame) => frame.content),
          Array.from({ length: RATE_BURST }, (_, i) => `m${i}`),
        );
        // The burst is handled in milliseconds; the buckets refill 10/s and 1/s: a few more at most.
        assert.ok(accepted.length <= RATE_BURST + 2, `${accepted.length} accepted`);
        assert.ok(refused.length >= RATE_STRIKES, `${refused.length} refused`);
        assert.ok(refused.length <= RATE_STRIKES + 2, `${refused.length} refused`);
        for (const frame of refused) assert.equal(frame.code, "rate_limited");
        // Each accepted message is acknowledged once, right after its echo.
        assert.deepEqual(
          received.filter((frame) => frame.type !== "error").map((frame) => frame.type),
          accepted.flatMap(() => ["message", "ack"]),
        );
        assert.deepEqual(
          acks,
          accepted.map((frame) => ({ type: "ack", id: frame.id, seq: frame.seq })),
        );
        assert.equal(
          accepted.length + acks.length + refused.length,
          received.length,
          "no other frames",
        );
        // The room got exactly what was accepted. Mallory is gone: a message sent now comes
        // after all of it (mallory's join and leave may have been told as nothing at all: they
        // fell within one presence window).
        observer.send("after the burst");
        const seen: string[] = [];
        for (;;) {
          const frame = await observer.nextOfType("message");
          if (frame.content === "after the burst") break;
          seen.push(frame.content);
        }
        assert.deepEqual(seen, accepted.map((frame) => frame.content));
        await observer.close();
      },
    );

    await step(
      "control characters in names: HTTP 400 invalid_user before the upgrade",
      async () => {
        for (
          const name of ["a\u0000b", "a\u0007b", "a\u001bb", "evil\u202egnp", "\u200b", "a\u2028b"]
        ) {
          const answer = await tryOpen(port, chatPath("names", name));
          assert.deepEqual(answer, { status: 400, code: "invalid_user" }, JSON.stringify(name));
        }
        // Raw control bytes in the request line never reach the route: Deno's parser says 400.
        assert.deepEqual(await tryOpen(port, "/chat?r=names&u=a\u0007b"), {
          status: 400,
          code: undefined,
        });
      },
    );

    await step(`2,000 connections from one IP: ${PER_IP} upgrade, the rest get 429`, async () => {
      const holding = new AbortController();
      const reading: Promise<{ ending: RawEnding }>[] = [];
      const refusals = new Map<string, number>();
      await withOpened(async (opened) => {
        try {
          for (let batch = 0; batch < 20; batch++) {
            const answers = await Promise.all(
              Array.from({ length: 100 }, () => tryOpen(port, chatPath("crowd", "m"))),
            );
            for (const answer of answers) {
              if (answer instanceof RawWebSocket) {
                // Read (answering pings) while held, or IDLE_TIMEOUT would free the slots.
                reading.push(opened.add(answer).readUntilEnd(holding.signal));
              } else {
                const key = `${answer.status} ${answer.code}`;
                refusals.set(key, (refusals.get(key) ?? 0) + 1);
              }
            }
          }
          assert.equal(reading.length, PER_IP);
          assert.deepEqual([...refusals], [["429 too_many_from_ip", 2_000 - PER_IP]]);
        } finally {
          holding.abort();
          await Promise.allSettled(reading);
        }
      });
    });

    await step(
      "half-open connections are closed after IDLE_TIMEOUT, freeing their slots",
      async () => {
        await withOpened(async (opened) => {
          const openedAt = performance.now();
          const silent = await Promise.all(
            Array.from(
              { length: PER_IP },
              async () => opened.add(await RawWebSocket.open(port, chatPath("silent", "s"))),
            ),
          );
          const oneMore = { status: 429, code: "too_many_from_ip" };
          assert.deepEqual(await tryOpen(port, chatPath("silent", "one-more")), oneMore);
          // Reading only now: the welcome and the ping wait in the buffer, unanswered.
          const deadline = AbortSignal.timeout(IDLE_TIMEOUT_MS + 3_000);
          const endings = await Promise.all(silent.map((socket) => socket.readUntilEnd(deadline)));
          const closedAfterMs = Math.round(performance.now() - openedAt);
          console.log(`  ${PER_IP} half-open connections closed after ${closedAfterMs} ms`);
          const idleClose = { kind: "close", code: 1001, reason: "No response from ping frame." };
          for (const { ending } of endings) assert.deepEqual(ending, idleClose);
          assert.ok(closedAfterMs >= IDLE_TIMEOUT_MS - 100, `closed after ${closedAfterMs} ms`);
          // The server closed the TCP connections as well: nothing lingers on its side.
          for (const socket of silent) assert.equal(await socket.readFrame(deadline), undefined);
          opened.closeAll();

          // Every slot is free again, and the limit still holds exactly. A slot is released on the
          // server's close event, which may run a moment after the peer saw EOF: poll briefly.
          await Promise.all(
            Array.from({ length: PER_IP }, (_, i) =>
              waitFor(`slot ${i}`, async () => {
                const answer = await tryOpen(port, chatPath("silent", `again${i}`));
                return answer instanceof RawWebSocket ? opened.add(answer) : undefined;
              }, 2_000)),
          );
          assert.deepEqual(await tryOpen(port, chatPath("silent", "one-more")), oneMore);
        });
      },
    );

    const peak = (await served.memory()).peakMiB;

    await step("a well-behaved client afterwards gets every echo, fast", async () => {
      const ann = await TestSocket.open(url(chatPath("calm", "ann")));
      await ann.nextOfType("welcome");
      const rtts: number[] = [];
      for (let i = 0; i < 50; i++) {
        // Pacing, not synchronisation: a well-behaved client keeps to its rate limit, so after
        // half its burst it sends at the sustained rate.
        if (i >= RATE_BURST / 2) await new Promise((ok) => setTimeout(ok, 1000 / RATE_PER_SECOND));
        const sentAt = performance.now();
        ann.send(`calm ${i}`);
        const frame = await ann.nextOfType("message");
        rtts.push(performance.now() - sentAt);
        assert.equal(frame.content, `calm ${i}`);
      }
      await ann.close();
      rtts.sort((a, b) => a - b);
      const p50 = rtts[Math.floor(rtts.length * 0.5)] ?? NaN;
      const p99 = rtts[Math.ceil(rtts.length * 0.99) - 1] ?? NaN;
      console.log(`  round trip: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
      assert.ok(p99 < 200, `p99 ${p99} ms`);
    });

    await step("memory and file descriptors return near the baseline", async () => {
      // Every socket of the suite is closed: the server holds the descriptors it held before.
      let fds = 0;
      await waitFor("fds back to baseline", async () => {
        fds = await served.openFds();
        return fds <= baselineFds || undefined;
      }, 5_000).catch((error) => {
        throw new Error(`${fds} fds open, ${baselineFds} before the suite`, { cause: error });
      });
      // Freed memory is not all handed back to the OS. Once V8's memory reducer has run its
      // full GCs the server sits 34 to 42 MiB above the warm-up baseline after this suite, and
      // about 30 MiB above after 8 or after 60 rounds of 200 connections alike: heap and
      // allocator sizing, not retention. Before those GCs it is up to 80 MiB above. So: wait
      // (bounded) for the collected level, then require baseline + 64 MiB, which a leak of what
      // the suite pushed through would break: the flood's 1 MiB frames (tens of MiB), or some
      // 10 KiB for each of its 2,400 connections.
      const collected = baseline + RSS_COLLECTED_MIB;
      const limit = baseline + RSS_MARGIN_MIB;
      let after = Infinity;
      const started = performance.now();
      await waitFor("the RSS to come down", async () => {
        after = (await served.memory()).rssMiB;
        return after <= collected || undefined;
      }, 10_000).catch((error) => {
        // Not collected yet: the bound below decides.
        if (!(error instanceof Error && error.message.startsWith("timed out"))) throw error;
      });
      const waitedMs = Math.round(performance.now() - started);
      console.log(
        `  server RSS (MiB): baseline ${baseline.toFixed(1)}, peak ${peak.toFixed(1)}, after ` +
          `${after.toFixed(1)} (waited ${waitedMs} ms; limit ${limit.toFixed(1)}); ` +
          `after each step: ${stepMemory.join(", ")}`,
      );
      assert.ok(after <= limit, `RSS ${after.toFixed(1)} MiB stayed above ${limit.toFixed(1)} MiB`);
    });
  } finally {
    child.process.kill("SIGTERM");
    exit = await child.finished();
  }
  assert.equal(exit.code, 0, exit.stderr);
  assert.deepEqual(child.logs.filter((line) => line.level === "error"), [], "no error logged");
});

// KNOWN BUG, reported to the lead: Deno's server-side WebSocket closes the TCP connection on the
// first data frame that arrives after close() (ext/websocket/01_websocket.js, `_eventLoop`:
// "close the connection if read was cancelled"). With the flood's bytes unread that is a reset,
// and the flooder's kernel drops the close frame if it was not read yet: measured on Deno 2.9.6,
// 1009 reached a 1 MiB flooder in about half the rounds, 1008 a small-frame flooder in none.
// Enable this test when the server makes these codes reach flooding clients.
Deno.test({
  name: "KNOWN BUG: close codes 1009 and 1008 reach a client that keeps flooding",
  ignore: true,
  fn: async () => {
    const child = await startChildServer(ENV);
    try {
      const big = encodeClientFrame(OPCODES.text, new Uint8Array(MIB).fill(0x61));
      const small = new Uint8Array(
        Array.from(
          { length: 1000 },
          (_, i) => [...encodeClientFrame(OPCODES.text, encoder.encode(`m${i}`))],
        ).flat(),
      );
      for (const [frame, close] of [[big, 1009], [small, 1008]] as const) {
        for (let round = 0; round < 10; round++) {
          await withOpened(async (opened) => {
            const mallory = opened.add(await RawWebSocket.open(child.port, chatPath("f", "m")));
            await expectWelcome(mallory);
            const flooding = flood(mallory, frame, 1000);
            const { ending } = await mallory.readUntilEnd(AbortSignal.timeout(15_000));
            flooding.stop();
            mallory.close();
            await flooding.done;
            assert.equal(ending.kind === "close" && ending.code, close, JSON.stringify(ending));
          });
        }
      }
    } finally {
      child.process.kill("SIGTERM");
      await child.finished();
    }
  },
});

// KNOWN BUG, reported to the lead: Deno hands a message to the server only once its last
// fragment is in, and collects the fragments without a bound; MAX_FRAME_BYTES is checked only
// then. A client that never sends the last fragment (and answers pings) makes the server hold
// everything it sent: measured on Deno 2.9.6, one connection held 328 MiB of a 16 KiB limit.
// Enable this test when the server bounds what a partial message may hold.
Deno.test({
  name: "KNOWN BUG: a fragmented message over MAX_FRAME_BYTES is refused before its last fragment",
  ignore: true,
  fn: async () => {
    const child = await startChildServer(ENV);
    try {
      await withOpened(async (opened) => {
        const mallory = opened.add(
          await RawWebSocket.open(child.port, chatPath("frag", "m"), { answerPings: true }),
        );
        await expectWelcome(mallory);
        const piece = new Uint8Array(MAX_FRAME_BYTES).fill(0x61);
        await mallory.sendFrame(OPCODES.text, piece, { fin: false });
        await mallory.sendFrame(OPCODES.continuation, piece, { fin: false });
        // Pings are answered while waiting, as a live client would: only the limit may close.
        const { ending } = await mallory.readUntilEnd(AbortSignal.timeout(2 * IDLE_TIMEOUT_MS));
        assert.deepEqual(ending, { kind: "close", code: 1009, reason: "frame too large" });
      });
    } finally {
      child.process.kill("SIGTERM");
      await child.finished();
    }
  },
});
