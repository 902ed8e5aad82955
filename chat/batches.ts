/**
 * Turns a channel of values into a stream of batches, for writers that prefer multi-row writes.
 *
 * @module
 */
import { type Channel, ChannelClosedError } from "./channel.ts";

/** Bounds of each batch. */
export interface BatchOptions {
  /** Values per batch at most. */
  readonly maxSize: number;
  /** How long the first value of a batch may wait for others to join it. */
  readonly maxWaitMs: number;
}

/**
 * Yields arrays of up to `maxSize` values: a batch starts with the oldest value and collects
 * whatever arrives within `maxWaitMs` (one timer per batch, none per value). A full batch goes at
 * once. Ends when the channel is closed and drained; after close, batches go without waiting.
 * Several consumers may share one such iterator: each batch goes to exactly one of them.
 *
 * @example
 * ```ts
 * const queue = new Channel<number>(1000);
 * for await (const batch of batches(queue, { maxSize: 500, maxWaitMs: 10 })) await save(batch);
 * ```
 */
export async function* batches<T>(
  channel: Channel<T>,
  options: BatchOptions,
): AsyncGenerator<T[], void, undefined> {
  for (;;) {
    const batch: T[] = [];
    try {
      batch.push(await channel.receive());
    } catch (error) {
      if (error instanceof ChannelClosedError) return;
      throw error;
    }
    channel.drainInto(batch, options.maxSize - batch.length);
    if (batch.length < options.maxSize && !channel.closed && options.maxWaitMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, options.maxWaitMs));
      channel.drainInto(batch, options.maxSize - batch.length);
    }
    yield batch;
  }
}
