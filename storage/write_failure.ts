/**
 * What a failed batch write calls for: retry it as is, or split it because a message in it is
 * at fault.
 *
 * @module
 */
import { StoreTimeoutError } from "./postgres_store.ts";

/**
 * - `retry`: no message is at fault. The store is unreachable or busy (a timeout, a cut
 *   connection, SQLSTATE class 08, 40, 53, 57, 58, 55P03), or the store itself is wrong (class
 *   42: a table or column missing, a privilege revoked, a bug in our SQL; class 28 and 3D: the
 *   role or database is gone). Every batch would fail alike, so splitting would throw all of
 *   them away: the batch waits for the store to recover or be fixed, and `/readyz` says so.
 * - `split`: the batch's contents are at fault, and retrying the same batch cannot help: class
 *   22 (a value PostgreSQL refuses, such as a NUL character, 22021), 23 (a constraint), 54 (a
 *   value or a batch over a limit), or postgres.js refusing a value before sending it. A smaller
 *   batch stores the good messages and isolates the bad one.
 * - `unknown`: anything else. Retried, but a batch that keeps failing so is split in the end, so
 *   that an unforeseen poison message cannot block its worker forever.
 */
export type WriteRemedy = "retry" | "split" | "unknown";

/** SQLSTATE classes (first two characters) of failures that call for a retry. */
const RETRY_CLASSES = new Set(["08", "28", "3D", "40", "42", "53", "57", "58"]);
/** SQLSTATE classes of failures caused by a message of the batch. */
const SPLIT_CLASSES = new Set(["22", "23", "54"]);
/** Single SQLSTATEs that call for a retry outside a class that does. */
const RETRY_STATES = new Set(["55P03"]); // lock_not_available
/**
 * Codes of connection failures: postgres.js's own, Node's socket errors (postgres.js runs on
 * `node:net`), and Deno's error class names for the same.
 */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EADDRNOTAVAIL",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ConnectionRefused",
  "ConnectionReset",
  "ConnectionAborted",
  "BrokenPipe",
  "NotConnected",
  "TimedOut",
]);
/** postgres.js refusing a batch before sending it: a value it cannot bind, too many of them. */
const SPLIT_CODES = new Set(["UNDEFINED_VALUE", "MAX_PARAMETERS_EXCEEDED"]);
const SQLSTATE = /^[0-9A-Z]{5}$/;

/**
 * Tells what a failed `saveBatch` calls for (see {@linkcode WriteRemedy}), from the error's
 * class and `code` only, never its message.
 *
 * @example
 * ```ts
 * writeRemedy(Object.assign(new Error("invalid byte sequence"), { code: "22021" })); // "split"
 * writeRemedy(new StoreTimeoutError("saveBatch", 5_000)); // "retry"
 * ```
 * @throws never.
 */
export function writeRemedy(error: unknown): WriteRemedy {
  if (error instanceof StoreTimeoutError) return "retry";
  const code = codeOf(error);
  if (code === undefined) return "unknown";
  if (CONNECTION_CODES.has(code) || RETRY_STATES.has(code)) return "retry";
  if (SPLIT_CODES.has(code)) return "split";
  if (!SQLSTATE.test(code)) return "unknown";
  const sqlClass = code.slice(0, 2);
  if (RETRY_CLASSES.has(sqlClass)) return "retry";
  if (SPLIT_CLASSES.has(sqlClass)) return "split";
  return "unknown";
}

/** A string `code` (PostgreSQL's SQLSTATE, a socket error), else the class name of an Error. */
function codeOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  if ("code" in error && typeof error.code === "string") return error.code;
  return error instanceof Error ? error.name : undefined;
}
