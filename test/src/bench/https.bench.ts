/**
 * HTTPS at the ingress benchmark (issue 15, must show 6), through the agent's HAProxy, HTTPS and
 * plain HTTP in the same run against the same deployed keep-alive Node app:
 *   - resumed handshakes/s (Debian's wrk 4.1): every request carries `Connection: close`, so wrk opens
 *     a new connection per request — over HTTPS a TLS handshake each time; compared with the same
 *     over plain HTTP. wrk resumes its TLS 1.3 session on every new connection (PSK with a fresh
 *     X25519 exchange, no certificate signature): HAProxy's session reuse share is read mid-run;
 *   - full handshakes/s (tls-handshake-load.ts, a Node client that never resumes): a new connection
 *     and a new TLS session per request against the same over plain TCP, HAProxy's reuse share and
 *     its worker's CPU (/proc) read for each run; `openssl s_time -new` as a cross-check;
 *   - keep-alive requests/s (wrk): HTTPS against HTTP, connections kept open.
 * The certificate is issued by pebble (a real ACME CA, through the control plane's scheduler, as in
 * production) for a custom domain; wrk connects to 127.0.0.1 (a Lua `wrk.resolve`) with the domain
 * as the SNI and the Host header. The wrk runs take 4 variants × ROUNDS × RUN_S seconds (48 s), the
 * full-handshake runs 3 × HS_ROUNDS × HS_RUN_S (36 s).
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startPebble, type Pebble } from "@slipway/control-plane/testing/pebble";
import { Platform } from "../support/platform.js";
import { TestRepo } from "../support/git-repo.js";
import { keepAliveAppFiles } from "../support/keepalive-app.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "../support/processes.js";
import { haproxyCommand } from "../support/haproxy-admin.js";
import { runWrk, type WrkResult } from "../support/wrk.js";
import { fixed, mdTable, textTable } from "./stats.js";
import { runConnectionLoad } from "./tls-handshake-load.js";
import { runSTime } from "./s-time.js";
import { processCpuMs } from "./proc-cpu.js";

const DOMAIN = "bench.example.test";
const CONNECTIONS = 12;
const THREADS = 2;
const RUN_S = 6;
const ROUNDS = 2;
const RUNTIME_LIMIT_MS = 300_000;

/**
 * The full-handshake phase, after the wrk rounds: a new connection per request with a new TLS session
 * each (tls-handshake-load.ts, CONNECTIONS in flight), the same over plain TCP as the baseline, and
 * `openssl s_time -new` (CONNECTIONS processes) as an independent cross-check; 3 × HS_ROUNDS × HS_RUN_S s.
 */
const HS_VARIANTS = ["http new connection", "https full handshake", "https s_time -new"] as const;
type HsVariant = (typeof HS_VARIANTS)[number];
const HS_RUN_S = 6;
const HS_ROUNDS = 2;

type Variant = "http close" | "https close" | "http keep-alive" | "https keep-alive";
const VARIANTS: Variant[] = ["http close", "https close", "http keep-alive", "https keep-alive"];

const t0 = performance.now();
const progress = (msg: string) => process.stderr.write(`https bench [${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

export interface HttpsBenchResult {
  text: string;
  markdown: string;
}

/**
 * `openssl s_client -brief` to the HTTPS port with the domain as SNI, verifying against pebble's root:
 * the protocol, cipher suite and certificate lines when it verifies, undefined otherwise.
 */
function handshakeInfo(port: number, servername: string, caFile: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = execFile("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", servername, "-verify_return_error", "-verify_hostname", servername, "-CAfile", caFile, "-brief"], { timeout: 10_000 }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`;
      if (err || !/Verification: OK/.test(out)) return resolve(undefined);
      const keep = out.split("\n").filter((l) => /^(Protocol version|Ciphersuite|Peer certificate|Server Temp Key|Peer signature type):/.test(l.trim()));
      resolve(keep.map((l) => l.trim()).join("; "));
    });
    child.stdin?.end("");
  });
}

