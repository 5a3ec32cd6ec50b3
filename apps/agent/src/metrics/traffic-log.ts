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

const NAME = /^[A-Za-z0-9._<>:-]{1,128}$/;
const INT = /^-?\d{1,9}$/;

/**
 * Parses one line. Tolerates a syslog header before the marker (if the log
 * target is switched from `format raw` to RFC 3164) and a trailing newline.
 * Returns undefined for anything that is not a well-formed line of this
 * format, so a stray datagram on the port cannot inject odd values.
 */
export function parseTrafficLine(raw: string): TrafficLogLine | undefined {
  const at = raw.indexOf(TRAFFIC_LOG_MARKER + " ");
  if (at < 0) return undefined;
  const fields = raw.slice(at).trim().split(" ");
  if (fields.length !== 5) return undefined;
  const [, backend, server, status, active] = fields as [string, string, string, string, string];
  if (!NAME.test(backend) || !NAME.test(server) || !INT.test(status) || !INT.test(active)) return undefined;
  const st = Number(status);
  const ms = Number(active);
  if (st !== -1 && (st < 100 || st > 599)) return undefined;
  if (ms < -1) return undefined;
  return { backend, server, status: st, activeMs: ms };
}
