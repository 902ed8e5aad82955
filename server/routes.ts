/**
 * The HTTP surface: which path does what.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { encodeMessage, historyItem } from "../chat/protocol.ts";
import type { MessageReactions } from "../chat/message.ts";
import {
  type HistoryPage,
  StoreUnavailableError,
  type WriteBehindLog,
} from "../storage/write_behind_log.ts";
import type { Logger } from "../log/logger.ts";
import { AuthError, authorize, roomMatches, tokenOf, type TokenVerifier } from "./auth.ts";
import { type ChatRoute, openChatSocket } from "./chat_route.ts";
import { jsonError, jsonResponse } from "./http_response.ts";
import type { ServerMetrics } from "./metrics.ts";
import {
  BadRequestError,
  parseHistoryParams,
  parseRoomsLimit,
  parseUserName,
} from "./request_params.ts";
import { withSecurityHeaders } from "./security_headers.ts";
import type { RequestRate } from "./request_rate.ts";
import type { ClientPage } from "./client_page.ts";
import type { CorsPolicy } from "./cors.ts";
import { sdkAsset } from "./sdk_assets.ts";
import { API_METHODS, type ApiDeps, apiRoute, handleApi } from "./api.ts";

/** What the routes need. */
export interface RouteDeps {
  readonly chat: ChatRoute;
  /** Stored messages and those queued to be stored, as one. */
  readonly log: Pick<WriteBehindLog, "historyPage" | "reactionsTo">;
  /** `/history` requests per client address (`HISTORY_RATE_LIMIT`). */
  readonly historyRate: RequestRate;
  /** The room's current epoch, if it has one (for the `X-Chat-Epoch` header of `/history`). */
  readonly epochOf: (room: string) => Promise<string | undefined>;
  readonly logger: Logger;
  /** Verifies tokens when `AUTH_SECRET` is set; `undefined` in open mode. */
  readonly verifier: TokenVerifier | undefined;
  /** Whether the server can store messages right now, and why not. */
  readonly readiness: () => Promise<Readiness>;
  readonly metrics: ServerMetrics;
  /** The exposition `/metrics` answers: this server's, or under `WORKERS` every worker's. */
  readonly scrape: () => Promise<string>;
  /**
   * The bearer token `/metrics` requires (`METRICS_TOKEN`). Unset: `/metrics` is open in open
   * mode and refused to everyone when `verifier` is set.
   */
  readonly metricsToken: string | undefined;
  /** Active rooms with their local member counts, largest first. */
  readonly activeRooms: () => { room: string; members: number }[];
  /** The browser client, built with the configured rules. */
  readonly page: ClientPage;
  /** Which other origins may read `/history` and `/api/*` (`ALLOWED_ORIGINS`). */
  readonly cors: CorsPolicy;
  /** The room of a `/history` request without `r` (level 0 clients meant `general`). */
  readonly historyDefaultRoom?: string;
  /** The server API (`/api/*`). */
  readonly api: ApiDeps;
  /** A user's read positions with its unread counts (`GET /me/rooms`). */
  readonly unread: (user: string) => Promise<UnreadRoom[]>;
}

/** One room of `GET /me/rooms`. */
export interface UnreadRoom {
  readonly room: string;
  readonly unread: number;
  readonly read_seq: number;
  readonly last_seq: number;
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
  /** `off` (one instance), `ok`, or `degraded` (Redis out of reach: local rooms only). */
  readonly cluster: string;
  /** Under `WORKERS` above 1: each worker's own readiness (the above is all of them). */
  readonly workers?: readonly WorkerReadiness[];
}

/** One worker's part of {@linkcode Readiness}. */
export interface WorkerReadiness {
  readonly worker: number;
  readonly status: "ready" | "unavailable";
  readonly queued: number;
  readonly cluster: string;
  readonly reason?: string;
}