interface Totals {
  requests: number;
  seconds: number;
  failed: number;
  status: number;
  p99: number[];
  /** HAProxy's worker CPU over the runs, from /proc (NaN when it could not be read). */
  haproxyCpuMs: number;
  /** For the HTTPS runs: HAProxy's `show info` read in the middle of each run. */
  tls: TlsInfo[];
}

interface TlsInfo {
  reusePct: number;
  sslRate: number;
  keyRate: number;
  /** The worker's process id and its idle share over the last second. */
  pid: number;
  idlePct: number;
}

/** SslFrontendSessionReuse_pct, SslRate and SslFrontendKeyRate (new TLS sessions/s, full handshakes/s), Pid and Idle_pct from `show info`. */
async function tlsInfo(socket: string): Promise<TlsInfo | undefined> {
  const info = await haproxyCommand(socket, "show info").catch(() => "");
  const num = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, "m").exec(info)?.[1] ?? NaN);
  const r = { reusePct: num("SslFrontendSessionReuse_pct"), sslRate: num("SslRate"), keyRate: num("SslFrontendKeyRate"), pid: num("Pid"), idlePct: num("Idle_pct") };
  return Number.isFinite(r.reusePct) ? r : undefined;
}

/** `tlsInfo` halfway through a run of `runMs`. */
const midRun = (socket: string, runMs: number) => new Promise<void>((r) => setTimeout(r, runMs / 2)).then(() => tlsInfo(socket));

/** A reader of HAProxy's worker CPU so far in ms (its pid from `show info`; undefined when unreadable), to take around each run. */
async function haproxyCpuReader(socket: string): Promise<() => number | undefined> {
  const pid = (await tlsInfo(socket))?.pid;
  return () => (pid === undefined ? undefined : processCpuMs(pid));
}

/** CPU spent between two readings; NaN when either is missing. */
const spent = (before: number | undefined, after: number | undefined) => (before !== undefined && after !== undefined ? after - before : NaN);

interface HsTotals {
  /** Connections with a complete 2xx/3xx answer (s_time: connections made; it does not read statuses). */
  ok: number;
  failed: number;
  non2xx3xx: number;
  seconds: number;
  clientCpuMs: number;
  /** HAProxy's worker CPU over the runs, from /proc (NaN when it could not be read). */
  haproxyCpuMs: number;
  p99: number[];
  /** Handshakes the client saw resumed (Node: isSessionReused(); s_time: its 'r' marks). */
  resumed: number;
  tls: TlsInfo[];
  serials: Set<string>;
  negotiated?: string;
  firstError?: string;
}

