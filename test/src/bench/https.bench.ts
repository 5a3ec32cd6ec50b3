/**
 * HTTPS at the ingress benchmark (issue 15, must show 6), measured with Debian's wrk 4.1 through the
 * agent's HAProxy, HTTPS and plain HTTP in the same run against the same deployed keep-alive Node app:
 *   - handshakes/s: every request carries `Connection: close`, so wrk opens a new connection per
 *     request — over HTTPS a TLS handshake each time; compared with the same over plain HTTP. wrk
 *     resumes its TLS 1.3 session on every new connection (PSK with a fresh X25519 exchange, no
 *     certificate signature): HAProxy's session reuse share is read mid-run and reported;
 *   - keep-alive requests/s: HTTPS against HTTP, connections kept open.
 * The certificate is issued by pebble (a real ACME CA, through the control plane's scheduler, as in
 * production) for a custom domain; wrk connects to 127.0.0.1 (a Lua `wrk.resolve`) with the domain
 * as the SNI and the Host header. The wrk runs take 4 variants × ROUNDS × RUN_S seconds (48 s).
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startPebble, type Pebble } from "@slipway/control-plane/testing/pebble";
import { Platform } from "../support/platform.js";
import { TestRepo } from "../support/git-repo.js";
import { keepAliveAppFiles } from "../support/keepalive-app.js";
import { releasePort, reservePort } from "../support/ports.js";
import { waitFor } from "../support/processes.js";
import { haproxyCommand } from "../support/haproxy-admin.js";
import { runWrk, type WrkResult } from "../support/wrk.js";
import { fixed, mdTable, textTable } from "./stats.js";

const DOMAIN = "bench.example.test";
const CONNECTIONS = 12;
const THREADS = 2;
const RUN_S = 6;
const ROUNDS = 2;
const RUNTIME_LIMIT_MS = 300_000;

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
  /** For the HTTPS runs: HAProxy's `show info` read in the middle of each run. */
  tls: { reusePct: number; sslRate: number; keyRate: number }[];
}

/** SslFrontendSessionReuse_pct, SslRate and SslFrontendKeyRate (new TLS sessions/s, full handshakes/s) from `show info`. */
async function tlsInfo(socket: string): Promise<{ reusePct: number; sslRate: number; keyRate: number } | undefined> {
  const info = await haproxyCommand(socket, "show info").catch(() => "");
  const num = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, "m").exec(info)?.[1] ?? NaN);
  const r = { reusePct: num("SslFrontendSessionReuse_pct"), sslRate: num("SslRate"), keyRate: num("SslFrontendKeyRate") };
  return Number.isFinite(r.reusePct) ? r : undefined;
}

async function measure(platform: Platform, pebble: Pebble, httpPort: number, httpsPort: number): Promise<{ totals: Map<Variant, Totals>; handshake: string }> {
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

  const totals = new Map<Variant, Totals>(VARIANTS.map((v) => [v, { requests: 0, seconds: 0, failed: 0, status: 0, p99: [], tls: [] }]));
  const adminSocket = path.join(agent.stateDir, "haproxy", "admin.sock");
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order so the machine's other load falls on every variant alike.
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
    for (const v of order) {
      const tls = v.startsWith("https");
      const sample = tls ? new Promise<void>((r) => setTimeout(r, (RUN_S * 1000) / 2)).then(() => tlsInfo(adminSocket)) : Promise.resolve(undefined);
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
      const info = await sample;
      if (info) t.tls.push(info);
      progress(`round ${round + 1}/${ROUNDS} ${v}: ${fixed(r.rps, 0)} req/s, ${r.failed} failed, ${r.errors.status} non-2xx/3xx, p99 ${fixed(r.latencyMs.p99, 2)} ms${info ? `; HAProxy mid-run: ${info.sslRate} TLS sessions/s, ${info.keyRate} full handshakes/s, session reuse ${info.reusePct} %` : ""}`);
    }
  }
  progress(`TLS: ${handshake}`);
  return { totals, handshake };
}

function report({ totals, handshake }: { totals: Map<Variant, Totals>; handshake: string }, date: string): HttpsBenchResult {
  const rps = (v: Variant) => {
    const t = totals.get(v)!;
    return t.requests / t.seconds;
  };
  const header = ["variant (wrk, 12 connections, 2 threads)", "req/s", "requests", "failed", "non-2xx/3xx", "p99 ms per run"];
  const rows = VARIANTS.map((v) => {
    const t = totals.get(v)!;
    return [v, fixed(rps(v), 0), String(t.requests), String(t.failed), String(t.status), t.p99.map((x) => fixed(x, 2)).join(", ")];
  });
  const ratioHeader = ["measure", "HTTPS", "HTTP", "HTTPS ÷ HTTP"];
  const ratios = [
    ["new connection per request (`Connection: close`): TLS handshakes/s (resumed, see above) vs TCP connections/s", fixed(rps("https close"), 0), fixed(rps("http close"), 0), fixed(rps("https close") / rps("http close"), 2)],
    ["keep-alive requests/s", fixed(rps("https keep-alive"), 0), fixed(rps("http keep-alive"), 0), fixed(rps("https keep-alive") / rps("http keep-alive"), 2)],
  ];
  const reuse = totals.get("https close")!.tls;
  const reuseLine = `TLS session reuse on the new-connection HTTPS runs (HAProxy \`show info\` mid-run): ${reuse.map((x) => `${x.reusePct} % (${x.sslRate} sessions/s, ${x.keyRate} full handshakes/s)`).join("; ") || "not read"} — wrk resumes its TLS 1.3 session on each new connection (a fresh X25519 exchange, no certificate signature), as a returning browser does; it cannot be made to do full handshakes.`;
  const cpu = os.cpus();
  const text = ["", "=== HTTPS at the ingress ===", `TLS (openssl s_client, verified against pebble's root): ${handshake}`, reuseLine, textTable(ratioHeader, ratios), "", textTable(header, rows)].join("\n");
  const markdown = [
    `Run on ${date} with \`SLIPWAY_BENCH_ONLY=https npm run bench\` (Node ${process.version}, ${cpu.length} cores: ${cpu[0]?.model ?? "unknown CPU"}); ${ROUNDS} rounds × 4 variants × ${RUN_S} s, order rotated per round; figures are totals over the rounds. wrk, HAProxy and the app share the machine's cores.`,
    `TLS as served for \`${DOMAIN}\` (openssl s_client, verified against pebble's root): ${handshake}.`,
    reuseLine,
    "",
    mdTable(ratioHeader, ratios),
    "",
    mdTable(header, rows),
    "",
  ].join("\n");
  return { text, markdown };
}

/** Runs the HTTPS benchmark: pebble, a platform with one agent serving HTTPS, wrk; everything stopped afterwards, also on failure. */
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
