import dgram from "node:dgram";
import { readFile } from "node:fs/promises";
import type { Logger } from "@slipway/core";
import { TrafficLineParser, type TrafficLogLine } from "./traffic-log.js";

/** Asked of the kernel for the socket's receive buffer: a burst of log lines must not overflow it between two event-loop turns. */
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;
/** Longest pause between two reads of the socket while lines arrive (see TrafficLogReceiverOptions). */
const DEFAULT_BATCH_PAUSE_MS = 25;
/** Kernel memory a small datagram takes in the receive buffer (its skb): measured ~830 bytes on loopback; an upper estimate. */
const BYTES_PER_QUEUED_DATAGRAM = 1024;
/**
 * A rate of lines (per ms) the kernel's queue must be able to take for a whole
 * pause, whatever was measured before: traffic can jump from idle to this.
 */
const BURST_LINES_PER_MS = 200;
/** Share of the kernel's queue a pause may fill at that rate. */
const QUEUE_SHARE = 0.5;
/** Shorter pauses than this save less than they cost: the receiver then reads datagram by datagram. */
const MIN_USEFUL_PAUSE_MS = 5;
/** How often the kernel's drop counter of the socket is checked. */
const DROP_CHECK_MS = 60_000;

export interface TrafficLogReceiverOptions {
  /**
   * While lines arrive, the socket is read in batches: after a batch, reading
   * stops for up to this long and the kernel queues the datagrams meanwhile,
   * so the agent wakes ~40 times a second instead of once per request (about
   * half the agent's CPU per request, BENCHMARKS.md "Ingress, measured with
   * wrk"). A pause never lets more than half the kernel's receive buffer
   * fill at the measured rate or at 200,000 lines/s, whichever is higher, so
   * batching needs net.core.rmem_max ≥ ~2 MB (Debian's default, 208 KiB,
   * holds ~500 lines: the receiver then reads datagram by datagram).
   * Lines are counted up to one pause later, never lost to it; 0 turns
   * batching off. Idle, nothing runs.
   */
  batchPauseMs?: number;
}

/** The libuv handle's reading switch; Node's dgram has no public pause. */
interface ReceiveSwitch {
  recvStart(): number;
  recvStop(): number;
}

/**
 * Node 20 keeps a dgram socket's handle under an internal symbol; recvStart
 * and recvStop are what dgram itself calls on it. Undefined on a Node that
 * does not look like that: the receiver then reads each datagram as it comes.
 */
function receiveSwitch(socket: dgram.Socket): ReceiveSwitch | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === "state symbol");
  const handle = sym ? (socket as unknown as Record<symbol, { handle?: Partial<ReceiveSwitch> } | undefined>)[sym]?.handle : undefined;
  return typeof handle?.recvStart === "function" && typeof handle.recvStop === "function" ? (handle as ReceiveSwitch) : undefined;
}

