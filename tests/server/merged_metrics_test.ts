import assert from "node:assert/strict";
import { Counter, Histogram, Registry } from "prom-client";
import { mergeExpositions } from "../../server/merged_metrics.ts";

/** A registry as one worker has it: the same families, its own `worker` label and values. */
function workerRegistry(worker: number, received: number): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ worker: String(worker) });
  const registers = [registry];
  new Counter({ name: "chat_received_total", help: "Received.", registers }).inc(received);
  new Counter({ name: "chat_refused_total", help: "Refused.", labelNames: ["reason"], registers });
  const histogram = new Histogram({
    name: "chat_seconds",
    help: "Latency.",
    buckets: [0.01, 1],
    registers,
  });
  histogram.observe(0.5);
  return registry;
}

Deno.test("mergeExpositions() keeps one HELP and TYPE per family, with every worker's samples under it", async () => {
  const texts = await Promise.all(
    [workerRegistry(0, 3), workerRegistry(1, 4)].map((registry) => registry.metrics()),
  );
  const lines = mergeExpositions(texts).trimEnd().split("\n").filter((line) => line !== "");
  assert.deepEqual(lines, [
    "# HELP chat_received_total Received.",
    "# TYPE chat_received_total counter",
    'chat_received_total{worker="0"} 3',
    'chat_received_total{worker="1"} 4',
    "# HELP chat_refused_total Refused.",
    "# TYPE chat_refused_total counter",
    "# HELP chat_seconds Latency.",
    "# TYPE chat_seconds histogram",
    'chat_seconds_bucket{le="0.01",worker="0"} 0',
    'chat_seconds_bucket{le="1",worker="0"} 1',
    'chat_seconds_bucket{le="+Inf",worker="0"} 1',
    'chat_seconds_sum{worker="0"} 0.5',
    'chat_seconds_count{worker="0"} 1',
    'chat_seconds_bucket{le="0.01",worker="1"} 0',
    'chat_seconds_bucket{le="1",worker="1"} 1',
    'chat_seconds_bucket{le="+Inf",worker="1"} 1',
    'chat_seconds_sum{worker="1"} 0.5',
    'chat_seconds_count{worker="1"} 1',
  ]);
});

Deno.test("mergeExpositions() of one exposition is that exposition", async () => {
  const text = await workerRegistry(0, 1).metrics();
  assert.equal(mergeExpositions([text]), text);
});
