import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import {
  INBOX_CONTROL,
  LABELS,
  ReplayGuard,
  ShellFrame,
  ShellFrameReader,
  credentialHashOf,
  encodeShellFrame,
  inboxControlOf,
  inboxControlWildcard,
  isHostInbox,
  shellSubject,
  verifyHostRequest,
  type Logger,
  type ShellRequest,
} from "@slipway/core";
import type { ContainerRuntime } from "../docker/container-runtime.js";
import type { ContainerExecutor } from "../docker/container-access.js";

/** A session ends when the control plane's pings stop for this long (the client went away). */
const PING_TIMEOUT_MS = 30_000;
/** A session never outlives this. */
const MAX_SESSION_MS = 12 * 3600_000;
/** Output is sent in messages of at most this many bytes. */
const OUTPUT_CHUNK = 32 * 1024;

/**
 * Runs shells in this host's environments' containers for the control plane:
 * a signed request on `slipway.shell.<hostId>` (see core `verifyHostRequest`;
 * unsigned, stale or replayed ones are refused, and so is an inbox outside
 * this host's prefix) starts `docker exec` in a
 * running web container of the environment; its output goes to the request's
 * inbox as frames, input and terminal resizes come on `<inbox>.in`. The
 * session ends with the command (an Exit frame with its code), on
 * `<inbox>.close` (the client went away), or when the control plane's pings
 * stop.
 */
export class ShellServer {
  private sub?: Subscription;
  private readonly key: string;
  private readonly replays = new ReplayGuard();
  private readonly active = new Set<() => void>();

  /**
   * `nc`: the agent's NATS core connection, shared with the log server; the agent closes it.
   * `containers`: finds the environment's running container and runs the command in it (DockerRuntime).
   */
  constructor(private readonly opts: { nc: NatsConnection; hostId: string; credential: string; log: Logger; containers: Pick<ContainerRuntime, "list"> & ContainerExecutor }) {
    this.key = credentialHashOf(opts.credential);
  }

  private get nc(): NatsConnection {
    return this.opts.nc;
  }

  start(): void {
    this.sub = this.nc.subscribe(shellSubject(this.opts.hostId));
    void (async () => {
      for await (const m of this.sub!) {
        let signed: unknown;
        try {
          signed = JSON.parse(new TextDecoder().decode(m.data));
        } catch {
          this.opts.log.warn("ignored a malformed shell request");
          continue;
        }
        const req = (signed as { request?: Partial<ShellRequest> } | null)?.request;
        const hostInbox = isHostInbox(this.opts.hostId, req?.inbox);
        if (!verifyHostRequest("shell", this.key, signed) || !hostInbox || this.replays.replayed(signed.signature)) {
          this.opts.log.warn({ app: req?.app, environment: req?.environment }, "refused a shell request that is not signed by the control plane, is stale, was replayed or names another host's inbox");
          if (hostInbox) this.nc.publish(req!.inbox!, encodeShellFrame(ShellFrame.Error, "the agent refused the request: bad signature, stale, replayed or not this host's inbox"));
          continue;
        }
        const request = signed.request as ShellRequest;
        void this.serve(request).catch((err: unknown) => {
          this.opts.log.warn({ app: request.app, environment: request.environment, err: (err as Error).message }, "shell session failed");
          this.nc.publish(request.inbox, encodeShellFrame(ShellFrame.Error, (err as Error).message));
        });
      }
    })();
  }

  private async serve(req: ShellRequest): Promise<void> {
    const nc = this.nc;
    const send = (type: number, payload?: Uint8Array | string) => nc.publish(req.inbox, encodeShellFrame(type, payload));
    // Subscribed before anything is answered: input sent right after Started waits here, in order.
    const input = nc.subscribe(inboxControlWildcard(req.inbox));
    try {
      await this.session(req, send, input);
    } finally {
      input.unsubscribe();
    }
  }

  private async session(req: ShellRequest, send: (type: number, payload?: Uint8Array | string) => void, input: Subscription): Promise<void> {
    const labels = { [LABELS.host]: this.opts.hostId, [LABELS.app]: req.app, [LABELS.environment]: req.environment, [LABELS.role]: "web" };
    const target = (await this.opts.containers.list(labels)).find((c) => c.state === "running");
    if (!target) {
      send(ShellFrame.Error, `no running container of ${req.app}/${req.environment} on this host (is it asleep or stopped?)`);
      return;
    }
    const name = target.name || target.id;
    const cmd = req.command.length > 0 ? req.command : ["/bin/sh"];
    const forward = (type: number) => (chunk: Buffer) => {
      for (let i = 0; i < chunk.length; i += OUTPUT_CHUNK) send(type, chunk.subarray(i, i + OUTPUT_CHUNK));
    };
    const stdout = forward(ShellFrame.Stdout);
    const stderr = forward(ShellFrame.Stderr);
    const exec = await this.opts.containers.exec(target.id, { cmd, tty: req.tty, rows: req.rows, cols: req.cols }, (stream, chunk) => (stream === "stdout" ? stdout(chunk) : stderr(chunk)));
    this.opts.log.info({ app: req.app, environment: req.environment, container: name, command: cmd[0], tty: req.tty }, "shell session started");
    send(ShellFrame.Started, JSON.stringify({ container: name }));

    let lastPing = Date.now();
    const startedAt = Date.now();
    let ended = false;
    /** `abandoned`: the client went away while the command runs; it is stopped like an SSH session's. */
    const end = (abandoned = false) => {
      if (ended) return;
      ended = true;
      if (abandoned) void exec.hangUp();
      else exec.close();
    };
    const abandon = () => end(true);
    this.active.add(abandon);
    const reader = new ShellFrameReader();
    void (async () => {
      for await (const m of input) {
        lastPing = Date.now();
        const control = inboxControlOf(m.subject);
        if (control === INBOX_CONTROL.ping) continue;
        if (control === INBOX_CONTROL.close) {
          end(true);
          continue;
        }
        try {
          for (const f of reader.push(m.data)) {
            if (f.type === ShellFrame.Stdin) exec.write(f.payload);
            else if (f.type === ShellFrame.StdinEnd) exec.endInput();
            else if (f.type === ShellFrame.Resize && req.tty) {
              const { rows, cols } = JSON.parse(f.payload.toString("utf8")) as { rows: number; cols: number };
              await exec.resize(rows, cols);
            }
          }
        } catch {
          end(true);
        }
      }
    })();
    const watchdog = setInterval(() => {
      if (Date.now() - lastPing > PING_TIMEOUT_MS || Date.now() - startedAt > MAX_SESSION_MS) end(true);
    }, 5000);
    try {
      const code = await exec.exit;
      if (code === undefined) send(ShellFrame.Error, ended ? "the session was closed" : "the command closed its output but did not exit; its exit status is unknown");
      else send(ShellFrame.Exit, JSON.stringify({ code }));
      this.opts.log.info({ app: req.app, environment: req.environment, container: name, code }, "shell session ended");
    } finally {
      clearInterval(watchdog);
      this.active.delete(abandon);
      end();
    }
  }

  stop(): void {
    for (const s of this.active) s();
    this.sub?.unsubscribe();
  }
}
