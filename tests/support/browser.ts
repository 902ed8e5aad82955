// Playwright is not in deno.json's imports: `deno task start` would fetch it (every package listed
// there is installed before a task runs), and the server never uses it.
// deno-lint-ignore-file no-import-prefix
/**
 * Headless Chromium for end-to-end tests of the browser client: launching it without any
 * download, and opening the client in a room.
 */
import fs from "node:fs";
import type {
  Browser,
  BrowserContext,
  BrowserType,
  Locator,
  Page,
  Request,
  Route,
  ViewportSize,
  WebSocket,
  WebSocketRoute,
} from "npm:playwright-core@1.65.1";

/** Playwright's types the browser tests use, from the one place that names its version. */
export type { Browser, Locator, Page, Request, Route, WebSocket, WebSocketRoute };

/** Flags that keep Chromium headless, sandbox-free (containers) and off the network. */
export const CHROME_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** How long a test waits for the page to show something. */
export const PAGE_TIMEOUT_MS = 10_000;

/** A desktop window; tests of the narrow layout pass their own. */
export const DESKTOP: ViewportSize = { width: 1280, height: 800 };

// Playwright probes for WSL when it loads, with existsSync("/proc/sys/fs/binfmt_misc/WSLInterop").
// Deno lets nothing under /proc/sys be read without --allow-all, so the probe would throw and
// the test run would need every permission. We answer the probe ourselves: not WSL.
const WSL_PROBE = "/proc/sys/fs/binfmt_misc/WSLInterop";
let chromium: Promise<BrowserType> | undefined;

function loadChromium(): Promise<BrowserType> {
  return chromium ??= (async () => {
    const existsSync = fs.existsSync;
    fs.existsSync = (path) => path !== WSL_PROBE && existsSync(path);
    try {
      return (await import("npm:playwright-core@1.65.1")).chromium;
    } finally {
      fs.existsSync = existsSync;
    }
  })();
}

/**
 * Launches the Chromium at `executablePath` (never one Playwright would download). Playwright is
 * loaded on first use, so a run without Chromium never loads it.
 */
export async function launchChromium(executablePath: string): Promise<Browser> {
  const browserType = await loadChromium();
  return await browserType.launch({ executablePath, args: [...CHROME_FLAGS] });
}

/** One client page in its own browser context (so it can go offline alone). */
export interface ChatPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every URL the page requested, to check that none left the server. */
  readonly requests: string[];
  /** Messages of dialogs the page opened (alert, confirm, prompt); none is expected. */
  readonly dialogs: string[];
}

/** Options of {@linkcode openChat}. */
export interface OpenChatOptions extends OpenPageOptions {
  /** Whether to wait for the status to say "live" (default true). */
  readonly waitLive?: boolean;
}

/** Options of {@linkcode openPage}. */
export interface OpenPageOptions {
  readonly viewport?: ViewportSize;
  /** Runs on the new page before it loads `url` (routes, listeners). */
  readonly before?: (page: Page) => Promise<void>;
}

/**
 * Opens `url` in a new browser context, recording its requests and dialogs; it waits for the
 * load only.
 */
export async function openPage(
  browser: Browser,
  url: string,
  options: OpenPageOptions = {},
): Promise<ChatPage> {
  const context = await browser.newContext({ viewport: options.viewport ?? DESKTOP });
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const requests: string[] = [];
  const dialogs: string[] = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss().catch((error: unknown) => dialogs.push(`dismiss failed: ${error}`));
  });
  await options.before?.(page);
  await page.goto(url);
  return { context, page, requests, dialogs };
}

/**
 * Opens the client from `baseUrl` with `?r=&u=`, which joins at once (as a reload or a bookmark
 * does), checks the form holds them for a later Leave, and (by default) waits until the
 * connection is live.
 */
export async function openChat(
  browser: Browser,
  baseUrl: string,
  who: { readonly room: string; readonly user: string },
  options: OpenChatOptions = {},
): Promise<ChatPage> {
  const query = new URLSearchParams({ r: who.room, u: who.user });
  const opened = await openPage(browser, `${baseUrl}/client.html?${query}`, options);
  const room = await opened.page.getByLabel("Room").inputValue();
  const user = await opened.page.getByLabel("Name").inputValue();
  if (room !== who.room || user !== who.user) {
    throw new Error(`join form not prefilled: got room ${room}, name ${user}`);
  }
  if (options.waitLive ?? true) await waitForStatus(opened.page, /^live$/);
  return opened;
}

/** Waits until `#status` reads `text`. */
export async function waitForStatus(page: Page, text: RegExp): Promise<void> {
  await page.locator("#status", { hasText: text }).waitFor();
}

/** Types `text` into the composer (new lines with Shift+Enter) and sends it with Enter. */
export async function sendMessage(page: Page, text: string): Promise<void> {
  const composer = page.locator("#composer");
  await composer.focus();
  const lines = text.split("\n");
  for (const [index, line] of lines.entries()) {
    if (index > 0) await composer.press("Shift+Enter");
    await page.keyboard.insertText(line);
  }
  await composer.press("Enter");
}

/** Waits until at least `count` messages are shown. */
export async function waitForMessages(
  page: Page,
  count: number,
  timeoutMs?: number,
): Promise<void> {
  if (count > 0) {
    await page.locator("#messages li.message").nth(count - 1).waitFor({ timeout: timeoutMs });
  }
}

/** A message as the page shows it. */
export interface ShownMessage {
  readonly id: string;
  readonly sender: string;
  readonly content: string;
  readonly classes: readonly string[];
}

/** Every message in `#messages`, top to bottom. */
export function shownMessages(page: Page): Promise<ShownMessage[]> {
  return page.$$eval("#messages li.message", (items) =>
    items.map((item) => ({
      id: item.getAttribute("data-id") ?? "",
      sender: item.querySelector(".sender")?.textContent ?? "",
      content: item.querySelector(".content")?.textContent ?? "",
      classes: [...item.classList],
    })));
}

/** The URLs in `requests` that did not go to `origin`. */
export function foreignRequests(requests: readonly string[], origin: string): string[] {
  return requests.filter((url) => new URL(url).origin !== origin);
}
