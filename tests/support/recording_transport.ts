import type { Transport } from "../../chat/client.ts";

/** A transport double that records frames and the close it was given. */
export class RecordingTransport implements Transport {
  readonly frames: Record<string, unknown>[] = [];
  closedWith: { code: number; reason: string } | undefined;
  bufferedAmount = 0;
  /** Characters of every frame sent, by frame type. */
  readonly sizes = new Map<string, number>();

  send(frame: string): void {
    const parsed = JSON.parse(frame);
    this.frames.push(parsed);
    this.sizes.set(parsed.type, (this.sizes.get(parsed.type) ?? 0) + frame.length);
  }

  /** Presence frames received, as `join ann` / `leave bob`. */
  presence(): string[] {
    return this.frames.filter((frame) => frame.type === "presence").map((frame) =>
      `${frame.event} ${frame.user}`
    );
  }

  close(code: number, reason: string): Promise<void> {
    this.closedWith = { code, reason };
    return Promise.resolve();
  }

  messages(): unknown[] {
    return this.frames.filter((frame) => frame.type === "message").map((frame) => frame.content);
  }
}
