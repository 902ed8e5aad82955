/**
 * `GET /chat`: everything checked before a socket is upgraded, in order: parameters (400),
 * origin (403), token and room (401/403), upgrade (426), shutdown (503), connection limits
 * (503/429).
 *
 * @module
 */
import type { Hub } from "../chat/hub.ts";
import type { Logger } from "../log/logger.ts";
import { authorize, moderates, type TokenVerifier } from "./auth.ts";
import type { ReadPosition } from "../chat/client.ts";
import type { ConnectionLimits } from "./connection_limits.ts";
import { jsonError } from "./http_response.ts";
import type { OpenSockets } from "./open_sockets.ts";
import type { OriginPolicy } from "./origin_policy.ts";
import { BadRequestError, parseChatParams, type ProtocolLevel } from "./request_params.ts";
import { attachChatSocket, type SocketPolicy } from "./websocket_transport.ts";

/** What the chat route needs. */
export interface ChatRoute {
  readonly hub: Hub;
  readonly sockets: OpenSockets;
  readonly limits: ConnectionLimits;
  readonly origins: OriginPolicy;
  readonly verifier: TokenVerifier | undefined;
  readonly policy: SocketPolicy;
  /** The protocol level of a connection that does not ask for one (`DEFAULT_PROTOCOL`). */
  readonly defaultLevel: ProtocolLevel;
  readonly idleTimeoutMs: number;
  /** True once shutdown began: new sockets are refused with 503. */
  readonly draining: () => boolean;
  /**
   * The user's read position in the room and its unread count, for `welcome`; `undefined` when
   * the store cannot say in time (the welcome then leaves them out).
   */
  readonly readPosition?: (user: string, room: string) => Promise<ReadPosition | undefined>;
  /** Counts an upgrade refused with an error code. */
  readonly refused: (code: string) => void;
  readonly logger: Logger;
}

function refuse(route: ChatRoute, status: number, code: string, message: string): Response {
  route.refused(code);
  return jsonError(status, code, message);
}

/**
 * Answers an upgrade request with a socket joined to its room, or with a JSON error.
 *
 * @throws {BadRequestError} for bad parameters; {@linkcode AuthError} for a bad token or room.
 */
export async function openChatSocket(
  request: Request,
  url: URL,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  route: ChatRoute,
): Promise<Response> {
  const params = parseChatParams(url.searchParams, route.defaultLevel);
  if (!route.origins.allows(request.headers.get("origin"), request.headers.get("host"))) {
    return refuse(route, 403, "origin_forbidden", "this origin may not open chat sockets");
  }
  // Before the upgrade check: a page whose socket was refused asks with a plain GET, and must
  // learn that its token expired (401) rather than that it did not upgrade (426).
  const identity = await authorize(route.verifier, { request, url, room: params.room });
  const user = identity?.user ?? params.user;
  if (user === undefined) throw new BadRequestError("invalid_user", "u is required");
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return refuse(route, 426, "upgrade_required", "/chat needs a WebSocket upgrade");
  }
  if (route.draining()) return refuse(route, 503, "shutting_down", "the server is shutting down");

  const ip = info.remoteAddr.hostname;
  const admission = route.limits.admit(ip);
  if (admission === "too_many_connections") {
    return refuse(route, 503, admission, "the server has as many connections as it takes");
  }
  if (admission === "too_many_from_ip") {
    return refuse(route, 429, admission, "too many connections from this address");
  }
  let upgraded;
  try {
    upgraded = Deno.upgradeWebSocket(request, {
      idleTimeout: Math.ceil(route.idleTimeoutMs / 1000),
    });
  } catch (error) {
    route.limits.release(ip);
    if (error instanceof TypeError) {
      throw new BadRequestError("invalid_upgrade", "the WebSocket upgrade request is malformed");
    }
    throw error;
  }
  const { socket, response } = upgraded;
  route.sockets.add(socket, ip);
  // Read while the handshake completes: the welcome waits for the socket to open anyway.
  const readPosition = params.level === 0
    ? undefined
    : await route.readPosition?.(user, params.room);
  attachChatSocket(
    socket,
    {
      room: params.room,
      user,
      cursor: params.cursor,
      level: params.level,
      ...(params.batch && { batch: true }),
      moderator: moderates(identity, params.room),
      ...(readPosition && { readPosition }),
    },
    {
      hub: route.hub,
      policy: route.policy,
      expiresAtMs: identity?.expiresAtMs,
      closed: route.sockets,
      logger: route.logger,
      remoteAddress: ip,
    },
  );
  return response;
}