/** Interleaved rounds of the full-handshake phase (see HS_VARIANTS); failures are counted, never thrown. */
async function measureFullHandshakes(adminSocket: string, httpPort: number, httpsPort: number, ca: string): Promise<Map<HsVariant, HsTotals>> {
  const totals = new Map<HsVariant, HsTotals>(HS_VARIANTS.map((v) => [v, { ok: 0, failed: 0, non2xx3xx: 0, seconds: 0, clientCpuMs: 0, haproxyCpuMs: 0, p99: [], resumed: 0, tls: [], serials: new Set() }]));
  const haproxyCpu = await haproxyCpuReader(adminSocket);
  progress(`full-handshake phase; machine load average (1, 5 min) ${os.loadavg().slice(0, 2).map((x) => x.toFixed(2)).join(", ")}`);
  for (let round = 0; round < HS_ROUNDS; round++) {
    const order = HS_VARIANTS.map((_, i) => HS_VARIANTS[(i + round) % HS_VARIANTS.length]);
    for (const v of order) {
      const t = totals.get(v)!;
      const sample = v === "http new connection" ? Promise.resolve(undefined) : midRun(adminSocket, HS_RUN_S * 1000);
      const cpu0 = haproxyCpu();
      let line: string;
      let counted = true;
      if (v === "https s_time -new") {
        const r = await runSTime({ port: httpsPort, processes: CONNECTIONS, durationS: HS_RUN_S, wwwPath: "/" }).catch((e: unknown) => e as Error);
        if (r instanceof Error) {
          t.failed++;
          t.firstError ??= r.message;
          line = `failed: ${r.message}`;
          counted = false; // no connection count to divide HAProxy's CPU by
        } else {
          t.ok += r.connections;
          t.seconds += r.seconds;
          t.clientCpuMs += r.clientCpuMs;
          t.resumed += r.resumed;
          line = `${fixed(r.rate, 0)} connections/s (${r.full} new sessions, ${r.resumed} resumed), s_time CPU ${fixed(r.clientCpuMs / 1000 / r.seconds, 2)} cores`;
        }
      } else {
        const tls = v === "https full handshake";
        const r = await runConnectionLoad({ port: tls ? httpsPort : httpPort, host: DOMAIN, tls: tls ? { ca } : undefined, concurrency: CONNECTIONS, durationMs: HS_RUN_S * 1000 });
        t.ok += r.ok;
        t.failed += r.failed;
        t.non2xx3xx += r.non2xx3xx;
        t.seconds += r.seconds;
        t.clientCpuMs += r.clientCpuMs;
        t.resumed += r.resumed;
        t.p99.push(r.latencyMs.p99);
        r.serials.forEach((x) => t.serials.add(x));
        t.negotiated ??= r.negotiated;
        t.firstError ??= r.firstError;
        line = `${fixed(r.rate, 0)} connections/s, ${r.failed} failed${r.firstError ? ` (${r.firstError})` : ""}, ${r.non2xx3xx} non-2xx/3xx, p99 ${fixed(r.latencyMs.p99, 2)} ms, client CPU ${fixed(r.clientCpuMs / 1000 / r.seconds, 2)} cores${tls ? `, ${r.resumed} resumed` : ""}`;
      }
      const cpu1 = haproxyCpu();
      if (counted) t.haproxyCpuMs += spent(cpu0, cpu1);
      const info = await sample;
      if (info) t.tls.push(info);
      progress(`full-handshake round ${round + 1}/${HS_ROUNDS} ${v}: ${line}; HAProxy CPU ${fixed(spent(cpu0, cpu1), 0)} ms${info ? `; HAProxy mid-run: ${info.sslRate} TLS sessions/s, ${info.keyRate} full handshakes/s, session reuse ${info.reusePct} %, idle ${info.idlePct} %` : ""}`);
    }
  }
  return totals;
}

interface Measured {
  totals: Map<Variant, Totals>;
  full: Map<HsVariant, HsTotals>;
  handshake: string;
  /** os.loadavg() before anything started: what else the machine was doing. */
  loadBefore: number[];
}

