/**
 * End-to-end tests of static/client.html in headless Chromium against a real in-process server.
 * Each test closes its browser (with its pages) and its server in `finally`; sanitizers stay on.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../log/logger.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { PostgresStore } from "../../storage/postgres_store.ts";
import type { ChatMessage } from "../../chat/message.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import {
  type Browser,
  type ChatPage,
  foreignRequests,
  openChat,
  type Page,
  PAGE_TIMEOUT_MS,
  type Route,
  sendMessage,
  shownMessages,
  waitForMessages,
  waitForStatus,
  type WebSocketRoute,
} from "../support/browser.ts";
import { browserTest, withServer } from "./_chrome.ts";
import { dropSchema, freshSchemaName } from "../support/postgres_schema.ts";
import { GatedStore } from "../support/gated_store.ts";
import type { RecordingStore } from "../support/recording_store.ts";
import { serviceUrl } from "../support/services.ts";
import { startTestServer, type TestServer } from "../support/test_server.ts";
import { type Frame, TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

// Optional here: without it the restart tests share one MemoryStore between the two servers.
const database = serviceUrl("TEST_DATABASE_URL");

function origin<R extends MessageRepository>(server: TestServer<R>): string {
  return server.url("");
}

function assertNoForeignRequests<R extends MessageRepository>(
  server: TestServer<R>,
  page: ChatPage,
): void {
  assert.deepEqual(foreignRequests(page.requests, origin(server)), []);
}

/** The seqs of the messages shown, top to bottom. */
function shownSeqs(page: Page): Promise<number[]> {
  return page.$$eval(
    "#messages li.message",
    (items) => items.map((item) => Number(item.getAttribute("data-seq"))),
  );
}

/** 1, 2, ... `count`: what a page that misses nothing and repeats nothing shows. */
function seqsUpTo(count: number): number[] {
  return Array.from({ length: count }, (_, index) => index + 1);
}

/** Asserts no URL uses a protocol 1 cursor (`since`, `after`, `before`: message ids). */
function assertSeqCursorsOnly(urls: readonly string[]): void {
  for (const url of urls) {
    const params = new URL(url).searchParams;
    for (const name of ["since", "after", "before"]) {
      assert.equal(params.get(name), null, `${url} uses the protocol 1 cursor ${name}`);
    }
  }
}

/** The query parameters of the page's `/history` requests, in order. */
/** Presses Shift+Tab until `selector` has the focus, at most `presses` times. */
async function tabBackTo(page: Page, selector: string, presses: number): Promise<void> {
  for (let pressed = 0; pressed < presses; pressed++) {
    await page.keyboard.press("Shift+Tab");
    if (await page.locator(`${selector}:focus`).count() === 1) return;
  }
  throw new Error(`${selector} not focused after ${presses} Shift+Tab`);
}

function historyQueries(requests: readonly string[]): Record<string, string>[] {
  return requests
    .map((url) => new URL(url))
    .filter((url) => url.pathname === "/history")
    .map((url) => Object.fromEntries(url.searchParams));
}

/** The room's epoch, as `/history` reports it. */
async function epochOf<R extends MessageRepository>(
  server: TestServer<R>,
  room: string,
): Promise<string> {
  const response = await fetch(server.url(`/history?r=${room}&limit=1`));
  await response.body?.cancel();
  return response.headers.get("x-chat-epoch") ?? "";
}

/** `promise`, or an error naming `what` if it has not settled within `timeoutMs`. */
function within<T>(what: string, promise: Promise<T>, timeoutMs = PAGE_TIMEOUT_MS): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then((value) => {
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    }, reject);
  });
}

/** Frames a page's chat sockets received, in order; awaited as they arrive, never polled. */
class FrameLog {
  readonly frames: Frame[] = [];
  #wake: (() => void) | undefined;

  push(frame: Frame): void {
    this.frames.push(frame);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The first frame `match` accepts, waiting for it if it has not arrived yet. */
  async find(match: (frame: Frame) => boolean, timeoutMs = 20_000): Promise<Frame> {
    const signal = AbortSignal.timeout(timeoutMs);
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new Error("timed out waiting for a frame of the page"));
        signal.addEventListener("abort", onAbort, { once: true });
        this.#wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }
}

/** What {@linkcode watchSockets} records. */
interface WatchedSockets {
  readonly urls: string[];
  /** Frames the sockets received. */
  readonly log: FrameLog;
  /** Frames the page sent on them. */
  readonly sent: FrameLog;
}

/** The URLs of the chat sockets a page opens from now on, and the frames they carry. */
function watchSockets(page: Page): WatchedSockets {
  const urls: string[] = [];
  const log = new FrameLog();
  const sent = new FrameLog();
  page.on("websocket", (socket) => {
    urls.push(socket.url());
    socket.on("framereceived", ({ payload }) => {
      for (const line of String(payload).split("\n")) log.push(JSON.parse(line));
    });
    socket.on("framesent", ({ payload }) => sent.push(JSON.parse(String(payload))));
  });
  return { urls, log, sent };
}

/**
 * Decides what the page gets of one server frame on its `socket`-th chat socket (0 first):
 * forward it with `page.send`, drop it, or send something else (or close a side).
 */
type Relay = (
  frame: Frame,
  page: WebSocketRoute,
  socket: number,
  server: WebSocketRoute,
) => void;

/** A page joined through a relay between its chat sockets and the server. */
interface RelayedChat {
  readonly page: Page;
  /** The page's side of each chat socket it opened, in order. */
  readonly sockets: WebSocketRoute[];
  /** Every URL the page requested, chat sockets included. */
  readonly requests: string[];
  /** Every frame the relay got from the server, in order. */
  readonly log: FrameLog;
  /** Every frame the page sent (all passed on to the server), in order. */
  readonly sent: FrameLog;
}

/** Opens the client as ann in `room`, its chat sockets passing through `relay`, and waits live. */
async function openRelayedChat(
  browser: Browser,
  server: TestServer<RecordingStore>,
  room: string,
  relay: Relay,
): Promise<RelayedChat> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const sockets: WebSocketRoute[] = [];
  const requests: string[] = [];
  const log = new FrameLog();
  const sent = new FrameLog();
  page.on("request", (request) => requests.push(request.url()));
  await page.routeWebSocket((url) => url.pathname === "/chat", (socket) => {
    const index = sockets.push(socket) - 1;
    requests.push(socket.url());
    const upstream = socket.connectToServer();
    upstream.onMessage((message) => {
      // A batched frame (batch=1) holds one frame per line: each is relayed alone.
      for (const line of String(message).split("\n")) {
        const frame = JSON.parse(line);
        log.push(frame);
        relay(frame, socket, index, upstream);
      }
    });
    socket.onMessage((message) => {
      sent.push(JSON.parse(String(message)));
      upstream.send(message);
    });
  });
  await page.goto(server.url(`/client.html?r=${room}&u=ann`)); // joins at once
  await waitForStatus(page, /^live$/);
  return { page, sockets, requests, log, sent };
}

