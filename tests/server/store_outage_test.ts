import assert from "node:assert/strict";
import type { ChatMessage, HistoryQuery } from "../../chat/message.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { startTestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

/** A memory store whose reads and writes can be made to fail, as during a database outage. */
class FlakyStore extends MemoryStore {
  override readonly kind = "flaky";
  readsFail = false;
  savesFail = false;
  reads = 0;

  constructor() {
    super({ maxPerRoom: 10_000, maxRooms: 100 });
  }

  override saveBatch(messages: readonly ChatMessage[]): Promise<void> {
    if (this.savesFail) return Promise.reject(new Error("connection refused"));
    return super.saveBatch(messages);
  }

  override history(room: string, query: HistoryQuery): Promise<ChatMessage[]> {
    this.reads++;
    if (this.readsFail) return Promise.reject(new Error("connection refused"));
    return super.history(room, query);
  }
}

async function sendAll(socket: TestSocket, contents: string[]): Promise<void> {
  for (const content of contents) socket.send(content);
  await socket.collect("ack", contents.length);
}

Deno.test("Store reads failing: /history serves what is held (marked incomplete), else 503 with Retry-After", async () => {
  const store = new FlakyStore();
  const app = startTestServer({}, store);
  try {
    const ann = await TestSocket.open(app.chatUrl("r", "ann"));
    await ann.nextOfType("welcome");
    await sendAll(ann, ["stored 1", "stored 2"]);
    // Stored ones first, then the outage: the rest stays held in memory.
    await waitFor("two stored", async () => (await storedIn(store)).length === 2 || undefined);
    store.savesFail = true;
    store.readsFail = true;
    await sendAll(ann, ["held 3", "held 4"]);

    const page = await fetch(app.url("/history?r=r&limit=10"));
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("x-chat-incomplete"), "true");
    const items = await page.json();
    assert.deepEqual(items.map((item: { content: string }) => item.content), ["held 3", "held 4"]);

    const older = await fetch(app.url("/history?r=r&before_seq=3&limit=10"));
    assert.equal(older.status, 503);
    assert.equal(older.headers.get("retry-after"), "5");
    assert.equal((await older.json()).error.code, "store_unavailable");

    const elsewhere = await fetch(app.url("/history?r=quiet&limit=10"));
    assert.equal(elsewhere.status, 503);
    await elsewhere.body?.cancel();

    // The store comes back: the whole window, complete, nothing twice.
    store.readsFail = false;
    store.savesFail = false;
    const healed = await fetch(app.url("/history?r=r&limit=10"));
    assert.equal(healed.headers.get("x-chat-incomplete"), null);
    const all = await healed.json();
    assert.deepEqual(all.map((item: { seq: number }) => item.seq), [1, 2, 3, 4]);
    await ann.close();
  } finally {
    await app.close();
  }
});

/** What the store itself holds for room `r`, read past the failing path. */
function storedIn(store: FlakyStore): Promise<ChatMessage[]> {
  return MemoryStore.prototype.history.call(store, "r", { afterSeq: 0, limit: 100 });
}

Deno.test("Store reads failing: a resume answers at once from memory, marked incomplete, and the room goes on", async () => {
  const store = new FlakyStore();
  const app = startTestServer({ RESUME_LIMIT: "2" }, store);
  try {
    const ann = await TestSocket.open(app.chatUrl("r", "ann"));
    const { epoch } = await ann.nextOfType("welcome");
    await sendAll(ann, ["m1", "m2", "m3", "m4", "m5"]);
    store.readsFail = true;
    // The room keeps the newest 2: a resume after seq 1 needs 2..5, which only the store has.
    const bob = await TestSocket.open(
      app.url(`/chat?r=r&u=bob&since_seq=1&epoch=${epoch}`).replace("http", "ws"),
    );
    await bob.nextOfType("welcome");
    const resume = await bob.nextOfType("resume");
    assert.equal(resume.complete, false);
    assert.equal(resume.reason, "unavailable");
    ann.send("live");
    assert.equal((await bob.nextOfType("message")).content, "live");
    await Promise.all([ann.close(), bob.close()]);
  } finally {
    await app.close();
  }
});

Deno.test("/history is rate limited per address: 429 with Retry-After past HISTORY_RATE_LIMIT", async () => {
  const app = startTestServer({ HISTORY_RATE_LIMIT: "2" });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await fetch(app.url("/history?r=r"));
      statuses.push(response.status);
      if (response.status === 429) {
        assert.equal(response.headers.get("retry-after"), "1");
        assert.equal((await response.json()).error.code, "rate_limited");
      } else await response.body?.cancel();
    }
    // A burst of twice the rate, then refusals (the bucket gains 2 a second).
    assert.deepEqual(statuses.slice(0, 4), [200, 200, 200, 200]);
    assert.ok(statuses.slice(4).includes(429), statuses.join(","));
  } finally {
    await app.close();
  }
});
