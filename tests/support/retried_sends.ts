/** Frames and helpers for the tests of sends that can be retried (client ids and acks). */
import assert from "node:assert/strict";
import { OPCODES, RawWebSocket } from "./raw_ws_client.ts";
import type { Frame, TestSocket } from "./test_socket.ts";

/** A message frame with a client id. */
export function messageFrame(clientId: string, content = `text of ${clientId}`): string {
  return JSON.stringify({ type: "message", content, client_id: clientId });
}

/** Frames up to and including the first one `last` accepts (presence frames left out). */
export async function framesUntil(
  socket: TestSocket,
  last: (frame: Frame) => boolean,
  timeoutMs = 10_000,
): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (;;) {
    const frame = await socket.next(timeoutMs);
    if (frame.type === "presence") continue;
    frames.push(frame);
    if (last(frame)) return frames;
  }
}

/** Accepts the ack of `clientId`. */
export const isAckOf = (clientId: string) => (frame: Frame) =>
  frame.type === "ack" && frame.client_id === clientId;

/** Accepts the message frame of `clientId`. */
export const isMessageOf = (clientId: string) => (frame: Frame) =>
  frame.type === "message" && frame.client_id === clientId;

/** Sends `clientId` on `socket` and returns its ack, asserting nothing else came before it. */
export async function resend(socket: TestSocket, clientId: string): Promise<Frame> {
  socket.send(messageFrame(clientId));
  const frames = await framesUntil(socket, isAckOf(clientId));
  assert.deepEqual(frames.slice(0, -1), [], `a re-send of ${clientId} is acknowledged, not sent`);
  return frames.at(-1) as Frame;
}

/**
 * Joins `path` on `port` over a bare TCP connection, sends one frame and destroys the connection
 * at once, before any ack can arrive. The welcome is read first: closing a socket with unread
 * bytes resets it, and these tests are about a lost ack, not a lost frame.
 */
export async function sendThenDestroy(port: number, path: string, frame: string): Promise<void> {
  const raw = await RawWebSocket.open(port, path);
  try {
    const signal = AbortSignal.timeout(10_000);
    for (;;) {
      const read = await raw.readFrame(signal);
      assert.ok(read, "the server closed before the welcome");
      if (read.opcode !== OPCODES.text) continue;
      if (JSON.parse(new TextDecoder().decode(read.payload)).type === "welcome") break;
    }
    await raw.sendText(frame);
  } finally {
    raw.close();
  }
}