/**
 * A relay that passes every frame on, but the welcome without its `limits`: the page (its SDK)
 * does not know the connection's rate and frame size, so the server's own refusals are tested.
 */
const withoutLimits: Relay = (frame, page) => {
  const { limits: _, ...rest } = frame.type === "welcome" ? frame : { ...frame, limits: 0 };
  page.send(JSON.stringify(frame.type === "welcome" ? rest : frame));
};

/** A relay that hides `hidden` seqs from the first socket and sends a gap frame for them. */
function hidingRelay(room: string, hidden: { from: number; to: number }): Relay {
  let epoch = "";
  return (frame, page, socket) => {
    if (frame.type === "welcome") epoch = frame.epoch;
    const hide = socket === 0 && frame.type === "message" && frame.seq >= hidden.from &&
      frame.seq <= hidden.to;
    if (!hide) return page.send(JSON.stringify(frame));
    if (frame.seq !== hidden.to) return;
    page.send(JSON.stringify({
      type: "gap",
      room,
      epoch,
      from_seq: hidden.from,
      to_seq: hidden.to,
    }));
  };
}

/** One store that outlives a server: a fresh Postgres schema when configured, else memory. */
async function sharedStore(): Promise<{ store: MessageRepository; drop: () => Promise<void> }> {
  if (database === undefined) {
    const store = new MemoryStore({ maxPerRoom: 10_000, maxRooms: 100 });
    return { store, drop: () => store.close() };
  }
  const schema = freshSchemaName();
  const store = await PostgresStore.connect(database, {
    connectTimeoutMs: 5_000,
    batchTimeoutMs: 5_000,
    schema,
    logger: silentLogger,
  });
  return {
    store,
    drop: async () => {
      await store.close();
      await dropSchema(database, schema);
    },
  };
}

browserTest(
  "client: two pages in a room see each other's messages once, in one order",
  (browser) =>
    withServer({}, async (server) => {
      const ann = await openChat(browser, origin(server), { room: "pair", user: "ann" });
      const bob = await openChat(browser, origin(server), { room: "pair", user: "bob" });
      await ann.page.locator("#member-count", { hasText: /^2$/ }).waitFor();
      assert.equal(await bob.page.locator("#member-count").textContent(), "2");
      assert.deepEqual(await bob.page.locator("#members .name").allTextContents(), ["ann", "bob"]);
      assert.equal(await bob.page.locator("#members li:has(.me) .name").textContent(), "bob");

      await sendMessage(ann.page, "hello from ann");
      await waitForMessages(bob.page, 1);
      // Each waits for the one before, so the expected order does not depend on a race.
      await sendMessage(ann.page, "ann again");
      await waitForMessages(bob.page, 2);
      await sendMessage(bob.page, "hi from bob");
      await waitForMessages(ann.page, 3);
      await sendMessage(ann.page, "line one\nline two");
      await waitForMessages(ann.page, 4);
      await waitForMessages(bob.page, 4);

      const seenByAnn = await shownMessages(ann.page);
      const seenByBob = await shownMessages(bob.page);
      const plain = (list: typeof seenByAnn) =>
        list.map(({ id, sender, content }) => ({ id, sender, content }));
      assert.deepEqual(plain(seenByAnn), plain(seenByBob));
      assert.deepEqual(seenByAnn.map((m) => [m.sender, m.content]), [
        ["ann", "hello from ann"],
        ["ann", "ann again"],
        ["bob", "hi from bob"],
        ["ann", "line one\nline two"],
      ]);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(4));
      assert.deepEqual(await shownSeqs(bob.page), seqsUpTo(4));
      // Own messages are marked, and the second of two in a row drops its sender line.
      assert.deepEqual(seenByAnn.map((m) => m.classes.includes("own")), [true, true, false, true]);
      assert.deepEqual(seenByBob.map((m) => m.classes.includes("own")), [
        false,
        false,
        true,
        false,
      ]);
      assert.deepEqual(seenByAnn.map((m) => m.classes.includes("grouped")), [
        false,
        true,
        false,
        false,
      ]);
      // Timestamps carry the server's instant and show local time.
      const time = ann.page.locator("#messages li.message .time").first();
      assert.match((await time.getAttribute("datetime")) ?? "", /^\d{4}-\d\d-\d\dT.*Z$/);
      assert.match((await time.textContent()) ?? "", /\d/);
      assert.equal(await ann.page.locator("#composer").inputValue(), "");
      // Screen readers hear others' new messages through a polite live region.
      const announcer = bob.page.locator("#announcer[aria-live=polite]", { hasText: "line two" });
      await announcer.waitFor({ state: "attached" });
      assert.equal(await announcer.textContent(), "ann: line one\nline two");
      assertNoForeignRequests(server, ann);
      assertNoForeignRequests(server, bob);
    }),
);

