import type { Readable } from "node:stream";
import { InvalidRequestError } from "@slipway/core";
import type { LiveEvent, LiveFeed } from "../services/live.service.js";
import type { SseEvent } from "./sse.js";

/** An event of this stream: its ids are strings ("<ns>-<index>"), which encodeEvent writes as they are. */
export type LogEvent = SseEvent & { event: string };

/**
 * The runtime log as Server-Sent Events (`GET …/logs/events`, issue 14): one event per line,
 * resumable. The agent relays `docker logs --timestamps` lines prefixed with the container's
 * name ("web-1 2026-12-06T16:20:01.123456789Z text"): Docker stamps every line in nanoseconds,
 * so a line's id is its time in nanoseconds and its index among the lines of the same
 * nanosecond ("<ns>-<index>"). A reconnection (Last-Event-ID) asks the agent for the log since
 * that second and skips every line stamped before the id's time and the lines of that very
 * time up to its index: nothing is lost, nothing sent twice. See docs/DECISIONS.md, "Runtime
 * log in the browser".
 */

/** Where a stream resumes: after the line of time `ns` with index `index` among those of that time. */
export interface LogCursor {
  ns: bigint;
  index: number;
}

/** A line of the relayed log, split; undefined for a line without a timestamp (a note of the relay or agent). */
export interface LogLine {
  container: string;
  /** The time as Docker wrote it (RFC 3339, nanoseconds). */
  time: string;
  ns: bigint;
  text: string;
}

const LINE = /^(\S+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)(?: (.*))?$/s;

export function parseLogLine(line: string): LogLine | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[2]}${m[4]}`);
  if (Number.isNaN(seconds)) return undefined;
  const ns = BigInt(seconds) * 1_000_000n + BigInt((m[3] ?? "").padEnd(9, "0"));
  return { container: m[1]!, time: `${m[2]}${m[3] ? `.${m[3]}` : ""}${m[4]}`, ns, text: m[5] ?? "" };
}

export function formatCursor(c: LogCursor): string {
  return `${c.ns}-${c.index}`;
}

/** A Last-Event-ID of this stream; throws InvalidRequestError (400) on anything else. */
export function parseCursor(value: string | undefined): LogCursor | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,25})-(\d{1,9})$/.exec(value);
  if (!m) throw new InvalidRequestError(`Last-Event-ID '${value.slice(0, 40)}' is not an id of this stream (<nanoseconds>-<index>)`, { details: { lastEventId: "not <nanoseconds>-<index>" } });
  return { ns: BigInt(m[1]!), index: Number(m[2]) };
}

/** What to ask the agent for: a resumed stream starts at the cursor's second (Docker's `since` is whole seconds, inclusive) with no tail limit. */
export function agentRequestFor(cursor: LogCursor | undefined, query: { sinceSeconds: number; tail: number }): { since: number; tail: number } {
  if (!cursor) return { since: query.sinceSeconds, tail: query.tail };
  return { since: Number(cursor.ns / 1_000_000_000n), tail: RESUME_TAIL };
}
/** A resumed stream reads everything since the cursor's second (the agent's tail is at most this). */
export const RESUME_TAIL = 100_000;

/**
 * Numbers the lines of one stream and drops what a resumed stream's client already has. Lines
 * of several containers interleave and are not in time order among themselves, so the index
 * counts per nanosecond (a bounded map of the recent ones).
 */
export class LineNumbering {
  private readonly seen = new Map<bigint, number>();

  constructor(private readonly after?: LogCursor) {}

  /** The line's id, or undefined when the client has it already. */
  next(ns: bigint): string | undefined {
    const index = this.seen.get(ns) ?? 0;
    this.seen.delete(ns);
    this.seen.set(ns, index + 1);
    if (this.seen.size > 4096) this.seen.delete(this.seen.keys().next().value!);
    if (this.after && (ns < this.after.ns || (ns === this.after.ns && index <= this.after.index))) return undefined;
    return formatCursor({ ns, index });
  }
}

/** The events of one line: `line` (JSON {container, time, text}, id = cursor), `note` for a line of the relay itself (no id). */
export function lineEvent(raw: string, numbering: LineNumbering): LogEvent | undefined {
  const l = parseLogLine(raw);
  if (!l) return { event: "note", data: raw };
  const id = numbering.next(l.ns);
  if (id === undefined) return undefined;
  return { id, event: "line", data: JSON.stringify({ container: l.container, time: l.time, text: l.text }) };
}

/** Lines held for a client that reads slowly before the relay's stream is paused. */
const QUEUE_MAX = 2000;
/** How long a poll waits for a line before it answers empty (the stream loop then checks the client is still there). */
const POLL_WAIT_MS = 1000;

/**
 * A relayed log stream as a LiveFeed for serveEventStream: lines become events as they arrive;
 * the relay's stream is paused while the client has QUEUE_MAX lines to take (bounded memory).
 */
export class LogFeed implements LiveFeed {
  private readonly queue: LogEvent[] = [];
  private partial = "";
  private ended = false;
  private wake?: () => void;
  private readonly numbering: LineNumbering;

  constructor(private readonly body: Readable, after: LogCursor | undefined) {
    this.numbering = new LineNumbering(after);
    body.setEncoding("utf8");
    body.on("data", (chunk: string) => {
      const parts = (this.partial + chunk).split("\n");
      this.partial = parts.pop()!;
      for (const p of parts) {
        const e = lineEvent(p, this.numbering);
        if (e) this.queue.push(e);
      }
      if (this.queue.length >= QUEUE_MAX) body.pause();
      this.wake?.();
    });
    const end = () => {
      if (this.ended) return;
      if (this.partial) {
        const e = lineEvent(this.partial, this.numbering);
        if (e) this.queue.push(e);
        this.partial = "";
      }
      this.ended = true;
      this.wake?.();
    };
    body.on("end", end);
    body.on("close", end);
    body.on("error", end);
  }

  async poll(): Promise<{ events: LiveEvent[]; done?: boolean; more?: boolean }> {
    if (this.queue.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.wake = undefined;
          resolve();
        }, POLL_WAIT_MS);
        this.wake = () => {
          clearTimeout(t);
          this.wake = undefined;
          resolve();
        };
      });
    }
    // serveEventStream hands each event to encodeEvent, which takes string ids as well as numbers.
    const events = this.queue.splice(0, 500) as unknown as LiveEvent[];
    if (this.body.isPaused() && this.queue.length < QUEUE_MAX / 2 && !this.ended) this.body.resume();
    const done = this.ended && this.queue.length === 0;
    // `more` always while the stream lives: the wait is in poll, not in the stream loop's sleep.
    return { events, done, more: !done };
  }
}
