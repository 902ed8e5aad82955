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

/**
 * A Map or Set of a snapshot. Its node id is the same in every snapshot of one process, so the
 * same collection can be followed from one snapshot to the next.
 */
export interface HeapCollection {
  readonly id: number;
  readonly kind: string;
  /**
   * What holds it: `<constructor>.<property>` (e.g. `Hub.#rooms`), `(closure).<variable>`,
   * `(in a Map or Set)`, or `?`.
   */
  readonly owner: string;
  /** Heap references in its table: about 2 per entry of a Map of objects, 1 of a Set. */
  readonly references: number;
  /** Bytes of its table, which follows its capacity. */
  readonly tableBytes: number;
}

/** A snapshot summarised: groups by constructor, and every Map and Set. */
export interface HeapSnapshotSummary {
  readonly groups: HeapSummary;
  readonly collections: readonly HeapCollection[];
}

/** The JS heap of a process, after a garbage collection. */
export interface HeapUsage {
  readonly usedBytes: number;
  readonly totalBytes: number;
}

const CALL_TIMEOUT_MS = 120_000;

/**
 * A session with the inspector of a process started with `--inspect=127.0.0.1:<port>`.
 *
 * @example
 * ```ts
 * const inspector = await Inspector.connect(9229);
 * const { usedBytes } = await inspector.heapUsage();
 * const { groups, collections } = await inspector.snapshot();
 * inspector.close();
 * ```
 */
export class Inspector {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, { resolve(result: unknown): void; reject(e: Error): void }>();
  #chunks: string[] = [];
  #nextId = 0;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.method === "HeapProfiler.addHeapSnapshotChunk") {
        return void this.#chunks.push(message.params.chunk);
      }
      const call = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error) call?.reject(new Error(`inspector: ${message.error.message}`));
      else call?.resolve(message.result);
    };
    socket.onclose = () => {
      for (const call of this.#pending.values()) call.reject(new Error("inspector closed"));
      this.#pending.clear();
    };
  }

  /** @throws {Error} if nothing listens at `port`. */
  static async connect(port: number): Promise<Inspector> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`no inspector at port ${port}`));
    });
    const inspector = new Inspector(socket);
    await inspector.#call("HeapProfiler.enable");
    return inspector;
  }

  /** Collects garbage, then reads the heap's size. */
  async heapUsage(): Promise<HeapUsage> {
    await this.#call("HeapProfiler.collectGarbage");
    const usage = await this.#call("Runtime.getHeapUsage") as {
      usedSize: number;
      totalSize: number;
    };
    return { usedBytes: usage.usedSize, totalBytes: usage.totalSize };
  }

  /** Collects garbage, then snapshots the heap. */
  async snapshot(): Promise<HeapSnapshotSummary> {
    await this.#call("HeapProfiler.collectGarbage");
    this.#chunks = [];
    await this.#call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    const raw = JSON.parse(this.#chunks.join(""));
    this.#chunks = [];
    return summarise(raw);
  }

  close(): void {
    this.#socket.close();
  }

  async #call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = ++this.#nextId;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise((resolve, reject) => {
        this.#pending.set(id, { resolve, reject });
        timer = setTimeout(
          () => reject(new Error(`inspector: no answer to ${method}`)),
          CALL_TIMEOUT_MS,
        );
        this.#socket.send(JSON.stringify({ id, method, params }));
      });
    } finally {
      clearTimeout(timer);
      this.#pending.delete(id);
    }
  }
}

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
  const inspector = await Inspector.connect(inspectorPort);
  try {
    return (await inspector.snapshot()).groups;
  } finally {
    inspector.close();
  }
}

interface RawSnapshot {
  readonly snapshot: {
    readonly meta: {
      node_fields: string[];
      node_types: [string[]];
      edge_fields: string[];
      edge_types: [string[]];
    };
  };
  readonly nodes: number[];
  readonly edges: number[];
  readonly strings: string[];
}

const LUMPED: Record<string, string> = {
  string: "(strings)",
  "concatenated string": "(strings)",
  "sliced string": "(strings)",
  code: "(compiled code)",
};

function summarise(raw: RawSnapshot): HeapSnapshotSummary {
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
  return { groups, collections: collections(raw) };
}