browserTest(
  "client: works from the keyboard alone, with a visible focus ring",
  (browser) =>
    withServer({}, async (server) => {
      const page = await browser.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      await page.goto(server.url("/client.html"));
      await page.keyboard.type("keys"); // the room field has focus on load
      await page.keyboard.press("Tab");
      await page.keyboard.type("kim");
      await page.keyboard.press("Enter");
      await waitForStatus(page, /^live$/);
      assert.equal(page.url(), server.url("/client.html?r=keys&u=kim"));
      await page.locator("#composer:focus").waitFor();
      await page.keyboard.type("typed, never clicked");
      await page.keyboard.press("Enter");
      await waitForMessages(page, 1);
      assert.deepEqual((await shownMessages(page)).map((m) => m.content), ["typed, never clicked"]);
      // Back: the message's Reply button (after its Delete, Edit and React), which works from
      // the keyboard too.
      await tabBackTo(page, "button.reply", 4);
      await page.keyboard.press("Enter");
      await page.locator("#replying-text", { hasText: "Replying to kim" }).waitFor();
      await page.locator("#composer:focus").waitFor();
      await page.keyboard.press("Escape");
      assert.equal(await page.locator("#replying").isHidden(), true);
      await tabBackTo(page, "#scroller", 5); // and the message list
      const outline = await page.locator(":focus").evaluate((element) => {
        const style = element.ownerDocument.defaultView.getComputedStyle(element);
        return { id: element.id, style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
      });
      assert.equal(outline.id, "scroller");
      assert.notEqual(outline.style, "none");
      assert.ok(outline.width >= 2, `focus outline ${outline.width} px`);
      await page.close();
    }),
);

browserTest(
  "client: a page joining later shows the earlier messages from history",
  (browser) =>
    withServer({}, async (server) => {
      const ann = await openChat(browser, origin(server), { room: "later", user: "ann" });
      const bob = await openChat(browser, origin(server), { room: "later", user: "bob" });
      await sendMessage(ann.page, "first");
      await sendMessage(bob.page, "second");
      await sendMessage(ann.page, "third");
      await waitForMessages(bob.page, 3);
      await server.repository.waitForSaved(3);

      const cat = await openChat(browser, origin(server), { room: "later", user: "cat" });
      await waitForMessages(cat.page, 3);
      await ann.page.locator("#member-count", { hasText: /^3$/ }).waitFor();
      assert.equal(await cat.page.locator("#member-count").textContent(), "3");
      const seenByCat = await shownMessages(cat.page);
      assert.deepEqual(
        seenByCat.map((m) => [m.id, m.sender, m.content]),
        (await shownMessages(ann.page)).map((m) => [m.id, m.sender, m.content]),
      );
      assert.deepEqual(seenByCat.map((m) => m.content), ["first", "second", "third"]);
      assert.deepEqual(await shownSeqs(cat.page), [1, 2, 3]);
      assert.ok(seenByCat.every((m) => !m.classes.includes("own")));
      // The newest page ends at the welcome's last_seq (3): live frames start after it.
      // `u`: the reader, whom each reaction's `me` is about.
      assert.deepEqual(historyQueries(cat.requests)[0], {
        r: "later",
        u: "cat",
        before_seq: "4",
        limit: "50",
      });
      assertSeqCursorsOnly(cat.requests);
      assertNoForeignRequests(server, cat);
    }),
);

browserTest(
  "client: markup in messages and names is shown as text and never runs",
  (browser) =>
    withServer({}, async (server) => {
      const evil = "<img src=y onerror=alert(2)>";
      const ann = await openChat(browser, origin(server), { room: "xss", user: evil });
      const bob = await openChat(browser, origin(server), { room: "xss", user: "bob" });
      const texts = ["<img src=x onerror=alert(1)>", "<b>bold</b>", "<script>alert(3)</script>"];
      for (const text of texts) await sendMessage(ann.page, text);
      for (const { page } of [ann, bob]) {
        await waitForMessages(page, texts.length);
        const shown = await shownMessages(page);
        assert.deepEqual(shown.map((m) => m.content), texts);
        assert.deepEqual(shown.map((m) => m.sender), [evil, evil, evil]);
        assert.equal(await page.locator("#messages img, #messages b, #messages script").count(), 0);
        assert.equal(await page.locator("#members img").count(), 0);
        assert.equal(await page.locator("img").count(), 0);
      }
      assert.ok((await bob.page.locator("#members").textContent())?.includes(evil));
      assert.deepEqual(ann.dialogs, []);
      assert.deepEqual(bob.dialogs, []);
    }),
);

browserTest("client: at 360 px wide long words wrap and the members list opens on demand", (
  browser,
) =>
  withServer({}, async (server) => {
    const viewport = { width: 360, height: 740 };
    const ann = await openChat(browser, origin(server), { room: "narrow", user: "ann" }, {
      viewport,
    });
    const word = "w".repeat(600);
    await sendMessage(ann.page, word);
    await waitForMessages(ann.page, 1);
    const box = await ann.page.locator("#messages li.message").first().boundingBox();
    assert.ok(
      box && box.x >= 0 && box.x + box.width <= viewport.width,
      `message box ${JSON.stringify(box)}`,
    );
    const width = await ann.page.locator("html").evaluate((root) => root.scrollWidth);
    assert.ok(width <= viewport.width, `page scrolls sideways: ${width} px`);
    assert.ok(await ann.page.locator("#composer").isVisible());
    assert.ok(await ann.page.locator("#send").isVisible());

    assert.equal(await ann.page.locator("#members").isVisible(), false);
    const toggle = ann.page.getByRole("button", { name: /Members/ });
    await toggle.click();
    assert.ok(await ann.page.locator("#members").isVisible());
    assert.equal(await toggle.getAttribute("aria-expanded"), "true");
  }));

browserTest(
  "client: a name the server would refuse is caught by the form, in plain words",
  (browser) =>
    withServer({}, async (server) => {
      const ann = await openChat(
        browser,
        origin(server),
        { room: "bad", user: "zero\u200bwidth" },
        { waitLive: false },
      );
      const error = ann.page.locator("#user-error");
      await error.waitFor();
      assert.equal(
        await error.textContent(),
        "Your name can only use visible characters and spaces.",
      );
      assert.equal(await ann.page.locator("#user:focus[aria-invalid=true]").count(), 1);
      assert.equal(await ann.page.locator("#chat").isVisible(), false);
      assert.deepEqual(ann.requests.filter((url) => new URL(url).pathname === "/chat"), []);
    }),
);

browserTest("client: scrolling up loads all 300 older messages in order, keeping its place", (
  browser,
) =>
  withServer({}, async (server) => {
    const writer = await TestSocket.open(server.chatUrl("long", "writer"));
    await writer.nextOfType("welcome");
    const count = 300;
    for (let i = 1; i <= count; i++) writer.send(`message ${i}`);
    const sent = await writer.collect("message", count);
    await server.repository.waitForSaved(count);
    await writer.close();

    const ann = await openChat(browser, origin(server), { room: "long", user: "ann" });
    await waitForMessages(ann.page, 50);
    const scroller = ann.page.locator("#scroller");
    const items = ann.page.locator("#messages li.message");
    for (let loaded = 50; loaded < count;) {
      const firstId = (await items.first().getAttribute("data-id")) ?? "";
      const anchor = ann.page.locator(`#messages li.message[data-id="${firstId}"]`);
      // Scroll to the top and measure in the same task, before the scroll event loads a page.
      const before = await scroller.evaluate((element, id) => {
        element.scrollTop = 0;
        return element.querySelector(`[data-id="${id}"]`).getBoundingClientRect().top;
      }, firstId);
      await items.nth(loaded).waitFor({ timeout: PAGE_TIMEOUT_MS });
      const after = (await anchor.boundingBox())?.y ?? NaN;
      assert.ok(Math.abs(after - before) <= 1, `the view jumped from ${before} to ${after}`);
      loaded = await items.count();
    }
    await scroller.evaluate((element) => {
      element.scrollTop = 0;
    });
    await ann.page.locator("#history-text", { hasText: "start of #long" }).waitFor();
    const shown = await shownMessages(ann.page);
    assert.equal(shown.length, count);
    assert.deepEqual(shown.map((m) => m.content), sent.map((m) => m.content));
    assert.deepEqual(shown.map((m) => m.id), sent.map((m) => m.id));
    assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(count));
    // Every page was read backwards by seq, each before the oldest one shown.
    const pages = historyQueries(ann.requests);
    assert.deepEqual(
      pages.map((query) => query.before_seq),
      ["301", "251", "201", "151", "101", "51", "1"],
    );
    assertSeqCursorsOnly(ann.requests);
  }));

