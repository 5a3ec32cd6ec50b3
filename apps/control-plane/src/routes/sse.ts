/**
 * The text/event-stream wire format (HTML Living Standard, "Server-sent events"). Pure:
 * encoding only; routes/event-stream.ts writes it to a response.
 */

/** One event. `id` becomes the client's Last-Event-ID; an event without one leaves it as it was. */
export interface SseEvent {
  id?: number | string;
  /** The event type (`line`, `step`, …); absent = `message`. */
  event?: string;
  data: string;
}

export const SSE_MEDIA_TYPE = "text/event-stream; charset=utf-8";

// A parser ends a line at CRLF, CR or LF alike: each of them inside a value would cut it.
const LINE_BREAK = /\r\n|\r|\n/;

/**
 * One event as its lines and the blank line that dispatches it. Data with line breaks becomes
 * one `data:` line per line, which the client joins with LF again (a CR or CRLF arrives as LF:
 * the format cannot carry them). Throws on an id or type with a line break or U+0000 (a client
 * would ignore or misread them): those are the server's own values, never user text.
 */
export function encodeEvent(e: SseEvent): string {
  let out = "";
  if (e.id !== undefined) {
    const id = String(e.id);
    if (/[\r\n\0]/.test(id)) throw new Error(`an event id cannot contain a line break or U+0000: ${JSON.stringify(id)}`);
    out += `id: ${id}\n`;
  }
  if (e.event !== undefined) {
    if (e.event === "" || /[\r\n]/.test(e.event)) throw new Error(`invalid event type ${JSON.stringify(e.event)}`);
    out += `event: ${e.event}\n`;
  }
  // "data: " + value: the parser strips exactly one space after the colon, so a value's own leading spaces survive.
  for (const line of e.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out + "\n";
}

/** A comment (`: ping`): ignored by clients, keeps proxies from closing an idle stream. */
export function encodeComment(text: string): string {
  return text.split(LINE_BREAK).map((l) => `: ${l}\n`).join("") + "\n";
}

/** How long a client waits before it reconnects after the stream ends or breaks. */
export function encodeRetry(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`retry must be a whole number of milliseconds, not ${ms}`);
  return `retry: ${ms}\n\n`;
}

/**
 * The id a client resumes after: the Last-Event-ID header (an EventSource sends it when it
 * reconnects) before `?lastEventId=` (for a first connection, or clients that cannot set headers:
 * an EventSource reconnects to the same URL, so the header must win over a query that is older).
 */
export function lastEventIdOf(headers: Record<string, string | string[] | undefined>, query: { lastEventId?: string }): string | undefined {
  const h = headers["last-event-id"];
  const header = Array.isArray(h) ? h[h.length - 1] : h;
  if (header !== undefined && header.trim() !== "") return header.trim();
  return query.lastEventId?.trim() || undefined;
}