/** The kernel's count of datagrams dropped for a udp4 socket bound to 127.0.0.1:port (the last column of /proc/net/udp); undefined if not found. */
export async function kernelDrops(port: number): Promise<number | undefined> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const text = await readFile("/proc/net/udp", "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] === local) return Number(cols[cols.length - 1]);
  }
  return undefined;
}

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
  /** Batches read (see TrafficLogReceiverOptions.batchPauseMs); stays 0 when reading datagram by datagram. */
  batches = 0;
  /** Datagrams the kernel dropped because the receive buffer was full, as of the last check. */
  dropped = 0;
  private maxPauseMs: number;
  /** The log is a latency sample (counts come from elsewhere): long pauses, and a lost line loses a sample, not a count. */
  private sampleOnly = false;
  private switch: ReceiveSwitch | undefined;
  private queueCapacity = 0;
  private port = 0;
  private batching = false;
  private closed = false;
  /** Datagrams since the last end-of-turn check, and since reading last resumed. */
  private turnDatagrams = 0;
  private cycleDatagrams = 0;
  private cycleStarted = 0;
  private pauseTimer: NodeJS.Timeout | undefined;
  private dropTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onLine: (line: TrafficLogLine) => void,
    private readonly log: Logger,
    opts: TrafficLogReceiverOptions = {},
  ) {
    this.maxPauseMs = opts.batchPauseMs ?? DEFAULT_BATCH_PAUSE_MS;
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
      // The kernel caps it at net.core.rmem_max (then it holds ~500 lines only, and no batching: see batchPauseMs).
      this.log.debug({ err: (err as Error).message }, "could not enlarge the traffic log receive buffer");
    }
    const bound = this.socket.address().port;
    this.port = bound;
    this.queueCapacity = Math.floor(this.socket.getRecvBufferSize() / BYTES_PER_QUEUED_DATAGRAM);
    const usefulPause = Math.min(this.maxPauseMs, (this.queueCapacity * QUEUE_SHARE) / BURST_LINES_PER_MS) >= MIN_USEFUL_PAUSE_MS;
    this.switch = usefulPause ? receiveSwitch(this.socket) : undefined;
    this.cycleStarted = performance.now();
    this.dropTimer = setInterval(() => void this.checkDrops(), DROP_CHECK_MS).unref();
    this.log.info({ port: bound, batched: this.switch !== undefined, queueCapacity: this.queueCapacity }, "receiving the ingress traffic log");
    if (!this.switch && this.maxPauseMs > 0) this.log.info("traffic log read datagram by datagram: raise net.core.rmem_max to 4 MB to read it in batches (less CPU per request)");
    return bound;
  }

  /**
   * Called after every event-loop turn that delivered datagrams: libuv reads a
   * bounded number per turn, so reading goes on until a turn brings none, then
   * stops for a pause in which the kernel queues what arrives.
   */
  /** Whether the socket is read in batches (decided by listen(): see TrafficLogReceiverOptions.batchPauseMs). */
  get batched(): boolean {
    return this.switch !== undefined;
  }

  private readonly endOfTurn = (): void => {
    if (this.closed) return;
    if (this.turnDatagrams > 0) {
      this.cycleDatagrams += this.turnDatagrams;
      this.turnDatagrams = 0;
      setImmediate(this.endOfTurn);
      return;
    }
    this.batches++;
    this.switch!.recvStop();
    this.pauseTimer = setTimeout(this.resume, this.pauseMs());
  };

  private readonly resume = (): void => {
    if (this.closed) return;
    this.batching = false;
    this.switch!.recvStart();
  };

  /**
   * The log is a latency sample from now on (HAProxy's counters count the requests, and the proxy
   * logs a bounded share of them): read it in batches every `pauseMs` (default 200 ms), whatever a
   * burst would need. A burst that overflows the kernel's queue costs latency samples only.
   */
  asSample(pauseMs = 200): void {
    this.sampleOnly = true;
    this.maxPauseMs = pauseMs;
    if (!this.switch && pauseMs > 0) this.switch = receiveSwitch(this.socket);
  }

  /** The longest pause in which the last cycle's rate, or the assumed burst rate, fills at most QUEUE_SHARE of the kernel's queue. */
  private pauseMs(): number {
    if (this.sampleOnly) return this.maxPauseMs;
    const now = performance.now();
    const perMs = Math.max(BURST_LINES_PER_MS, this.cycleDatagrams / Math.max(1, now - this.cycleStarted));
    this.cycleDatagrams = 0;
    this.cycleStarted = now;
    return Math.max(1, Math.min(this.maxPauseMs, Math.floor((this.queueCapacity * QUEUE_SHARE) / perMs)));
  }

  private async checkDrops(): Promise<void> {
    const drops = await kernelDrops(this.port);
    if (drops === undefined || drops <= this.dropped) return;
    if (this.sampleOnly) this.log.info({ dropped: drops - this.dropped, total: drops }, "the kernel dropped traffic log datagrams (receive buffer full): fewer latency samples, counts unaffected");
    else this.log.warn({ dropped: drops - this.dropped, total: drops }, "the kernel dropped traffic log datagrams (receive buffer full): request counts are low");
    this.dropped = drops;
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
    if (this.switch) {
      this.turnDatagrams++;
      if (!this.batching) {
        this.batching = true;
        setImmediate(this.endOfTurn);
      }
    }
  }

  /** Closes the socket; idempotent. */
  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pauseTimer);
    clearInterval(this.dropTimer);
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
