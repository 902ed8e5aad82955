/**
 * The OpenAPI 3.1 description of the server API, served at `/api/openapi.json`. Tests check it
 * against the routes `server/api.ts` answers.
 *
 * @module
 */

const ERROR = { $ref: "#/components/schemas/Error" };
const ROOM_PARAMETER = {
  name: "room",
  in: "path",
  required: true,
  description:
    "Room name, percent-encoded: 1 to 64 letters, digits, spaces or _ . , : ; ! ? ' ( ) & + @ # ~ -",
  schema: { type: "string", minLength: 1, maxLength: 64 },
};

function errorResponse(description: string) {
  return { description, content: { "application/json": { schema: ERROR } } };
}

const COMMON_ERRORS = {
  "400": errorResponse("Bad input: invalid_room, invalid_body, invalid_user, ..."),
  "401": errorResponse("No valid API key or token (api_unauthorized)"),
  "403": errorResponse("The credential does not open this room (room_forbidden, api_forbidden)"),
  "429": errorResponse("Too many requests, or the room is busy (Retry-After)"),
};

/** The document. */
export const API_DESCRIPTION = {
  openapi: "3.1.0",
  info: {
    title: "Chat server API",
    version: "1",
    description: "For application backends: publish into rooms, list members, moderate. " +
      "Authenticate with a key of API_KEYS, or a JWT (AUTH_SECRET) with the `api` scope, " +
      "as `Authorization: Bearer <key or token>`.",
  },
  security: [{ bearer: [] }],
  paths: {
    "/api/rooms/{room}/messages": {
      post: {
        operationId: "publishMessage",
        summary: "Publish a message into a room as a named sender",
        description: "Validated and limited as a socket's message is. Idempotent with " +
          "`client_id`: a retry with the same sender and client_id answers the first message.",
        parameters: [ROOM_PARAMETER],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["sender", "content"],
                properties: {
                  sender: { type: "string", minLength: 1, maxLength: 32 },
                  content: { type: "string", minLength: 1 },
                  client_id: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" },
                },
              },
            },
          },
        },
        responses: {
          "201": {
            description: "The message, as /history shows it",
            content: { "application/json": { schema: { $ref: "#/components/schemas/Message" } } },
          },
          ...COMMON_ERRORS,
          "503": errorResponse("Shutting down or the room is unavailable (Retry-After)"),
        },
      },
    },
    "/api/rooms/{room}/messages/{seq}": {
      delete: {
        operationId: "deleteMessage",
        summary:
          "Delete a message (moderation): a `delete` change the room's members get; its content is removed from the store",
        parameters: [
          ROOM_PARAMETER,
          { name: "seq", in: "path", required: true, schema: { type: "integer", minimum: 1 } },
        ],
        responses: {
          "200": {
            description: "The `delete` change, as members get it",
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["type", "id", "room", "event_seq", "user", "seq", "timestamp"],
                  properties: {
                    type: { const: "delete" },
                    id: { type: "string", format: "uuid" },
                    room: { type: "string" },
                    event_seq: { type: "integer", minimum: 1 },
                    user: { type: "string" },
                    seq: { type: "integer", minimum: 1 },
                    timestamp: { type: "string", format: "date-time" },
                  },
                },
              },
            },
          },
          ...COMMON_ERRORS,
          "404": errorResponse("No message at that seq, or it is deleted already"),
          "503": errorResponse("Shutting down or the room is unavailable (Retry-After)"),
        },
      },
    },
    "/api/rooms/{room}/members": {
      get: {
        operationId: "listMembers",
        summary: "The room's members on every instance",
        parameters: [ROOM_PARAMETER],
        responses: {
          "200": {
            description: "The members, sorted",
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["room", "members"],
                  properties: {
                    room: { type: "string" },
                    members: { type: "array", items: { type: "string" } },
                  },
                },
              },
            },
          },
          ...COMMON_ERRORS,
        },
      },
    },
    "/api/openapi.json": {
      get: {
        operationId: "describeApi",
        summary: "This document",
        security: [],
        responses: { "200": { description: "The OpenAPI document" } },
      },
    },
  },
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    schemas: {
      Message: {
        type: "object",
        required: ["id", "room", "seq", "sender", "content"],
        properties: {
          id: { type: "string", format: "uuid" },
          room: { type: "string" },
          seq: { type: "integer", minimum: 1 },
          sender: { type: "string" },
          content: { type: "string" },
          timestamp: { type: "string", format: "date-time" },
          client_id: { type: "string" },
        },
      },
      Error: {
        type: "object",
        required: ["error"],
        properties: {
          error: {
            type: "object",
            required: ["code", "message"],
            properties: { code: { type: "string" }, message: { type: "string" } },
          },
        },
      },
    },
  },
} as const;