async function measure(platform: Platform, pebble: Pebble, httpPort: number, httpsPort: number): Promise<Measured> {
  const loadBefore = os.loadavg();
  progress("starting nats-server, PostgreSQL database, control plane, an agent with an HTTPS port");
  await platform.start();
  const agent = await platform.addAgent({ SLIPWAY_INGRESS_HTTP_PORT: String(httpPort), SLIPWAY_INGRESS_HTTPS_PORT: String(httpsPort) });
  const api = platform.api;
  const repo = new TestRepo();
  repo.commit(keepAliveAppFiles, "keep-alive app");
  await api.call("POST", "/v1/apps", { name: "tlsbench", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 30 } } });
  progress("deploying a keep-alive Node app");
  const d = await api.deploy("tlsbench", "test");
  if (d.state !== "succeeded") throw new Error(`deployment ${d.id} ${d.state}: ${await api.log(d.id)}`);
  await api.call("POST", "/v1/apps/tlsbench/environments/test/domains", { hostname: DOMAIN });
  progress(`${DOMAIN} added; waiting for pebble's certificate to be served`);
  const rootFile = path.join(pebble.dir, "issuing-root.pem");
  writeFileSync(rootFile, pebble.rootPem);
  let handshake = "";
  await waitFor(`${DOMAIN} served with a valid certificate`, async () => {
    const { domains } = await api.call("GET", "/v1/apps/tlsbench/environments/test/domains");
    if (domains[0]?.certificate?.state !== "valid") return false;
    // The certificate served for the domain's SNI verifies against pebble's root (wrk sends the same SNI).
    handshake = (await handshakeInfo(httpsPort, DOMAIN, rootFile)) ?? "";
    if (!handshake) return false;
    const probe = await runWrk({ url: `https://${DOMAIN}:${httpsPort}/`, host: DOMAIN, connectTo: "127.0.0.1", connections: 1, threads: 1, durationS: 1 }).catch(() => undefined);
    return probe !== undefined && probe.requests > 0 && probe.failed === 0 && probe.errors.status === 0;
  }, { timeoutMs: 60_000, intervalMs: 500 });

  const totals = new Map<Variant, Totals>(VARIANTS.map((v) => [v, { requests: 0, seconds: 0, failed: 0, status: 0, p99: [], haproxyCpuMs: 0, tls: [] }]));
  const adminSocket = path.join(agent.stateDir, "haproxy", "admin.sock");
  const haproxyCpu = await haproxyCpuReader(adminSocket);
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order so the machine's other load falls on every variant alike.
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
    for (const v of order) {
      const tls = v.startsWith("https");
      const sample = tls ? midRun(adminSocket, RUN_S * 1000) : Promise.resolve(undefined);
      const cpu0 = haproxyCpu();
      const r: WrkResult = await runWrk({
        url: tls ? `https://${DOMAIN}:${httpsPort}/` : `http://${DOMAIN}:${httpPort}/`,
        host: DOMAIN,
        connectTo: "127.0.0.1",
        headers: v.endsWith("close") ? { Connection: "close" } : undefined,
        connections: CONNECTIONS,
        threads: THREADS,
        durationS: RUN_S,
      });
      const t = totals.get(v)!;
      t.requests += r.requests;
      t.seconds += r.seconds;
      t.failed += r.failed;
      t.status += r.errors.status;
      t.p99.push(r.latencyMs.p99);
      t.haproxyCpuMs += spent(cpu0, haproxyCpu());
      const info = await sample;
      if (info) t.tls.push(info);
      progress(`round ${round + 1}/${ROUNDS} ${v}: ${fixed(r.rps, 0)} req/s, ${r.failed} failed, ${r.errors.status} non-2xx/3xx, p99 ${fixed(r.latencyMs.p99, 2)} ms${info ? `; HAProxy mid-run: ${info.sslRate} TLS sessions/s, ${info.keyRate} full handshakes/s, session reuse ${info.reusePct} %` : ""}`);
    }
  }
  const full = await measureFullHandshakes(adminSocket, httpPort, httpsPort, pebble.rootPem);
  progress(`TLS: ${handshake}`);
  return { totals, full, handshake, loadBefore };
}

