import assert from "node:assert/strict";
import { WebhookSigner } from "../../webhooks/signature.ts";

Deno.test("WebhookSigner.sign() is sha256=<hex HMAC-SHA256 of the body> (RFC 4231 test case 2)", async () => {
  const signer = new WebhookSigner("Jefe");
  assert.equal(
    await signer.sign("what do ya want for nothing?"),
    "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});

Deno.test("WebhookSigner.sign() signs the body's UTF-8 bytes, as they are sent", async () => {
  const secret = "a-secret-of-at-least-32-bytes-ok";
  const body = JSON.stringify({ data: { content: "héllo 👋 مرحبا" } });
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)),
  );
  const hex = [...mac].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  assert.equal(await new WebhookSigner(secret).sign(body), `sha256=${hex}`);
});

Deno.test("WebhookSigner.verify() accepts its signature and refuses any other", async () => {
  const signer = new WebhookSigner("a-secret-of-at-least-32-bytes-ok");
  const body = '{"id":"1","type":"user.online","time":"2026-01-01T00:00:00.000Z","data":{}}';
  const header = await signer.sign(body);
  assert.equal(await signer.verify(body, header), true);
  assert.equal(await signer.verify(body + " ", header), false, "another body");
  assert.equal(
    await new WebhookSigner("another-secret-of-32-bytes-long!").verify(body, header),
    false,
    "another secret",
  );
  for (const bad of [null, "", header.slice(7), header.toUpperCase(), `${header}00`, "sha1=ab"]) {
    assert.equal(await signer.verify(body, bad), false, `header ${bad}`);
  }
});