type Handler = (
  request: Request,
  url: URL,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/**
 * Builds the request handler for `Deno.serve`.
 *
 * @example
 * ```ts
 * Deno.serve({ port: 8080 }, createHandler(deps));
 * ```
 */
export function createHandler(
  deps: RouteDeps,
): (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response> {
  const metricsRefusal = metricsGuard(deps);
  const routes: Record<string, Handler> = {
    "/chat": (request, url, info) => openChatSocket(request, url, info, deps.chat),
    "/history": (request, url, info) => history(request, url, info, deps),
    "/healthz": () => jsonResponse({ status: "ok" }),
    "/readyz": async () => {
      const { ready, ...details } = await deps.readiness();
      const body = { status: ready ? "ready" : "unavailable", ...details };
      return jsonResponse(body, ready ? 200 : 503);
    },
    "/rooms": (request, url) => rooms(request, url, deps),
    "/me/rooms": async (request, url) => {
      // The token's user with AUTH_SECRET; in open mode, whoever `u` names (as for /chat).
      const user = deps.verifier
        ? (await deps.verifier.verify(tokenOf(request, url))).user
        : parseUserName(url.searchParams.get("u"));
      return jsonResponse(await deps.unread(user));
    },
    "/metrics": async (request) =>
      metricsRefusal(request) ?? new Response(await deps.scrape(), {
        headers: { "content-type": deps.metrics.contentType },
      }),
    "/client.html": () => new Response(deps.page.html, { headers: deps.page.headers }),
    "/sdk/chat.js": (_request, url) => sdkAsset(url.pathname) ?? notFound(url),
    "/sdk/chat.d.ts": (_request, url) => sdkAsset(url.pathname) ?? notFound(url),
    // Not Response.redirect(): its headers are immutable, and security headers go on every answer.
    "/": (_request, url) =>
      new Response(null, {
        status: 302,
        // Relative, so it stays right behind a TLS-terminating proxy.
        headers: { location: `/client.html${url.search}` },
      }),
  };
  return async (request, info) => {
    const url = new URL(request.url);
    return withSecurityHeaders(await route(routes, request, url, info, deps));
  };
}

function notFound(url: URL): Response {
  return jsonError(404, "not_found", `no route for ${url.pathname}`);
}

/** Paths other origins may read, given CORS, and the methods they take. */
function corsMethods(pathname: string): readonly string[] | undefined {
  // `/chat` too: a page of another origin whose socket was refused reads why with a plain GET.
  if (pathname === "/history" || pathname === "/chat" || pathname === "/me/rooms") {
    return ["GET", "HEAD"];
  }
  if (!pathname.startsWith("/api/")) return undefined;
  try {
    const route = apiRoute(pathname);
    return route && API_METHODS[route.kind];
  } catch {
    return undefined; // a bad path: its request is answered 400, without CORS
  }
}

async function route(
  routes: Record<string, Handler>,
  request: Request,
  url: URL,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  deps: RouteDeps,
): Promise<Response> {
  const methods = corsMethods(url.pathname);
  const origin = request.headers.get("origin");
  if (methods && request.method === "OPTIONS") return deps.cors.preflight(origin, methods);
  const response = await dispatch(routes, request, url, info, deps);
  if (methods) {
    for (const [name, value] of Object.entries(deps.cors.headersFor(origin))) {
      response.headers.set(name, value);
    }
  }
  return response;
}

async function dispatch(
  routes: Record<string, Handler>,
  request: Request,
  url: URL,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  deps: RouteDeps,
): Promise<Response> {
  const handler = url.pathname.startsWith("/api/")
    ? async () => await handleApi(request, url, deps.api) ?? notFound(url)
    : routes[url.pathname];
  if (!handler) return notFound(url);
  const isApi = url.pathname.startsWith("/api/");
  if (!isApi && request.method !== "GET" && request.method !== "HEAD") {
    return jsonError(405, "method_not_allowed", "only GET is supported");
  }
  try {
    return await handler(request, url, info);
  } catch (error) {
    if (error instanceof BadRequestError) {
      deps.metrics.requestRefused(error.code);
      return jsonError(400, error.code, error.message);
    }
    if (error instanceof AuthError) {
      deps.metrics.requestRefused(error.code);
      return jsonError(error.status, error.code, error.message);
    }
    if (error instanceof StoreUnavailableError) {
      deps.metrics.requestRefused(error.code);
      return retryLater(503, error.code, error.message, STORE_RETRY_AFTER_S);
    }
    deps.logger.error("http.failed", {
      path: url.pathname,
      error: error instanceof Error ? error.name : typeof error,
    });
    return jsonError(500, "internal", "the server failed to answer this request");
  }
}

async function history(
  request: Request,
  url: URL,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  deps: RouteDeps,
): Promise<Response> {
  if (!deps.historyRate.take(info.remoteAddr.hostname)) {
    deps.metrics.requestRefused(RATE_LIMITED);
    const message = "too many /history requests from this address; slow down";
    return retryLater(429, RATE_LIMITED, message, deps.historyRate.retryAfterSeconds);
  }
  const { room, ...query } = parseHistoryParams(url.searchParams, deps.historyDefaultRoom);
  const identity = await authorize(deps.verifier, { request, url, room });
  // Whose reactions are `me`: the token's user, or in open mode whoever `u` names.
  const reader = identity?.user ?? url.searchParams.get("u")?.normalize("NFC");
  // The epoch is read before the page: if it changes in between, the client's next resume with
  // this epoch is told so, rather than a page of the new epoch passing for the old one. A store
  // that cannot say leaves the header out; the page may still come from memory.
  const epoch = await deps.epochOf(room).catch(() => undefined);
  const page: HistoryPage = await deps.log.historyPage(room, query);
  const shown = page.messages.filter((item) => item.change === undefined && !item.deleted);
  let reactions: Map<number, MessageReactions> | undefined;
  let complete = page.complete;
  if (shown.length > 0) {
    try {
      reactions = await deps.log.reactionsTo(room, shown.map((message) => message.seq));
    } catch {
      complete = false; // the messages without their reactions, said to be incomplete
    }
  }
  const items = page.messages.map((item) =>
    item.change !== undefined
      ? JSON.parse(encodeMessage(item))
      : query.changes
      ? { type: "message", ...historyItem(item, reactions?.get(item.seq), reader) }
      : historyItem(item, reactions?.get(item.seq), reader)
  );
  const response = jsonResponse(items);
  if (epoch !== undefined) response.headers.set("x-chat-epoch", epoch);
  // The store could not be read: this is what the server holds in memory, not the whole window.
  if (!complete) response.headers.set("x-chat-incomplete", "true");
  return response;
}

/** How long a client should wait before asking `/history` again while the store is down. */
const STORE_RETRY_AFTER_S = 5;
const RATE_LIMITED = "rate_limited";

/** An error answer with `Retry-After`. */
function retryLater(status: number, code: string, message: string, seconds: number): Response {
  const response = jsonError(status, code, message);
  response.headers.set("retry-after", String(seconds));
  return response;
}

async function rooms(request: Request, url: URL, deps: RouteDeps): Promise<Response> {
  const limit = parseRoomsLimit(url.searchParams);
  const identity = deps.verifier && await deps.verifier.verify(tokenOf(request, url));
  const visible = deps.activeRooms().filter((entry) =>
    !identity || identity.rooms.some((pattern) => roomMatches(pattern, entry.room))
  );
  return jsonResponse(visible.slice(0, limit));
}

/**
 * Who may scrape `/metrics`: whoever presents `METRICS_TOKEN`. Without a token, everyone in open
 * mode and no one under `AUTH_SECRET`: the metrics describe the traffic that auth protects, and a
 * deployment that set a secret should not learn from an incident that its metrics were public.
 * Answers `undefined` to let a request through, else the 401 to send.
 */
function metricsGuard(deps: RouteDeps): (request: Request) => Response | undefined {
  const expected = deps.metricsToken === undefined ? undefined : sha256(deps.metricsToken);
  if (expected === undefined && deps.verifier === undefined) return () => undefined;
  const message = expected === undefined
    ? "/metrics is closed while AUTH_SECRET is set; set METRICS_TOKEN and send it as a Bearer token"
    : "/metrics needs Authorization: Bearer <METRICS_TOKEN>";
  return (request) => {
    // Header only, never ?token=: URLs end up in proxies' access logs.
    const presented = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
    // Digests have equal lengths, so the comparison's time tells nothing about the token, not
    // even its length.
    if (expected && presented !== undefined && timingSafeEqual(sha256(presented), expected)) {
      return undefined;
    }
    deps.metrics.requestRefused(METRICS_UNAUTHORIZED);
    const response = jsonError(401, METRICS_UNAUTHORIZED, message);
    response.headers.set("www-authenticate", "Bearer");
    return response;
  };
}

const METRICS_UNAUTHORIZED = "metrics_unauthorized";

function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}
