/**
 * `openssl s_time -new` as an independent cross-check of full TLS handshakes/s (https.bench.ts):
 * OpenSSL's own client, `processes` of them at once (each keeps one connection in flight), every
 * connection a new session. Debian bookworm's OpenSSL 3.0 s_time has no `-servername`, so it sends no
 * SNI and gets the ingress's default certificate; with `-www` it sends `GET <path> HTTP/1.0` with no
 * Host header. The caller says what that means for the figure.
 */
import { execFile } from "node:child_process";
import { reapedChildrenCpuMs } from "./proc-cpu.js";

export interface STimeOutput {
  /** "N connections in …" */
  connections: number;
  /** Progress marks: 'r' for a resumed session, '*' (TLS ≥ 1.1) / 't' (TLS 1.0) / '3' for a new one. */
  resumed: number;
  full: number;
}

/** Parses one s_time run's stdout; undefined when it has no connection count. */
export function parseSTime(stdout: string): STimeOutput | undefined {
  const n = /^(\d+) connections in [\d.]+s;/m.exec(stdout);
  if (!n) return undefined;
  const marks = /^[*rt3]+$/m.exec(stdout)?.[0] ?? "";
  let resumed = 0;
  for (const c of marks) if (c === "r") resumed++;
  return { connections: Number(n[1]), resumed, full: marks.length - resumed };
}

export interface STimeResult extends STimeOutput {
  /** From starting the processes to the last one exiting. */
  seconds: number;
  /** `connections` per second over `seconds`. */
  rate: number;
  /** User + system CPU of the s_time processes. */
  clientCpuMs: number;
}

/**
 * Runs `processes` × `openssl s_time -connect address:port -new -time durationS [-www path]` at
 * once and sums them. Rejects when one fails or prints no count. Meant to run alone in this process
 * (the CPU figure counts every child reaped meanwhile).
 */
export async function runSTime(o: { port: number; address?: string; processes: number; durationS: number; wwwPath?: string }): Promise<STimeResult> {
  const args = ["s_time", "-connect", `${o.address ?? "127.0.0.1"}:${o.port}`, "-new", "-time", String(o.durationS), ...(o.wwwPath ? ["-www", o.wwwPath] : [])];
  const cpu0 = reapedChildrenCpuMs();
  const started = performance.now();
  const outputs = await Promise.all(
    Array.from(
      { length: o.processes },
      () =>
        new Promise<STimeOutput>((resolve, reject) => {
          execFile("openssl", args, { timeout: (o.durationS + 30) * 1000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
            const parsed = parseSTime(stdout);
            if (err || !parsed) reject(new Error(`openssl ${args.join(" ")}: ${err?.message ?? "no connection count"} ${stderr.trim().split("\n").slice(-2).join(" | ")}`));
            else resolve(parsed);
          });
        }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const sum = (k: keyof STimeOutput) => outputs.reduce((a, x) => a + x[k], 0);
  const connections = sum("connections");
  return { connections, resumed: sum("resumed"), full: sum("full"), seconds, rate: connections / seconds, clientCpuMs: reapedChildrenCpuMs() - cpu0 };
}
