import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/nats-core";
import { INBOX_CONTROL, ShellFrame, ShellFrameReader, UnavailableError, inboxControl, shellInbox, shellSubject, signHostRequest, type Logger, type ShellRequest } from "@slipway/core";

/** How long to wait for the agent to start the session. */
const START_TIMEOUT_MS = 10_000;
const PING_INTERVAL_MS = 10_000;

export interface ShellSession {
  /** The container the agent runs the command in. */
  container: string;
  /** Client frames (Stdin, StdinEnd, Resize), as they come, to the agent. */
  send(bytes: Uint8Array): void;
  /** Ends the session (the client went away): the agent kills the command. */
  close(): void;
  /** Settles after the last frame (Exit or Error) or close(). */
  done: Promise<void>;
}

/**
 * Shells in environments' containers, relayed over NATS core like runtime
 * logs: a request signed for the host (core `signHostRequest`) on
 * `slipway.shell.<hostId>`, the agent's frames on a per-session inbox, the
 * client's frames on `<inbox>.in`, a ping every 10 s on `<inbox>.ping`,
 * `<inbox>.close` when the client goes. Any control plane replica can serve
 * the HTTP side.
 */
export class ShellRelay {
  constructor(private readonly conn: () => Promise<NatsConnection>, private readonly log: Logger) {}

  async open(host: { id: string; credentialHash: string }, req: Omit<ShellRequest, "inbox" | "issuedAt">, onFrame: (type: number, payload: Buffer) => void): Promise<ShellSession> {
    const nc = await this.conn();
    const inbox = shellInbox(host.id, randomBytes(12).toString("hex"));
    const sub = nc.subscribe(inbox);
    const reader = new ShellFrameReader();
    let closed = false;
    let ping: NodeJS.Timeout | undefined;
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    const finish = () => {
      if (closed) return;
      closed = true;
      clearInterval(ping);
      sub.unsubscribe();
      settle();
    };
    const started = new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new UnavailableError(`the host of ${req.app}/${req.environment} did not start the shell within ${START_TIMEOUT_MS / 1000} s; is its agent online?`)), START_TIMEOUT_MS);
      void (async () => {
        for await (const m of sub) {
          for (const f of reader.push(m.data)) {
            if (f.type === ShellFrame.Started) {
              clearTimeout(t);
              resolve((JSON.parse(f.payload.toString("utf8")) as { container: string }).container);
            } else if (f.type === ShellFrame.Error) {
              clearTimeout(t);
              reject(new UnavailableError(f.payload.toString("utf8")));
            }
            onFrame(f.type, f.payload);
            if (f.type === ShellFrame.Exit || f.type === ShellFrame.Error) {
              finish();
              return;
            }
          }
        }
      })().catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, "shell relay failed");
        clearTimeout(t);
        reject(err as Error);
        finish();
      });
    });
    nc.publish(shellSubject(host.id), JSON.stringify(signHostRequest("shell", host.credentialHash, { ...req, inbox, issuedAt: Date.now() })));
    let container: string;
    try {
      container = await started;
    } catch (err) {
      finish();
      throw err;
    }
    ping = setInterval(() => nc.publish(inboxControl(inbox, INBOX_CONTROL.ping), ""), PING_INTERVAL_MS);
    return {
      container,
      send: (bytes) => {
        if (!closed) nc.publish(inboxControl(inbox, INBOX_CONTROL.input), bytes);
      },
      close: () => {
        if (!closed) nc.publish(inboxControl(inbox, INBOX_CONTROL.close), "");
        finish();
      },
      done,
    };
  }
}
