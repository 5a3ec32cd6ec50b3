import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** What one wrk run reports (through the Lua `done` hook, so nothing is parsed from its human-readable output). */
export interface WrkResult {
  /** Completed responses (wrk's "N requests in …"). */
  requests: number;
  /** Wall time of the run in seconds, as wrk measured it. */
  seconds: number;
  rps: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** Latency percentiles in ms (wrk records microseconds: from writing a request to its complete response). */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** Responses that were not 2xx/3xx are in errors.status; connect/read/write/timeout errors are failed requests. */
  failed: number;
}

export interface WrkOptions {
  url: string;
  /** Host header (the ingress routes on it). */
  host: string;
  connections: number;
  threads: number;
  durationS: number;
  /**
   * When set, every connection waits this long after each response before its
   * next request (wrk's `delay()` hook; the wait is not part of the latency):
   * a moderate, roughly fixed rate of connections × 1000 / (pause + latency)
   * per second instead of as fast as possible. Debian's wrk 4.1 has no
   * wrk2-style `-R`.
   */
  pauseMs?: number;
  /**
   * When set, wrk runs pinned to these CPUs (`taskset -c`, e.g. "1" or "0,2-3"): a load
   * generator on the server under test stands for a client on another machine, so a test that
   * measures a neighbour's latency keeps it off the cores it loads on purpose.
   */
  cpus?: string;
  /** Extra request headers (e.g. `Connection: close`: wrk reconnects after every response, so each request is a new connection — over https, a new TLS handshake). */
  headers?: Record<string, string>;
  /**
   * When set, wrk connects to this address (a Lua `wrk.resolve` override) whatever the URL's host
   * name: the URL's name stays the SNI and the default Host, so test names that do not resolve work.
   */
  connectTo?: string;
}

const DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.3f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
`;

/** Runs wrk once (bounded: its own duration plus 30 s) and returns its figures; throws when wrk fails or prints no result. */
export async function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-wrk-"));
  try {
    const script = path.join(dir, "bench.lua");
    const pause = opts.pauseMs !== undefined ? `\ndelay = function() return ${Math.round(opts.pauseMs)} end\n` : "";
    const headers = Object.entries(opts.headers ?? {})
      .map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}\n`)
      .join("");
    const resolve =
      opts.connectTo !== undefined
        ? `wrk.resolve = function(host, service)\n  wrk.addrs = wrk.lookup(${JSON.stringify(opts.connectTo)}, service)\nend\n`
        : "";
    writeFileSync(script, `wrk.headers["Host"] = "${opts.host}"\n${headers}${resolve}${pause}${DONE}`);
    const args = ["-t", String(opts.threads), "-c", String(opts.connections), "-d", `${opts.durationS}s`, "--timeout", "5s", "-s", script, opts.url];
    const stdout = await new Promise<string>((resolve, reject) => {
      const [file, argv] = opts.cpus !== undefined ? ["taskset", ["-c", opts.cpus, "wrk", ...args]] : ["wrk", args];
      execFile(file, argv, { timeout: (opts.durationS + 30) * 1000, encoding: "utf8" }, (err, out, errOut) => {
        if (err) reject(new Error(`wrk ${args.join(" ")} failed: ${err.message} ${errOut}`));
        else resolve(out);
      });
    });
    const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
    if (!line) throw new Error(`wrk printed no result: ${stdout.slice(0, 500)}`);
    const j = JSON.parse(line.slice("WRK_JSON ".length)) as {
      requests: number;
      duration_us: number;
      errors: WrkResult["errors"];
      latency_us: Record<keyof WrkResult["latencyMs"], number>;
    };
    const seconds = j.duration_us / 1e6;
    const ms = (us: number) => us / 1000;
    const L = j.latency_us;
    return {
      requests: j.requests,
      seconds,
      rps: j.requests / seconds,
      errors: j.errors,
      latencyMs: { p50: ms(L.p50), p90: ms(L.p90), p99: ms(L.p99), p999: ms(L.p999), max: ms(L.max), mean: ms(L.mean) },
      failed: j.errors.connect + j.errors.read + j.errors.write + j.errors.timeout,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
