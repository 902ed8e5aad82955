/**
 * The client SDK (static/sdk/), served as `/sdk/chat.js` with its declarations `/sdk/chat.d.ts`,
 * embedded through the module graph (so `deno compile` carries them too).
 *
 * @module
 */
import chatJs from "../static/sdk/chat.js" with { type: "text" };
import chatDts from "../static/sdk/chat.d.ts" with { type: "text" };

/**
 * Short enough that a server upgrade reaches every client within minutes; the SDK speaks to the
 * server through the versioned protocol (`v`), so an older cached copy keeps working meanwhile.
 */
const CACHE_CONTROL = "public, max-age=300";

interface Asset {
  readonly body: Uint8Array<ArrayBuffer>;
  readonly headers: Readonly<Record<string, string>>;
}

const encoder = new TextEncoder();

const ASSETS: ReadonlyMap<string, Asset> = new Map<string, Asset>([
  ["/sdk/chat.js", {
    body: encoder.encode(chatJs),
    headers: {
      "content-type": "text/javascript; charset=utf-8",
      // Deno takes the module's types from here (relative to the module's URL).
      "x-typescript-types": "./chat.d.ts",
    },
  }],
  ["/sdk/chat.d.ts", {
    body: encoder.encode(chatDts),
    headers: { "content-type": "application/typescript; charset=utf-8" },
  }],
]);

/**
 * The answer for an SDK file, or `undefined` when `pathname` names none. Pages of any origin
 * may import the module (module scripts need CORS): it holds no secret, and the server decides
 * what its sockets and `/history` accept.
 *
 * @example
 * ```ts
 * const asset = sdkAsset(url.pathname);
 * if (asset) return asset;
 * ```
 * @throws never.
 */
export function sdkAsset(pathname: string): Response | undefined {
  const asset = ASSETS.get(pathname);
  if (!asset) return undefined;
  return new Response(asset.body, {
    headers: {
      ...asset.headers,
      "cache-control": CACHE_CONTROL,
      "access-control-allow-origin": "*",
    },
  });
}
