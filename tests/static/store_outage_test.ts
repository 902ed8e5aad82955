/**
 * static/client.html while the server's store cannot be read, in headless Chromium against a
 * real server: /history answers 503 (or 429) with Retry-After, or a page marked
 * `X-Chat-Incomplete`. The page keeps its socket and its live messages, shows one notice, and
 * reads what is missing again, no sooner than Retry-After, until it has it.
 */
import assert from "node:assert/strict";
import {
  type Browser,
  type Page,
  PAGE_TIMEOUT_MS,
  type Route,
  shownMessages,
  waitForMessages,
  waitForStatus,
  type WebSocketRoute,
} from "../support/browser.ts";
import type { RecordingStore } from "../support/recording_store.ts";
import type { TestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { browserTest, withServer } from "./_chrome.ts";

/** What the page is told to wait, in seconds, after a refused read of history. */
const RETRY_AFTER_S = 1;

/** The seqs of the messages shown, top to bottom. */
function shownSeqs(page: Page): Promise<number[]> {
  return page.$$eval(
    "#messages li.message",
    (items) => items.map((item) => Number(item.getAttribute("data-seq"))),
  );
}

/** How a test answers one /history request: pass it on, refuse it, or answer it itself. */
type HistoryAnswer = (route: Route, query: Record<string, string>) => Promise<void>;

/** /history answering 503 `store_unavailable`, as a server whose store is down does. */
function unavailable(route: Route): Promise<void> {
  return route.fulfill({
    status: 503,
    headers: { "retry-after": String(RETRY_AFTER_S) },
    contentType: "application/json",
    body: JSON.stringify({ error: "store_unavailable", message: "the store cannot be read" }),
  });
}

/** /history answering 429 `rate_limited`. */
function rateLimited(route: Route): Promise<void> {
  return route.fulfill({
    status: 429,
    headers: { "retry-after": String(RETRY_AFTER_S) },
    contentType: "application/json",
    body: JSON.stringify({ error: "rate_limited", message: "too many history requests" }),
  });
}

/** A request of /history the page made, and when. */
interface HistoryRequest {
  readonly query: Record<string, string>;
  readonly at: number;
}

/** A page joined as ann, its sockets and /history requests seen (and steered) by the test. */
interface WatchedChat {
  readonly page: Page;
  /** The page's side of each chat socket it opened, in order. */
  readonly sockets: WebSocketRoute[];
  /** How many chat sockets the page opened. */
  readonly opened: Tally;
  readonly history: HistoryRequest[];
  /** How many notices of the history trouble were ever added to the page. */
  troubleNotices(): Promise<number>;
}

/**
 * Decides what the page gets of one server frame on its `socket`-th chat socket (0 first):
 * forward it with `page.send`, drop it, or send something else.
 */
type Relay = (frame: Frame, page: WebSocketRoute, socket: number) => void;

/** A relay that passes every frame on. */
const forward: Relay = (frame, page) => page.send(JSON.stringify(frame));

/**
 * Opens the client as ann in `room`, its chat sockets relayed through `relay`, its /history
 * requests answered by `answer`, and waits until it is live unless told not to.
 */
async function openWatchedChat(
  browser: Browser,
  server: TestServer<RecordingStore>,
  options: { room: string; relay: Relay; answer: HistoryAnswer },
): Promise<WatchedChat> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const sockets: WebSocketRoute[] = [];
  const opened = new Tally();
  const history: HistoryRequest[] = [];
  await page.addInitScript({
    // Source text: it runs in the page, whose DOM these tests' types do not declare.
    content: `
      globalThis.troubleNotices = 0;
      new MutationObserver((changes) => {
        for (const change of changes) {
          for (const node of change.addedNodes) {
            if (node.dataset?.key === "history") globalThis.troubleNotices++;
          }
        }
      }).observe(document, { childList: true, subtree: true });
    `,
  });
  await page.routeWebSocket((url) => url.pathname === "/chat", (socket) => {
    const index = sockets.push(socket) - 1;
    const upstream = socket.connectToServer();
    // A batched frame (batch=1) holds one frame per line: each is relayed alone.
    upstream.onMessage((message) => {
      for (const line of String(message).split("\n")) {
        options.relay(JSON.parse(line), socket, index);
      }
    });
    opened.add();
  });
  await page.route((url) => url.pathname === "/history", (route) => {
    const query = Object.fromEntries(new URL(route.request().url()).searchParams);
    history.push({ query, at: Date.now() });
    return options.answer(route, query);
  });
  await page.goto(server.url(`/client.html?r=${options.room}&u=ann`)); // joins at once
  await waitForStatus(page, /^live$/);
  return {
    page,
    sockets,
    opened,
    history,
    troubleNotices: () =>
      page.evaluate(() => (globalThis as unknown as { troubleNotices: number }).troubleNotices),
  };
}

/** The notice saying earlier messages cannot be loaded now. */
function troubleNotice(page: Page) {
  return page.locator("#notices .notice[data-key=history]");
}

