/**
 * What happens in the chat that integrations (webhooks) hear of.
 *
 * @module
 */
import type { ChatMessage } from "./message.ts";

/**
 * Told by the hub and the rooms of this instance, synchronously: a listener must not throw or
 * block (queue the work and return). Events of other instances are theirs to tell.
 */
export interface ChatEvents {
  /** A connection of `user` was added to `room` here. */
  connected(user: string, room: string): void;
  /** A connection of `user` left `room` here (for whatever reason). */
  disconnected(user: string, room: string): void;
  /**
   * A message sent through this instance took its seq (async mode: when acknowledged; durable
   * mode: once committed). Re-sends of a known client id are not new messages.
   */
  messageCreated(message: ChatMessage): void;
}

/** Hears nothing. */
export const NO_EVENTS: ChatEvents = {
  connected() {},
  disconnected() {},
  messageCreated() {},
};
