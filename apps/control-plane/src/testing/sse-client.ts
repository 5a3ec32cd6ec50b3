import http from "node:http";

/** An event as an EventSource dispatches it. */
export interface ReceivedEvent {
  type: string;
  data: string;
  /** The stream's last event id when it was dispatched (kept from earlier events when it had none). */
  lastEventId: string;
}

/**
 * The event-stream parser of the HTML standard ("Interpreting an event stream"), incremental:
 * feed it chunks as they arrive. Tests only: it is what a browser's EventSource does.
 */
export class SseParser {
  lastEventId = "";
  retry: number | undefined;
  readonly comments: string[] = [];
  private buffer = "";
  private data = "";
  private type = "";
  private idBuffer = "";

  constructor(private readonly onEvent: (e: ReceivedEvent) => void) {}

  push(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (!m) return;
      // A CR at the end may be the first half of a CRLF still on its way.
      if (m[0] === "\r" && m.index === this.buffer.length - 1) return;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) {
      this.comments.push(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") this.type = value;
    else if (field === "data") this.data += value + "\n";
    else if (field === "id" && !value.includes("\0")) this.idBuffer = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  private dispatch(): void {
    this.lastEventId = this.idBuffer;
    if (this.data === "") {
      this.type = "";
      return;
    }
    const data = this.data.endsWith("\n") ? this.data.slice(0, -1) : this.data;
    this.onEvent({ type: this.type || "message", data, lastEventId: this.lastEventId });
    this.data = "";
    this.type = "";
  }
}

/**
 * One connection to an event stream over real HTTP, collecting what it receives. `waitFor`
 * waits on a condition (never a fixed time); `disconnect` drops the connection as a network
 * failure or a frozen tab would.
 */
export class SseConnection {
  readonly events: ReceivedEvent[] = [];
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  /** The body when the answer was not a stream (an error body). */
  body = "";
  ended = false;
  readonly parser = new SseParser((e) => {
    this.events.push(e);
    this.changed();
  });
  private req: http.ClientRequest | undefined;
  private waiters = new Set<() => void>();

  private constructor() {}

  /** Connects and resolves once the status and headers are in. */
  static open(url: string, headers: Record<string, string>): Promise<SseConnection> {
    const c = new SseConnection();
    return new Promise((resolve, reject) => {
      c.req = http.get(url, { headers: { accept: "text/event-stream", ...headers } }, (res) => {
        c.status = res.statusCode ?? 0;
        c.headers = res.headers;
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (String(res.headers["content-type"]).startsWith("text/event-stream")) c.parser.push(chunk);
          else c.body += chunk;
          c.changed();
        });
        const end = () => {
          c.ended = true;
          c.changed();
        };
        res.on("end", end);
        res.on("close", end);
        res.on("error", end);
        resolve(c);
      });
      c.req.on("error", (err) => (c.status === 0 ? reject(err) : undefined));
    });
  }

  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  /** Events of a type, in order. */
  of(type: string): ReceivedEvent[] {
    return this.events.filter((e) => e.type === type);
  }

  /** Resolves when `condition` holds (checked at each arrival); rejects after `timeoutMs` with what arrived. */
  waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(this.events.slice(-5))}${this.ended ? " (the stream ended)" : ""}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Drops the connection (the socket destroyed, as a network failure would). */
  disconnect(): void {
    this.req?.destroy();
    this.ended = true;
  }

  private changed(): void {
    for (const w of [...this.waiters]) w();
  }
}
