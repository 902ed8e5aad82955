/**
 * A conversation between two pages of one room, as people have it: replies, edits (the Edit
 * button and Up in an empty composer), deletes after a confirmation, reactions, typing, read
 * receipts and the "New messages" divider after a reload.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import {
  type Locator,
  openChat,
  openPage,
  type Page,
  sendMessage,
  waitForMessages,
  waitForStatus,
} from "../support/browser.ts";
import { browserTest, withServer } from "./_chrome.ts";

const SECRET = "conversation-test-secret-long-enough-for-hs256";

/** A token for `sub` in every room, moderating the rooms `mod` names. */
function token(sub: string, mod: string[] = []): Promise<string> {
  return new SignJWT({ rooms: ["*"], mod })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(SECRET));
}

/** The message of `page` whose content is exactly `text` (a reply's quote does not count). */
function byContent(page: Page, text: string): Locator {
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
  return page.locator("#messages li.message").filter({
    has: page.locator(":scope > .body > .content", { hasText: exact }),
  });
}

/**
 * Records the page's errors (uncaught exceptions, console errors such as CSP refusals) into
 * `errors`, as `openChat`'s `before`.
 */
function recordErrors(errors: string[]): (page: Page) => Promise<void> {
  return (page) => {
    page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(`console: ${message.text()}`);
    });
    return Promise.resolve();
  };
}

/** Shows the actions of `message` (as a pointer over it does) and clicks the one named `name`. */
async function act(message: Locator, name: string): Promise<void> {
  await message.hover();
  await message.getByRole("button", { name, exact: true }).click();
}

browserTest(
  "client: a reply, edits (Edit, and Up in an empty composer), a delete after a confirmation; the other page sees each",
  (browser) =>
    withServer({}, async (server) => {
      const base = server.url("");
      const errors: string[] = [];
      const before = recordErrors(errors);
      const ann = await openChat(browser, base, { room: "talk", user: "ann" }, { before });
      const bob = await openChat(browser, base, { room: "talk", user: "bob" }, { before });
      await ann.page.locator("#member-count", { hasText: /^2$/ }).waitFor();

      await sendMessage(ann.page, "first draft");
      await waitForMessages(bob.page, 1);
      await act(byContent(bob.page, "first draft"), "Reply to ann");
      await sendMessage(bob.page, "a reply");
      await waitForMessages(ann.page, 2);

      // bob may change none of ann's messages.
      const annsOnBob = byContent(bob.page, "first draft");
      await annsOnBob.hover();
      assert.equal(
        await annsOnBob.getByRole("button", { name: "Edit message" }).isVisible(),
        false,
      );
      assert.equal(
        await annsOnBob.getByRole("button", { name: "Delete message" }).isVisible(),
        false,
      );

      // Edit: the button opens the text in place; Enter saves.
      await act(byContent(ann.page, "first draft"), "Edit message");
      const editor = ann.page.getByRole("textbox", { name: "Edit message" });
      await editor.waitFor();
      assert.equal(await editor.inputValue(), "first draft");
      await editor.fill("first, fixed");
      await editor.press("Enter");
      await editor.waitFor({ state: "detached" });
      await ann.page.locator("#composer:focus").waitFor();
      for (const page of [ann.page, bob.page]) {
        const edited = byContent(page, "first, fixed");
        await edited.locator(".edited", { hasText: "(edited)" }).waitFor();
        const reply = byContent(page, "a reply");
        await reply.locator(".quote", { hasText: "↩ ann: first, fixed" }).waitFor();
      }

      // Up in the empty composer edits ann's last message; Escape leaves it as it was.
      await sendMessage(ann.page, "second");
      await waitForMessages(bob.page, 3);
      await ann.page.locator("#composer").press("ArrowUp");
      assert.equal(await editor.inputValue(), "second");
      await editor.fill("not kept");
      await editor.press("Escape");
      await editor.waitFor({ state: "detached" });
      await byContent(ann.page, "second").waitFor();
      // An empty edit is refused in place, and the editor stays.
      await ann.page.locator("#composer").press("ArrowUp");
      await editor.fill("   ");
      await editor.press("Enter");
      await ann.page.locator(".editor .error", { hasText: "The message is empty" }).waitFor();
      await editor.fill("second, fixed");
      await editor.press("Enter");
      await byContent(bob.page, "second, fixed").locator(".edited").waitFor();

      // Delete asks first: Cancel keeps the message, Delete makes a tombstone on both pages.
      const dialog = ann.page.getByRole("dialog", { name: "Delete this message?" });
      await act(byContent(ann.page, "second, fixed"), "Delete message");
      await dialog.waitFor();
      await dialog.getByText("second, fixed").waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "hidden" });
      await byContent(ann.page, "second, fixed").waitFor();
      await act(byContent(ann.page, "second, fixed"), "Delete message");
      await dialog.getByRole("button", { name: "Delete" }).click();
      for (const page of [ann.page, bob.page]) {
        await byContent(page, "message deleted").waitFor();
        assert.equal(await byContent(page, "second, fixed").count(), 0);
        assert.equal(await page.locator("#messages li.message").count(), 3, "a tombstone stays");
      }
      // The answered message deleted: the reply says so.
      await act(byContent(ann.page, "first, fixed"), "Delete message");
      await dialog.getByRole("button", { name: "Delete" }).click();
      await byContent(bob.page, "a reply").locator(".quote", { hasText: "↩ original deleted" })
        .waitFor();
      assert.equal(await bob.page.locator("#messages li.deleted").count(), 2);

      // A reload reads the same from /history: tombstones and the edited mark stay.
      await bob.page.reload();
      await waitForMessages(bob.page, 3);
      assert.equal(await bob.page.locator("#messages li.deleted").count(), 2);
      await byContent(bob.page, "a reply").locator(".quote", { hasText: "↩ original deleted" })
        .waitFor();
      assert.deepEqual([...ann.dialogs, ...bob.dialogs], [], "no window.confirm or alert");
      assert.deepEqual(errors, [], "no script errors, nothing the CSP refused");
    }),
);

