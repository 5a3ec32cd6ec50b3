/**
 * The one-line-per-request log HAProxy sends to the agent over UDP, and its
 * parser. The renderer (ingress/haproxy.config.ts) writes TRAFFIC_LOG_FORMAT
 * into the config; parseTrafficLine reads what it produces. Both sides live
 * here so the format and the parser cannot drift apart.
 */

/** First token of every line: names the format and its version, so a line of another shape (or sender) is ignored. */
export const TRAFFIC_LOG_MARKER = "slipway1";

/**
 * HAProxy log-format: backend, server, status code and %Ta, the request's
 * active time (first byte of the request to the last byte of the response,
 * without the idle time of a keep-alive connection that %Tt would include).
 * Backend and server names never contain spaces (see isValidBackendName).
 */
export const TRAFFIC_LOG_FORMAT = `${TRAFFIC_LOG_MARKER} %b %s %ST %Ta`;

/** One request as HAProxy logged it. */
export interface TrafficLogLine {
  backend: string;
  /** The server that answered; `<NOSRV>` when HAProxy answered itself (basic auth, the no-environment 404). */
  server: string;
  /** HTTP status sent to the client; -1 when none was (the client or the server went away first). */
  status: number;
  /** Active time in ms; -1 when the request did not complete. */
  activeMs: number;
}

/** Longest backend or server name accepted (HAProxy's names here are far shorter). */
const MAX_NAME = 128;
const MARKER_BYTES = Buffer.from(`${TRAFFIC_LOG_MARKER} `, "latin1");
const SPACE = 0x20;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
/** Bytes allowed in a name: A-Z a-z 0-9 . _ < > : - (as in backend names, slot names, `<NOSRV>`). */
const NAME_BYTE = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._<>:-") NAME_BYTE[c.charCodeAt(0)] = 1;

/**
 * The few distinct names of the log (backends, slot names) as strings, so a
 * line costs no string allocation: looked up by a hash of their bytes and
 * compared byte by byte. Bounded: forgets everything beyond `max` names.
 */
class NameTable {
  private readonly byHash = new Map<number, string>();
  constructor(private readonly max = 4096) {}

  get(buf: Uint8Array, start: number, end: number, hash: number): string {
    const known = this.byHash.get(hash);
    if (known !== undefined && sameBytes(known, buf, start, end)) return known;
    const name = String.fromCharCode(...buf.subarray(start, end));
    if (this.byHash.size >= this.max) this.byHash.clear();
    // A colliding name replaces the other; both stay correct, only slower.
    this.byHash.set(hash, name);
    return name;
  }
}

function sameBytes(s: string, buf: Uint8Array, start: number, end: number): boolean {
  if (s.length !== end - start) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== buf[start + i]) return false;
  return true;
}

/**
 * Parses lines straight from a datagram's bytes, without regular expressions,
 * string splitting or an object per line: the agent parses one line per
 * proxied request, so this is on the hot path of every request's CPU cost
 * (BENCHMARKS.md, "Ingress, measured with wrk"). Not safe for concurrent use;
 * one parser per receiver.
 */
export class TrafficLineParser {
  /** The line of the last successful parse(); overwritten by the next call, so copy what must be kept. */
  readonly line: TrafficLogLine = { backend: "", server: "", status: 0, activeMs: 0 };
  private readonly names = new NameTable();
  private pos = 0;

  /**
   * Parses bytes [start, end) of `buf` as one line (a trailing newline or
   * other whitespace is ignored; a syslog header before the marker is
   * tolerated). Returns false, leaving `line` unspecified, for anything that
   * is not a well-formed line of this format.
   */
  parse(buf: Buffer, start: number, end: number): boolean {
    while (end > start && buf[end - 1]! <= SPACE) end--;
    let p = start;
    if (!startsWithMarker(buf, p, end)) {
      p = buf.indexOf(MARKER_BYTES, start);
      if (p < 0 || p + MARKER_BYTES.length > end) return false;
    }
    this.pos = p + MARKER_BYTES.length;
    const backend = this.name(buf, end);
    if (backend === undefined || !this.space(buf, end)) return false;
    const server = this.name(buf, end);
    if (server === undefined || !this.space(buf, end)) return false;
    const status = this.int(buf, end);
    if (status === undefined || !this.space(buf, end)) return false;
    const activeMs = this.int(buf, end);
    if (activeMs === undefined || this.pos !== end) return false;
    if (status !== -1 && (status < 100 || status > 599)) return false;
    if (activeMs < -1) return false;
    const line = this.line;
    line.backend = backend;
    line.server = server;
    line.status = status;
    line.activeMs = activeMs;
    return true;
  }

  private name(buf: Buffer, end: number): string | undefined {
    const from = this.pos;
    let hash = 0x811c9dc5;
    let p = from;
    for (; p < end; p++) {
      const b = buf[p]!;
      if (NAME_BYTE[b] === 0) break;
      hash = Math.imul(hash ^ b, 0x01000193);
    }
    if (p === from || p - from > MAX_NAME) return undefined;
    this.pos = p;
    return this.names.get(buf, from, p, hash);
  }

  private space(buf: Buffer, end: number): boolean {
    if (this.pos >= end || buf[this.pos] !== SPACE) return false;
    this.pos++;
    return true;
  }

  /** An integer of 1-9 digits with an optional minus sign. */
  private int(buf: Buffer, end: number): number | undefined {
    let p = this.pos;
    const negative = p < end && buf[p] === MINUS;
    if (negative) p++;
    const from = p;
    let v = 0;
    for (; p < end; p++) {
      const b = buf[p]!;
      if (b < ZERO || b > NINE) break;
      v = v * 10 + (b - ZERO);
    }
    if (p === from || p - from > 9) return undefined;
    this.pos = p;
    return negative ? -v : v;
  }
}

function startsWithMarker(buf: Buffer, p: number, end: number): boolean {
  if (end - p < MARKER_BYTES.length) return false;
  for (let i = 0; i < MARKER_BYTES.length; i++) if (buf[p + i] !== MARKER_BYTES[i]) return false;
  return true;
}

/**
 * Parses one line given as a string (tests, tools); the receiver parses bytes
 * with a TrafficLineParser. Returns undefined for anything that is not a
 * well-formed line of this format, so a stray datagram on the port cannot
 * inject odd values.
 */
export function parseTrafficLine(raw: string): TrafficLogLine | undefined {
  const parser = new TrafficLineParser();
  const buf = Buffer.from(raw, "utf8");
  return parser.parse(buf, 0, buf.length) ? { ...parser.line } : undefined;
}
