/**
 * Prometheus metrics (prom-client): what the chat core reports, plus gauges read at scrape time.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ChatMetrics, FaultSite } from "../chat/chat_metrics.ts";
import type { ErrorCode } from "../chat/protocol.ts";
import { MEMORY_USES, type MemoryBudget } from "../chat/memory_budget.ts";
import type { WebhookDrop, WebhookFailure, WebhookMetrics } from "../webhooks/webhook_sender.ts";

/** Live values read when `/metrics` is scraped, so the hot path keeps no gauge up to date. */
export interface MetricsSources {
  connections(): number;
  rooms(): number;
  /**
   * The largest rooms by local members. Absent: `chat_room_members` is not registered, because
   * room names can say what a room is for and a scrape goes to more people than the rooms do
   * (`METRICS_ROOM_LABELS`).
   */
  largestRooms?(limit: number): { room: string; members: number }[];
  persistQueueDepth(): number;
  /** Messages the persistence workers have written so far. */
  persisted(): number;
  /** 1 when the store answers, 0 when not. */
  storeUp(): Promise<boolean>;
  /** 1 when the cluster (Redis) is reachable or off, 0 when degraded. */
  clusterUp(): boolean;
  /** The byte budget (`MEMORY_BUDGET`): its limit, what each use holds, what it refused. */
  readonly budget?: MemoryBudget;
  /** Webhook events waiting to be sent, when `WEBHOOK_URL` is set. */
  webhookQueue?(): { readonly events: number; readonly bytes: number };
}

/** Options of {@linkcode ServerMetrics}. */
export interface ServerMetricsOptions {
  /** Labels every sample carries, e.g. `{ worker: "1" }` under `WORKERS`. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Rooms listed by `chat_room_members`; the rest are summed up in `chat_rooms`. */
const TOP_ROOMS = 20;
const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * One registry per server. Counters are incremented by value (one call per broadcast, not per
 * member), and every gauge is computed at scrape time in O(rooms).
 *
 * @example
 * ```ts
 * const metrics = new ServerMetrics(sources);
 * const hub = new Hub({ ..., metrics });
 * const text = await metrics.render();
 * ```
 */
export class ServerMetrics implements ChatMetrics, WebhookMetrics {
  readonly #registry = new Registry();
  readonly #received: Counter;
  readonly #delivered: Counter;
  readonly #refused: Counter<"reason">;
  readonly #disconnects: Counter<"code">;
  readonly #requestsRefused: Counter<"reason">;
  readonly #broadcastSeconds: Histogram;
  readonly #batchSeconds: Histogram<"outcome">;
  readonly #pruned: Counter;
  readonly #gaps: Counter;
  readonly #faults: Counter<"site">;
  readonly #rejected: Counter<"code">;
  readonly #webhooksDelivered: Counter;
  readonly #webhooksFailed: Counter<"reason">;
  readonly #webhooksDropped: Counter<"reason">;

  constructor(sources: MetricsSources, options: ServerMetricsOptions = {}) {
    if (options.labels) this.#registry.setDefaultLabels({ ...options.labels });
    const registers = [this.#registry];
    this.#received = new Counter({
      name: "chat_messages_received_total",
      help: "Valid messages received from clients.",
      registers,
    });
    this.#delivered = new Counter({
      name: "chat_messages_delivered_total",
      help: "Message frames handed to members' outboxes.",
      registers,
    });
    this.#refused = new Counter({
      name: "chat_messages_refused_total",
      help: "Client frames refused with an error frame, by error code.",
      labelNames: ["reason"],
      registers,
    });
    this.#disconnects = new Counter({
      name: "chat_disconnects_total",
      help: "Connections the server closed, by close code (1001 shutdown, 1008 rate, " +
        "1009 frame size, 1013 slow consumer, 4001 token expired).",
      labelNames: ["code"],
      registers,
    });
    this.#requestsRefused = new Counter({
      name: "chat_requests_refused_total",
      help: "HTTP requests refused before any upgrade, by error code.",
      labelNames: ["reason"],
      registers,
    });
    this.#broadcastSeconds = new Histogram({
      name: "chat_broadcast_seconds",
      help: "From a message's receipt to its frame being queued for every member.",
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.#batchSeconds = new Histogram({
      name: "chat_persist_batch_seconds",
      help: "Time to write one persistence batch, by outcome.",
      labelNames: ["outcome"],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.#pruned = new Counter({
      name: "chat_messages_pruned_total",
      help: "Messages removed by the retention job.",
      registers,
    });
    this.#gaps = new Counter({
      name: "chat_sequence_gaps_total",
      help: "Seqs of rooms' shared sequences lost between instances and not recoverable " +
        "from the Redis stream (members were sent a gap frame).",
      registers,
    });
    this.#faults = new Counter({
      name: "chat_faults_total",
      help: "Exceptions contained by site (room, client, outbox, cluster): the failing room or " +
        "client was closed with 1011, everyone else went on.",
      labelNames: ["site"],
      registers,
    });
    this.#rejected = new Counter({
      name: "chat_persist_rejected_total",
      help: "Messages the store refused for good (by its error code): isolated from their batch, " +
        "logged as persist.rejected, not retried.",
      labelNames: ["code"],
      registers,
    });
    this.#webhooksDelivered = new Counter({
      name: "chat_webhook_delivered_total",
      help: "Webhook events the endpoint accepted (2xx).",
      registers,
    });
    this.#webhooksFailed = new Counter({
      name: "chat_webhook_failed_total",
      help: "Webhook attempts that failed, by reason (timeout, network, http_3xx, http_4xx, " +
        "http_5xx); each is retried until WEBHOOK_RETRY_WINDOW.",
      labelNames: ["reason"],
      registers,
    });
    this.#webhooksDropped = new Counter({
      name: "chat_webhook_dropped_total",
      help: "Webhook events given up, by reason (queue_full: the oldest, to make room; " +
        "oversized; retries_exhausted; shutdown; error).",
      labelNames: ["reason"],
      registers,
    });
    registerGauges(this.#registry, sources);
  }

  /** The Content-Type of {@linkcode ServerMetrics.render}. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The exposition text. */
  render(): Promise<string> {
    return this.#registry.metrics();
  }

  messageReceived(): void {
    this.#received.inc();
  }

  messageRefused(code: ErrorCode): void {
    this.#refused.inc({ reason: code });
  }

  messageBroadcast(deliveries: number, latencyMs: number | undefined): void {
    if (deliveries > 0) this.#delivered.inc(deliveries);
    if (latencyMs !== undefined) this.#broadcastSeconds.observe(latencyMs / 1000);
  }

  clientLeft(code: number | undefined): void {
    if (code !== undefined) this.#disconnects.inc({ code: String(code) });
  }

  sequenceGap(count: number): void {
    this.#gaps.inc(count);
  }

  faultContained(site: FaultSite): void {
    this.#faults.inc({ site });
  }

  /** The store refused a message for good, with this error code. */
  messageRejected(code: string): void {
    this.#rejected.inc({ code });
  }

  /** An HTTP request was answered with an error before any upgrade. */
  requestRefused(reason: string): void {
    this.#requestsRefused.inc({ reason });
  }

  /** The retention job removed `count` messages. */
  messagesPruned(count: number): void {
    if (count > 0) this.#pruned.inc(count);
  }

  webhookDelivered(): void {
    this.#webhooksDelivered.inc();
  }

  webhookFailed(reason: WebhookFailure): void {
    this.#webhooksFailed.inc({ reason });
  }

  webhookDropped(reason: WebhookDrop, count: number): void {
    if (count > 0) this.#webhooksDropped.inc({ reason }, count);
  }

  /** A persistence batch took `seconds`. */
  batchWritten(seconds: number, outcome: "ok" | "failed"): void {
    this.#batchSeconds.observe({ outcome }, seconds);
  }
}

