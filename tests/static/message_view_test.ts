/**
 * How static/client.html shows and sends messages, in headless Chromium against a real server:
 * right-to-left text, links, the length limit in words, and notices that cover nothing.
 */
import assert from "node:assert/strict";
import {
  type Locator,
  openChat,
  openPage,
  type Page,
  sendMessage,
  shownMessages,
  waitForMessages,
  waitForStatus,
} from "../support/browser.ts";
import { TestSocket } from "../support/test_socket.ts";
import { browserTest, changeRules, withServer } from "./_chrome.ts";

/** Whether each element of `locator` is laid out right to left (`:dir(rtl)`). */
function rightToLeft(locator: Locator): Promise<boolean[]> {
  return locator.evaluateAll((nodes) =>
    nodes.map((node) => node.getAttribute("dir") === "auto" && node.matches(":dir(rtl)"))
  );
}

browserTest(
  "client: right-to-left messages and names are laid out right to left, others left to right",
  (browser) =>
    withServer({}, async (server) => {
      const sara = await openChat(browser, server.url(""), { room: "rtl", user: "שרה" });
      await sendMessage(sara.page, "שלום לכולם, hello");
      await sendMessage(sara.page, "hello, שלום");
      await waitForMessages(sara.page, 2);
      const content = sara.page.locator("#messages .content");
      assert.deepEqual(await rightToLeft(content), [true, false]);
      assert.deepEqual(await rightToLeft(sara.page.locator("#messages .sender")), [true, true]);
      assert.deepEqual(await rightToLeft(sara.page.locator("#members .name")), [true]);
      assert.equal(await sara.page.locator("#composer").getAttribute("dir"), "auto");
    }),
);

/** The links in the `index`-th message shown. */
function linksOf(page: Page, index: number) {
  return page.locator("#messages li.message").nth(index).locator(".content a").evaluateAll(
    (links) =>
      links.map((link) => ({
        text: link.textContent,
        href: link.getAttribute("href"),
        rel: link.getAttribute("rel"),
        target: link.getAttribute("target"),
      })),
  );
}

browserTest(
  "client: http(s) URLs in messages are links; other schemes and markup stay text",
  (browser) =>
    withServer({}, async (server) => {
      const ann = await openChat(browser, server.url(""), { room: "links", user: "ann" });
      const bob = await openChat(browser, server.url(""), { room: "links", user: "bob" });
      const texts = [
        "javascript:alert(1)",
        "<img src=x onerror=alert(1)>",
        "see https://example.com/a?b=c.",
        "(https://en.wikipedia.org/wiki/Foo_(bar)), data:text/html,<b>x</b> and xhttp://a.b",
      ];
      for (const text of texts) await sendMessage(ann.page, text);
      await waitForMessages(bob.page, texts.length);
      const shown = await shownMessages(bob.page);
      assert.deepEqual(shown.map((m) => m.content), texts); // the text itself is unchanged
      const link = (text: string, href: string) => ({
        text,
        href,
        rel: "noopener noreferrer",
        target: "_blank",
      });
      assert.deepEqual(await linksOf(bob.page, 0), []);
      assert.deepEqual(await linksOf(bob.page, 1), []);
      assert.deepEqual(await linksOf(bob.page, 2), [
        link("https://example.com/a?b=c", "https://example.com/a?b=c"),
      ]);
      const wiki = "https://en.wikipedia.org/wiki/Foo_(bar)";
      assert.deepEqual(await linksOf(bob.page, 3), [link(wiki, wiki)]);
      for (const { page } of [ann, bob]) {
        assert.equal(await page.locator("#messages :is(img, b, script)").count(), 0);
        // Only <a> elements and text: nothing else came out of the message text.
        const tags = await page.locator("#messages .content *").evaluateAll((nodes) =>
          nodes.map((node) => node.tagName)
        );
        assert.deepEqual(tags, ["A", "A"]);
      }
      assert.deepEqual([...ann.dialogs, ...bob.dialogs], []);
    }),
);

