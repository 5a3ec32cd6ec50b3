import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { INBOX_CONTROL, LABELS, inboxControlOf, inboxControlWildcard, logsSubject, type Logger } from "@slipway/core";
import type { ContainerRuntime } from "../docker/container-runtime.js";
import type { ContainerLogReader } from "../docker/container-access.js";

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

/**
 * Serves the runtime logs of this host's environments: lines of every web
 * container of the environment (prefixed with the container's short name)
 * are published to the request's inbox as `{"line": …}` messages, after a
 * first `{"start": true}` and before a last `{"end": true}`. A followed
 * stream ends on `<inbox>.stop`, when pings stop for 30 s, or after 6 h.
 * Subjects are core's (`logsSubject`, `INBOX_CONTROL`).
 */
export class LogServer {
  private sub?: Subscription;
  private readonly active = new Set<() => void>();

  /**
   * `nc`: the agent's NATS core connection, shared with the shell server; the agent closes it.
   * `containers`: lists the environment's containers and reads their output (DockerRuntime).
   */
  constructor(private readonly opts: { nc: NatsConnection; hostId: string; log: Logger; containers: Pick<ContainerRuntime, "list"> & ContainerLogReader }) {}

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
    const containers = await this.opts.containers.list({
      [LABELS.host]: this.opts.hostId,
      [LABELS.app]: req.app,
      [LABELS.environment]: req.environment,
      [LABELS.role]: "web",
    });
    if (containers.length === 0) {
      send({ line: `(no containers of ${req.app}/${req.environment} on this host)` });
      send({ end: true });
      return;
    }
    const ac = new AbortController();
    let lastPing = Date.now();
    const stop = () => ac.abort();
    this.active.add(stop);
    const control = nc.subscribe(inboxControlWildcard(req.inbox));
    void (async () => {
      for await (const m of control) {
        if (inboxControlOf(m.subject) === INBOX_CONTROL.stop) stop();
        else lastPing = Date.now();
      }
    })();
    const started = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastPing > PING_TIMEOUT_MS || Date.now() - started > MAX_FOLLOW_MS) stop();
    }, 5000);
    try {
      await Promise.all(
        containers.map((c) => {
          const name = c.name || c.id;
          return this.opts.containers.logs(c.id, { follow: req.follow, since: req.since || 0, tail: req.tail || 1000, signal: ac.signal }, (line) => send({ line: `${name} ${line}` }));
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
