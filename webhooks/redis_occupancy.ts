/**
 * Occupancy across instances sharing a Redis: cluster-wide holder counts, so that each
 * transition is emitted by exactly one instance.
 *
 * @module
 */
import { Redis } from "ioredis";
import { errorCode } from "../log/error_code.ts";
import type { Logger } from "../log/logger.ts";
import { withTimeout } from "../cluster/redis_sequencer.ts";
import {
  APPLY_SCRIPT,
  BEAT_SCRIPT,
  LEAVE_SCRIPT,
  type OccupancyCommands,
} from "./_occupancy_scripts.ts";
import type { EmitEvent, Occupancy, OccupantKind } from "./occupancy.ts";

/** Options of {@linkcode RedisOccupancy.start}. */
export interface RedisOccupancyOptions {
  /** Prefix of every key (`REDIS_PREFIX`). */
  readonly prefix: string;
  /**
   * How long this instance's liveness outlives its last heartbeat (`PRESENCE_TTL`): after a
   * crash, what it held is released by another instance within about this.
   */
  readonly ttlMs: number;
  /** How long a user held nowhere stays online (`WEBHOOK_OFFLINE_GRACE`). */
  readonly offlineGraceMs: number;
  readonly emit: EmitEvent;
  readonly logger: Logger;
}

/** Changes sent to Redis in one script call at most. */
const APPLY_BATCH = 500;
/** Users one heartbeat pops at most; the next heartbeat is then due at once. */
const SWEEP_LIMIT = 1_000;
/** Longest close() waits for each Redis step (the last changes, the leave, the disconnect). */
const CLOSE_STEP_MS = 2_000;

/**
 * Each instance tells Redis only its own transitions (first connection of a user or room here,
 * last one gone), and Redis's scripts decide the cluster-wide ones: see `_occupancy_scripts.ts`
 * and docs/webhooks.md. The chat's calls only mark a name as changed; one flush at a time
 * sends what changed since (the state now, not each step: a user who came and went in between
 * sends nothing). Flushes and heartbeats fail fast while Redis is away (no offline queue): what
 * changed meanwhile is sent when it is back, so transitions then are late, and a user who came
 * and went during the outage is never announced. An instance that could not heartbeat for the
 * TTL is reaped by the others (its users go offline, its rooms are vacated) and, when it is
 * back, tells everything it holds again (online, occupied).
 *
 * @example
 * ```ts
 * const occupancy = RedisOccupancy.start("redis://127.0.0.1:6379", {
 *   prefix: "chat:", ttlMs: 15_000, offlineGraceMs: 30_000, emit, logger });
 * occupancy.held("user", "ann"); // user.online, from this instance or none
 * await occupancy.close();
 * ```
 */
