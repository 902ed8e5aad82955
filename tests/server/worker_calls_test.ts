import assert from "node:assert/strict";
import { PendingCalls, type QueryMessage } from "../../server/worker_calls.ts";

Deno.test("PendingCalls.ask() resolves with its reply, and fails alone when none comes in time", async () => {
  const calls = new PendingCalls();
  const posted: QueryMessage[] = [];
  const answered = calls.ask((message) => posted.push(message), "unstored", 1_000);
  const unanswered = calls.ask((message) => posted.push(message), "metrics", 10);
  assert.deepEqual(posted.map((message) => message.query), ["unstored", "metrics"]);
  await assert.rejects(unanswered, { name: "CallFailedError", code: "call_failed" });
  // A late reply to the call that gave up is dropped; the other call gets its own.
  calls.settle({ type: "reply", id: posted[1]?.id ?? -1, value: "late" });
  calls.settle({ type: "reply", id: posted[0]?.id ?? -1, value: 7 });
  assert.equal(await answered, 7);
});

Deno.test("PendingCalls.abandon() fails every call still waiting", async () => {
  const calls = new PendingCalls();
  const waiting = calls.ask(() => {}, "readiness", 1_000);
  calls.abandon("worker 1 crashed");
  await assert.rejects(waiting, /readiness: worker 1 crashed/);
});