browserTest(
  "client: a message over the limit is stopped in the composer, the limit said in words",
  (browser) =>
    withServer(
      { MAX_CONTENT_CHARS: "10", RATE_LIMIT_PER_SECOND: "1", RATE_LIMIT_BURST: "2" },
      async (server) => {
        // The page's rules say 4000: the welcome's limits, the connection's own, win.
        const ann = await openPage(browser, server.url("/client.html?r=limits&u=ann"), {
          before: (page) => changeRules(page, { max_content_chars: 4000 }),
        });
        await waitForStatus(ann.page, /^live$/);
        const composer = ann.page.locator("#composer");
        await sendMessage(ann.page, "this is far too long");
        const error = ann.page.locator("#compose-error");
        await error.waitFor();
        assert.equal(
          await error.textContent(),
          "Messages can be at most 10 characters (yours has 20).",
        );
        assert.equal(await ann.page.locator("#compose-count").textContent(), "20 / 10");
        assert.equal(await composer.getAttribute("aria-invalid"), "true");
        assert.equal(await composer.inputValue(), "this is far too long"); // kept, to shorten
        assert.equal(await ann.page.locator("#pending li").count(), 0);
        await ann.page.locator("#announcer", { hasText: "at most 10 characters" }).waitFor({
          state: "attached",
        });

        await composer.fill("  short  "); // the server trims: 5 characters
        assert.equal(await error.isVisible(), false);
        await composer.press("Enter");
        await waitForMessages(ann.page, 1);

        // Faster than the server's 1 a second: said, and sent anyway, a little slower.
        for (const text of ["one", "two", "three", "four"]) await sendMessage(ann.page, text);
        await ann.page.locator("#notices .notice", {
          hasText: "You are sending faster than the server takes (1 message a second)",
        }).waitFor();
        // The SDK paces itself at half the server's rate: four messages take about 8 s.
        await waitForMessages(ann.page, 5, 30_000);
      },
    ),
);

browserTest(
  "client: a message the server refuses for its length fails in words; Edit, Dismiss work",
  (browser) =>
    withServer({ MAX_CONTENT_CHARS: "10" }, async (server) => {
      // A page that does not know the server's limit (rules and welcome say nothing of it).
      const ann = await openPage(browser, server.url("/client.html?r=limits&u=ann"), {
        before: async (page) => {
          await changeRules(page, { max_content_chars: 4000 });
          await page.routeWebSocket((url) => url.pathname === "/chat", (socket) => {
            const upstream = socket.connectToServer();
            upstream.onMessage((message) => {
              // A batched frame (batch=1) holds one frame per line: each goes on alone.
              for (const line of String(message).split("\n")) {
                const { limits: _, ...frame } = JSON.parse(line);
                socket.send(JSON.stringify(frame));
              }
            });
          });
        },
      });
      await waitForStatus(ann.page, /^live$/);
      const composer = ann.page.locator("#composer");
      const failed = ann.page.locator("#pending li.failed");
      await sendMessage(ann.page, "this is far too long");
      await failed.waitFor();
      assert.equal(await failed.locator(".content").textContent(), "this is far too long");
      assert.equal(
        await failed.locator(".send-state .why").textContent(),
        "Not sent: The message is longer than the server takes (yours has 20 characters) " +
          "(content_too_long)",
      );
      assert.deepEqual(await failed.getByRole("button").allTextContents(), [
        "Retry",
        "Edit",
        "Dismiss",
      ]);
      await ann.page.locator("#announcer", { hasText: "Message not sent" }).waitFor({
        state: "attached",
      });
      assert.equal(await composer.inputValue(), ""); // the text is in the failed message
      await failed.getByRole("button", { name: "Edit" }).click();
      await failed.waitFor({ state: "detached" });
      assert.equal(await composer.inputValue(), "this is far too long");
      assert.equal(await ann.page.locator("#composer:focus").count(), 1);

      await composer.fill("");
      await sendMessage(ann.page, "also too long");
      await failed.getByRole("button", { name: "Dismiss" }).click();
      await failed.waitFor({ state: "detached" });
      assert.equal(await composer.inputValue(), "");
      assert.equal(await ann.page.locator("#pending li").count(), 0);
      assert.equal(await ann.page.locator("#messages li.message").count(), 0);
    }),
);

/** Whether two boxes share any area. */
function overlap(
  a: { x: number; y: number; width: number; height: number },
  b: { x: number; y: number; width: number; height: number },
): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height &&
    b.y < a.y + a.height;
}

browserTest(
  "client: a notice never covers the members list, wide or narrow",
  (browser) =>
    withServer({}, async (server) => {
      const layouts = [
        { user: "wide", viewport: { width: 1280, height: 800 } },
        { user: "narrow", viewport: { width: 360, height: 740 } },
      ];
      for (const { user, viewport } of layouts) {
        const room = `layout-${user}`;
        const ann = await openChat(browser, server.url(""), { room, user }, { viewport });
        const toggle = ann.page.getByRole("button", { name: /Members/ });
        if (await toggle.isVisible()) await toggle.click();
        const heading = ann.page.locator("#members-heading");
        await heading.waitFor();
        const bob = await TestSocket.open(server.chatUrl(room, "bob"));
        const notice = ann.page.locator("#notices .notice", { hasText: "bob joined." });
        await notice.waitFor();
        const noticeBox = await notice.boundingBox();
        const headingBox = await heading.boundingBox();
        assert.ok(noticeBox && headingBox, user);
        assert.ok(
          !overlap(noticeBox, headingBox),
          `${user}: notice ${JSON.stringify(noticeBox)}, heading ${JSON.stringify(headingBox)}`,
        );
        assert.ok(noticeBox.x >= 0 && noticeBox.x + noticeBox.width <= viewport.width, user);
        await bob.close();
        await ann.context.close();
      }
    }),
);
