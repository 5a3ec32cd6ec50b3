import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { INBOX_CONTROL, LABELS, ReplayGuard, credentialHashOf, inboxControlOf, inboxControlWildcard, isHostInbox, logsSubject, verifyHostRequest, type LogRequest, type Logger } from "@slipway/core";
import type { ContainerRuntime } from "../docker/container-runtime.js";
import type { ContainerLogReader } from "../docker/container-access.js";

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
 * Subjects are core's (`logsSubject`, `INBOX_CONTROL`). Like shells, log
 * requests must be signed by the control plane (core `verifyHostRequest`),
 * fresh, seen once, and name an inbox under this host's prefix; others are
 * refused without an answer.
 */
export class LogServer {
  private sub?: Subscription;
  private readonly active = new Set<() => void>();
  private readonly key: string;
  private readonly replays = new ReplayGuard();

  /**
   * `nc`: the agent's NATS core connection, shared with the shell server; the agent closes it.
   * `containers`: lists the environment's containers and reads their output (DockerRuntime).
   */
  constructor(private readonly opts: { nc: NatsConnection; hostId: string; credential: string; log: Logger; containers: Pick<ContainerRuntime, "list"> & ContainerLogReader }) {
    this.key = credentialHashOf(opts.credential);
  }

  private get nc(): NatsConnection {
    return this.opts.nc;
  }

  start(): void {
    this.sub = this.nc.subscribe(logsSubject(this.opts.hostId));
    void (async () => {
      for await (const m of this.sub!) {
        let signed: unknown;
        try {
          signed = JSON.parse(new TextDecoder().decode(m.data));
        } catch {
          this.opts.log.warn("ignored a malformed log request");
          continue;
        }
        const req = (signed as { request?: LogRequest } | null)?.request;
        if (!verifyHostRequest("logs", this.key, signed) || !isHostInbox(this.opts.hostId, req?.inbox) || typeof req?.app !== "string" || typeof req.environment !== "string" || this.replays.replayed(signed.signature)) {
          this.opts.log.warn({ app: req?.app, environment: req?.environment }, "refused a log request that is not signed by the control plane, is stale, was replayed or names another host's inbox");
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
