/**
 * What the browser tests of static/ share: a test with its own Chromium (skipped without it), a
 * server per test, and ways to give the page other rules than the server's.
 */
import {
  type Browser,
  launchChromium,
  type Page,
  type Request,
  type WebSocket,
} from "../support/browser.ts";
import type { RecordingStore } from "../support/recording_store.ts";
import { serviceGate } from "../support/services.ts";
import { startTestServer, type TestServer } from "../support/test_server.ts";

const chrome = serviceGate("CHROME_PATH", "Chromium");

/** Registers a test with a fresh Chromium, closed afterwards; skipped without CHROME_PATH. */
export function browserTest(name: string, fn: (browser: Browser) => Promise<void>): void {
  Deno.test({
    name,
    ignore: chrome.ignore,
    fn: async () => {
      const browser = await launchChromium(chrome.url ?? "");
      try {
        await fn(browser);
      } finally {
        await browser.close();
      }
    },
  });
}

/** Starts a test server and runs `fn` with it, closing it (and its store) afterwards. */
export async function withServer(
  env: Record<string, string>,
  fn: (server: TestServer<RecordingStore>) => Promise<void>,
): Promise<void> {
  const server = startTestServer(env);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/**
 * Gives the page `changes` to the rules the server filled in (the `chat-rules` block of
 * server/client_page.ts), as a page would hold that was loaded before the server's rules
 * changed. The page itself is the server's, CSP and all: the block is changed as it is parsed,
 * before the page's script reads it. (A page fulfilled by a route is not the server's address
 * to Chromium, whose local network checks would then refuse its sockets to 127.0.0.1.)
 */
export async function changeRules(page: Page, changes: Record<string, unknown>): Promise<void> {
  // Source text: it runs in the page, whose DOM these tests' types do not declare.
  await page.addInitScript({
    content: `{
      const changes = ${JSON.stringify(changes)};
      const observer = new MutationObserver(() => {
        const block = document.getElementById("chat-rules");
        // Complete before the page's script runs: the parser has moved past it by then.
        if (!block?.nextSibling) return;
        block.textContent = JSON.stringify({ ...JSON.parse(block.textContent), ...changes });
        observer.disconnect();
      });
      observer.observe(document, { childList: true, subtree: true });
    }`,
  });
}

/** Whether `url` is an attempt to join: a chat socket, or the plain GET that asks why not. */
export function isChatUrl(url: string): boolean {
  return new URL(url).pathname === "/chat";
}

/**
 * The URL of the page's next attempt to join (a socket or a plain GET of /chat), or undefined
 * if it makes none within `timeoutMs`.
 */
export function nextChatAttempt(page: Page, timeoutMs: number): Promise<string | undefined> {
  const signal = AbortSignal.timeout(timeoutMs);
  return new Promise((resolve) => {
    const onRequest = (request: Request) => {
      if (isChatUrl(request.url())) finish(request.url());
    };
    const onSocket = (socket: WebSocket) => {
      if (isChatUrl(socket.url())) finish(socket.url());
    };
    const finish = (url: string | undefined) => {
      page.off("request", onRequest);
      page.off("websocket", onSocket);
      signal.removeEventListener("abort", onAbort);
      resolve(url);
    };
    const onAbort = () => finish(undefined);
    page.on("request", onRequest);
    page.on("websocket", onSocket);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
