import { request, seg } from "../api";

// The runtime log (Server-Sent Events) and the shell (a WebSocket) of one environment.

const envPath = (app: string, env: string) => `/v1/apps/${seg(app)}/environments/${seg(env)}`;

/** One line of the runtime log as GET …/logs/events sends it (event `line`). */
export interface RuntimeLine {
  container: string;
  /** RFC 3339 with nanoseconds, as Docker stamped it. */
  time: string;
  text: string;
}

export function parseRuntimeLine(data: string): RuntimeLine | undefined {
  try {
    const l = JSON.parse(data) as Partial<RuntimeLine>;
    if (typeof l.text !== "string" || typeof l.time !== "string" || typeof l.container !== "string") return undefined;
    return { container: l.container, time: l.time, text: l.text };
  } catch {
    return undefined;
  }
}

/** The followed log's stream: `since` (ISO 8601) or the last `tail` lines first. */
export function runtimeLogUrl(app: string, env: string, from: { since?: string; tail?: number }): string {
  const q = new URLSearchParams();
  if (from.since) q.set("since", from.since);
  if (from.tail) q.set("tail", String(from.tail));
  const qs = q.toString();
  return `${envPath(app, env)}/logs/events${qs ? `?${qs}` : ""}`;
}

/** The log's last line without following: used only to learn why the stream was refused (the API's message). */
export function probeRuntimeLog(app: string, env: string): Promise<string> {
  return request<string>("GET", `${envPath(app, env)}/logs?tail=1`);
}

/** The shell's WebSocket, same origin (the session cookie authorises it; the API checks the Origin). */
export function shellSocketUrl(app: string, env: string): string {
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${window.location.host}${envPath(app, env)}/shell/ws`;
}

/** The shell's frames (core's shell.ts): a type byte, a 4-byte big-endian length, the payload. */
export const Frame = { Started: 1, Stdout: 2, Stderr: 3, Exit: 4, Error: 5, Open: 9, Stdin: 10, StdinEnd: 11, Resize: 12 } as const;

export function encodeFrame(type: number, payload: Uint8Array | string = new Uint8Array()): Uint8Array<ArrayBuffer> {
  const body = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const out = new Uint8Array(5 + body.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

/** Cuts the server's messages into frames (a message holds whole frames; a frame may also span messages). */
export class FrameReader {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): Array<{ type: number; payload: Uint8Array }> {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    this.buf = joined;
    const out: Array<{ type: number; payload: Uint8Array }> = [];
    while (this.buf.length >= 5) {
      const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(1);
      if (this.buf.length < 5 + len) break;
      out.push({ type: this.buf[0]!, payload: this.buf.slice(5, 5 + len) });
      this.buf = this.buf.slice(5 + len);
    }
    return out;
  }
}

/** The lines a page keeps: at most `max`, the oldest dropped first and counted. */
export class LineBuffer<T> {
  private items: T[] = [];
  dropped = 0;

  constructor(readonly max: number) {}

  add(line: T): void {
    this.items.push(line);
    if (this.items.length > this.max) {
      const over = this.items.length - this.max;
      this.items.splice(0, over);
      this.dropped += over;
    }
  }

  get lines(): readonly T[] {
    return this.items;
  }
}