browserTest("client: a join is gap-free: a message sent while history loads shows once, in order", (
  browser,
) =>
  withServer({}, async (server) => {
    const bob = await TestSocket.open(server.chatUrl("gap", "bob"));
    await bob.nextOfType("welcome");
    bob.send("before ann");
    await bob.nextOfType("message");
    await server.repository.waitForSaved(1);

    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    // Hold ann's newest page until bob has sent another message: it reaches ann live, ahead
    // of the page that ends at her welcome's last_seq.
    const newestPages: string[] = [];
    await page.route((url) => url.pathname === "/history", async (route) => {
      const response = await route.fetch();
      if (newestPages.push(route.request().url()) === 1) { // later ones are scroll-back
        bob.send("while ann loads history");
        await bob.nextOfType("message");
      }
      await route.fulfill({ response });
    });
    await page.goto(server.url("/client.html?r=gap&u=ann")); // joins at once
    await waitForStatus(page, /^live$/);
    await waitForMessages(page, 2);
    bob.send("after ann joined");
    await waitForMessages(page, 3);
    const shown = await shownMessages(page);
    assert.deepEqual(shown.map((m) => m.content), [
      "before ann",
      "while ann loads history",
      "after ann joined",
    ]);
    assert.deepEqual(await shownSeqs(page), [1, 2, 3]);
    assert.equal(new URL(newestPages[0] ?? "").searchParams.get("before_seq"), "2");
    await bob.close();
  }));

/** What {@linkcode restartWhileAway} hands its check. */
interface Away {
  readonly ann: ChatPage;
  /** The sockets ann opened after the first server went down, and their frames. */
  readonly sockets: ReturnType<typeof watchSockets>;
  /** What bob sent on the second server while ann was offline. */
  readonly missed: ChatMessage[];
  readonly bob: TestSocket;
  /** The room's epoch on the first server and on the second. */
  readonly epochs: { readonly before: string; readonly after: string };
}

/**
 * Takes the page's server down and up again on the same port; while the page is offline, bob
 * sends `missed` messages on the new server. The new server shares the first one's store, or,
 * with `lostHistory`, starts with an empty one (the room gets a new epoch).
 */
