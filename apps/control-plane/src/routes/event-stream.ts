import { once } from "node:events";
import type { ServerResponse } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import { TooManyRequestsError } from "@slipway/core";
import type { LiveFeed } from "../services/live.service.js";
import { SSE_MEDIA_TYPE, encodeComment, encodeEvent, encodeRetry } from "./sse.js";

export interface EventStreamOptions {
  /** Between two polls of a feed that has nothing more waiting. */
  pollIntervalMs: number;
  /** A `: ping` comment this often, so proxies and load balancers keep an idle stream open. */
  heartbeatMs: number;
  /** The `retry:` hint: how long a client waits before it reconnects. */
  retryMs: number;
  /**
   * A stream ends after this long and the client reconnects (resuming with Last-Event-ID): each
   * reconnection passes the authentication again, so a revoked token or ended session keeps no
   * stream open for longer than this.
   */
  maxDurationMs: number;
  /** Open streams per token (per control-plane process); one more is refused with 429. */
  maxPerToken: number;
}

export const DEFAULT_STREAM_OPTIONS: EventStreamOptions = {
  pollIntervalMs: 500,
  heartbeatMs: 15_000,
  retryMs: 2_000,
  maxDurationMs: 10 * 60_000,
  maxPerToken: 16,
};

/**
 * The open streams of one control-plane process: counts them per token and ends them all when
 * the server closes (an open stream would otherwise hold `close()` until the client goes away).
 */
export class StreamRegistry {
  private readonly perToken = new Map<string, number>();
  private readonly open = new Set<() => void>();

  constructor(private readonly maxPerToken: number) {}

  /** Counts a stream for `token`; throws TooManyRequestsError at the limit. Call the answer once, when it ends. */
  acquire(token: string, stop: () => void): () => void {
    const n = this.perToken.get(token) ?? 0;
    if (n >= this.maxPerToken) {
      throw new TooManyRequestsError(`this token has ${n} live streams open, the most it may have: close one (a browser tab) or wait for it to end`);
    }
    this.perToken.set(token, n + 1);
    this.open.add(stop);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open.delete(stop);
      const left = (this.perToken.get(token) ?? 1) - 1;
      if (left > 0) this.perToken.set(token, left);
      else this.perToken.delete(token);
    };
  }

  /** Ends every open stream (server shutdown). */
  stopAll(): void {
    for (const stop of [...this.open]) stop();
  }
}

/**
 * Serves a feed as text/event-stream until it is done, the client goes away, the stream's
 * time is up or the server closes. Call it after every check that may refuse the request
 * (404, 403): from here on the answer is 200 and errors can only end the stream.
 *
 * The reply is hijacked: fastify sends nothing more for it, and the headers are written here
 * once, with those hooks set on the reply so far (a refreshed session cookie) kept.
 */
export async function serveEventStream(req: FastifyRequest, reply: FastifyReply, registry: StreamRegistry, opts: EventStreamOptions, feed: LiveFeed): Promise<void> {
  const stopped = new AbortController();
  const release = registry.acquire(req.principal.tokenId, () => stopped.abort());
  const res = reply.raw;
  // The response closes when the client goes away (the request stream closes as soon as it is read).
  res.once("close", () => stopped.abort());
  reply.hijack();
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string | string[]>),
    "content-type": SSE_MEDIA_TYPE,
    "cache-control": "no-cache",
    // nginx buffers a proxied response unless told not to.
    "x-accel-buffering": "no",
  });
  res.write(encodeRetry(opts.retryMs));
  const heartbeat = setInterval(() => {
    if (!res.writableEnded) res.write(encodeComment("ping"));
  }, opts.heartbeatMs);
  const deadline = Date.now() + opts.maxDurationMs;
  try {
    while (!stopped.signal.aborted) {
      const { events, done, more } = await feed.poll();
      if (stopped.signal.aborted) break;
      if (events.length > 0 && !res.write(events.map(encodeEvent).join(""))) await drained(res, stopped.signal);
      if (done || Date.now() >= deadline) break;
      if (!more) await sleep(opts.pollIntervalMs, stopped.signal);
    }
  } catch (err) {
    // The client resumes where it was when it reconnects.
    if (!stopped.signal.aborted) req.log.warn({ err, url: req.url }, "live stream failed; ending it");
  } finally {
    clearInterval(heartbeat);
    release();
    if (!res.writableEnded) res.end();
  }
}

/** Waits until the client took what was written (bounded memory: nothing more is read before). */
async function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  try {
    await once(res, "drain", { signal });
  } catch {
    // Aborted: the stream is over.
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
