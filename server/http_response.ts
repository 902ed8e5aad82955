/**
 * JSON responses, so every answer of the HTTP API has one shape.
 *
 * @module
 */

/** A JSON response with the given status. */
export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/** The error shape of the HTTP API: `{"error":{"code","message"}}`. */
export function jsonError(status: number, code: string, message: string): Response {
  return jsonResponse({ error: { code, message } }, status);
}
