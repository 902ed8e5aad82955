import assert from "node:assert/strict";
import { StoreTimeoutError } from "../../storage/postgres_store.ts";
import { writeRemedy } from "../../storage/write_failure.ts";

/** An error as postgres.js throws it: `code` is the SQLSTATE or its own code. */
function coded(code: string): Error {
  return Object.assign(new Error(`failed: ${code}`), { code });
}

Deno.test("writeRemedy() retries outages, timeouts and faults of the store itself", () => {
  const retried = [
    new StoreTimeoutError("saveBatch", 5_000),
    coded("ECONNREFUSED"),
    coded("ECONNRESET"),
    coded("EPIPE"),
    coded("CONNECTION_CLOSED"),
    coded("CONNECTION_ENDED"),
    coded("CONNECT_TIMEOUT"),
    new Deno.errors.ConnectionRefused("refused"),
    new Deno.errors.ConnectionReset("reset"),
    coded("08006"), // connection_failure
    coded("40001"), // serialization_failure
    coded("40P01"), // deadlock_detected
    coded("53300"), // too_many_connections
    coded("57P01"), // admin_shutdown
    coded("57014"), // query_canceled
    coded("58030"), // io_error
    coded("55P03"), // lock_not_available
    coded("42P01"), // undefined_table: a schema fault, not a message's
    coded("42501"), // insufficient_privilege
    coded("28P01"), // invalid_password
    coded("3D000"), // invalid_catalog_name
  ];
  for (const error of retried) assert.equal(writeRemedy(error), "retry", String(error));
});

Deno.test("writeRemedy() splits a batch refused for a value or a constraint", () => {
  const split = [
    coded("22021"), // character_not_in_repertoire: a NUL in text
    coded("22P05"), // untranslatable_character
    coded("22001"), // string_data_right_truncation
    coded("22P02"), // invalid_text_representation
    coded("23502"), // not_null_violation
    coded("23514"), // check_violation
    coded("54000"), // program_limit_exceeded: an index row too large
    coded("UNDEFINED_VALUE"),
    coded("MAX_PARAMETERS_EXCEEDED"),
    { code: "22021", message: "a PostgresError-like object" },
  ];
  for (const error of split) assert.equal(writeRemedy(error), "split", JSON.stringify(error));
});

Deno.test("writeRemedy() does not know the rest", () => {
  const unknown = [
    new Error("something"),
    new TypeError("x is undefined"),
    coded("XX000"), // internal_error
    coded("0A000"), // feature_not_supported
    coded("EPERM"),
    coded("Error"),
    "a string",
    undefined,
    null,
    { code: 22021 },
  ];
  for (const error of unknown) assert.equal(writeRemedy(error), "unknown", String(error));
});