browserTest(
  "client: reactions: picked on one page, counted on both, highlighted for who reacted, toggled by a click, and read again after a reload",
  (browser) =>
    withServer({}, async (server) => {
      const base = server.url("");
      const ann = await openChat(browser, base, { room: "reactions", user: "ann" });
      const bob = await openChat(browser, base, { room: "reactions", user: "bob" });
      await ann.page.locator("#member-count", { hasText: /^2$/ }).waitFor();
      await sendMessage(ann.page, "lunch?");
      await waitForMessages(bob.page, 1);

      await act(byContent(bob.page, "lunch?"), "Add a reaction");
      await bob.page.getByRole("group", { name: "Pick a reaction" }).waitFor();
      await bob.page.getByRole("button", { name: "React with thumbs up" }).click();
      await bob.page.getByRole("group", { name: "Pick a reaction" }).waitFor({
        state: "detached",
      });
      const chip = (page: Page) =>
        byContent(page, "lunch?").getByRole("button", { name: /^👍 \d+$/ });
      await chip(ann.page).filter({ hasText: "👍 1" }).waitFor();
      await chip(bob.page).filter({ hasText: "👍 1" }).waitFor();
      assert.equal(await chip(bob.page).getAttribute("aria-pressed"), "true");
      assert.equal(await chip(ann.page).getAttribute("aria-pressed"), "false");

      // ann adds hers with the chip; bob takes his back with his.
      await chip(ann.page).click();
      await chip(bob.page).filter({ hasText: "👍 2" }).waitFor();
      await chip(ann.page).filter({ hasText: "👍 2" }).waitFor();
      assert.equal(await chip(ann.page).getAttribute("aria-pressed"), "true");
      await chip(bob.page).click();
      await chip(ann.page).filter({ hasText: "👍 1" }).waitFor();
      await chip(bob.page).filter({ hasText: "👍 1" }).waitFor();
      assert.equal(await chip(bob.page).getAttribute("aria-pressed"), "false");

      // After a reload the counts and "mine" come from /history.
      await bob.page.reload();
      await chip(bob.page).filter({ hasText: "👍 1" }).waitFor();
      assert.equal(await chip(bob.page).getAttribute("aria-pressed"), "false");
      await ann.page.reload();
      await chip(ann.page).filter({ hasText: "👍 1" }).waitFor();
      assert.equal(await chip(ann.page).getAttribute("aria-pressed"), "true");
    }),
);