/** A count of events (requests, sockets) that can be awaited to reach a number. */
class Tally {
  #count = 0;
  #waiters: { readonly at: number; readonly wake: () => void }[] = [];

  get count(): number {
    return this.#count;
  }

  add(): void {
    this.#count++;
    for (const waiter of this.#waiters) if (this.#count >= waiter.at) waiter.wake();
  }

  /** Resolves once the count is at least `at`, or rejects after `timeoutMs`. */
  atLeast(at: number, timeoutMs = 20_000): Promise<void> {
    if (this.#count >= at) return Promise.resolve();
    const signal = AbortSignal.timeout(timeoutMs);
    return new Promise((resolve, reject) => {
      const waiter = {
        at,
        wake: () => {
          this.#waiters = this.#waiters.filter((other) => other !== waiter);
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((other) => other !== waiter);
        reject(new Error(`timed out waiting for a count of ${at} (at ${this.#count})`));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }
}

/** Asserts that consecutive requests in `times` are at least Retry-After apart. */
function assertSpacedByRetryAfter(times: readonly number[]): void {
  for (let index = 1; index < times.length; index++) {
    const waited = (times[index] ?? 0) - (times[index - 1] ?? 0);
    // Timers may fire a few milliseconds early relative to Date.now() of the route handler.
    assert.ok(waited >= RETRY_AFTER_S * 1000 - 50, `read again after ${waited} ms`);
  }
}

browserTest(
  "client: a catch-up /history cannot serve (503) is read again after Retry-After, on the same socket, under one notice",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("outage", "bob"));
      await bob.nextOfType("welcome");
      // Socket 0 misses seqs 2 and 3; socket 1's replay of them is lost too, and its resume
      // says what a server whose store is down says: incomplete, unavailable.
      const hidden = Promise.withResolvers<void>();
      let replaying = true;
      const relay: Relay = (frame, page, socket) => {
        if (socket === 0 && frame.type === "message" && frame.seq >= 2 && frame.seq <= 3) {
          if (frame.seq === 3) hidden.resolve();
          return;
        }
        if (socket === 1 && replaying && frame.type === "message") return;
        if (socket === 1 && frame.type === "resume") {
          replaying = false;
          return page.send(JSON.stringify({
            type: "resume",
            complete: false,
            replayed: 0,
            epoch: frame.epoch,
            reason: "unavailable",
          }));
        }
        forward(frame, page, socket);
      };
      let storeDown = true;
      const failures = new Tally();
      const ann = await openWatchedChat(browser, server, {
        room: "outage",
        relay,
        answer: (route, query) => {
          if (!storeDown || !("after_seq" in query)) return route.continue();
          failures.add();
          return unavailable(route);
        },
      });
      bob.send("one");
      await waitForMessages(ann.page, 1);
      for (const text of ["missed 1", "missed 2"]) bob.send(text);
      await hidden.promise;
      await ann.sockets[0]?.close({ code: 1012, reason: "test: reconnect" });

      // The catch-up is refused twice: the socket stays, live messages keep coming.
      await failures.atLeast(2);
      await troubleNotice(ann.page).waitFor();
      assert.equal(
        await troubleNotice(ann.page).locator("span").textContent(),
        "Earlier messages can't be loaded right now; retrying…",
      );
      bob.send("live during the outage");
      await waitForMessages(ann.page, 2);
      assert.deepEqual(await shownSeqs(ann.page), [1, 4]);
      await waitForStatus(ann.page, /^live$/);

      storeDown = false;
      await waitForMessages(ann.page, 4);
      await troubleNotice(ann.page).waitFor({ state: "detached" });
      const shown = await shownMessages(ann.page);
      assert.deepEqual(shown.map((m) => m.content), [
        "one",
        "missed 1",
        "missed 2",
        "live during the outage",
      ]);
      assert.deepEqual(await shownSeqs(ann.page), [1, 2, 3, 4]);
      assert.equal(ann.sockets.length, 2, "the page reconnected because of history");
      assert.equal(await ann.troubleNotices(), 1);
      const catchUps = ann.history.filter((request) => "after_seq" in request.query);
      assert.ok(catchUps.length >= 3, `${catchUps.length} catch-up requests`);
      for (const { query } of catchUps) {
        assert.deepEqual(query, {
          r: "outage",
          u: "ann",
          after_seq: "1",
          before_seq: "4",
          limit: "500",
          changes: "1",
        });
      }
      assertSpacedByRetryAfter(catchUps.map((request) => request.at));

      // The hole is filled: the next socket resumes after the newest seq, not before the hole.
      await ann.sockets[1]?.close({ code: 1012, reason: "test: reconnect" });
      await ann.opened.atLeast(3);
      assert.equal(new URL(ann.sockets[2]?.url() ?? "").searchParams.get("since_seq"), "4");
      await ann.page.context().close();
      await bob.close();
    }),
);

browserTest(
  "client: an incomplete newest page (X-Chat-Incomplete) is shown, and its holes are filled later",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("partial", "bob"));
      await bob.nextOfType("welcome");
      const texts = ["m1", "m2", "m3", "m4", "m5"];
      for (const text of texts) bob.send(text);
      await bob.collect("message", texts.length);

      let refused = false;
      const ann = await openWatchedChat(browser, server, {
        room: "partial",
        relay: forward,
        answer: async (route, query) => {
          if (!("after_seq" in query) && query.before_seq === "6") {
            // The newest page, from a server that holds only seqs 4 and 5 in memory.
            const response = await route.fetch();
            const page: Frame[] = await response.json();
            const { "content-length": _, ...headers } = response.headers();
            headers["x-chat-incomplete"] = "true";
            return route.fulfill({ response, headers, json: page.slice(-2) });
          }
          if (refused) return route.continue();
          refused = true;
          return unavailable(route);
        },
      });
      await waitForMessages(ann.page, 2);
      await troubleNotice(ann.page).waitFor();
      assert.deepEqual(await shownSeqs(ann.page), [4, 5]);

      await waitForMessages(ann.page, 5);
      await troubleNotice(ann.page).waitFor({ state: "detached" });
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), texts);
      assert.deepEqual(await shownSeqs(ann.page), [1, 2, 3, 4, 5]);
      await ann.page.locator("#history-text", { hasText: "start of #partial" }).waitFor();
      assert.equal(ann.sockets.length, 1);
      assert.equal(await ann.troubleNotices(), 1);
      const holes = ann.history.filter((request) => "after_seq" in request.query);
      assert.equal(holes.length, 2); // refused, then read
      for (const { query } of holes) {
        assert.deepEqual(query, {
          r: "partial",
          u: "ann",
          after_seq: "0",
          before_seq: "4",
          limit: "500",
        });
      }
      assertSpacedByRetryAfter(holes.map((request) => request.at));
      await ann.page.context().close();
      await bob.close();
    }),
);