/** The full-handshake phase as ratio rows (beside the wrk ones), a per-variant table and the lines that say how to read it. */
function fullHandshakeReport(full: Map<HsVariant, HsTotals>): { ratios: string[][]; header: string[]; rows: string[][]; lines: string[] } {
  const get = (v: HsVariant) => full.get(v)!;
  const rate = (v: HsVariant) => get(v).ok / get(v).seconds;
  const cores = (ms: number, v: HsVariant) => ms / 1000 / get(v).seconds;
  const perConn = (v: HsVariant) => get(v).haproxyCpuMs / get(v).ok;
  const https = "https full handshake";
  const http = "http new connection";
  const ratios = [
    [`new connection per request, a FULL TLS handshake each (Node tls client, no session resumption, ${CONNECTIONS} in flight): handshakes/s vs TCP connections/s`, fixed(rate(https), 0), fixed(rate(http), 0), fixed(rate(https) / rate(http), 2)],
    ["  HAProxy CPU per new connection, ms (from /proc: the server's own cost, whatever the client costs)", fixed(perConn(https), 3), fixed(perConn(http), 3), fixed(perConn(https) / perConn(http), 2)],
    [`  cross-check: openssl s_time -new, ${CONNECTIONS} processes (default certificate, no SNI; HAProxy's own 404), connections/s`, fixed(rate("https s_time -new"), 0), fixed(rate(http), 0), fixed(rate("https s_time -new") / rate(http), 2)],
  ];
  const header = ["variant (new connection per request)", "connections/s", "connections", "failed", "non-2xx/3xx", "client-side resumed", "p99 ms per run", "client CPU, cores", "HAProxy CPU, cores", "HAProxy CPU ms per connection", "HAProxy mid-run: TLS sessions/s, full handshakes/s, reuse %, idle %"];
  const rows = HS_VARIANTS.map((v) => {
    const t = get(v);
    return [
      v,
      fixed(rate(v), 0),
      String(t.ok),
      String(t.failed),
      v === "https s_time -new" ? "n/a" : String(t.non2xx3xx),
      v === http ? "n/a" : String(t.resumed),
      t.p99.map((x) => fixed(x, 2)).join(", ") || "n/a",
      fixed(cores(t.clientCpuMs, v), 2),
      fixed(cores(t.haproxyCpuMs, v), 2),
      fixed(perConn(v), 3),
      t.tls.map((x) => `${x.sslRate}, ${x.keyRate}, ${x.reusePct} %, ${x.idlePct} %`).join("; ") || "n/a",
    ];
  });
  const tls = get(https);
  const lines = [
    `Full handshakes: ${HS_ROUNDS} rounds × ${HS_VARIANTS.length} variants × ${HS_RUN_S} s, order rotated. The Node client (test/src/bench/tls-handshake-load.ts) passes no session, verifies the chain against pebble's root and the name \`${DOMAIN}\` on every connection (served serial${tls.serials.size === 1 ? "" : "s"}: ${[...tls.serials].join(", ") || "none read"}; ${tls.negotiated ?? "not negotiated"}), then sends \`GET /\` with \`Connection: close\` and reads the whole answer.`,
    `Client and server share this machine's ${os.cpus().length} cores: the client's own CPU is in the table (the Node client is one event loop, so ~1 core is its ceiling); HAProxy's CPU per connection is the server-side cost independent of it.`,
    ...[...full].filter(([, t]) => t.firstError).map(([v, t]) => `First failure (${v}): ${t.firstError}`),
  ];
  return { ratios, header, rows, lines };
}

