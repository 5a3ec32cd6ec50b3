import net from "node:net";
import type { Logger } from "@slipway/core";
import { parseTrafficLine, TRAFFIC_LOG_MARKER, TRAFFIC_RING, type TrafficLogLine } from "./traffic-log.js";

/** How often the reader checks which worker the admin socket leads to. */
const POLL_MS = 1000;
/** Per worker, the request counters of this many latest lines are remembered (the ring holds about 50,000). */
const DEDUPE_WINDOW = 200_000;

interface Worker {
  pid: number;
  seen: Set<number>;
  order: number[];
  stream?: net.Socket;
}

/**
 * Follows HAProxy's request log in its in-memory ring (haproxy.config.ts):
 * `show info;show events <ring> -w` on the admin socket prints the worker's
 * pid, the lines the ring holds, then every new line as it is written, many
 * lines per read. The admin socket closes idle sessions (`stats timeout`) and
 * leads to the new worker after a reload, so the reader checks every second
 * which worker it reaches and follows it when it does not already; a stream
 * that ends is simply opened again. Reading the ring again after reconnecting
 * repeats lines: each line carries the worker's request counter, and a line
 * already counted is skipped. An old worker that drains after a reload is
 * followed by its open stream until it exits or the session times out. A
 * new reader (an agent restart) reads a worker that was already running from
 * its next line on, so nothing the previous agent counted is counted again.
 */
export class TrafficRingReader {
  private readonly workers = new Map<number, Worker>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** Unix seconds when this reader started: a worker older than that was read by the agent before a restart. */
  private startedAt = 0;
  /** Lines counted. */
  received = 0;
  /** Lines with the traffic marker that did not parse (HAProxy's own messages are not counted). */
  malformed = 0;

  /** Workers followed right now (a stream is open). */
  get following(): number {
    return [...this.workers.values()].filter((w) => w.stream).length;
  }

  constructor(
    private readonly opts: { socket: string; onLine: (line: TrafficLogLine) => void; log: Logger; pollMs?: number },
  ) {}

  start(): void {
    this.startedAt = Date.now() / 1000;
    const tick = () => {
      if (this.stopped) return;
      void this.follow()
        .catch((err: unknown) => this.opts.log.debug({ err: (err as Error).message }, "traffic log: the ingress did not answer yet"))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.pollMs ?? POLL_MS).unref();
        });
    };
    tick();
  }

  /** Ends every stream (as a `stats timeout` would); the next check follows the current worker again. For tests. */
  dropStreams(): void {
    for (const w of this.workers.values()) w.stream?.destroy();
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.workers.values()) w.stream?.destroy();
  }

  /**
   * Opens a stream to the worker the socket leads to, unless one is open
   * already. The whole ring is read for a worker this reader has followed
   * before (lines it counted are skipped) or that started after it; a worker
   * that ran before this reader started (an agent restart) is read from now
   * on, since the previous agent counted what it logged until then.
   */
  private async follow(): Promise<void> {
    const { pid, startedAt } = await this.currentWorker();
    if (this.workers.get(pid)?.stream) return;
    const onlyNew = !this.workers.has(pid) && startedAt < Math.floor(this.startedAt);
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(this.opts.socket);
      let header = true;
      let buf = "";
      let worker: Worker | undefined;
      s.once("connect", () => {
        s.write(`show info;show events ${TRAFFIC_RING}${onlyNew ? " -n" : ""} -w\n`);
        resolve();
      });
      s.on("data", (chunk: Buffer) => {
        buf += chunk.toString("utf8");
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (header) {
            const m = /^Pid: (\d+)$/.exec(line);
            if (m) {
              const found = Number(m[1]);
              // A reload between the check and this connection: the next check decides afresh.
              if (found !== pid) {
                s.destroy();
                return;
              }
              worker = this.workers.get(found) ?? { pid: found, seen: new Set(), order: [] };
              this.workers.set(found, worker);
              // A stream of that worker is open already (a reload raced the check): this one goes.
              if (worker.stream && worker.stream !== s) {
                s.destroy();
                return;
              }
              worker.stream = s;
            }
            if (line === "") header = false;
            continue;
          }
          if (line !== "" && worker) this.take(worker, line);
        }
      });
      s.on("error", (err) => reject(err));
      s.on("close", () => {
        if (worker?.stream === s) worker.stream = undefined;
        this.forgetExited();
      });
    });
  }

  private take(w: Worker, raw: string): void {
    // HAProxy's own messages (a proxy stopping at a reload) go to the same log targets.
    if (!raw.includes(TRAFFIC_LOG_MARKER)) return;
    const line = parseTrafficLine(raw);
    if (!line) {
      if (this.malformed++ === 0) this.opts.log.warn({ sample: raw.slice(0, 200) }, "ignoring a ring line that is not a traffic log line");
      return;
    }
    if (w.seen.has(line.seq)) return;
    w.seen.add(line.seq);
    w.order.push(line.seq);
    if (w.order.length > DEDUPE_WINDOW) w.seen.delete(w.order.shift()!);
    this.received++;
    this.opts.onLine(line);
  }

  /** Workers without a stream whose process is gone take no memory. */
  private forgetExited(): void {
    for (const [pid, w] of this.workers) {
      if (w.stream) continue;
      try {
        process.kill(pid, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ESRCH") this.workers.delete(pid);
      }
    }
  }

  /** The pid and start time (Unix seconds) of the worker the admin socket leads to now. */
  private currentWorker(): Promise<{ pid: number; startedAt: number }> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.opts.socket);
      let out = "";
      s.setTimeout(2000, () => s.destroy(new Error("show info timed out")));
      s.once("connect", () => s.write("show info\n"));
      s.on("data", (d: Buffer) => (out += d.toString("utf8")));
      s.on("error", reject);
      s.on("close", () => {
        const pid = /^Pid: (\d+)$/m.exec(out);
        const started = /^Start_time_sec: (\d+)$/m.exec(out);
        if (pid && started) resolve({ pid: Number(pid[1]), startedAt: Number(started[1]) });
        else reject(new Error("no Pid or Start_time_sec in show info"));
      });
    });
  }
}