export class RedisOccupancy implements Occupancy {
  /** This instance's id in the webhook keys. */
  readonly instance = crypto.randomUUID();
  readonly #options: RedisOccupancyOptions;
  readonly #redis: Redis;
  readonly #scripts: OccupancyCommands;
  /** `<kind>:<name>` of what this instance holds now. */
  readonly #held = new Set<string>();
  /** What Redis was last told this instance holds. */
  readonly #told = new Set<string>();
  /** Changed since they were last told: a subset of held, told and forced. */
  readonly #dirty = new Set<string>();
  /**
   * To be told again even if unchanged: Redis may have lost them (this instance was reaped) or
   * applied them unbeknown (a call failed after it ran).
   */
  readonly #forced = new Set<string>();
  readonly #heartbeat: ReturnType<typeof setInterval>;
  #flushing = false;
  #flushed: Promise<void> = Promise.resolve();
  #beating = false;
  #beatAgain = false;
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepAt = Infinity;
  /** Whether a script has answered yet: before that, an expired liveness key is just new. */
  #contacted = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(url: string, options: RedisOccupancyOptions) {
    this.#options = options;
    // Fail fast while Redis is away: changes wait in #dirty (bounded), not in ioredis.
    this.#redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    this.#redis.defineCommand("webhookApply", { numberOfKeys: 0, lua: APPLY_SCRIPT });
    this.#redis.defineCommand("webhookBeat", { numberOfKeys: 0, lua: BEAT_SCRIPT });
    this.#redis.defineCommand("webhookLeave", { numberOfKeys: 0, lua: LEAVE_SCRIPT });
    this.#scripts = this.#redis as unknown as OccupancyCommands;
    // ioredis emits "error" for every failed reconnect; without a listener it would throw.
    this.#redis.on("error", (error: Error) => this.#fail("webhook.redis_error", error));
    this.#redis.on("ready", () => this.#beat());
    this.#heartbeat = setInterval(() => this.#beat(), Math.max(100, options.ttlMs / 3));
  }

  /** Connects (in the background) and starts heartbeating. */
  static start(url: string, options: RedisOccupancyOptions): RedisOccupancy {
    return new RedisOccupancy(url, options);
  }

  /** Whether Redis answers: changes made before are told once it does, late. */
  get connected(): boolean {
    return this.#redis.status === "ready";
  }

  held(kind: OccupantKind, name: string): void {
    const key = `${kind}:${name}`;
    this.#held.add(key);
    this.#changed(key);
  }

  released(kind: OccupantKind, name: string): void {
    const key = `${kind}:${name}`;
    this.#held.delete(key);
    this.#changed(key);
  }

  /**
   * Leaves the cluster's counts as a crashed instance would be reaped, at once: users held only
   * here start their grace (the last instance out ends every grace now: nobody is left to),
   * rooms held only here are vacated. Then disconnects. Calling it again returns the same
   * promise.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#sweepTimer);
    try {
      // Changes in flight are applied first (one connection keeps order); unsent ones need not
      // be: leaving takes out whatever Redis has of this instance.
      await withTimeout(this.#flushed, CLOSE_STEP_MS);
      if (this.#redis.status === "ready") {
        const [vacated, offline] = await withTimeout(
          this.#scripts.webhookLeave(this.#options.prefix, this.instance),
          CLOSE_STEP_MS,
        );
        this.#emitReleased(vacated, offline);
      }
    } catch (error) {
      // Not told: this instance's liveness key expires and another instance reaps it.
      this.#fail("webhook.redis_leave_failed", error);
    }
    const ended = this.#redis.status === "end"
      ? Promise.resolve()
      : new Promise<void>((resolve) => this.#redis.once("end", () => resolve()));
    this.#redis.disconnect();
    await withTimeout(ended, CLOSE_STEP_MS).catch((error) =>
      this.#fail("webhook.redis_close_failed", error)
    );
  }

  #changed(key: string): void {
    // Held and released between two flushes, and never told: nothing to tell. This keeps
    // #dirty within what is held, told or forced however long Redis is away.
    if (!this.#held.has(key) && !this.#told.has(key) && !this.#forced.has(key)) {
      this.#dirty.delete(key);
      return;
    }
    this.#dirty.add(key);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushing || this.#closed || this.#dirty.size === 0) return;
    this.#flushing = true;
    // Off the caller's stack: the chat's listener only marks and returns.
    this.#flushed = Promise.resolve().then(() => this.#flush()).catch((error) => {
      // A bug, not Redis (whose failures #flush handles): contained, said once per flush.
      this.#flushing = false;
      this.#options.logger.error("webhook.occupancy_failed", { error: errorCode(error) });
    });
  }

  /** Tells Redis what changed, batch by batch, until nothing has; stops on a failure. */
  async #flush(): Promise<void> {
    for (;;) {
      const batch = this.#closed || this.#redis.status !== "ready" ? [] : this.#takeBatch();
      if (batch.length === 0) {
        // Decided in the same turn as the check: a change after it starts a new flush.
        this.#flushing = false;
        return;
      }
      const args = batch.flatMap(({ key, held }) => {
        const colon = key.indexOf(":");
        return [key.slice(0, colon), key.slice(colon + 1), held ? "+" : "-"];
      });
      try {
        const [missing, leaving, events] = await this.#scripts.webhookApply(
          this.#options.prefix,
          this.instance,
          String(this.#options.ttlMs),
          ...args,
        );
        for (const { key, held } of batch) {
          held ? this.#told.add(key) : this.#told.delete(key);
          // Changed while the call was out, and perhaps dropped as never told: tell it now.
          if (this.#held.has(key) !== held) this.#dirty.add(key);
        }
        this.#answered(missing);
        for (let i = 0; i + 1 < events.length; i += 2) {
          this.#emitTransition(events[i] as string, events[i + 1] as string);
        }
        if (leaving === 1) this.#sweepIn(this.#options.offlineGraceMs);
      } catch (error) {
        // Sent again at the next heartbeat. Redis may have applied them: told again regardless
        // (the scripts are idempotent), though the events of an applied batch are lost.
        for (const { key } of batch) {
          this.#dirty.add(key);
          this.#forced.add(key);
        }
        this.#flushing = false;
        return this.#fail("webhook.redis_apply_failed", error);
      }
    }
  }

  #takeBatch(): { key: string; held: boolean }[] {
    const batch: { key: string; held: boolean }[] = [];
    for (const key of this.#dirty) {
      if (batch.length === APPLY_BATCH) break;
      this.#dirty.delete(key);
      const held = this.#held.has(key);
      if (this.#forced.delete(key) || held !== this.#told.has(key)) batch.push({ key, held });
    }
    return batch;
  }

  /** Refreshes liveness, reaps dead instances and ends graces; one at a time. */
  #beat(): void {
    if (this.#closed || this.#redis.status !== "ready") return;
    if (this.#beating) {
      this.#beatAgain = true;
      return;
    }
    this.#beating = true;
    this.#beatOnce();
  }

  /** One heartbeat script; never rejects. */
  async #beatOnce(): Promise<void> {
    const { prefix, ttlMs, offlineGraceMs } = this.#options;
    try {
      const [missing, vacated, offline, wait] = await this.#scripts.webhookBeat(
        prefix,
        this.instance,
        String(ttlMs),
        String(offlineGraceMs),
        String(SWEEP_LIMIT),
      );
      this.#answered(missing);
      this.#emitReleased(vacated, offline);
      if (wait >= 0) this.#sweepIn(wait);
    } catch (error) {
      this.#fail("webhook.redis_beat_failed", error);
    } finally {
      this.#beating = false;
      // Retries a flush that failed while Redis was away.
      this.#scheduleFlush();
      if (this.#beatAgain) {
        this.#beatAgain = false;
        this.#beat();
      }
    }
  }

  /** After a script's answer: if this instance's liveness had expired, tell everything again. */
  #answered(missing: number): void {
    if (missing === 1 && this.#contacted) {
      // Another instance may have reaped this one meanwhile (its users offline, rooms vacated).
      this.#options.logger.warn("webhook.liveness_expired", { instance: this.instance });
      for (const key of [...this.#held, ...this.#told]) {
        this.#forced.add(key);
        this.#changed(key);
      }
    }
    this.#contacted = true;
  }

  /** Runs a heartbeat (which ends due graces) in `ms`, unless one is already due sooner. */
  #sweepIn(ms: number): void {
    const at = Date.now() + ms;
    if (this.#closed || at >= this.#sweepAt) return;
    clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(() => {
      this.#sweepAt = Infinity;
      this.#beat();
    }, ms);
  }

  #emitReleased(vacated: readonly string[], offline: readonly string[]): void {
    for (const room of vacated) this.#options.emit("room.vacated", { room });
    for (let i = 0; i + 1 < offline.length; i += 2) {
      const user = offline[i] as string;
      const lastSeen = new Date(Number(offline[i + 1])).toISOString();
      this.#options.emit("user.offline", { user, last_seen: lastSeen });
    }
  }

  #emitTransition(type: string, name: string): void {
    if (type === "room.occupied" || type === "room.vacated") {
      this.#options.emit(type, { room: name });
    } else if (type === "user.online") {
      this.#options.emit(type, { user: name });
    }
  }

  #fail(event: string, error: unknown): void {
    // Debug, as the cluster's: during an outage every attempt fails the same way.
    this.#options.logger.debug(event, { error: errorCode(error) });
  }
}
