/**
 * Identity and room permissions from signed tokens (HS256 JWTs issued by the embedding app).
 *
 * @module
 */
import { errors as joseErrors, jwtVerify } from "jose";
import { BadRequestError, parseUserName } from "./request_params.ts";

/** Why a request may not proceed: 401 (who are you?) or 403 (not here). */
export class AuthError extends Error {
  /** HTTP status to answer with. */
  readonly status: 401 | 403;
  /** Stable code for the JSON error body. */
  readonly code: string;

  constructor(status: 401 | 403, code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthError";
    this.status = status;
    this.code = code;
  }
}

/** Who a verified token says the caller is, and where they may go. */
export interface Identity {
  /** User name from `sub`; it overrides `u`. */
  readonly user: string;
  /** Room patterns from `rooms`: exact names, or a trailing `*` as prefix wildcard. */
  readonly rooms: readonly string[];
  /** When the token expires, in ms since the epoch. */
  readonly expiresAtMs: number;
  /** Scopes from `scope` (space-separated, OAuth style, or a list): `api` opens the server API. */
  readonly scopes: readonly string[];
  /** Room patterns from `mod`, like `rooms`: the rooms the user moderates (deletes any message). */
  readonly moderates: readonly string[];
}

/**
 * Verifies tokens with one shared secret. Only HS256 is accepted, so `alg: none` and algorithm
 * confusion are refused by construction; `exp` is required.
 *
 * @example
 * ```ts
 * const verifier = new TokenVerifier(secret);
 * const identity = await verifier.verify(token); // throws AuthError 401 when invalid
 * ```
 */
export class TokenVerifier {
  readonly #key: Uint8Array;

  constructor(secret: string) {
    this.#key = new TextEncoder().encode(secret);
  }

  /**
   * @throws {AuthError} 401 `token_missing`, `token_expired` or `token_invalid`.
   */
  async verify(token: string | undefined): Promise<Identity> {
    if (!token) {
      throw new AuthError(401, "token_missing", "a token is required (?token= or Bearer)");
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.#key, {
        algorithms: ["HS256"],
        requiredClaims: ["sub", "exp"],
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) {
        throw new AuthError(401, "token_expired", "the token has expired", { cause: error });
      }
      if (error instanceof joseErrors.JOSEError) {
        throw new AuthError(401, "token_invalid", "the token is not valid", { cause: error });
      }
      throw error;
    }
    const rooms = payload.rooms;
    if (!Array.isArray(rooms) || !rooms.every((room) => typeof room === "string")) {
      throw new AuthError(401, "token_invalid", 'the token needs "rooms", a list of room patterns');
    }
    let user: string;
    try {
      user = parseUserName(payload.sub ?? null);
    } catch (error) {
      if (!(error instanceof BadRequestError)) throw error;
      throw new AuthError(401, "token_invalid", `the token's sub is not a valid user name`);
    }
    // Room names are compared in NFC, as requests' names are normalised.
    const patterns = rooms.map((room) => room.normalize("NFC"));
    const mod = payload.mod ?? [];
    if (!Array.isArray(mod) || !mod.every((room) => typeof room === "string")) {
      throw new AuthError(
        401,
        "token_invalid",
        'the token\'s "mod" must be a list of room patterns',
      );
    }
    const scope = payload.scope;
    const scopes = typeof scope === "string"
      ? scope.split(" ").filter((each) => each !== "")
      : Array.isArray(scope)
      ? scope.filter((each): each is string => typeof each === "string")
      : [];
    return {
      user,
      rooms: Object.freeze(patterns),
      expiresAtMs: (payload.exp ?? 0) * 1000,
      scopes: Object.freeze(scopes),
      moderates: Object.freeze(mod.map((room) => room.normalize("NFC"))),
    };
  }
}

/** Whether the identity's `mod` patterns name `room`. */
export function moderates(identity: Identity | undefined, room: string): boolean {
  return identity?.moderates.some((pattern) => roomMatches(pattern, room)) ?? false;
}

/**
 * @throws {AuthError} 403 `room_forbidden` unless one of the identity's patterns matches.
 */
export function assertRoomAllowed(identity: Identity, room: string): void {
  if (!identity.rooms.some((pattern) => roomMatches(pattern, room))) {
    throw new AuthError(403, "room_forbidden", `the token does not allow room ${room}`);
  }
}

/** `*` matches every room, `team-*` every room starting with `team-`, anything else itself. */
export function roomMatches(pattern: string, room: string): boolean {
  if (pattern.endsWith("*")) return room.startsWith(pattern.slice(0, -1));
  return pattern === room;
}

/** The token of a request: `Authorization: Bearer` first, else `?token=` (browsers' sockets). */
export function tokenOf(request: Request, url: URL): string | undefined {
  const header = request.headers.get("authorization");
  const bearer = header?.match(/^Bearer\s+(\S+)$/i)?.[1];
  return bearer ?? url.searchParams.get("token") ?? undefined;
}

/**
 * Checks a request's token and room in one step; open mode (`verifier` undefined) allows all.
 *
 * @throws {AuthError} 401 or 403.
 */
export async function authorize(
  verifier: TokenVerifier | undefined,
  target: { readonly request: Request; readonly url: URL; readonly room: string },
): Promise<Identity | undefined> {
  if (!verifier) return undefined;
  const identity = await verifier.verify(tokenOf(target.request, target.url));
  assertRoomAllowed(identity, target.room);
  return identity;
}
