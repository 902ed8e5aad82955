/**
 * What the chat core reports about itself. The server implements it with Prometheus metrics;
 * {@linkcode NO_METRICS} is for tests and embedding.
 *
 * @module
 */
import type { ErrorCode } from "./protocol.ts";

/** Events of the chat core worth counting. Every method is cheap and never throws. */
export interface ChatMetrics {
  /** A client sent a valid message. */
  messageReceived(): void;
  /** A client's frame was refused with an `error` frame. */
  messageRefused(code: ErrorCode): void;
  /**
   * A message was handed to `deliveries` outboxes, `latencyMs` after it was received (on this
   * instance; `undefined` for a message that came through the cluster).
   */
  messageBroadcast(deliveries: number, latencyMs: number | undefined): void;
  /** A client left; `code` is the close the server chose, if it chose one. */
  clientLeft(code: number | undefined): void;
  /** `count` seqs of a room's shared sequence were lost on the way and could not be recovered. */
  sequenceGap(count: number): void;
  /**
   * An exception was contained at `where` (`room`, `client`, `outbox`, `cluster`): the failing
   * room or client was closed, everyone else went on.
   */
  faultContained(where: FaultSite): void;
}

/** Where a fault was contained. */
export type FaultSite = "room" | "client" | "outbox" | "cluster";

/** Counts nothing. */
export const NO_METRICS: ChatMetrics = {
  messageReceived() {},
  messageRefused() {},
  messageBroadcast() {},
  clientLeft() {},
  sequenceGap() {},
  faultContained() {},
};
