import assert from "node:assert/strict";
import { openChat, sendMessage, waitForMessages } from "../support/browser.ts";
import { browserTest, withServer } from "./_chrome.ts";

browserTest(
  "client: Reply quotes the message answered on both pages; Escape cancels a reply",
  (browser) =>
    withServer({}, async (server) => {
      const base = server.url("");
      const ann = await openChat(browser, base, { room: "replies", user: "ann" });
      const bob = await openChat(browser, base, { room: "replies", user: "bob" });
      await ann.page.locator("#member-count", { hasText: /^2$/ }).waitFor();
      await sendMessage(ann.page, "the question");
      await waitForMessages(bob.page, 1);

      const question = bob.page.locator('#messages li.message[data-seq="1"]');
      await question.hover();
      await question.getByRole("button", { name: "Reply to ann" }).click();
      await bob.page.locator("#replying-text", { hasText: "Replying to ann: the question" })
        .waitFor();
      await bob.page.locator("#composer").fill("the answer");
      await bob.page.locator("#composer").press("Enter");
      assert.equal(await bob.page.locator("#replying").isHidden(), true, "sent: no reply pending");

      for (const page of [ann.page, bob.page]) {
        await waitForMessages(page, 2);
        const answer = page.locator("#messages li.message", { hasText: "the answer" });
        await answer.locator(".quote", { hasText: "↩ ann: the question" }).waitFor();
      }

      // Escape takes a reply back before it is sent.
      await question.hover();
      await question.getByRole("button", { name: "Reply to ann" }).click();
      await bob.page.locator("#replying").waitFor();
      await bob.page.locator("#composer").press("Escape");
      assert.equal(await bob.page.locator("#replying").isHidden(), true);
      await sendMessage(bob.page, "not a reply");
      await waitForMessages(ann.page, 3);
      const plain = ann.page.locator("#messages li.message", { hasText: "not a reply" });
      assert.equal(await plain.locator(".quote").count(), 0);
    }),
);
