/**
 * Keeps a worker that a reload replaced alive until the agent has read its
 * last counters. HAProxy counts per process: after a reload the old worker
 * finishes the requests in flight on its client connections (closing each
 * after its response) and exits at once, while its master is still
 * re-executing and cannot be asked for anything: what it counted since the
 * agent's last read would be lost. So the agent holds one idle keep-alive
 * connection to the current worker (a request to an unknown host name,
 * answered by the no-environment backend, which no environment's counts
 * include); after a reload that connection keeps the old worker running until
 * its last client connection closed and its counters were read, then it is
 * closed and the worker exits. Nothing is sent on it while it holds an old
 * worker (a request would make the worker close it).
 */
import net from "node:net";
import type { Logger } from "pino";
import type { HaproxyRuntime } from "./haproxy-runtime.js";

/** The host name of the pin's requests: reserved (RFC 2606), so no environment can have it. */
export const PIN_HOST = "slipway-counter-pin.invalid";
/** A pin on the current worker sends a request this often, well within `timeout http-keep-alive` (10 s). */
const REFRESH_MS = 4000;

interface Pin {
  socket: net.Socket;
  lastUsed: number;
}

export class WorkerPins {
  private readonly pins = new Map<number, Pin>();
  private creating?: Promise<void>;

  constructor(
    private readonly opts: { host: string; port: number; runtime: HaproxyRuntime; log: Logger },
  ) {}

  /** The workers holding a pin. */
  pids(): number[] {
    return [...this.pins.keys()];
  }

  /** Whether an old worker holds a pin of ours (then one of its connections is ours). */
  holds(pid: number): boolean {
    return this.pins.has(pid);
  }

  /**
   * Makes sure the current worker holds a fresh pin: one that belongs to it (it answered while it
   * was the only current worker, before and after) and was used within REFRESH_MS.
   */
  async ensure(current: number): Promise<void> {
    const pin = this.pins.get(current);
    if (pin && !pin.socket.destroyed && Date.now() - pin.lastUsed < REFRESH_MS) return;
    this.creating ??= (async () => {
      try {
        if (pin && !pin.socket.destroyed) {
          await this.request(pin.socket);
          pin.lastUsed = Date.now();
          return;
        }
        this.pins.delete(current);
        const socket = await this.connect();
        await this.request(socket);
        // Still the only current worker: the connection is its.
        const procs = await this.opts.runtime.showProc();
        if (procs.workers.length !== 1 || procs.workers[0] !== current) {
          socket.destroy();
          return;
        }
        socket.on("close", () => {
          if (this.pins.get(current)?.socket === socket) this.pins.delete(current);
        });
        this.pins.set(current, { socket, lastUsed: Date.now() });
      } catch (err) {
        this.opts.log.debug({ err: (err as Error).message }, "could not hold a connection to the ingress worker; its counters may miss its last requests after a reload");
      }
    })().finally(() => (this.creating = undefined));
    await this.creating;
  }

  /** Lets an old worker go (its counters were read after its last client connection closed). */
  release(pid: number): void {
    this.pins.get(pid)?.socket.destroy();
    this.pins.delete(pid);
  }

  /** Lets every worker go, for good. */
  close(): void {
    for (const pid of [...this.pins.keys()]) this.release(pid);
  }

  private connect(): Promise<net.Socket> {
    const host = this.opts.host === "0.0.0.0" ? "127.0.0.1" : this.opts.host === "::" ? "::1" : this.opts.host;
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.opts.port, host);
      socket.setNoDelay(true);
      socket.once("connect", () => {
        socket.removeListener("error", reject);
        socket.on("error", () => socket.destroy());
        resolve(socket);
      });
      socket.once("error", reject);
    });
  }

  /** One request on the connection; resolves once its whole (small) response arrived. */
  private request(socket: net.Socket): Promise<void> {
    return new Promise((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => done(new Error("no answer within 5 s")), 5000);
      const onData = (d: Buffer) => {
        buf += d.toString("latin1");
        const head = buf.indexOf("\r\n\r\n");
        if (head < 0) return;
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(buf.slice(0, head));
        if (!length) return done(new Error("answer without content-length"));
        if (buf.length >= head + 4 + Number(length[1])) {
          if (/\r\nconnection:\s*close/i.test(buf.slice(0, head))) return done(new Error("the worker is closing the connection"));
          done();
        }
      };
      const onClose = () => done(new Error("connection closed"));
      const done = (err?: Error) => {
        clearTimeout(timer);
        socket.removeListener("data", onData);
        socket.removeListener("close", onClose);
        if (err) {
          socket.destroy();
          reject(err);
        } else resolve();
      };
      socket.on("data", onData);
      socket.once("close", onClose);
      socket.write(`GET / HTTP/1.1\r\nHost: ${PIN_HOST}\r\nUser-Agent: slipway-agent (counter pin)\r\n\r\n`);
    });
  }
}