function report({ totals, full, handshake, loadBefore }: Measured, date: string): HttpsBenchResult {
  const rps = (v: Variant) => {
    const t = totals.get(v)!;
    return t.requests / t.seconds;
  };
  const header = ["variant (wrk, 12 connections, 2 threads)", "req/s", "requests", "failed", "non-2xx/3xx", "p99 ms per run", "HAProxy CPU ms per request"];
  const rows = VARIANTS.map((v) => {
    const t = totals.get(v)!;
    return [v, fixed(rps(v), 0), String(t.requests), String(t.failed), String(t.status), t.p99.map((x) => fixed(x, 2)).join(", "), fixed(t.haproxyCpuMs / t.requests, 3)];
  });
  const hs = fullHandshakeReport(full);
  const ratioHeader = ["measure", "HTTPS", "HTTP", "HTTPS ÷ HTTP"];
  const ratios = [
    ["new connection per request (wrk, `Connection: close`): RESUMED TLS handshakes/s vs TCP connections/s", fixed(rps("https close"), 0), fixed(rps("http close"), 0), fixed(rps("https close") / rps("http close"), 2)],
    ...hs.ratios,
    ["keep-alive requests/s (wrk)", fixed(rps("https keep-alive"), 0), fixed(rps("http keep-alive"), 0), fixed(rps("https keep-alive") / rps("http keep-alive"), 2)],
  ];
  const reuse = totals.get("https close")!.tls;
  const reuseLine = `TLS session reuse on wrk's new-connection HTTPS runs (HAProxy \`show info\` mid-run): ${reuse.map((x) => `${x.reusePct} % (${x.sslRate} sessions/s, ${x.keyRate} full handshakes/s)`).join("; ") || "not read"} — wrk resumes its TLS 1.3 session on each new connection (a fresh X25519 exchange, no certificate signature), as a returning browser does; full handshakes are the Node client's and s_time's rows.`;
  const cpu = os.cpus();
  const text = ["", "=== HTTPS at the ingress ===", `TLS (openssl s_client, verified against pebble's root): ${handshake}`, reuseLine, ...hs.lines, textTable(ratioHeader, ratios), "", textTable(header, rows), "", textTable(hs.header, hs.rows)].join("\n");
  const markdown = [
    `Run on ${date} with \`SLIPWAY_BENCH_ONLY=https npm run bench\` (Node ${process.version}, ${cpu.length} cores: ${cpu[0]?.model ?? "unknown CPU"}); wrk: ${ROUNDS} rounds × 4 variants × ${RUN_S} s, order rotated per round; figures are totals over the rounds. The load clients, HAProxy and the app share the machine's cores; its load average (1, 5, 15 min) before the bench started: ${loadBefore.map((x) => x.toFixed(2)).join(", ")}.`,
    `TLS as served for \`${DOMAIN}\` (openssl s_client, verified against pebble's root): ${handshake}.`,
    reuseLine,
    ...hs.lines,
    "",
    mdTable(ratioHeader, ratios),
    "",
    mdTable(header, rows),
    "",
    mdTable(hs.header, hs.rows),
    "",
  ].join("\n");
  return { text, markdown };
}

/** Runs the HTTPS benchmark: pebble, a platform with one agent serving HTTPS, wrk and the full-handshake clients; everything stopped afterwards, also on failure. */
export async function runHttpsBench(): Promise<HttpsBenchResult> {
  const httpPort = await reservePort();
  const httpsPort = await reservePort();
  let pebble: Pebble | undefined;
  let platform: Platform | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    pebble = await startPebble({ httpPort });
    const listenerCa = path.join(pebble.dir, "listener-ca.pem");
    writeFileSync(listenerCa, pebble.listenerCaPem);
    platform = new Platform({
      database: "postgres",
      cpEnv: {
        SLIPWAY_ACME_DIRECTORY: pebble.directoryUrl,
        NODE_EXTRA_CA_CERTS: listenerCa,
        SLIPWAY_ACME_CHALLENGE_PORT: String(httpPort),
        SLIPWAY_ACME_CHALLENGE_ADDRESS: "127.0.0.1",
        SLIPWAY_ACME_INTERVAL_MS: "500",
        SLIPWAY_ACME_RETRY_SECONDS: "2",
      },
    });
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`https bench: runtime limit of ${RUNTIME_LIMIT_MS / 1000} s reached`)), RUNTIME_LIMIT_MS);
    });
    const measured = await Promise.race([measure(platform, pebble, httpPort, httpsPort), limit]);
    return report(measured, new Date().toISOString());
  } finally {
    clearTimeout(timer);
    progress("cleaning up: platform, pebble");
    await platform?.stop().catch((e: unknown) => progress(`warning: platform stop: ${(e as Error).message}`));
    await pebble?.stop().catch((e: unknown) => progress(`warning: pebble stop: ${(e as Error).message}`));
    releasePort(httpPort);
    releasePort(httpsPort);
  }
}
