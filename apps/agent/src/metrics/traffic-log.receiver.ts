import dgram from "node:dgram";
import type { Logger } from "@slipway/core";
import { TrafficLineParser, type TrafficLogLine } from "./traffic-log.js";

/** Asked of the kernel for the socket's receive buffer: a burst of log lines must not overflow it between two event-loop turns. */
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Receives HAProxy's per-request log lines on 127.0.0.1 (udp4) and hands each
 * parsed line to `onLine`. UDP, because HAProxy never blocks on a log target:
 * a slow or absent agent costs lines, never requests. Malformed datagrams are
 * counted and ignored. `onLine` receives the same object every time, valid
 * only during the call (one datagram arrives per proxied request, so nothing
 * is allocated per line): copy what must outlive it.
 */
export class TrafficLogReceiver {
  private readonly socket = dgram.createSocket("udp4");
  private readonly parser = new TrafficLineParser();
  /** Datagrams that were not a line of the traffic format. */
  malformed = 0;
  /** Lines parsed. */
  received = 0;

  constructor(
    private readonly onLine: (line: TrafficLogLine) => void,
    private readonly log: Logger,
  ) {
    this.socket.on("message", (msg) => this.onMessage(msg));
    this.socket.on("error", (err) => this.log.warn({ err: err.message }, "traffic log socket error"));
  }

  /** Binds 127.0.0.1:port (0 = any free port); resolves with the port. Call once. */
  async listen(port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once("error", reject);
      this.socket.bind(port, "127.0.0.1", () => {
        this.socket.off("error", reject);
        resolve();
      });
    });
    try {
      this.socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES);
    } catch (err) {
      // The kernel caps it at net.core.rmem_max; the default still holds thousands of lines.
      this.log.debug({ err: (err as Error).message }, "could not enlarge the traffic log receive buffer");
    }
    const bound = this.socket.address().port;
    this.log.info({ port: bound }, "receiving the ingress traffic log");
    return bound;
  }

  private onMessage(msg: Buffer): void {
    // One line per datagram from HAProxy; splitting at newlines also accepts a relay that batches lines.
    const n = msg.length;
    let start = 0;
    while (start < n) {
      let end = start;
      while (end < n && msg[end] !== NEWLINE) end++;
      if (end > start) {
        if (this.parser.parse(msg, start, end)) {
          this.received++;
          this.onLine(this.parser.line);
        } else if (this.malformed++ === 0) {
          this.log.warn({ sample: msg.toString("utf8", start, Math.min(end, start + 200)) }, "ignoring a datagram that is not a traffic log line");
        }
      }
      start = end + 1;
    }
  }

  /** Closes the socket; idempotent. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
