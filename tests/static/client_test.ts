/**
 * End-to-end tests of static/client.html in headless Chromium against a real in-process server.
 * Each test closes its browser (with its pages) and its server in `finally`; sanitizers stay on.
 */
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { silentLogger } from "../../log/logger.ts";
import { MemoryStore } from "../../storage/memory_store.ts";
import { PostgresStore } from "../../storage/postgres_store.ts";
import type { ChatMessage } from "../../chat/message.ts";
import type { MessageRepository } from "../../storage/repository.ts";
import {
  type ChatPage,
  foreignRequests,
  launchChromium,
  openChat,
  PAGE_TIMEOUT_MS,
  sendMessage,
  shownMessages,
  waitForMessages,
  waitForStatus,
} from "../support/browser.ts";
import { dropSchema, freshSchemaName } from "../support/postgres_schema.ts";
import type { RecordingStore } from "../support/recording_store.ts";
import { serviceGate } from "../support/services.ts";
import { startTestServer, type TestServer } from "../support/test_server.ts";
import { TestSocket } from "../support/test_socket.ts";
import { waitFor } from "../support/wait_for.ts";

const chrome = serviceGate("CHROME_PATH", "Chromium");
// Optional here: without it the restart tests share one MemoryStore between the two servers.
const database = Deno.env.get("TEST_DATABASE_URL") || undefined;

/** Registers a test with a fresh Chromium, closed afterwards; skipped without CHROME_PATH. */
function browserTest(name: string, fn: (browser: Browser) => Promise<void>): void {
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
async function withServer(
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

function origin<R extends MessageRepository>(server: TestServer<R>): string {
  return server.url("");
}

function assertNoForeignRequests<R extends MessageRepository>(
  server: TestServer<R>,
  page: ChatPage,
): void {
  assert.deepEqual(foreignRequests(page.requests, origin(server)), []);
}

function assertSortedUnique(ids: readonly string[]): void {
  for (let i = 1; i < ids.length; i++) {
    assert.ok((ids[i - 1] ?? "") < (ids[i] ?? ""), `ids out of order or repeated at ${i}`);
  }
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
      assertSortedUnique(seenByAnn.map((m) => m.id));
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
      await page.keyboard.press("Shift+Tab"); // back to the message list
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
      assert.ok(seenByCat.every((m) => !m.classes.includes("own")));
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
  "client: a name the server refuses shows the server's reason as a notice",
  (browser) =>
    withServer({}, async (server) => {
      const ann = await openChat(
        browser,
        origin(server),
        { room: "bad", user: "zero\u200bwidth" },
        {
          waitLive: false,
        },
      );
      await waitForStatus(ann.page, /^disconnected$/);
      const notice = ann.page.locator("#notices[role=status] .notice", { hasText: "invalid_user" });
      await notice.waitFor();
      assert.match((await notice.textContent()) ?? "", /u must be 1 to 32 printable characters/);
    }),
);

browserTest("client: an error frame for a refused message is a notice and keeps the text", (
  browser,
) =>
  withServer({ MAX_CONTENT_CHARS: "10" }, async (server) => {
    const ann = await openChat(browser, origin(server), { room: "limits", user: "ann" });
    await sendMessage(ann.page, "this is far too long");
    const notice = ann.page.locator("#notices .notice", { hasText: "content_too_long" });
    await notice.waitFor();
    assert.equal(await ann.page.locator("#composer").inputValue(), "this is far too long");
    assert.equal(await ann.page.locator("#messages li.message").count(), 0);
  }));

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
    assertSortedUnique(shown.map((m) => m.id));
  }));

browserTest("client: a join is gap-free: a message sent while history loads is replayed", (
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
    // Hold ann's history answer until bob has sent another message: the page's history is
    // then one message behind, and only the socket's replay can fill the gap.
    let held = false;
    await page.route((url) => url.pathname === "/history", async (route) => {
      const response = await route.fetch();
      if (!held) { // only the first page: later ones are scroll-back
        held = true;
        bob.send("while ann loads history");
        await bob.nextOfType("message");
      }
      await route.fulfill({ response });
    });
    await page.goto(server.url("/client.html?r=gap&u=ann"));
    await page.getByRole("button", { name: "Join" }).click();
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
    assertSortedUnique(shown.map((m) => m.id));
    await bob.close();
  }));

/**
 * Takes the page's server down and up again on the same port; while the page is offline, bob
 * sends `missed` messages on the new server. Returns the page and bob's frames.
 */
async function restartWhileAway(
  browser: Browser,
  options: {
    readonly room: string;
    readonly missed: number;
    readonly env?: Record<string, string>;
  },
  check: (page: ChatPage, missed: ChatMessage[], bob: TestSocket) => Promise<void>,
): Promise<void> {
  const { store, drop } = await sharedStore();
  let second: TestServer<MessageRepository> | undefined;
  const first = startTestServer({}, store);
  try {
    const ann = await openChat(browser, origin(first), { room: options.room, user: "ann" });
    await sendMessage(ann.page, "before the restart");
    await waitForMessages(ann.page, 1);

    await first.server.shutdown(); // closes ann with 1001; the store stays open
    await waitForStatus(ann.page, /^reconnecting in \d+ s$/);
    await ann.context.setOffline(true); // ann cannot come back until bob has sent

    second = startTestServer({ PORT: String(first.port), ...options.env }, store);
    const bob = await TestSocket.open(second.chatUrl(options.room, "bob"));
    await bob.nextOfType("welcome");
    for (let i = 1; i <= options.missed; i++) bob.send(`missed ${i}`);
    const missed = (await bob.collect("message", options.missed)) as ChatMessage[];
    const lastMissed = missed[missed.length - 1]?.id;
    await waitFor("the missed messages in history", async () => {
      const page = await (await fetch(second?.url(`/history?r=${options.room}&limit=1`) ?? ""))
        .json();
      return Array.isArray(page) && page[0]?.id === lastMissed ? true : undefined;
    });
    await ann.context.setOffline(false);
    await check(ann, missed, bob);
    await bob.close();
  } finally {
    await first.server.shutdown();
    await second?.server.shutdown();
    await drop();
  }
}

browserTest("client: after a server restart the page resumes and shows a missed message once", (
  browser,
) =>
  restartWhileAway(browser, { room: "resume", missed: 1 }, async (ann, missed, bob) => {
    const id = missed[0]?.id ?? "";
    await ann.page.locator(`#messages li.message[data-id="${id}"]`).waitFor({ timeout: 20_000 });
    await waitForStatus(ann.page, /^live$/);
    bob.send("after the reconnect");
    await waitForMessages(ann.page, 3);
    const shown = await shownMessages(ann.page);
    assert.deepEqual(shown.map((m) => m.content), [
      "before the restart",
      "missed 1",
      "after the reconnect",
    ]);
    assertSortedUnique(shown.map((m) => m.id));
  }));

browserTest("client: an incomplete resume is completed from history, without duplicates", (
  browser,
) =>
  restartWhileAway(
    browser,
    { room: "capped", missed: 12, env: { RESUME_LIMIT: "5" } },
    async (ann, missed) => {
      const last = missed[missed.length - 1]?.id ?? "";
      await ann.page.locator(`#messages li.message[data-id="${last}"]`).waitFor({
        timeout: 20_000,
      });
      await waitForStatus(ann.page, /^live$/);
      const shown = await shownMessages(ann.page);
      assert.deepEqual(shown.map((m) => m.content), [
        "before the restart",
        ...missed.map((m) => m.content),
      ]);
      assertSortedUnique(shown.map((m) => m.id));
    },
  ));
