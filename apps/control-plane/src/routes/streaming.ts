import type { FastifyReply } from "fastify";
import type { Readable } from "node:stream";

/**
 * Sends a long-lived stream with its headers at once. Node holds a
 * response's headers back until the first body byte, so a client of a
 * followed log that has no line yet would wait for its status and headers
 * (and a client that awaits them before causing the first line, forever).
 */
export function sendStream(reply: FastifyReply, body: Readable, contentType: string): FastifyReply {
  reply.header("content-type", contentType);
  reply.raw.once("pipe", () => reply.raw.flushHeaders());
  return reply.send(body);
}
