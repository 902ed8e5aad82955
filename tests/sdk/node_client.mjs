// A Node.js client of the SDK for tests/sdk/sdk_node_test.ts: joins CHAT_ROOM at CHAT_URL with
// npm ws (from WS_DIR), sends one message, and reads until "bye"; then reads the history and
// closes. Every event goes to stdout as one JSON line. It must exit by itself: a timer or socket
// the SDK left open would keep it running (the watchdog then exits with 1).
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const { CHAT_SDK, CHAT_URL, CHAT_ROOM, WS_DIR } = process.env;
const WebSocket = createRequire(`${WS_DIR}/`)("ws");
const { connect } = await import(pathToFileURL(CHAT_SDK).href);

const say = (event) => console.log(JSON.stringify(event));
const watchdog = setTimeout(() => {
  say({ event: "stuck" });
  process.exit(1);
}, 30_000);
watchdog.unref();

const room = await connect({
  url: CHAT_URL,
  room: CHAT_ROOM,
  user: "node",
  WebSocket,
  backoff: { baseMs: 20, maxMs: 200 },
});
const bye = new Promise((resolve) => {
  room.on("message", (message) => {
    say({ event: "message", seq: message.seq, sender: message.sender, content: message.content });
    if (message.content === "bye") resolve();
  });
});
room.on("state", ({ state }) => say({ event: "state", state }));
room.on("error", (error) => say({ event: "error", code: error.code }));
say({ event: "open", epoch: room.epoch, lastSeq: room.lastSeq, members: room.members });

const ack = await room.send("hello from node");
say({ event: "ack", seq: ack.seq, id: ack.id });
await bye;

const contents = [];
for await (const message of room.history({ after_seq: 0, page_size: 2 })) {
  contents.push(message.content);
}
say({ event: "history", contents });
await room.close();
say({ event: "closed", state: room.state });