async function restartWhileAway(
  browser: Browser,
  options: {
    readonly room: string;
    readonly missed: number;
    readonly env?: Record<string, string>;
    readonly lostHistory?: boolean;
  },
  check: (away: Away) => Promise<void>,
): Promise<void> {
  const { store, drop } = await sharedStore();
  let second: TestServer<MessageRepository> | undefined;
  const first = startTestServer({}, store);
  try {
    const ann = await openChat(browser, origin(first), { room: options.room, user: "ann" });
    await sendMessage(ann.page, "before the restart");
    await waitForMessages(ann.page, 1);
    const before = await epochOf(first, options.room);

    const sockets = watchSockets(ann.page);
    await first.server.shutdown(); // closes ann with 1001; the store stays open
    await waitForStatus(ann.page, /^reconnecting in \d+ s$/);
    await ann.context.setOffline(true); // ann cannot come back until bob has sent

    const env = { PORT: String(first.port), ...options.env };
    second = options.lostHistory ? startTestServer(env) : startTestServer(env, store);
    const bob = await TestSocket.open(second.chatUrl(options.room, "bob"));
    const { epoch: after } = await bob.nextOfType("welcome");
    for (let i = 1; i <= options.missed; i++) bob.send(`missed ${i}`);
    const missed = (await bob.collect("message", options.missed)) as ChatMessage[];
    const lastMissed = missed[missed.length - 1]?.id;
    await waitFor("the missed messages in history", async () => {
      const page = await (await fetch(second?.url(`/history?r=${options.room}&limit=1`) ?? ""))
        .json();
      return Array.isArray(page) && page[0]?.id === lastMissed ? true : undefined;
    });
    await ann.context.setOffline(false);
    await check({ ann, sockets, missed, bob, epochs: { before, after } });
    await bob.close();
  } finally {
    await first.server.shutdown();
    if (options.lostHistory) await second?.close();
    else await second?.server.shutdown();
    await drop();
  }
}

browserTest(
  "client: messages sent while the page was away show once, in order, resumed by seq",
  (browser) =>
    restartWhileAway(browser, { room: "resume", missed: 3 }, async (away) => {
      const { ann, sockets, missed, bob, epochs } = away;
      assert.equal(epochs.after, epochs.before); // the store kept the room, and its epoch
      const resume = await sockets.log.find((frame) => frame.type === "resume");
      assert.deepEqual(resume, {
        type: "resume",
        complete: true,
        replayed: 3,
        epoch: epochs.after,
      });
      const last = missed[missed.length - 1]?.id ?? "";
      await ann.page.locator(`#messages li.message[data-id="${last}"]`).waitFor();
      await waitForStatus(ann.page, /^live$/);
      bob.send("after the reconnect");
      await waitForMessages(ann.page, 5);
      const shown = await shownMessages(ann.page);
      assert.deepEqual(shown.map((m) => m.content), [
        "before the restart",
        "missed 1",
        "missed 2",
        "missed 3",
        "after the reconnect",
      ]);
      assert.deepEqual(shown.slice(1, 4).map((m) => m.id), missed.map((m) => m.id));
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(5));
      // Every attempt resumed after the seq ann held, in the epoch she saw it in; the replay
      // was complete, so no page of history was needed.
      assert.ok(sockets.urls.length > 0);
      for (const url of sockets.urls) {
        const params = new URL(url).searchParams;
        assert.equal(params.get("since_seq"), "1", url);
        assert.equal(params.get("epoch"), epochs.before, url);
      }
      assert.deepEqual(historyQueries(ann.requests).filter((query) => query.after_seq), []);
      assertSeqCursorsOnly([...ann.requests, ...sockets.urls]);
    }),
);

browserTest("client: an incomplete resume is completed from history, without duplicates", (
  browser,
) =>
  restartWhileAway(
    browser,
    { room: "capped", missed: 12, env: { RESUME_LIMIT: "5" } },
    async ({ ann, sockets, missed, epochs }) => {
      const resume = await sockets.log.find((frame) => frame.type === "resume");
      assert.deepEqual(resume, {
        type: "resume",
        complete: false,
        replayed: 5,
        epoch: epochs.after,
        reason: "limit",
      });
      const last = missed[missed.length - 1]?.id ?? "";
      await ann.page.locator(`#messages li.message[data-id="${last}"]`).waitFor();
      await waitForStatus(ann.page, /^live$/);
      const shown = await shownMessages(ann.page);
      assert.deepEqual(shown.map((m) => m.content), [
        "before the restart",
        ...missed.map((m) => m.content),
      ]);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(13));
      // The replay sent seqs 2 to 6; the rest, up to the welcome's last_seq (13), from history.
      assert.deepEqual(historyQueries(ann.requests).filter((query) => query.after_seq), [
        // With the changes (edits, deletes, reactions), which are items of the sequence too.
        { r: "capped", u: "ann", after_seq: "6", before_seq: "14", limit: "500", changes: "1" },
      ]);
      assertSeqCursorsOnly([...ann.requests, ...sockets.urls]);
    },
  ));

browserTest("client: a room whose history was lost (a new epoch) is reloaded, not merged", (
  browser,
) =>
  restartWhileAway(
    browser,
    { room: "reset", missed: 2, lostHistory: true },
    async ({ ann, sockets, missed, bob, epochs }) => {
      assert.notEqual(epochs.after, epochs.before);
      const resume = await sockets.log.find((frame) => frame.type === "resume");
      assert.deepEqual(resume, {
        type: "resume",
        complete: false,
        replayed: 0,
        epoch: epochs.after,
        reason: "epoch_changed",
      });
      await ann.page.locator("#notices .notice", { hasText: "was reset" }).waitFor();
      const last = missed[missed.length - 1]?.id ?? "";
      await ann.page.locator(`#messages li.message[data-id="${last}"]`).waitFor();
      await waitForStatus(ann.page, /^live$/);
      // Seq 1 is "missed 1" now: the old epoch's seq 1 is gone, not taken for a duplicate.
      bob.send("after the reset");
      await waitForMessages(ann.page, 3);
      const shown = await shownMessages(ann.page);
      assert.deepEqual(shown.map((m) => m.content), ["missed 1", "missed 2", "after the reset"]);
      assert.deepEqual(await shownSeqs(ann.page), [1, 2, 3]);
    },
  ));

