import assert from "node:assert/strict";
import type { LogFields, Logger } from "../../log/logger.ts";
import {
  type MessageRepository,
  PruneIncompleteError,
  type RetentionPolicy,
  RetentionPolicyError,
} from "../../storage/repository.ts";
import { RetentionJob, type RetentionJobOptions } from "../../storage/retention_job.ts";
import { SANITIZERS } from "./repository_contract.ts";

const NOW = Date.parse("2025-06-01T00:00:00.000Z");
const DAY_MS = 86_400_000;
const INTERVAL_MS = 5;

/** What a scripted prune call does: answer a count, or fail. */
type Step = () => Promise<number>;

/** A store double for the job: answers prune calls from a script and can be awaited. */
class PruneDouble implements Pick<MessageRepository, "kind" | "prune"> {
  readonly kind = "double";
  readonly calls: { policy: RetentionPolicy; signal: AbortSignal | undefined }[] = [];
  readonly #script: Step[];
  #waiters: (() => void)[] = [];

  constructor(script: Step[] = []) {
    this.#script = script;
  }

  prune(policy: RetentionPolicy, signal?: AbortSignal): Promise<number> {
    this.calls.push({ policy, signal });
    for (const wake of this.#waiters.splice(0)) wake();
    return (this.#script.shift() ?? (() => Promise.resolve(0)))();
  }

  /** Resolves once `prune` has been called `count` times; rejects after 5 s. */
  async called(count: number): Promise<void> {
    const signal = AbortSignal.timeout(5_000);
    while (this.calls.length < count) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new Error(`timed out: ${this.calls.length}/${count} runs`));
        signal.addEventListener("abort", onAbort, { once: true });
        this.#waiters.push(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
  }
}

interface LogLine {
  readonly level: string;
  readonly event: string;
  readonly fields: LogFields;
}

function recordingLogger(): Logger & { readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (event: string, fields: LogFields = {}) => {
    lines.push({ level, event, fields });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

function job(
  repository: PruneDouble,
  options: Partial<RetentionJobOptions> = {},
): { job: RetentionJob; removed: number[]; logger: ReturnType<typeof recordingLogger> } {
  const removed: number[] = [];
  const logger = recordingLogger();
  const retention = new RetentionJob(repository, {
    intervalMs: INTERVAL_MS,
    logger,
    onRemoved: (count) => removed.push(count),
    now: () => NOW,
    ...options,
  });
  return { job: retention, removed, logger };
}

function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

Deno.test(
  "RetentionJob.start() prunes at once with the policy, then again every interval",
  SANITIZERS,
  async () => {
    const store = new PruneDouble([
      () => Promise.resolve(7),
      () => Promise.resolve(0),
      () => Promise.resolve(3),
    ]);
    const { job: retention, removed, logger } = job(store, { days: 30, maxPerRoom: 500 });
    retention.start();
    await store.called(3);
    await retention.stop();

    assert.equal(store.calls.length, 3, "no run after stop()");
    for (const { policy } of store.calls) {
      assert.deepEqual(policy, { olderThan: new Date(NOW - 30 * DAY_MS), maxPerRoom: 500 });
    }
    assert.deepEqual(removed, [7, 3], "every run that removed rows is counted; empty ones not");
    const started = logger.lines.find((line) => line.event === "retention.started");
    assert.deepEqual(started?.fields, {
      store: "double",
      days: 30,
      maxPerRoom: 500,
      intervalMs: INTERVAL_MS,
    });
    const pruned = logger.lines.filter((line) => line.event === "retention.pruned");
    assert.deepEqual(pruned.map((line) => [line.level, line.fields.removed]), [
      ["info", 7],
      ["debug", 0],
      ["info", 3],
    ]);
  },
);

Deno.test("RetentionJob passes only the limits that are set", SANITIZERS, async () => {
  const byAge = new PruneDouble();
  const byCount = new PruneDouble();
  const jobs = [job(byAge, { days: 0.5 }).job, job(byCount, { maxPerRoom: 10 }).job];
  for (const retention of jobs) retention.start();
  await Promise.all([byAge.called(1), byCount.called(1)]);
  await Promise.all(jobs.map((retention) => retention.stop()));
  assert.deepEqual(byAge.calls[0]?.policy, { olderThan: new Date(NOW - DAY_MS / 2) });
  assert.deepEqual(byCount.calls[0]?.policy, { maxPerRoom: 10 });
});

Deno.test(
  "RetentionJob logs a failed run with its error code only and retries it next interval",
  SANITIZERS,
  async () => {
    const store = new PruneDouble([
      () => Promise.reject(failure("57P01", "terminating connection near 'secret words'")),
      () => Promise.resolve(2),
    ]);
    const { job: retention, removed, logger } = job(store, { days: 1 });
    retention.start();
    await store.called(2);
    await retention.stop();

    const failed = logger.lines.filter((line) => line.event === "retention.failed");
    assert.deepEqual(failed, [{
      level: "warn",
      event: "retention.failed",
      fields: { store: "double", error: "57P01", removed: 0, retryInMs: INTERVAL_MS },
    }]);
    assert.ok(!JSON.stringify(logger.lines).includes("secret"), "no error message is logged");
    assert.deepEqual(removed, [2]);
  },
);

Deno.test(
  "RetentionJob counts the rows a run removed before it failed",
  SANITIZERS,
  async () => {
    const cause = failure("57014", "canceling statement due to statement timeout");
    const store = new PruneDouble([() => Promise.reject(new PruneIncompleteError(40, { cause }))]);
    const { job: retention, removed, logger } = job(store, { maxPerRoom: 100 });
    retention.start();
    await store.called(2); // the second run starts only after the first was handled
    await retention.stop();

    assert.deepEqual(removed, [40]);
    const failed = logger.lines.find((line) => line.event === "retention.failed");
    assert.deepEqual(failed?.fields, {
      store: "double",
      error: "57014",
      removed: 40,
      retryInMs: INTERVAL_MS,
    });
  },
);

Deno.test("RetentionJob with neither limit set never prunes and says so", SANITIZERS, async () => {
  const idle = new PruneDouble();
  const { job: disabled, logger } = job(idle);
  assert.equal(disabled.enabled, false);
  disabled.start();
  // An enabled job started alongside has run by the time this resolves: timers have fired.
  const busy = new PruneDouble();
  const { job: enabled } = job(busy, { days: 1 });
  enabled.start();
  await busy.called(1);
  await Promise.all([disabled.stop(), enabled.stop()]);

  assert.equal(idle.calls.length, 0);
  assert.deepEqual(logger.lines.map((line) => [line.level, line.event]), [
    ["info", "retention.disabled"],
  ]);
});

Deno.test(
  "RetentionJob.stop() aborts the run in progress and waits for it to end",
  SANITIZERS,
  async () => {
    let finish: (removed: number) => void = () => {};
    const store = new PruneDouble([() => new Promise((resolve) => finish = resolve)]);
    const { job: retention, removed } = job(store, { days: 1 });
    retention.start();
    await store.called(1);

    let stopped = false;
    const stopping = retention.stop().then(() => stopped = true);
    assert.equal(store.calls[0]?.signal?.aborted, true, "the run is asked to stop");
    // Microtask turns enough for a stop() that does not wait to have resolved.
    for (let turn = 0; turn < 10; turn++) await Promise.resolve();
    assert.equal(stopped, false, "stop() waits while the run is in progress");
    finish(5);
    await stopping;

    assert.deepEqual(removed, [5], "what the stopped run removed is still counted");
    assert.equal(store.calls.length, 1);
    await retention.stop(); // a second stop() is harmless
  },
);

Deno.test("new RetentionJob() refuses settings out of range", () => {
  const store = new PruneDouble();
  const refuses = (options: Partial<RetentionJobOptions>, setting: string) => {
    assert.throws(() => job(store, options), (error: unknown) => {
      assert.ok(error instanceof RetentionPolicyError, `got ${error}`);
      assert.equal(error.setting, setting);
      return true;
    });
  };
  for (const days of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) refuses({ days }, "days");
  for (const maxPerRoom of [0, 1.5, -3]) refuses({ maxPerRoom }, "maxPerRoom");
  for (const intervalMs of [0, -5, Number.NaN, 2 ** 31]) {
    refuses({ days: 1, intervalMs }, "intervalMs");
  }
});
