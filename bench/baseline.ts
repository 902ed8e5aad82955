/**
 * The smallest correct broadcast server for protocol v1's `/chat?r=&u=`: what the chat server is
 * measured against in `deno task bench:compare`. A Map of room -> Set of sockets and one
 * `JSON.stringify` per message; no hub, queues, persistence, limits, presence or resume.
 *
 * `message` frames carry the same fields as the real server's (type, id, room, sender, content,
 * timestamp); `id` is `crypto.randomUUID()` (v4, not time-ordered like the server's v7), the
 * timestamp is `new Date().toISOString()`. `welcome` is sent on join, like the real server.
 *
 * Env: PORT (default 8080, 0: any free port), HOST (default 0.0.0.0). Logs
 * `{"event":"server.listening","port":N}` on stdout once listening.
 *
 *     deno run --allow-net --allow-env bench/baseline.ts
 *
 * @module
 */

const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_USER_CHARS = 32;

const rooms = new Map<string, Map<WebSocket, string>>();

function contentOf(text: string): string | undefined {
  let content: unknown = text;
  if (text.trimStart().startsWith("{")) {
    try {
      const frame: unknown = JSON.parse(text);
      if (typeof frame === "object" && frame !== null && !Array.isArray(frame)) {
        content = (frame as Record<string, unknown>).content;
      }
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error; // not JSON: the text is the content
    }
  }
  if (typeof content !== "string") return undefined;
  const trimmed = content.trim();
  return trimmed.length > 0 ? trimmed : undefined;
}

function join(socket: WebSocket, room: string, user: string): void {
  socket.onopen = () => {
    let members = rooms.get(room);
    if (!members) rooms.set(room, members = new Map());
    members.set(socket, user);
    const names = [...new Set(members.values())].sort();
    socket.send(JSON.stringify({ type: "welcome", protocol: 1, room, user, members: names }));
  };
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") return;
    const content = contentOf(event.data);
    const members = rooms.get(room);
    if (content === undefined || !members) return;
    const frame = JSON.stringify({
      type: "message",
      id: crypto.randomUUID(),
      room,
      sender: user,
      content,
      timestamp: new Date().toISOString(),
    });
    for (const member of members.keys()) {
      if (member.readyState === WebSocket.OPEN) member.send(frame);
    }
  };
  socket.onerror = (event) => event.preventDefault();
  socket.onclose = () => {
    const members = rooms.get(room);
    members?.delete(socket);
    if (members?.size === 0) rooms.delete(room);
  };
}

function handle(request: Request): Response {
  const url = new URL(request.url);
  if (url.pathname !== "/chat") return new Response("not found\n", { status: 404 });
  const room = url.searchParams.get("r") ?? "";
  const user = (url.searchParams.get("u") ?? "").trim();
  if (!ROOM_NAME.test(room)) return new Response("invalid_room\n", { status: 400 });
  if (user.length === 0 || [...user].length > MAX_USER_CHARS) {
    return new Response("invalid_user\n", { status: 400 });
  }
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("upgrade_required\n", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  join(socket, room, user);
  return response;
}

Deno.serve({
  port: Number(Deno.env.get("PORT") ?? "8080"),
  hostname: Deno.env.get("HOST") ?? "0.0.0.0",
  onListen: (addr) => console.log(JSON.stringify({ event: "server.listening", port: addr.port })),
}, handle);
