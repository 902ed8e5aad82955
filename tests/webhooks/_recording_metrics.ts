/** Webhook metrics a test can read. */
import type { WebhookDrop, WebhookFailure, WebhookMetrics } from "../../webhooks/webhook_sender.ts";

export class RecordingMetrics implements WebhookMetrics {
  delivered = 0;
  readonly failed: Partial<Record<WebhookFailure, number>> = {};
  readonly dropped: Partial<Record<WebhookDrop, number>> = {};

  webhookDelivered(): void {
    this.delivered++;
  }

  webhookFailed(reason: WebhookFailure): void {
    this.failed[reason] = (this.failed[reason] ?? 0) + 1;
  }

  webhookDropped(reason: WebhookDrop, count: number): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + count;
  }
}
