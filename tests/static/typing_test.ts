import { openChat, sendMessage, waitForMessages } from "../support/browser.ts";
import { browserTest, withServer } from "./_chrome.ts";

browserTest(
  'client: "ann is typing…" shows on the other page while she types, and goes with her message or after 5 s',
  (browser) =>
    withServer({}, async (server) => {
      const base = server.url("");
      const ann = await openChat(browser, base, { room: "typing", user: "ann" });
      const bob = await openChat(browser, base, { room: "typing", user: "bob" });
      await ann.page.locator("#member-count", { hasText: /^2$/ }).waitFor();
      const shown = bob.page.locator("#typing");

      await ann.page.locator("#composer").pressSequentially("hel");
      await bob.page.locator("#typing", { hasText: "ann is typing…" }).waitFor();
      await ann.page.locator("#composer").press("Enter");
      await waitForMessages(bob.page, 1);
      await bob.page.locator("#typing:empty").waitFor({ state: "attached" });
      if ((await ann.page.locator("#typing").textContent()) !== "") {
        throw new Error("ann is told of her own typing");
      }

      // Without a message, it goes after 5 s. (A user's typing is passed on once per 2 s.)
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      await ann.page.locator("#composer").pressSequentially("again");
      await bob.page.locator("#typing", { hasText: "ann is typing…" }).waitFor();
      await bob.page.locator("#typing:empty").waitFor({ state: "attached", timeout: 8_000 });
      await sendMessage(ann.page, "done");
      await waitForMessages(bob.page, 2);
      if ((await shown.textContent()) !== "") throw new Error("still shown after her message");
    }),
);
