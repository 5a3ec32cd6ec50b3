import { PassThrough } from "node:stream";
import Dockerode from "dockerode";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { LABELS, type Logger } from "@slipway/core";

/** A log request from the control plane (JSON on `slipway.logs.<hostId>`). */
export interface LogRequest {
  app: string;
  environment: string;
  follow: boolean;
  /** Unix seconds; 0 = from the start (bounded by tail). */
  since: number;
  tail: number;
  inbox: string;
}

/** How long a followed stream lives without a ping from the control plane. */
const PING_TIMEOUT_MS = 30_000;
/** A follow never outlives this, pings or not. */
const MAX_FOLLOW_MS = 6 * 3600_000;

export function logsSubject(hostId: string): string {
  return `slipway.logs.${hostId}`;
}

/**
 * Serves the runtime logs of this host's environments: lines of every web
 * container of the environment (prefixed with the container's short name)
 * are published to the request's inbox as `{"line": …}` messages, after a
 * first `{"start": true}` and before a last `{"end": true}`. A followed stream ends on `<inbox>.stop`, when pings stop
 * for 30 s, or after 6 h.
 */
export class LogServer {
  private sub?: Subscription;
  private readonly active = new Set<() => void>();

  /** `nc`: the agent's NATS core connection, shared with the shell server; the agent closes it. */
  constructor(private readonly opts: { nc: NatsConnection; hostId: string; log: Logger; docker?: Dockerode }) {}

  private get nc(): NatsConnection {
    return this.opts.nc;
  }

  start(): void {
    this.sub = this.nc.subscribe(logsSubject(this.opts.hostId));
    void (async () => {
      for await (const m of this.sub!) {
        let req: LogRequest;
        try {
          req = JSON.parse(new TextDecoder().decode(m.data)) as LogRequest;
          if (!req.inbox || !req.app || !req.environment) throw new Error("incomplete");
        } catch {
          this.opts.log.warn("ignored a malformed log request");
          continue;
        }
        void this.serve(req).catch((err: unknown) => {
          this.opts.log.warn({ err: (err as Error).message }, "log stream failed");
          this.nc.publish(req.inbox, JSON.stringify({ line: `(log stream failed: ${(err as Error).message})` }));
          this.nc.publish(req.inbox, JSON.stringify({ end: true }));
        });
      }
    })();
  }

  private async serve(req: LogRequest): Promise<void> {
    const nc = this.nc;
    const send = (o: unknown) => nc.publish(req.inbox, JSON.stringify(o));
    // Answer at once: a followed log may have no line for a long time.
    send({ start: true });
    const docker = this.opts.docker ?? new Dockerode();
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.host}=${this.opts.hostId}`, `${LABELS.app}=${req.app}`, `${LABELS.environment}=${req.environment}`, `${LABELS.role}=web`] },
    });
    if (containers.length === 0) {
      send({ line: `(no containers of ${req.app}/${req.environment} on this host)` });
      send({ end: true });
      return;
    }
    const streams: NodeJS.ReadableStream[] = [];
    let stopped = false;
    let lastPing = Date.now();
    const stop = () => {
      if (stopped) return;
      stopped = true;
      for (const s of streams) (s as unknown as { destroy?: () => void }).destroy?.();
    };
    this.active.add(stop);
    const control = nc.subscribe(`${req.inbox}.*`);
    void (async () => {
      for await (const m of control) {
        if (m.subject.endsWith(".stop")) stop();
        else lastPing = Date.now();
      }
    })();
    const started = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastPing > PING_TIMEOUT_MS || Date.now() - started > MAX_FOLLOW_MS) stop();
    }, 5000);
    try {
      await Promise.all(
        containers.map(async (c) => {
          const name = (c.Names[0] ?? c.Id).replace(/^\//, "");
          const got = (await docker.getContainer(c.Id).logs({ follow: req.follow as true, stdout: true, stderr: true, timestamps: true, since: req.since || 0, tail: req.tail || 1000 })) as unknown;
          if (Buffer.isBuffer(got)) {
            // Without follow, dockerode hands back the whole multiplexed log as one buffer.
            for (const line of demuxBuffer(got).split("\n").filter(Boolean)) send({ line: `${name} ${line}` });
            return;
          }
          const raw = got as NodeJS.ReadableStream;
          streams.push(raw);
          const out = new PassThrough();
          docker.modem.demuxStream(raw, out, out);
          let buf = "";
          await new Promise<void>((resolve) => {
            out.on("data", (chunk: Buffer) => {
              buf += chunk.toString("utf8");
              let i: number;
              while ((i = buf.indexOf("\n")) >= 0) {
                send({ line: `${name} ${buf.slice(0, i)}` });
                buf = buf.slice(i + 1);
              }
            });
            const done = () => {
              if (buf) send({ line: `${name} ${buf}` });
              buf = "";
              resolve();
            };
            raw.on("end", done);
            raw.on("close", done);
            raw.on("error", done);
            if (stopped) done();
          });
        }),
      );
    } finally {
      clearInterval(watchdog);
      control.unsubscribe();
      this.active.delete(stop);
      send({ end: true });
    }
  }

  stop(): void {
    for (const s of this.active) s();
    this.sub?.unsubscribe();
  }
}

/** Docker's multiplexed log format: frames of an 8-byte header (stream, 0, 0, 0, size u32 BE) and a payload. */
export function demuxBuffer(buf: Buffer): string {
  let out = "";
  let i = 0;
  while (i + 8 <= buf.length) {
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString("utf8");
    i += 8 + size;
  }
  // A TTY container's log is not multiplexed.
  return i === 0 && buf.length > 0 ? buf.toString("utf8") : out;
}
