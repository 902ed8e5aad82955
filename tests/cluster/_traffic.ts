/**
 * The traffic of a cluster acceptance test: participants sending and roaming concurrently, a
 * count of messages through that a test can wait on, and one way to stop it all.
 */
import type { Instance } from "./_instance.ts";
import { Participant } from "./_participant.ts";

/** Counts messages that got through, and wakes whoever waits for a count. */
class Progress {
  count = 0;
  #waiters: { count: number; resolve: () => void }[] = [];

  add(): void {
    this.count++;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.count < waiter.count) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves once `count` messages got through; rejects after `timeoutMs`. */
  reached(count: number, timeoutMs = 30_000): Promise<void> {
    if (this.count >= count) return Promise.resolve();
    const reached = new Promise<void>((resolve) => this.#waiters.push({ count, resolve }));
    const signal = AbortSignal.timeout(timeoutMs);
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new Error(`${count} messages not through in ${timeoutMs} ms`));
      signal.addEventListener("abort", onAbort, { once: true });
      reached.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }
}

/** Draws an instance among `alive()` with `random`. */
export function picker(alive: () => Instance[], random: () => number): () => Instance {
  return () => {
    const instances = alive();
    return instances[Math.floor(random() * instances.length)] as Instance;
  };
}

/** What a task ended with: `undefined`, or what it threw. */
type Outcome = Promise<unknown>;

/**
 * Each participant's task (sending, roaming) runs until it ends or the traffic stops; the
 * first failure closes every participant, so the other tasks end promptly and the test fails
 * with it.
 */
export class Traffic {
  readonly progress = new Progress();
  /** Messages each sender got through. */
  readonly sent = new Map<Participant, number>();
  readonly #stop = new AbortController();
  readonly #senders: Outcome[] = [];
  readonly #tasks: Outcome[] = [];
  readonly #participants: Participant[] = [];
  #closed: Promise<void> | undefined;

  constructor(readonly room: string) {}

  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Joins `user` on `instance` (replaying from seq 0). */
  async join(user: string, instance: Instance): Promise<Participant> {
    const participant = new Participant(user, this.room);
    this.#participants.push(participant);
    await participant.connect(instance);
    return participant;
  }

  /**
   * Sends messages 0..`count`-1 (or until stopped), moving to `pick()` at `moveRate`. An
   * open-ended sender (`count: Infinity`) runs until {@linkcode Traffic.stop}.
   */
  send(
    sender: Participant,
    options: {
      count: number;
      random: () => number;
      pick: () => Instance;
      moveRate: number;
      /** Between messages, to keep an open-ended sender to a few hundred messages. */
      pauseMs?: number;
    },
  ): void {
    const outcome = this.#run(async () => {
      for (let k = 0; k < options.count && !this.signal.aborted; k++) {
        if (options.random() < options.moveRate) await sender.reconnect(options.pick);
        await sender.send(k, options.pick);
        this.sent.set(sender, k + 1);
        this.progress.add();
        if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
      }
    });
    if (Number.isFinite(options.count)) this.#senders.push(outcome);
  }

  /** Moves `reader` between instances until the traffic stops. */
  roam(reader: Participant, random: () => number, pick: () => Instance): void {
    this.#run(() => reader.roam(pick, random, this.signal));
  }

  /** Waits for every sender with a count to finish. @throws what the first failed task threw. */
  async sendersDone(): Promise<void> {
    await settle(this.#senders);
  }

  /** Stops roaming (and open-ended senders) and waits for every task. @throws as above. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await settle(this.#tasks);
  }

  /** Closes every participant (ending their tasks) and waits for the tasks; idempotent. */
  close(): Promise<void> {
    return this.#closed ??= (async () => {
      this.#stop.abort();
      await Promise.all(this.#participants.map((participant) => participant.close()));
      await Promise.all(this.#tasks);
    })();
  }

  #run(task: () => Promise<void>): Outcome {
    const outcome = task().then(() => undefined, (error: unknown) => {
      // The first failure ends the traffic: closing everyone ends the other tasks too.
      // (The test's own close() call awaits this one.)
      if (!this.signal.aborted) this.close();
      return error ?? new Error("a task failed");
    });
    this.#tasks.push(outcome);
    return outcome;
  }
}

async function settle(outcomes: readonly Outcome[]): Promise<void> {
  for (const error of await Promise.all(outcomes)) if (error !== undefined) throw error;
}
