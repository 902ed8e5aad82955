/** Starts a real chat server on 127.0.0.1 and a free port, for one test. */
import type { Cluster } from "../../chat/cluster.ts";
import { silentLogger } from "../../log/logger.ts";
import { type ChatServer, startChatServer } from "../../server/chat_server.ts";
import { parseConfig } from "../../server/config.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import { RecordingStore } from "./recording_store.ts";

/**
 * Tests of other behaviour send bursts no real client would; the limits tests set their own.
 */
export const GENEROUS_LIMITS: Readonly<Record<string, string>> = {
  RATE_LIMIT_PER_SECOND: "100000",
  RATE_LIMIT_BURST: "100000",
  MAX_FRAME_BYTES: "1048576",
  HISTORY_RATE_LIMIT: "100000",
  // Leaves are told at once unless a test is about the grace.
  PRESENCE_LEAVE_GRACE: "0",
};

export interface TestServer<R extends MessageRepository> {
  readonly server: ChatServer;
  readonly repository: R;
  readonly port: number;
  /** An http:// URL of this server. */
  url(path: string): string;
  /** The ws:// URL that joins `room` as `user`. */
  chatUrl(room: string, user: string): string;
  /** Shuts the server down (idempotent) and closes the repository. */
  close(): Promise<void>;
}

export function startTestServer(env?: Record<string, string>): TestServer<RecordingStore>;
export function startTestServer(
  env: Record<string, string>,
  repository: undefined,
  cluster: Cluster,
): TestServer<RecordingStore>;
export function startTestServer<R extends MessageRepository>(
  env: Record<string, string>,
  repository: R,
  cluster?: Cluster,
): TestServer<R>;
export function startTestServer(
  env: Record<string, string> = {},
  repository: MessageRepository = new RecordingStore(),
  cluster?: Cluster,
): TestServer<MessageRepository> {
  const config = parseConfig({ PORT: "0", HOST: "127.0.0.1", ...GENEROUS_LIMITS, ...env });
  const server = startChatServer(config, { repository, logger: silentLogger, cluster });
  const port = server.addr.port;
  const base = `http://127.0.0.1:${port}`;
  return {
    server,
    repository,
    port,
    url: (path) => base + path,
    chatUrl: (room, user) =>
      `ws://127.0.0.1:${port}/chat?r=${encodeURIComponent(room)}&u=${encodeURIComponent(user)}`,
    close: async () => {
      await server.shutdown();
      await repository.close();
    },
  };
}