browserTest(
  "client: a newest page refused (429) is read again after Retry-After; live messages show meanwhile",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("limited", "bob"));
      await bob.nextOfType("welcome");
      bob.send("before ann");
      await bob.nextOfType("message");

      let refusals = 0;
      const ann = await openWatchedChat(browser, server, {
        room: "limited",
        relay: forward,
        answer: (route) => {
          if (refusals >= 2) return route.continue();
          refusals++;
          return rateLimited(route);
        },
      });
      await troubleNotice(ann.page).waitFor();
      bob.send("while history waits");
      await waitForMessages(ann.page, 1);
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), [
        "while history waits",
      ]);

      await waitForMessages(ann.page, 2);
      await troubleNotice(ann.page).waitFor({ state: "detached" });
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), [
        "before ann",
        "while history waits",
      ]);
      assert.deepEqual(await shownSeqs(ann.page), [1, 2]);
      assert.equal(ann.sockets.length, 1);
      assert.equal(await ann.troubleNotices(), 1);
      const newest = ann.history.filter((request) => request.query.before_seq === "2");
      assert.equal(newest.length, 3); // refused twice, then read
      assertSpacedByRetryAfter(newest.map((request) => request.at));
      await ann.page.context().close();
      await bob.close();
    }),
);

browserTest(
  "client: scrolling back while /history cannot serve reads the older page after Retry-After",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("back", "bob"));
      await bob.nextOfType("welcome");
      for (let i = 1; i <= 60; i++) bob.send(`m${i}`);
      await bob.collect("message", 60);

      let refusals = 0;
      const ann = await openWatchedChat(browser, server, {
        room: "back",
        relay: forward,
        answer: (route, query) => {
          if (query.before_seq !== "11" || refusals >= 2) return route.continue();
          refusals++;
          return unavailable(route);
        },
      });
      await waitForMessages(ann.page, 50); // the newest page: seqs 11 to 60
      await ann.page.locator("#scroller").evaluate((scroller) => (scroller.scrollTop = 0));
      await troubleNotice(ann.page).waitFor();
      await ann.page.locator("#history-text", { hasText: "can't be loaded right now" }).waitFor();
      assert.equal(await ann.page.locator("#older").isVisible(), false); // no sooner by hand

      await waitForMessages(ann.page, 60);
      await troubleNotice(ann.page).waitFor({ state: "detached" });
      await ann.page.locator("#older").waitFor(); // the next scroll or click asks for more
      assert.equal(await ann.page.locator("#history-text").textContent(), "");
      assert.deepEqual(
        await shownSeqs(ann.page),
        Array.from({ length: 60 }, (_, index) => index + 1),
      );
      assert.equal(ann.sockets.length, 1);
      assert.equal(await ann.troubleNotices(), 1);
      const older = ann.history.filter((request) => request.query.before_seq === "11");
      assert.equal(older.length, 3); // refused twice, then read
      assertSpacedByRetryAfter(older.map((request) => request.at));
      await ann.page.context().close();
      await bob.close();
    }),
);
