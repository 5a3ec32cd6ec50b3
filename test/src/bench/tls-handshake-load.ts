/**
 * A connection-per-request load client for the HTTPS benchmark (issue 15, https.bench.ts): wrk resumes
 * its TLS session on every reconnect, so it cannot measure full handshakes. Here `concurrency` workers
 * each loop, for `durationMs`: connect → (TLS handshake) → one `GET` with `Connection: close` → read the
 * whole response until the server closes → close. Over TLS no `session` is ever passed to tls.connect,
 * so every handshake is a full one (the client's isSessionReused() is counted as a check, and the
 * benchmark reads HAProxy's own figure); the certificate is verified on every connection against the
 * given CA with the host as SNI and the name checked, as a first-visit browser does.
 *
 * The client runs in this Node process, one event loop: on a machine shared with the server its CPU
 * is reported (`clientCpuMs`) so the figures can be read with it in mind.
 */
import net from "node:net";
import tls from "node:tls";

export interface ConnectionLoadOptions {
  port: number;
  /** Address connected to; the host name only travels as SNI and Host header. Default 127.0.0.1. */
  address?: string;
  /** Host header, and over TLS the SNI and the name the certificate must carry. */
  host: string;
  path?: string;
  /** Over TLS when set, verifying the served chain against `ca` (PEM); plain TCP otherwise. */
  tls?: { ca: string };
  /** Connections in flight at once (one per worker). */
  concurrency: number;
  /** Workers start no new connection after this long; the ones in flight finish and count. */
  durationMs: number;
  /** A connection (handshake, request and response) that takes longer fails. Default 10 s. */
  connectionTimeoutMs?: number;
}

export interface ConnectionLoadResult {
  /** Connections that got a complete 2xx/3xx response. */
  ok: number;
  /** Connections with a complete response of another status. */
  non2xx3xx: number;
  /** Connection, TLS or read errors, timeouts and incomplete responses. */
  failed: number;
  /** The first failure's reason, for the progress line. */
  firstError?: string;
  /** From the first connection started to the last one finished. */
  seconds: number;
  /** `ok` per second. */
  rate: number;
  /** From starting the connection to the response's last byte. */
  latencyMs: { p50: number; p99: number };
  /** TLS: connections whose handshake was a resumption (expected 0). */
  resumed: number;
  /** TLS: the distinct serial numbers served (read on each worker's first connection). */
  serials: string[];
  /** TLS: protocol and cipher of the first connection, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384". */
  negotiated?: string;
  /** User and system CPU of this whole process during the run (the client's own cost). */
  clientCpuMs: number;
}

/** What a closed HTTP/1.1 connection delivered: the status, and whether the response is complete. */
export interface ClosedResponse {
  status: number;
  complete: boolean;
}

/**
 * Reads a response the server has finished by closing the connection: complete when its header ends
 * and its body is as long as Content-Length says, or ends with the last chunk when chunked, or
 * (neither) runs to the close. Status 0 when there is no status line.
 */
export function parseClosedResponse(data: Buffer): ClosedResponse {
  const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(data.subarray(0, 64).toString("latin1"))?.[1] ?? 0);
  const headerEnd = data.indexOf("\r\n\r\n");
  if (status === 0 || headerEnd < 0) return { status, complete: false };
  const head = data.subarray(0, headerEnd).toString("latin1");
  const bodyLength = data.length - headerEnd - 4;
  const contentLength = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
  if (contentLength !== undefined) return { status, complete: bodyLength === Number(contentLength) };
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) return { status, complete: data.subarray(-5).toString("latin1") === "0\r\n\r\n" };
  return { status, complete: true };
}

/** The value below which `p` (0–1) of the sorted `xs` lie (nearest rank); NaN for none. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

type Outcome = { kind: "ok" | "status"; ms: number } | { kind: "failed"; error: string };

interface Tally {
  ok: number;
  non2xx3xx: number;
  failed: number;
  firstError?: string;
  resumed: number;
  serials: Set<string>;
  negotiated?: string;
  latencies: number[];
}

function oneConnection(o: ConnectionLoadOptions, request: Buffer, secureContext: tls.SecureContext | undefined, tally: Tally, inspect: boolean): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    let settled = false;
    const address = o.address ?? "127.0.0.1";
    // Never a `session` option: no resumption, every handshake a full one.
    const sock: net.Socket = secureContext
      ? tls.connect({ host: address, port: o.port, servername: o.host, secureContext, ALPNProtocols: ["http/1.1"] })
      : net.connect({ host: address, port: o.port });
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ kind: "failed", error: `no complete response within ${o.connectionTimeoutMs ?? 10_000} ms` }), o.connectionTimeoutMs ?? 10_000);
    sock.once(secureContext ? "secureConnect" : "connect", () => {
      if (sock instanceof tls.TLSSocket) {
        if (sock.isSessionReused()) tally.resumed++;
        if (inspect) {
          tally.serials.add(sock.getPeerCertificate().serialNumber);
          tally.negotiated ??= `${sock.getProtocol()} ${sock.getCipher().standardName}`;
        }
      }
      sock.write(request);
    });
    sock.on("data", (c: Buffer) => chunks.push(c));
    const closed = () => {
      const r = parseClosedResponse(Buffer.concat(chunks));
      if (!r.complete) return finish({ kind: "failed", error: r.status ? `incomplete ${r.status} response` : "connection closed without a response" });
      finish({ kind: r.status >= 200 && r.status < 400 ? "ok" : "status", ms: performance.now() - started });
    };
    sock.on("end", closed);
    sock.on("close", closed);
    sock.on("error", (e) => finish({ kind: "failed", error: e.message }));
  });
}

/**
 * Runs the load and resolves when every worker has finished its last connection. Never rejects for
 * a failed connection (they are counted); safe to run one at a time per process (the CPU figure is
 * the whole process's).
 */
export async function runConnectionLoad(o: ConnectionLoadOptions): Promise<ConnectionLoadResult> {
  const request = Buffer.from(`GET ${o.path ?? "/"} HTTP/1.1\r\nHost: ${o.host}\r\nUser-Agent: slipway-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n`, "latin1");
  const secureContext = o.tls ? tls.createSecureContext({ ca: o.tls.ca }) : undefined;
  const tally: Tally = { ok: 0, non2xx3xx: 0, failed: 0, resumed: 0, serials: new Set(), latencies: [] };
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const deadline = started + o.durationMs;
  const worker = async () => {
    for (let first = true; performance.now() < deadline; first = false) {
      const r = await oneConnection(o, request, secureContext, tally, first);
      if (r.kind === "failed") {
        tally.failed++;
        tally.firstError ??= r.error;
        continue;
      }
      if (r.kind === "ok") tally.ok++;
      else tally.non2xx3xx++;
      tally.latencies.push(r.ms);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sorted = tally.latencies.sort((a, b) => a - b);
  return {
    ok: tally.ok,
    non2xx3xx: tally.non2xx3xx,
    failed: tally.failed,
    firstError: tally.firstError,
    seconds,
    rate: tally.ok / seconds,
    latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) },
    resumed: tally.resumed,
    serials: [...tally.serials],
    negotiated: tally.negotiated,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
  };
}
