/** A PostgresStore in a fresh schema per test, for the PostgreSQL store's test files. */
import { silentLogger } from "../../log/logger.ts";
import { PostgresStore, type PostgresStoreOptions } from "../../storage/postgres_store.ts";
import { dropSchema, freshSchemaName } from "../support/postgres_schema.ts";
import { serviceGate } from "../support/services.ts";
import { SANITIZERS } from "./repository_contract.ts";

const database = serviceGate("TEST_DATABASE_URL", "PostgreSQL");
/** TEST_DATABASE_URL, or "" when the PostgreSQL tests are ignored. */
export const databaseUrl = database.url ?? "";
/** Pass as `ignore`: true when TEST_DATABASE_URL is unset. */
export const ignore = database.ignore;

/** Connects a store to `schema` (created and migrated if missing). */
export async function openStore(schema: string, options: Partial<PostgresStoreOptions> = {}) {
  const store = await PostgresStore.connect(databaseUrl, {
    connectTimeoutMs: 5_000,
    batchTimeoutMs: 5_000,
    schema,
    logger: silentLogger,
    ...options,
  });
  return { store, dispose: async () => await store.close() };
}

/** Registers a test of `fn` on a store in a fresh schema; closes it and drops the schema after. */
export function storeTest(
  name: string,
  fn: (store: PostgresStore, schema: string) => Promise<void>,
  options: Partial<PostgresStoreOptions> = {},
): void {
  Deno.test({
    name,
    ignore,
    ...SANITIZERS,
    async fn() {
      const schema = freshSchemaName("test_store");
      try {
        const { store, dispose } = await openStore(schema, options);
        try {
          await fn(store, schema);
        } finally {
          await dispose();
        }
      } finally {
        await dropSchema(databaseUrl, schema);
      }
    },
  });
}
