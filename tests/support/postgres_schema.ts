/** A fresh PostgreSQL schema per test, dropped afterwards, so tests never share rows. */
import postgres from "postgres";

/** A random schema name that is a valid unquoted identifier. */
export function freshSchemaName(prefix = "test"): string {
  return `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

/** Drops a schema made by a test, with everything in it. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`drop schema if exists ${sql(schema)} cascade`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Runs one query on its own short-lived connection (for assertions on rows). */
export async function query<T extends readonly postgres.MaybeRow[]>(
  url: string,
  schema: string,
  run: (sql: postgres.Sql) => Promise<T>,
): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { search_path: schema } });
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A copy of `url` that goes through 127.0.0.1:`port` instead (a proxy in front of it). */
export function viaPort(url: string, port: number): string {
  const rewritten = new URL(url);
  rewritten.hostname = "127.0.0.1";
  rewritten.port = String(port);
  return rewritten.toString();
}

/** Where `url` points, for a proxy to forward to. */
export function targetOf(url: string): { hostname: string; port: number } {
  const parsed = new URL(url);
  return { hostname: parsed.hostname || "127.0.0.1", port: Number(parsed.port || 5432) };
}

/** Creates a scratch database (for a child server, which uses the default schema). */
export async function createDatabase(
  url: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = freshSchemaName("test_db");
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin`create database ${admin(name)}`;
  } finally {
    await admin.end({ timeout: 5 });
  }
  const scratch = new URL(url);
  scratch.pathname = `/${name}`;
  return {
    url: scratch.toString(),
    drop: async () => {
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await sql`drop database if exists ${sql(name)} with (force)`;
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  };
}
