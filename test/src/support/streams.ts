/**
 * Bounded reads of streamed responses (followed logs, shells): each has its own
 * deadline, well inside the test's, so a stream that stops delivering fails at
 * once with what it delivered instead of at the test's timeout.
 */

const EXPIRED = Symbol("expired");

function within<T>(p: Promise<T>, deadline: number): Promise<T | typeof EXPIRED> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<typeof EXPIRED>((r) => (timer = setTimeout(() => r(EXPIRED), Math.max(0, deadline - Date.now()))));
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/** A streamed response whose headers arrived; close() aborts the request. */
export interface OpenStream {
  res: Response;
  close(): void;
}

/**
 * GETs a streamed resource and returns once its status and headers arrived,
 * or fails after `timeoutMs` (a followed stream must answer its headers at once).
 */
export async function openStream(what: string, url: string, opts: { headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<OpenStream> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`${what}: no response headers within ${timeoutMs} ms`)), timeoutMs);
  try {
    const res = await fetch(url, { headers: opts.headers ?? {}, signal: ac.signal });
    return { res, close: () => ac.abort() };
  } catch (err) {
    throw ac.signal.aborted && ac.signal.reason instanceof Error ? ac.signal.reason : err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads a byte stream until `until(text so far)` holds, or, without `until`,
 * to its end; returns the text read. Fails after `timeoutMs`, or when the
 * stream ends before `until` held, naming `what` and quoting the end of what
 * arrived. On success the reader's lock is released and the stream left open
 * (close its request to end it); on failure the stream is cancelled.
 */
export async function readStream(what: string, stream: ReadableStream<Uint8Array> | null, opts: { until?: (text: string) => boolean; timeoutMs: number }): Promise<string> {
  if (!stream) throw new Error(`${what}: the response has no body`);
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  const deadline = Date.now() + opts.timeoutMs;
  let text = "";
  const fail = (why: string) => new Error(`${what}: ${why}; received ${text.length} characters, ending ${JSON.stringify(text.slice(-500))}`);
  try {
    while (!opts.until?.(text)) {
      const chunk = await within(reader.read(), deadline);
      if (chunk === EXPIRED) throw fail(opts.until ? `not there within ${opts.timeoutMs} ms` : `the stream did not end within ${opts.timeoutMs} ms`);
      if (chunk.done) {
        if (opts.until) throw fail("the stream ended first");
        reader.releaseLock();
        return text + decoder.decode();
      }
      text += decoder.decode(chunk.value, { stream: true });
    }
    reader.releaseLock();
    return text;
  } catch (err) {
    // A read may still be pending: cancelling (not releasing) ends it and the stream.
    void reader.cancel(err).catch(() => undefined);
    throw err;
  }
}
