import assert from "node:assert/strict";
import { TRACER_NAME } from "../../storage/traced_repository.ts";
import { SANITIZERS } from "./repository_contract.ts";

const child = new URL("../support/traced_repository_child.ts", import.meta.url);

/** One span as OTLP/JSON carries it, attributes flattened to plain values. */
interface ExportedSpan {
  readonly scope: string;
  readonly name: string;
  readonly statusCode: number;
  readonly attributes: Record<string, string | number | boolean>;
}

interface OtlpValue {
  readonly stringValue?: string;
  readonly boolValue?: boolean;
  readonly intValue?: string | number;
  readonly doubleValue?: number;
}

interface OtlpTraces {
  readonly resourceSpans?: {
    readonly scopeSpans?: {
      readonly scope?: { readonly name?: string };
      readonly spans?: {
        readonly name: string;
        readonly status?: { readonly code?: number };
        readonly attributes?: { readonly key: string; readonly value: OtlpValue }[];
      }[];
    }[];
  }[];
}

function plain(value: OtlpValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.doubleValue !== undefined) return value.doubleValue;
  return Number(value.intValue); // int64 travels as a string in OTLP/JSON
}

function spansOf(body: OtlpTraces): ExportedSpan[] {
  return (body.resourceSpans ?? []).flatMap((resource) =>
    (resource.scopeSpans ?? []).flatMap((scope) =>
      (scope.spans ?? []).map((span) => ({
        scope: scope.scope?.name ?? "",
        name: span.name,
        statusCode: span.status?.code ?? 0,
        attributes: Object.fromEntries(
          (span.attributes ?? []).map((attribute) => [attribute.key, plain(attribute.value)]),
        ),
      }))
    )
  );
}

/** An OTLP/HTTP collector on 127.0.0.1: keeps every request body and the spans it carried. */
function startCollector() {
  const bodies: string[] = [];
  const spans: ExportedSpan[] = [];
  let arrived: () => void = () => {};
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const body = await request.text();
    bodies.push(body);
    if (new URL(request.url).pathname === "/v1/traces") {
      spans.push(...spansOf(JSON.parse(body)));
      arrived();
    }
    return Response.json({}); // an ExportTraceServiceResponse with nothing rejected
  });
  /** Resolves once spans with `count` names of `names` arrived; rejects after 10 s. */
  const spansNamed = async (names: readonly string[], count: number): Promise<void> => {
    const signal = AbortSignal.timeout(10_000);
    while (spans.filter((span) => names.includes(span.name)).length < count) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new Error(`only got spans ${spans.map((s) => s.name)}`));
        signal.addEventListener("abort", onAbort, { once: true });
        arrived = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  };
  return { server, bodies, spans, spansNamed };
}

Deno.test(
  "TracedRepository spans reach an OTLP/HTTP collector through Deno's built-in OpenTelemetry",
  SANITIZERS,
  async () => {
    const collector = startCollector();
    // Values that must never leave the process: message content, sender, cursor.
    const secrets = [
      `content-${crypto.randomUUID()}`,
      "sender-ann-9f2c",
      `01900000-0000-7000-8000-0000000000ff`,
    ];
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", child.pathname, ...secrets],
        env: {
          NO_COLOR: "1",
          OTEL_DENO: "true",
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.server.addr.port}`,
          // Deno's default is http/protobuf; JSON lets the test read attributes, not only names.
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_SERVICE_NAME: "chat-server-test",
        },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
      const names = ["persist.batch", "history.query", "retention.prune"];
      await collector.spansNamed(names, 5);

      const spans = collector.spans.filter((span) => names.includes(span.name));
      assert.ok(spans.every((span) => span.scope === TRACER_NAME), "one tracer for the storage");
      const batches = spans.filter((span) => span.name === "persist.batch");
      assert.deepEqual(batches.map(({ statusCode, attributes }) => ({ statusCode, attributes })), [
        {
          statusCode: 2, // ERROR: the first attempt was refused
          attributes: {
            "chat.store.kind": "memory",
            "chat.batch.messages": 3,
            "chat.batch.attempt": 1,
            "error.type": "refused_once",
          },
        },
        {
          statusCode: 0,
          attributes: {
            "chat.store.kind": "memory",
            "chat.batch.messages": 3,
            "chat.batch.attempt": 2,
          },
        },
      ]);
      const queries = spans.filter((span) => span.name === "history.query");
      assert.deepEqual(queries.map((span) => span.attributes), [
        {
          "chat.store.kind": "memory",
          "chat.room": "traced-room",
          "chat.history.limit": 25,
          "chat.history.has_cursor": true,
          "chat.history.changes": false,
          "chat.history.returned": 3,
        },
        {
          "chat.store.kind": "memory",
          "chat.room": "traced-room",
          "chat.history.limit": 5,
          "chat.history.has_cursor": false,
          "chat.history.changes": false,
          "chat.history.returned": 3,
        },
      ]);
      const prunes = spans.filter((span) => span.name === "retention.prune");
      assert.deepEqual(prunes.map((span) => span.attributes), [{
        "chat.store.kind": "memory",
        "chat.retention.has_age_limit": false,
        "chat.retention.max_per_room": 2,
        "chat.retention.removed": 1,
      }]);
      // Everything the child exported (traces, and logs of anything it printed), not only spans.
      for (const secret of secrets) {
        assert.ok(!collector.bodies.some((body) => body.includes(secret)), `${secret} exported`);
      }
    } finally {
      await collector.server.shutdown();
    }
  },
);