function registerGauges(registry: Registry, sources: MetricsSources): void {
  const registers = [registry];
  new Gauge({
    name: "chat_connections",
    help: "Open client connections.",
    registers,
    collect() {
      this.set(sources.connections());
    },
  });
  new Gauge({
    name: "chat_rooms",
    help: "Rooms with at least one local member.",
    registers,
    collect() {
      this.set(sources.rooms());
    },
  });
  const largestRooms = sources.largestRooms?.bind(sources);
  if (largestRooms) {
    new Gauge({
      name: "chat_room_members",
      help: `Local members of the ${TOP_ROOMS} largest rooms.`,
      labelNames: ["room"],
      registers,
      collect() {
        this.reset();
        for (const { room, members } of largestRooms(TOP_ROOMS)) this.set({ room }, members);
      },
    });
  }
  new Gauge({
    name: "chat_persist_queue_depth",
    help: "Messages waiting to be stored.",
    registers,
    collect() {
      this.set(sources.persistQueueDepth());
    },
  });
  let reported = 0;
  new Counter({
    name: "chat_messages_persisted_total",
    help: "Messages written to the store.",
    registers,
    collect() {
      const saved = sources.persisted();
      this.inc(saved - reported);
      reported = saved;
    },
  });
  new Gauge({
    name: "chat_store_up",
    help: "1 when the message store answers.",
    registers,
    async collect() {
      this.set((await sources.storeUp()) ? 1 : 0);
    },
  });
  const budget = sources.budget;
  if (budget) registerBudget(registers, budget);
  const webhookQueue = sources.webhookQueue?.bind(sources);
  if (webhookQueue) {
    new Gauge({
      name: "chat_webhook_queue_events",
      help: "Webhook events waiting for a worker.",
      registers,
      collect() {
        this.set(webhookQueue().events);
      },
    });
    new Gauge({
      name: "chat_webhook_queue_bytes",
      help: "Estimated bytes of the webhook events waiting (bounded by WEBHOOK_QUEUE_BYTES).",
      registers,
      collect() {
        this.set(webhookQueue().bytes);
      },
    });
  }
  new Gauge({
    name: "chat_cluster_up",
    help: "1 when Redis (multi-instance) is reachable or not in use, 0 when degraded.",
    registers,
    collect() {
      this.set(sources.clusterUp() ? 1 : 0);
    },
  });
}

function registerBudget(registers: Registry[], budget: MemoryBudget): void {
  new Gauge({
    name: "chat_memory_budget_bytes",
    help: "The byte budget (MEMORY_BUDGET) for what the server holds in memory for clients.",
    registers,
    collect() {
      this.set(budget.limitBytes);
    },
  });
  new Gauge({
    name: "chat_memory_bytes",
    help: "Estimated bytes held against the budget, by use: recent (resume buffers, trimmed " +
      "first), unstored (messages not yet stored), outbox (bytes sockets buffer).",
    labelNames: ["use"],
    registers,
    collect() {
      for (const use of MEMORY_USES) this.set({ use }, budget.used(use));
    },
  });
  let reported = 0;
  new Counter({
    name: "chat_memory_budget_refusals_total",
    help: "Messages refused with backlog because they did not fit in the byte budget.",
    registers,
    collect() {
      this.inc(budget.refusals - reported);
      reported = budget.refusals;
    },
  });
}