browserTest(
  "client: a gap is filled from history in seq order, and the next resume starts after it",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("holes", "bob"));
      await bob.nextOfType("welcome");
      const ann = await openRelayedChat(
        browser,
        server,
        "holes",
        hidingRelay("holes", { from: 2, to: 3 }),
      );
      const texts = ["one", "two", "three", "four"];
      for (const text of texts) bob.send(text);
      await bob.collect("message", texts.length);
      await waitForMessages(ann.page, 4);
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), texts);
      assert.deepEqual(await shownSeqs(ann.page), [1, 2, 3, 4]);
      assert.deepEqual(historyQueries(ann.requests).filter((query) => query.after_seq), [
        { r: "holes", u: "ann", after_seq: "1", before_seq: "4", limit: "500", changes: "1" },
      ]);

      // The hole is filled, so the cursor is past it: the next socket resumes after seq 4.
      await ann.sockets[0]?.close({ code: 1012, reason: "test: reconnect" });
      const resume = await ann.log.find((frame) => frame.type === "resume");
      assert.equal(resume.complete, true);
      assert.equal(resume.replayed, 0);
      const url = new URL(ann.sockets[1]?.url() ?? "");
      assert.equal(url.searchParams.get("since_seq"), "4");
      assert.equal(url.searchParams.get("epoch"), resume.epoch);
      await waitForStatus(ann.page, /^live$/);
      bob.send("five");
      await waitForMessages(ann.page, 5);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(5));
      assertSeqCursorsOnly(ann.requests);
      await bob.close();
    }),
);

browserTest(
  "client: a socket that drops while a gap is filled resumes before the gap: nothing twice",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("holes", "bob"));
      await bob.nextOfType("welcome");
      const ann = await openRelayedChat(
        browser,
        server,
        "holes",
        hidingRelay("holes", { from: 2, to: 3 }),
      );
      // Hold the page's request for the hole, so it is unfilled when the socket drops.
      const fill = Promise.withResolvers<Route>();
      await ann.page.route(
        (url) => url.pathname === "/history" && url.searchParams.has("after_seq"),
        (route) => fill.resolve(route),
      );
      const texts = ["one", "two", "three", "four"];
      for (const text of texts) bob.send(text);
      await bob.collect("message", texts.length);
      const held = await within("the request filling the gap", fill.promise);
      await waitForMessages(ann.page, 2);
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), ["one", "four"]);

      await ann.sockets[0]?.close({ code: 1012, reason: "test: reconnect" });
      const resume = await ann.log.find((frame) => frame.type === "resume");
      assert.equal(new URL(ann.sockets[1]?.url() ?? "").searchParams.get("since_seq"), "1");
      assert.deepEqual(resume, {
        type: "resume",
        complete: true,
        replayed: 3,
        epoch: resume.epoch,
      });
      await waitForMessages(ann.page, 4);
      await held.fulfill({ response: await held.fetch() }); // late, for a socket now gone
      await waitForStatus(ann.page, /^live$/);
      bob.send("five");
      await waitForMessages(ann.page, 5);
      const shown = await shownMessages(ann.page);
      assert.deepEqual(shown.map((m) => m.content), [...texts, "five"]);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(5));
      await bob.close();
    }),
);

// ---- sending: client ids, acks, re-sends ---------------------------------------------------

/** The `ack` or `error` that answers `clientId`, skipping other frames. */
async function replyTo(socket: TestSocket, clientId: string): Promise<Frame> {
  for (;;) {
    const frame = await socket.next();
    if ((frame.type === "ack" || frame.type === "error") && frame.client_id === clientId) {
      return frame;
    }
  }
}

/** The messages of `room` in the server's history, oldest first. */
async function historyOf<R extends MessageRepository>(
  server: TestServer<R>,
  room: string,
): Promise<Frame[]> {
  const response = await fetch(server.url(`/history?r=${room}&limit=500`));
  return await response.json();
}

/** The `message` frames in `frames` that carry `clientId`. */
function withClientId(frames: readonly Frame[], clientId: string): Frame[] {
  return frames.filter((frame) => frame.type === "message" && frame.client_id === clientId);
}

