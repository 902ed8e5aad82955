/**
 * chat.d.ts is hand-written: these checks fail (at `deno check`, or here) when it and chat.js
 * part ways. chat.js takes its JSDoc types from chat.d.ts, and its `Room` class is checked to
 * implement the declared `Room`; what is left to compare is the exports themselves.
 */
import assert from "node:assert/strict";
import type * as Declared from "../../static/sdk/chat.d.ts";
import * as Implemented from "../../static/sdk/chat.js";

/** `true` only when A and B are assignable both ways. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const exportNames: Same<keyof typeof Implemented, keyof typeof Declared> = true;
const connectSignature: Same<typeof Implemented.connect, typeof Declared.connect> = true;
const errorShape: Same<InstanceType<typeof Implemented.ChatError>, Declared.ChatError> = true;
const errorConstructor: Same<
  ConstructorParameters<typeof Implemented.ChatError>,
  ConstructorParameters<typeof Declared.ChatError>
> = true;

Deno.test("chat.js exports what chat.d.ts declares, with the same types", () => {
  assert.deepEqual(Object.keys(Implemented).sort(), ["ChatError", "connect"]);
  assert.ok(exportNames && connectSignature && errorShape && errorConstructor);
  const error = new Implemented.ChatError("room_busy", "busy", { retryable: true, status: 503 });
  assert.ok(error instanceof Error);
  assert.deepEqual(
    [error.name, error.code, error.status, error.retryable, error.retryAfterMs, error.clientId],
    ["ChatError", "room_busy", 503, true, 0, undefined],
  );
});
