/**
 * The HTTP surface: which path does what.
 *
 * @module
 */
import type { Hub } from "../chat/hub.ts";
import type { Logger } from "../log/logger.ts";
import type { MessageRepository } from "../storage/repository.ts";
import clientHtml from "../static/client.html" with { type: "text" };
import { jsonError, jsonResponse } from "./http_response.ts";
import type { OpenSockets } from "./open_sockets.ts";
import { BadRequestError, parseChatParams, parseHistoryParams } from "./request_params.ts";
import { attachChatSocket } from "./websocket_transport.ts";

/** What the routes need. */
export interface RouteDeps {
  readonly hub: Hub;
  readonly sockets: OpenSockets;
  readonly repository: MessageRepository;
  readonly logger: Logger;
  readonly maxContentChars: number;
  readonly idleTimeoutMs: number;
  /** Whether the server can store messages right now, and why not. */
  readonly readiness: () => Promise<Readiness>;
  /** True once shutdown began: new sockets are refused with 503. */
  readonly draining: () => boolean;
}

/** The answer of `/readyz`. */
export interface Readiness {
  readonly ready: boolean;
  /** Which store is in use. */
  readonly store: string;
  /** Messages waiting to be stored. */
  readonly queued: number;
  /** Why the server is not ready; absent when it is. */
  readonly reason?: string;
}

type Handler = (request: Request, url: URL) => Response | Promise<Response>;

/**
 * Builds the request handler for `Deno.serve`.
 *
 * @example
 * ```ts
 * Deno.serve({ port: 8080 }, createHandler(deps));
 * ```
 */
export function createHandler(deps: RouteDeps): (request: Request) => Promise<Response> {
  const routes: Record<string, Handler> = {
    "/chat": (request, url) => chat(request, url, deps),
    "/history": (_request, url) => history(url, deps),
    "/healthz": () => jsonResponse({ status: "ok" }),
    "/readyz": async () => {
      const { ready, ...details } = await deps.readiness();
      return jsonResponse(
        { status: ready ? "ready" : "unavailable", ...details },
        ready ? 200 : 503,
      );
    },
    "/client.html": () =>
      new Response(clientHtml, { headers: { "content-type": "text/html; charset=utf-8" } }),
    "/": (_request, url) => Response.redirect(new URL("/client.html", url), 302),
  };
  return async (request) => {
    const url = new URL(request.url);
    const route = routes[url.pathname];
    if (!route) return jsonError(404, "not_found", `no route for ${url.pathname}`);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return jsonError(405, "method_not_allowed", "only GET is supported");
    }
    try {
      return await route(request, url);
    } catch (error) {
      if (error instanceof BadRequestError) return jsonError(400, error.code, error.message);
      deps.logger.error("http.failed", {
        path: url.pathname,
        error: error instanceof Error ? error.message : String(error),
      });
      return jsonError(500, "internal", "the server failed to answer this request");
    }
  };
}

function chat(request: Request, url: URL, deps: RouteDeps): Response {
  const params = parseChatParams(url.searchParams);
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return jsonError(426, "upgrade_required", "/chat needs a WebSocket upgrade");
  }
  if (deps.draining()) return jsonError(503, "shutting_down", "the server is shutting down");
  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: Math.ceil(deps.idleTimeoutMs / 1000),
  });
  deps.sockets.add(socket);
  attachChatSocket(socket, params, { hub: deps.hub, maxContentChars: deps.maxContentChars });
  return response;
}

async function history(url: URL, deps: RouteDeps): Promise<Response> {
  const { room, ...query } = parseHistoryParams(url.searchParams);
  return jsonResponse(await deps.repository.history(room, query));
}