browserTest(
  "client: messages typed while the server is down are kept, sent after the restart, shown once",
  async (browser) => {
    const { store, drop } = await sharedStore();
    let second: TestServer<MessageRepository> | undefined;
    const first = startTestServer({}, store);
    try {
      const ann = await openChat(browser, origin(first), { room: "offline", user: "ann" });
      const bob = await openChat(browser, origin(first), { room: "offline", user: "bob" });
      await sendMessage(ann.page, "before the restart");
      await waitForMessages(bob.page, 1);
      const sockets = watchSockets(ann.page);
      await first.server.shutdown(); // the store stays open for the next server
      await waitForStatus(ann.page, /^reconnecting in \d+ s$/);

      const typed = ["typed while down", "and another"];
      for (const text of typed) await sendMessage(ann.page, text);
      const pending = ann.page.locator("#pending li.pending");
      await pending.nth(typed.length - 1).waitFor();
      assert.deepEqual(await pending.locator(".content").allTextContents(), typed);
      assert.deepEqual(await pending.locator(".send-state").allTextContents(), [
        "Sending…",
        "Sending…",
      ]);
      const opacity = await pending.first().locator(".content").evaluate((element) =>
        Number(element.ownerDocument.defaultView?.getComputedStyle(element).opacity)
      );
      assert.ok(opacity < 1, `a pending message is dimmed (opacity ${opacity})`);
      assert.equal(await ann.page.locator("#composer").inputValue(), "");
      assert.equal(await ann.page.locator("#send").isDisabled(), false);
      assert.equal(await ann.page.locator("#messages li.message").count(), 1);

      second = startTestServer({ PORT: String(first.port) }, store);
      for (const { page } of [ann, bob]) await waitForMessages(page, 3);
      await pending.first().waitFor({ state: "detached" });
      for (const { page } of [ann, bob]) {
        const shown = await shownMessages(page);
        assert.deepEqual(shown.map((m) => m.content), ["before the restart", ...typed]);
        assert.deepEqual(await shownSeqs(page), seqsUpTo(3));
      }
      // Each went out once (nothing had been sent before), each with its own client id, after
      // the new socket's resume; each was acknowledged and stored once.
      const resume = await sockets.log.find((frame) => frame.type === "resume");
      assert.equal(resume.complete, true);
      const sent = sockets.sent.frames.filter((frame) => frame.type === "message");
      assert.deepEqual(sent.map((frame) => frame.content), typed);
      const ids = sent.map((frame) => String(frame.client_id));
      for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{1,64}$/);
      assert.notEqual(ids[0], ids[1]);
      for (const id of ids) {
        await sockets.log.find((frame) => frame.type === "ack" && frame.client_id === id);
      }
      const stored = await historyOf(second, "offline");
      assert.deepEqual(stored.map((m) => m.content), ["before the restart", ...typed]);
      assert.deepEqual(stored.slice(1).map((m) => m.client_id), ids);
      assert.equal(await ann.page.locator("#pending li").count(), 0);
    } finally {
      await first.server.shutdown();
      await second?.server.shutdown();
      await drop();
    }
  },
);

browserTest(
  "client: a message whose ack was lost with its socket is sent again, same client id, shown once",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("lost", "bob"));
      await bob.nextOfType("welcome");
      const dropped = Promise.withResolvers<void>();
      let lost = "";
      // The first socket delivers the message but loses its echo and its ack, then drops. The
      // replay on the next socket does not bring it either: only a re-send can settle it.
      const ann = await openRelayedChat(
        browser,
        server,
        "lost",
        (frame, page, socket, upstream) => {
          const mine = frame.type === "message" && frame.sender === "ann";
          if (socket === 0 && mine) {
            lost = frame.client_id;
            return;
          }
          if (socket === 0 && frame.type === "ack" && frame.client_id === lost) {
            Promise.all([upstream.close(), page.close({ code: 1012, reason: "test: ack lost" })])
              .then(() => dropped.resolve(), dropped.reject);
            return;
          }
          if (socket === 1 && mine && frame.client_id === lost) return;
          page.send(JSON.stringify(frame));
        },
      );
      await sendMessage(ann.page, "lost ack");
      const broadcast = await bob.nextOfType("message");
      assert.equal(broadcast.content, "lost ack");
      await within("the dropped socket", dropped.promise);

      const resume = await ann.log.find((frame) => frame.type === "resume");
      assert.deepEqual(resume, {
        type: "resume",
        complete: true,
        replayed: 1,
        epoch: resume.epoch,
      });
      const item = ann.page.locator(`#messages li.message[data-id="${broadcast.id}"]`);
      await item.waitFor();
      assert.equal(await ann.page.locator("#pending li").count(), 0);
      // Sent twice with one client id; acknowledged twice with the same id and seq.
      const sent = ann.sent.frames.filter((frame) => frame.type === "message");
      assert.deepEqual(sent, [
        { type: "message", content: "lost ack", client_id: lost },
        { type: "message", content: "lost ack", client_id: lost },
      ]);
      const acks = ann.log.frames.filter((frame) => frame.type === "ack");
      const ack = { type: "ack", client_id: lost, id: broadcast.id, seq: 1 };
      assert.deepEqual(acks, [ack, ack]);
      // Shown from the ack in its place, with the server's time (the time in its id).
      assert.equal(await item.getAttribute("data-seq"), "1");
      assert.equal(await item.locator("time").getAttribute("datetime"), broadcast.timestamp);
      assert.ok((await item.getAttribute("class"))?.includes("own"));

      // Bob saw it once: his next message is the next one.
      bob.send("after");
      const next = await bob.nextOfType("message");
      assert.deepEqual([next.content, next.seq], ["after", 2]);
      await waitForMessages(ann.page, 2);
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), [
        "lost ack",
        "after",
      ]);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(2));
      await server.repository.waitForSaved(2);
      const stored = await historyOf(server, "lost");
      assert.deepEqual(stored.map((m) => [m.content, m.client_id]), [
        ["lost ack", lost],
        ["after", undefined],
      ]);
      await bob.close();
    }),
);

browserTest(
  "client: a lost ack is settled by the replay of its message after the reconnect: sent once",
  (browser) =>
    withServer({}, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("replayed", "bob"));
      await bob.nextOfType("welcome");
      const dropped = Promise.withResolvers<void>();
      let lost = "";
      const ann = await openRelayedChat(
        browser,
        server,
        "replayed",
        (frame, page, socket, upstream) => {
          if (socket === 0 && frame.type === "message" && frame.sender === "ann") {
            lost = frame.client_id;
            return;
          }
          if (socket === 0 && frame.type === "ack" && frame.client_id === lost) {
            Promise.all([upstream.close(), page.close({ code: 1012, reason: "test: ack lost" })])
              .then(() => dropped.resolve(), dropped.reject);
            return;
          }
          page.send(JSON.stringify(frame));
        },
      );
      await sendMessage(ann.page, "lost ack");
      await within("the dropped socket", dropped.promise);
      await waitForMessages(ann.page, 1);
      await ann.page.locator("#pending li").first().waitFor({ state: "detached" });
      await waitForStatus(ann.page, /^live$/);
      // Frames go out in order: once "next" is sent, a re-send would have been sent before it.
      await sendMessage(ann.page, "next");
      await ann.sent.find((frame) => frame.content === "next");
      await waitForMessages(ann.page, 2);
      assert.equal(withClientId(ann.sent.frames, lost).length, 1);
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), ["lost ack", "next"]);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(2));
      const forBob = await bob.collect("message", 2);
      assert.deepEqual(forBob.map((m) => m.content), ["lost ack", "next"]);
      await bob.close();
    }),
);

