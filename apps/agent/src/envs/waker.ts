import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "@slipway/core";
import type { BackendTarget } from "../ingress/ingress.js";

/** What the waker needs from the environments (implemented by Environments). */
export interface WakeService {
  /** undefined when this agent serves no environment of that backend name. */
  describe(slug: string): { app: string; environment: string; state: "running" | "sleeping" | "stopped" } | undefined;
  /** Wakes the environment if it sleeps (one wake for all concurrent callers) and resolves with the targets to send requests to; rejects when it cannot be served. */
  ensureAwake(slug: string): Promise<BackendTarget[]>;
}

/** Set by HAProxy on every request of an environment backend. */
const BACKEND_HEADER = "x-slipway-backend";
/** Monitoring sends this so that its probes never wake an environment. */
const NO_WAKE_HEADER = "x-slipway-no-wake";
/**
 * Connection-level headers that must not be forwarded (RFC 9110 §7.6.1).
 * Transfer-Encoding is kept: node re-applies the chunked framing it names
 * to the body it has already decoded.
 */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"]);

interface Refusal {
  status: number;
  text: string;
}

/**
 * HAProxy's backup server of every environment backend: it receives an
 * environment's requests only while none of its containers is routed, i.e.
 * while it sleeps or is stopped. A request for a sleeping environment is held
 * (its body unread) while the environment is woken, then piped to one of its
 * containers directly, so the client gets the app's own answer. Stopped: 503
 * "environment <app>/<env> is stopped"; unknown backend: 404; wake failure:
 * 503 with the reason; `X-Slipway-No-Wake: 1`: 503 and no wake. WebSocket
 * upgrades are held and tunnelled the same way. Listens on 127.0.0.1 only.
 */
export class Waker {
  private readonly server: http.Server;
  private service?: WakeService;
  private next = 0;

  constructor(private readonly log: Logger) {
    this.server = http.createServer((req, res) => void this.onRequest(req, res));
    this.server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.onUpgrade(req, socket, head));
    // Longer than HAProxy keeps idle server connections, so HAProxy closes them first and never reuses one being closed here.
    this.server.keepAliveTimeout = 30_000;
  }

  /** Listens on 127.0.0.1:port (0 = any free port); resolves with the port. */
  async listen(port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return this.port;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Starts answering with this service; until then every request gets 503. */
  serve(service: WakeService): void {
    this.service = service;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** The targets for this request, or why it gets none. Never throws. */
  private async targetsFor(req: http.IncomingMessage): Promise<BackendTarget[] | Refusal> {
    const slug = headerValue(req.headers[BACKEND_HEADER]);
    if (!slug) return { status: 404, text: "no environment backend named in the request" };
    if (!this.service) return { status: 503, text: "the agent is starting" };
    const env = this.service.describe(slug);
    if (!env) return { status: 404, text: `no environment ${slug} on this host` };
    const name = `${env.app}/${env.environment}`;
    if (env.state === "stopped") return { status: 503, text: `environment ${name} is stopped` };
    if (env.state === "sleeping" && headerValue(req.headers[NO_WAKE_HEADER]) === "1") return { status: 503, text: `environment ${name} is sleeping (not woken: X-Slipway-No-Wake)` };
    try {
      return await this.service.ensureAwake(slug);
    } catch (err) {
      const kind = (err as { kind?: string }).kind;
      return { status: kind === "unknown" ? 404 : 503, text: (err as Error).message };
    }
  }

  private pick(targets: BackendTarget[]): BackendTarget {
    return targets[this.next++ % targets.length]!;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const targets = await this.targetsFor(req);
    if (!Array.isArray(targets)) {
      res.writeHead(targets.status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end(targets.text + "\n");
      req.resume();
      return;
    }
    const t = this.pick(targets);
    const upstream = http.request({ host: t.host, port: t.port, method: req.method, path: req.url, headers: forwardHeaders(req.rawHeaders), agent: false }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.statusMessage, forwardHeaders(ur.rawHeaders));
      ur.pipe(res);
      this.log.debug({ backend: req.headers[BACKEND_HEADER], status: ur.statusCode, ms: Date.now() - started }, "held request answered by the woken environment");
    });
    upstream.on("error", (err) => {
      this.log.warn({ backend: req.headers[BACKEND_HEADER], err: err.message }, "forwarding a held request failed");
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain; charset=utf-8" });
        res.end(`the environment did not answer: ${err.message}\n`);
      } else res.destroy();
    });
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on("error", () => socket.destroy());
    const targets = await this.targetsFor(req);
    if (!Array.isArray(targets)) {
      const body = targets.text + "\n";
      socket.end(`HTTP/1.1 ${targets.status} ${http.STATUS_CODES[targets.status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    const t = this.pick(targets);
    const upstream = net.connect(t.port, t.host, () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if (req.rawHeaders[i]!.toLowerCase() !== BACKEND_HEADER) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      }
      upstream.write(lines.join("\r\n") + "\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("close", () => upstream.destroy());
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Raw headers (flat name, value, … as node takes them) minus hop-by-hop ones and the waker's own; repeated headers such as Set-Cookie are kept. */
function forwardHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === BACKEND_HEADER) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
