/**
 * Heap snapshots of a process started with `--inspect`, taken over the inspector protocol
 * (`HeapProfiler`), summarised by constructor.
 *
 * @module
 */

/** Objects of one kind in a snapshot. */
export interface HeapGroup {
  readonly count: number;
  /** Self sizes, in bytes. */
  readonly bytes: number;
}

/** A snapshot reduced to its groups, keyed `<node type>:<name>`; strings and code are lumped. */
export type HeapSummary = ReadonlyMap<string, HeapGroup>;

const SNAPSHOT_TIMEOUT_MS = 120_000;

/**
 * Collects garbage in the inspected process, then snapshots its heap.
 *
 * @example
 * ```ts
 * const summary = await takeHeapSummary(9229);
 * ```
 * @throws {Error} if the inspector does not answer within 2 minutes.
 */
export async function takeHeapSummary(inspectorPort: number): Promise<HeapSummary> {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  const chunks: string[] = [];
  const pending = new Map<number, () => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(message.params.chunk);
    else pending.get(message.id)?.();
  };
  let nextId = 0;
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<void>((resolve) => {
      const id = ++nextId;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("the inspector did not answer")),
      SNAPSHOT_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([
      (async () => {
        await new Promise((resolve, reject) => {
          socket.onopen = resolve;
          socket.onerror = () => reject(new Error(`no inspector at port ${inspectorPort}`));
        });
        await call("HeapProfiler.enable");
        await call("HeapProfiler.collectGarbage");
        await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      })(),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
    socket.close();
  }
  return summarise(JSON.parse(chunks.join("")));
}

interface RawSnapshot {
  readonly snapshot: { readonly meta: { node_fields: string[]; node_types: [string[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

const LUMPED: Record<string, string> = {
  string: "(strings)",
  "concatenated string": "(strings)",
  "sliced string": "(strings)",
  code: "(compiled code)",
};

function summarise(raw: RawSnapshot): HeapSummary {
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0];
  const [type, name, size] = ["type", "name", "self_size"].map((field) => fields.indexOf(field));
  const groups = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < raw.nodes.length; i += fields.length) {
    const kind = types[raw.nodes[i + (type ?? 0)] ?? 0] ?? "?";
    const label = LUMPED[kind] ?? `${kind}:${raw.strings[raw.nodes[i + (name ?? 0)] ?? 0]}`;
    const key = label.replace(/ @\d+$/, "").slice(0, 80);
    const group = groups.get(key) ?? { count: 0, bytes: 0 };
    group.count++;
    group.bytes += raw.nodes[i + (size ?? 0)] ?? 0;
    groups.set(key, group);
  }
  return groups;
}

/** What `after` holds beyond `before`, per unit (e.g. per connection), largest first. */
export function heapGrowth(
  before: HeapSummary,
  after: HeapSummary,
  units: number,
): { key: string; count: number; bytes: number }[] {
  const rows = [];
  for (const [key, group] of after) {
    const base = before.get(key) ?? { count: 0, bytes: 0 };
    rows.push({
      key,
      count: (group.count - base.count) / units,
      bytes: (group.bytes - base.bytes) / units,
    });
  }
  return rows.sort((a, b) => b.bytes - a.bytes);
}
