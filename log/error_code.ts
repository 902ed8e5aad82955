/** The stable part of an error, for logs and span attributes. @module */

/**
 * An error's `code` when it has a string one (PostgreSQL's SQLSTATE, our named errors), else its
 * class name. Never the message: database errors may quote query parameters and row contents.
 */
export function errorCode(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  return "code" in error && typeof error.code === "string" ? error.code : error.name;
}