browserTest(
  "client: a message the server refuses (backlog) shows failed; Retry sends it once",
  async (
    browser,
  ) => {
    const store = new GatedStore();
    // One worker taking one message at a time: once it waits at the held store with one
    // message and the queue holds another, every message is refused until the store goes on.
    const env = { PERSIST_WORKERS: "1", PERSIST_BATCH_SIZE: "1", PERSIST_QUEUE_LIMIT: "1" };
    const server = startTestServer(env, store);
    try {
      const bob = await TestSocket.open(server.chatUrl("full", "bob"));
      await bob.nextOfType("welcome");
      const ann = await openChat(browser, origin(server), { room: "full", user: "ann" });
      // The store holds every save, so bob's messages fill the queue until one is refused.
      store.saves.close();
      let accepted = 0;
      for (;;) {
        const clientId = `fill-${accepted + 1}`;
        bob.send(JSON.stringify({ type: "message", content: clientId, client_id: clientId }));
        const reply = await replyTo(bob, clientId);
        if (reply.type === "error") {
          assert.equal(reply.code, "backlog");
          break;
        }
        accepted++;
        assert.ok(accepted < 1_000, "the queue never filled");
      }
      await waitForMessages(ann.page, accepted);

      await sendMessage(ann.page, "refused once");
      const failed = ann.page.locator("#pending li.failed");
      await failed.waitFor();
      assert.match((await failed.locator(".why").textContent()) ?? "", /^Not sent: .*\(backlog\)$/);
      assert.equal(await failed.locator(".content").textContent(), "refused once");

      store.saves.open();
      await waitFor("the queue to drain", async () => {
        const saved = await store.inner.history("full", { limit: 1_000 });
        return saved.length === accepted ? true : undefined;
      });
      await failed.getByRole("button", { name: "Retry" }).click();
      await waitForMessages(ann.page, accepted + 1);
      await ann.page.locator("#pending li").first().waitFor({ state: "detached" });
      const shown = await shownMessages(ann.page);
      assert.deepEqual(shown.map((m) => m.content).slice(-1), ["refused once"]);
      assert.equal(shown.filter((m) => m.content === "refused once").length, 1);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(accepted + 1));

      // Bob got it once: the message after it is his own next one.
      const retried = await bob.nextOfType("message");
      assert.deepEqual([retried.sender, retried.content], ["ann", "refused once"]);
      bob.send("after");
      assert.equal((await bob.nextOfType("message")).content, "after");
      await waitForMessages(ann.page, accepted + 2);
      const stored = await historyOf(server, "full");
      assert.equal(stored.filter((m) => m.content === "refused once").length, 1);
      assert.equal(stored.find((m) => m.content === "refused once")?.client_id, retried.client_id);
      await bob.close();
    } finally {
      store.saves.open();
      await server.close();
    }
  },
);

browserTest(
  "client: messages dropped as rate_limited are sent again after a pause, each shown once",
  (browser) =>
    withServer({ RATE_LIMIT_PER_SECOND: "1", RATE_LIMIT_BURST: "2" }, async (server) => {
      const bob = await TestSocket.open(server.chatUrl("slow", "bob"));
      await bob.nextOfType("welcome");
      const ann = await openRelayedChat(browser, server, "slow", withoutLimits);
      const texts = ["one", "two", "three", "four"];
      for (const text of texts) await sendMessage(ann.page, text);
      // The server drops frames past its burst unread, with an error naming none of them.
      await ann.log.find((frame) => frame.type === "error" && frame.code === "rate_limited");
      await waitForMessages(ann.page, texts.length);
      await ann.page.locator("#pending li").first().waitFor({ state: "detached" });
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), texts);
      assert.deepEqual(await shownSeqs(ann.page), seqsUpTo(texts.length));
      const forBob = await bob.collect("message", texts.length);
      assert.deepEqual(forBob.map((m) => m.content), texts);
      bob.send("after");
      assert.equal((await bob.nextOfType("message", 10_000)).content, "after");
      await bob.close();
    }),
);

browserTest(
  "client: a message too big for a frame fails, instead of closing every next socket too",
  (browser) =>
    withServer({ MAX_FRAME_BYTES: "256" }, async (server) => {
      const ann = await openRelayedChat(browser, server, "big", withoutLimits);
      await sendMessage(ann.page, "x".repeat(300));
      const failed = ann.page.locator("#pending li.failed");
      await failed.waitFor();
      assert.match((await failed.locator(".why").textContent()) ?? "", /frame_too_large/);
      await waitForStatus(ann.page, /^live$/);
      await sendMessage(ann.page, "small enough");
      await waitForMessages(ann.page, 1);
      assert.deepEqual((await shownMessages(ann.page)).map((m) => m.content), ["small enough"]);
      // One socket closed with 1009, the next one did not get the big message again.
      assert.equal(ann.sockets.length, 2);
      const sent = ann.sent.frames.filter((frame) => frame.type === "message")
        .map((frame) => frame.content.length);
      assert.deepEqual(sent, [300, "small enough".length]);
      assert.equal(await failed.count(), 1);
    }),
);