/** Every Map and Set with its table and its first holder. */
function collections(raw: RawSnapshot): HeapCollection[] {
  const { node_fields: fields, node_types: [nodeTypes], edge_fields: edgeFields } =
    raw.snapshot.meta;
  const edgeTypes = raw.snapshot.meta.edge_types[0];
  const at = (field: string) => fields.indexOf(field);
  const [TYPE, NAME, ID, SIZE, EDGES] = ["type", "name", "id", "self_size", "edge_count"].map(at);
  const width = fields.length;
  const edgeWidth = edgeFields.length;
  const nameOf = (node: number) => raw.strings[raw.nodes[node + (NAME ?? 0)] ?? 0] ?? "?";
  const typeOf = (node: number) => nodeTypes[raw.nodes[node + (TYPE ?? 0)] ?? 0] ?? "?";
  const found = new Map<number, { table: number; owner: string }>();
  for (let node = 0; node < raw.nodes.length; node += width) {
    const name = nameOf(node);
    if (typeOf(node) === "object" && (name === "Map" || name === "Set")) {
      found.set(node, { table: -1, owner: "?" });
    }
  }
  // One pass over every edge: each collection's table, and its first holder.
  let edge = 0;
  for (let node = 0; node < raw.nodes.length; node += width) {
    const count = raw.nodes[node + (EDGES ?? 0)] ?? 0;
    const own = found.get(node);
    for (let e = 0; e < count; e++, edge += edgeWidth) {
      const edgeType = edgeTypes[raw.edges[edge] ?? 0] ?? "?";
      const nameOrIndex = raw.edges[edge + 1] ?? 0;
      const to = raw.edges[edge + 2] ?? 0;
      const edgeName = edgeType === "element" || edgeType === "hidden"
        ? String(nameOrIndex)
        : raw.strings[nameOrIndex] ?? "?";
      if (own && edgeName === "table") own.table = to;
      const target = found.get(to);
      if (!target || target.owner !== "?" || edgeType === "weak" || edgeName === "__proto__") {
        continue;
      }
      target.owner = holderLabel(typeOf(node), nameOf(node), edgeType, edgeName);
    }
  }
  return [...found].map(([node, { table, owner }]) => ({
    id: raw.nodes[node + (ID ?? 0)] ?? 0,
    kind: nameOf(node),
    owner,
    references: table < 0 ? 0 : Math.max(0, (raw.nodes[table + (EDGES ?? 0)] ?? 1) - 1),
    tableBytes: table < 0 ? 0 : raw.nodes[table + (SIZE ?? 0)] ?? 0,
  }));
}

function holderLabel(type: string, name: string, edgeType: string, edgeName: string): string {
  if (type === "array") return "(in a Map or Set)";
  if (edgeType === "context") return `(closure).${edgeName}`;
  if (edgeType === "property" || edgeType === "internal") {
    return `${name.replace(/ @\d+$/, "").replace(/^system \/ /, "")}.${edgeName}`;
  }
  return "?";
}

/**
 * Collections of `after` that hold more references than in `before` (matched by node id; one
 * absent from `before` held none), most grown first.
 */
export function collectionGrowth(
  before: readonly HeapCollection[],
  after: readonly HeapCollection[],
): { owner: string; kind: string; before: number; after: number }[] {
  const earlier = new Map(before.map((collection) => [collection.id, collection.references]));
  return after
    .map((collection) => ({
      owner: collection.owner,
      kind: collection.kind,
      before: earlier.get(collection.id) ?? 0,
      after: collection.references,
    }))
    .filter((row) => row.after > row.before)
    .sort((a, b) => (b.after - b.before) - (a.after - a.before));
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

/** Counts of one kind before, under and after a load. */
export interface KindCounts {
  readonly idle: number;
  readonly loaded: number;
  readonly end: number;
}

/** Options of {@linkcode compareToIdle}. */
export interface IdleComparison {
  /** Constructors that must be back at their idle count exactly (the server's own classes). */
  readonly exact: readonly string[];
  /**
   * References a collection may hold beyond its idle state: what the server keeps by design
   * after everyone left (e.g. the in-memory store's newest rooms).
   */
  readonly collectionSlack: number;
  /** Objects of these kinds (constructor names) the server keeps by design after the load. */
  readonly kindSlack?: Readonly<Record<string, number>>;
}

/** Kinds never judged: plain objects and arrays are also the stored messages, kept by design. */
const UNJUDGED = new Set(["object:Object", "object:Array"]);
/** Every other kind may end this many objects above idle, plus 2% of its growth under load. */
const KIND_SLACK = 5;
const KIND_SLACK_SHARE = 0.02;

/**
 * Whether a heap returned to its idle state after a load went away: the constructors that grew
 * and stayed (beyond a small slack; none at all for `exact` ones), and the Maps and Sets that
 * hold more than `collectionSlack` references more than before the load.
 *
 * @example
 * ```ts
 * const { retained, grownCollections } = compareToIdle(idle, loaded, end,
 *   { exact: ["Room", "Client"], collectionSlack: 160 });
 * ```
 */
export function compareToIdle(
  idle: HeapSnapshotSummary,
  loaded: HeapSnapshotSummary | undefined,
  end: HeapSnapshotSummary,
  options: IdleComparison,
): {
  retained: ({ key: string } & KindCounts)[];
  grownCollections: ReturnType<typeof collectionGrowth>;
} {
  const exact = new Set(options.exact.map((name) => `object:${name}`));
  const retained = [];
  for (const [key, group] of end.groups) {
    if (!key.startsWith("object:") || key.startsWith("object:system / ") || UNJUDGED.has(key)) {
      continue;
    }
    const counts = {
      idle: idle.groups.get(key)?.count ?? 0,
      loaded: loaded?.groups.get(key)?.count ?? 0,
      end: group.count,
    };
    const slack = exact.has(key) ? 0 : KIND_SLACK + (options.kindSlack?.[key.slice(7)] ?? 0) +
      Math.floor(KIND_SLACK_SHARE * Math.max(0, counts.loaded - counts.idle));
    if (counts.end - counts.idle > slack) retained.push({ key, ...counts });
  }
  return {
    retained: retained.sort((a, b) => (b.end - b.idle) - (a.end - a.idle)),
    grownCollections: collectionGrowth(idle.collections, end.collections)
      .filter((row) => row.after - row.before > options.collectionSlack),
  };
}
