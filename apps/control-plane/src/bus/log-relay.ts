import { randomBytes } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import type { NatsAccess } from "./nats-users.js";
import { natsServers } from "./nats-servers.js";
import { INBOX_CONTROL, UnavailableError, inboxControl, logsInbox, logsSubject, signHostRequest, type LogRequest, type Logger } from "@slipway/core";

/** How long to wait for the host's first answer. */
const FIRST_ANSWER_MS = 5000;
const PING_INTERVAL_MS = 10_000;

/**
 * Runtime logs of an environment, from whichever host runs it: a request on
 * core's `logsSubject(hostId)` (NATS core, not JetStream: logs are not jobs), the
 * lines back on a per-request inbox. Any control plane replica can serve the
 * HTTP stream. Memory is bounded: when the client reads too slowly, lines are
 * dropped and the stream says how many.
 */
export class LogRelay {
  private nc?: Promise<NatsConnection>;

  /** `access`: how to reach NATS (read at the first use). */
  constructor(private readonly access: () => NatsAccess, private readonly log: Logger) {}

  /** The relay's NATS connection (core, not JetStream), shared with the shell relay. */
  conn(): Promise<NatsConnection> {
    const access = this.access();
    this.nc ??= connect({ servers: natsServers(access.url), ...(access.authenticator ? { authenticator: access.authenticator } : {}), maxReconnectAttempts: -1, reconnectTimeWait: 500, name: "slipway-control-plane-logs" });
    return this.nc;
  }

  /** `host`: its id and the hash of its credential, which signs the request (the agent checks it). */
  async stream(host: { id: string; credentialHash: string }, req: Omit<LogRequest, "inbox" | "issuedAt">): Promise<{ body: Readable; close: () => void }> {
    const hostId = host.id;
    const nc = await this.conn();
    const inbox = logsInbox(hostId, randomBytes(8).toString("hex"));
    const sub = nc.subscribe(inbox);
    const out = new PassThrough({ highWaterMark: 256 * 1024 });
    let dropped = 0;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(ping);
      nc.publish(inboxControl(inbox, INBOX_CONTROL.stop), "");
      sub.unsubscribe();
      out.end();
    };
    const ping = setInterval(() => nc.publish(inboxControl(inbox, INBOX_CONTROL.ping), ""), PING_INTERVAL_MS);
    out.on("drain", () => {
      if (dropped > 0 && !closed) {
        out.write(`[${dropped} lines dropped: the client reads too slowly]\n`);
        dropped = 0;
      }
    });
    const first = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new UnavailableError(`the host of ${req.app}/${req.environment} did not answer within ${FIRST_ANSWER_MS / 1000} s; is its agent online?`)), FIRST_ANSWER_MS);
      void (async () => {
        let answered = false;
        for await (const m of sub) {
          if (!answered) {
            answered = true;
            clearTimeout(t);
            resolve();
          }
          const msg = JSON.parse(new TextDecoder().decode(m.data)) as { line?: string; end?: boolean };
          if (msg.end) break;
          if (msg.line === undefined || closed) continue;
          if (out.writableLength > out.writableHighWaterMark) dropped++;
          else out.write(msg.line + "\n");
        }
        close();
      })().catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, "log relay failed");
        close();
      });
    });
    nc.publish(logsSubject(hostId), JSON.stringify(signHostRequest("logs", host.credentialHash, { ...req, inbox, issuedAt: Date.now() })));
    try {
      await first;
    } catch (err) {
      close();
      throw err;
    }
    return { body: out, close };
  }

  async close(): Promise<void> {
    if (this.nc) await (await this.nc).close().catch(() => undefined);
  }
}