browserTest(
  "client: typing shows on the other page and goes after 5 s without a message",
  (browser) =>
    withServer({}, async (server) => {
      const base = server.url("");
      const ann = await openChat(browser, base, { room: "typing-too", user: "ann" });
      const bob = await openChat(browser, base, { room: "typing-too", user: "bob" });
      await ann.page.locator("#member-count", { hasText: /^2$/ }).waitFor();
      await ann.page.locator("#composer").pressSequentially("so");
      await bob.page.locator("#typing", { hasText: "ann is typing…" }).waitFor();
      await bob.page.locator("#typing:empty").waitFor({ state: "attached", timeout: 8_000 });
    }),
);

browserTest(
  'client: "Seen by" follows read receipts, and a reload shows "New messages" above what came while away',
  (browser) =>
    withServer({}, async (server) => {
      const base = server.url("");
      const who = { room: "unread", user: "bob" };
      const ann = await openChat(browser, base, { room: "unread", user: "ann" });
      let bob = await openChat(browser, base, who);
      await ann.page.locator("#member-count", { hasText: /^2$/ }).waitFor();
      await sendMessage(ann.page, "before");
      await waitForMessages(bob.page, 1);
      // bob's page shows it, so it reads it: ann is told.
      await byContent(ann.page, "before").locator(".seen", { hasText: "Seen by bob" }).waitFor();
      // ann's page read it too: bob is told, and neither is told of their own.
      await byContent(bob.page, "before").locator(".seen", { hasText: "Seen by ann" }).waitFor();
      assert.equal(await bob.page.getByText("Seen by bob").count(), 0);
      assert.equal(await ann.page.getByText("Seen by ann").count(), 0);

      await bob.context.close();
      await ann.page.locator("#member-count", { hasText: /^1$/ }).waitFor();
      await sendMessage(ann.page, "while away 1");
      await sendMessage(ann.page, "while away 2");
      await waitForMessages(ann.page, 3);

      bob = await openChat(browser, base, who);
      await waitForMessages(bob.page, 3);
      const divider = bob.page.getByRole("separator", { name: "New messages" });
      await divider.waitFor();
      assert.equal(await divider.count(), 1);
      await byContent(bob.page, "while away 1").getByRole("separator").waitFor();
      // bob reads them now: the receipt moves to the newest.
      await byContent(ann.page, "while away 2").locator(".seen", { hasText: "Seen by bob" })
        .waitFor();
      assert.equal(await ann.page.getByText("Seen by bob").count(), 1);
      await bob.context.close();
    }),
);

browserTest(
  "client: a moderator (the token's mod) deletes another's message after a confirmation; others may not",
  (browser) =>
    withServer({ AUTH_SECRET: SECRET }, async (server) => {
      const open = async (jwt: string) => {
        const opened = await openPage(browser, server.url(`/client.html?r=modded&token=${jwt}`));
        await waitForStatus(opened.page, /^live$/);
        return opened;
      };
      const mia = await open(await token("mia", ["modded"]));
      const bob = await open(await token("bob"));
      await mia.page.locator("#member-count", { hasText: /^2$/ }).waitFor();
      await sendMessage(mia.page, "house rules");
      await sendMessage(bob.page, "spam");
      await waitForMessages(mia.page, 2);
      await waitForMessages(bob.page, 2);

      const rules = byContent(bob.page, "house rules");
      await rules.hover();
      assert.equal(await rules.getByRole("button", { name: "Delete message" }).isVisible(), false);
      await act(byContent(mia.page, "spam"), "Delete message");
      const dialog = mia.page.getByRole("dialog", { name: "Delete this message?" });
      await dialog.getByText("bob's message “spam”", { exact: false }).waitFor();
      await dialog.getByRole("button", { name: "Delete" }).click();
      for (const page of [mia.page, bob.page]) await byContent(page, "message deleted").waitFor();
      assert.equal(await byContent(bob.page, "spam").count(), 0);
    }),
);
