/**
 * Pure rendering of the HAProxy configuration and host map owned by the
 * agent. Nothing here touches the file system or a process: the adapter
 * (haproxy.ingress.ts) decides when to write and reload.
 */
import net from "node:net";
import path from "node:path";
import { StepFailure } from "@slipway/core";
import { TRAFFIC_LOG_FORMAT } from "../metrics/traffic-log.js";
import { KEEP_ALL } from "../metrics/log-sampler.js";
import type { BackendConfig, BackendTarget } from "./ingress.js";

/** Name of the backend that answers requests for unknown host names. */
export const DEFAULT_BACKEND = "slipway_no_environment";
/** Body of the 404 for unknown host names. */
export const NO_ENVIRONMENT_BODY = "no environment is served at this host name";

/** Files and sockets of one ingress, all inside its state directory. */
export interface HaproxyPaths {
  dir: string;
  config: string;
  hostsMap: string;
  /**
   * Host names whose HTTP requests are redirected to HTTPS (308), each with its HSTS max-age in
   * seconds (0 = no Strict-Transport-Security): `<host> <max-age>` per line (issue 15).
   */
  httpsMap: string;
  /** Per backend, how many requests in 1,000 are logged (the latency sample); absent = all. */
  sampleMap: string;
  adminSocket: string;
  masterSocket: string;
  pidFile: string;
  serverStateFile: string;
  logFile: string;
  stateJson: string;
  /** Certificates served on the HTTPS bind, one `<name>.pem` (chain + key, 0600) each. */
  certsDir: string;
  /** The crt-list of the HTTPS bind; its first line is the default certificate. */
  crtList: string;
  /** The agent's self-signed certificate, served for no or unknown SNI. */
  defaultCert: string;
}

/** The longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 107;
/** Paths are written unquoted into the config and into a sample expression, so they must stay plain. */
const SAFE_PATH = /^\/[A-Za-z0-9._\/-]*$/;

/** Derives every path from the state directory; throws when the directory cannot be used safely. */
export function haproxyPaths(dir: string): HaproxyPaths {
  const abs = path.resolve(dir);
  if (!SAFE_PATH.test(abs)) {
    throw new Error(`HAProxy state dir '${abs}' may only contain A-Z a-z 0-9 . _ / - (it is embedded in the config unquoted)`);
  }
  const p: HaproxyPaths = {
    dir: abs,
    config: path.join(abs, "haproxy.cfg"),
    hostsMap: path.join(abs, "hosts.map"),
    httpsMap: path.join(abs, "https.map"),
    sampleMap: path.join(abs, "log-sample.map"),
    adminSocket: path.join(abs, "admin.sock"),
    masterSocket: path.join(abs, "master.sock"),
    pidFile: path.join(abs, "haproxy.pid"),
    serverStateFile: path.join(abs, "server-state"),
    logFile: path.join(abs, "haproxy.log"),
    stateJson: path.join(abs, "ingress-state.json"),
    certsDir: path.join(abs, "certs"),
    crtList: path.join(abs, "crt-list.txt"),
    // '_' cannot start a host name, so no installed certificate can take this name.
    defaultCert: path.join(abs, "certs", "_default.pem"),
  };
  for (const sock of [p.adminSocket, p.masterSocket]) {
    if (Buffer.byteLength(sock) > MAX_SOCKET_PATH) throw new Error(`HAProxy socket path '${sock}' is too long for a unix socket`);
  }
  return p;
}

/**
 * Basic auth of a backend, checked by digest so no password reaches the
 * agent: `digest` is the hex sha256 of the whole Authorization header value,
 * i.e. sha256("Basic " + base64(username + ":" + password)). `username` is
 * kept for display only.
 */
export interface BasicAuthSpec {
  username: string;
  digest: string;
}

/**
 * One environment backend: `slots` server lines s1…sN, all disabled until the
 * runtime API fills them. The placeholder address is a name with `init-addr
 * last,127.0.0.1`: HAProxy then takes a slot's address after a reload from the
 * server-state file. With a literal IP in the config it restores only the
 * port, and every target not on 127.0.0.1 (a container's network address, a
 * drained environment's new host) would point at 127.0.0.1 after a reload.
 */
export interface BackendSpec {
  name: string;
  slots: number;
  basicAuth?: BasicAuthSpec | null;
  /** The basic auth realm browsers show (default: derived from the name). */
  realm?: string;
}

/** Name of the backup server that takes a backend's requests while none of its slots is up (the environment sleeps or is stopped). */
export const WAKER_SERVER = "waker";
/** Request header naming the backend, so the waker knows which environment a request is for. */
export const BACKEND_HEADER = "X-Slipway-Backend";

/** Everything the config depends on. */
export interface HaproxyConfigSpec {
  paths: HaproxyPaths;
  bindAddress: string;
  httpPort: number;
  backends: BackendSpec[];
  /** Port of the agent's waker on 127.0.0.1, rendered as every backend's backup server; none when unset. */
  wakerPort?: number;
  /**
   * UDP port on 127.0.0.1 that receives the request log (the agent's latency sample: a share of each
   * backend's requests set by the sample map; counts come from HAProxy's counters); no log when unset.
   */
  trafficLogPort?: number;
  /** Upper bound on the life of a previous worker after a reload (default 300). */
  hardStopAfterSeconds?: number;
  /** Port of the HTTPS frontend (`ssl crt-list <paths.crtList>`, same routing as HTTP); no HTTPS when unset. */
  httpsPort?: number;
  /**
   * The ACME account thumbprint: the HTTP frontend then answers `/.well-known/acme-challenge/<token>`
   * with `<token>.<thumbprint>` for every host name (stateless HTTP-01); no such rule when unset.
   */
  acmeThumbprint?: string;
}

const BACKEND_NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const DIGEST = /^[0-9a-fA-F]{64}$/;
/** Realms are written into the config inside quotes: nothing that could end or escape them. */
const REALM = /^[A-Za-z0-9._/-]{1,100}$/;

/** Whether a backend name can be used (lowercase, as environmentSlug gives them, and not reserved). */
export function isValidBackendName(name: string): boolean {
  return BACKEND_NAME.test(name) && name !== DEFAULT_BACKEND;
}

/** Whether a host name can be routed (lowercase DNS name, no port, no wildcard). */
export function isValidHostname(host: string): boolean {
  return HOSTNAME.test(host);
}

/** An ACME account thumbprint: base64url of a sha256 (RFC 7638), 43 characters, written unquoted into an lf-string. */
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

/** Whether an ACME account thumbprint can be rendered into the challenge rule. */
export function isValidAcmeThumbprint(thumbprint: string): boolean {
  return THUMBPRINT.test(thumbprint);
}

/** The path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3). */
export const ACME_CHALLENGE_PREFIX = "/.well-known/acme-challenge/";

/**
 * Stateless HTTP-01: HAProxy itself answers `<token>.<thumbprint>` for every host name, before
 * host routing, so any host behind round-robin DNS answers the CA and the control plane keeps no
 * per-token state on agents. Tokens are base64url (RFC 8555 §8.1), nothing else matches.
 */
function acmeChallengeRule(thumbprint: string | undefined): string[] {
  if (thumbprint === undefined) return [];
  if (!isValidAcmeThumbprint(thumbprint)) throw new Error("invalid ACME account thumbprint (43 base64url characters expected)");
  return [`  http-request return status 200 content-type text/plain lf-string "%[path,field(4,/)].${thumbprint}" if { path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]+$ }`];
}

/**
 * HTTP → HTTPS for the host names in the HTTPS map (those whose environment asks for it and whose
 * certificate this ingress serves; edited at runtime): 308, so the method and body are kept, to
 * the same host name without its port (HTTPS on 443) and the same path and query. After the ACME
 * rule: challenges are answered over HTTP. Only with an HTTPS port.
 */
function httpsRedirectRule(spec: HaproxyConfigSpec): string[] {
  if (spec.httpsPort === undefined) return [];
  const host = "req.hdr(host),lower,word(1,:)";
  return [`  http-request redirect location https://%[${host}]%[pathq] code 308 if { ${host},map(${spec.paths.httpsMap}) -m found }`];
}

/**
 * The HTTPS frontend: the same host map and backends as HTTP. HTTP/2 is offered by ALPN; the
 * crt-list's first line (the agent's self-signed certificate) answers no or unknown SNI.
 */
function httpsFrontend(spec: HaproxyConfigSpec): string[] {
  if (spec.httpsPort === undefined) return [];
  if (!validPort(spec.httpsPort) || spec.httpsPort === spec.httpPort) throw new Error(`invalid HTTPS port ${spec.httpsPort}`);
  return [
    "frontend https",
    `  bind ${spec.bindAddress}:${spec.httpsPort} ssl crt-list ${spec.paths.crtList} alpn h2,http/1.1`,
    "  http-after-response set-header Connection close if { stopping }",
    "  http-request set-header X-Forwarded-Proto https",
    // HSTS for the host names the HTTPS map gives a max-age (runtime map edits, no reload).
    `  http-request set-var(txn.slw_hsts) req.hdr(host),lower,word(1,:),map_str_int(${spec.paths.httpsMap},0)`,
    '  http-after-response set-header Strict-Transport-Security "max-age=%[var(txn.slw_hsts)]" if { var(txn.slw_hsts) -m int gt 0 }',
    `  use_backend %[req.hdr(host),lower,word(1,:),map(${spec.paths.hostsMap})]`,
    `  default_backend ${DEFAULT_BACKEND}`,
    "",
  ];
}

/** Whether a basic auth digest is 64 hex digits (sha256). */
export function isValidDigest(digest: string): boolean {
  return DIGEST.test(digest);
}

/** Whether a basic auth realm can be written into the config. */
export function isValidRealm(realm: string): boolean {
  return REALM.test(realm);
}

/** The realm shown by browsers when none is given: `<app>-<env>` from a backend name `<app>--<env>`. */
export function realmOf(backend: string): string {
  return backend.replace("--", "-");
}

/** Slot names are positional so that a server keeps its name (and its saved state) across reloads. */
export function slotName(index: number): string {
  return `s${index}`;
}

/** The slot index of a slot name, or undefined if it is not one. */
export function slotIndex(name: string): number | undefined {
  const m = /^s([1-9][0-9]*)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

function renderBackend(b: BackendSpec, wakerPort: number | undefined, sampling: string[]): string[] {
  if (!isValidBackendName(b.name)) throw new Error(`invalid backend name '${b.name}'`);
  if (!Number.isInteger(b.slots) || b.slots < 1 || b.slots > 1000) throw new Error(`backend '${b.name}' needs 1-1000 server slots, got ${b.slots}`);
  // The sample decision comes first, so that requests the backend answers itself (401) are in it too.
  const lines = [`backend ${b.name}`, "  balance roundrobin", ...sampling, `  http-request set-header ${BACKEND_HEADER} ${b.name}`];
  if (b.basicAuth) {
    if (!isValidDigest(b.basicAuth.digest)) throw new Error(`basic auth digest of '${b.name}' must be 64 hex digits`);
    // req.fhdr, not req.hdr: the whole header value, never split at commas.
    // HAProxy's hex converter prints uppercase.
    const digest = b.basicAuth.digest.toUpperCase();
    const realm = b.realm ?? realmOf(b.name);
    if (!isValidRealm(realm)) throw new Error(`invalid basic auth realm '${realm}' of '${b.name}'`);
    lines.push(`  http-request auth realm "${realm}" unless { req.fhdr(authorization),sha2(256),hex -m str ${digest} }`);
  }
  for (let i = 1; i <= b.slots; i++) lines.push(`  server ${slotName(i)} unassigned.invalid:1 init-addr last,127.0.0.1 disabled`);
  // A backup server gets requests only while no normal server is up: exactly when the environment sleeps or is stopped.
  if (wakerPort !== undefined) lines.push(`  server ${WAKER_SERVER} 127.0.0.1:${wakerPort} backup`);
  lines.push("");
  return lines;
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/**
 * UDP, `format raw` (the bare line, no syslog header): HAProxy never blocks on
 * it, so an agent that is down costs log lines, not requests.
 */
function trafficLogGlobal(port: number | undefined): string[] {
  if (port === undefined) return [];
  if (!validPort(port)) throw new Error(`invalid traffic log port ${port}`);
  return [`  log 127.0.0.1:${port} len 4096 format raw local0 info`];
}

/** dontlognull: connections that never sent a request (port checks, pre-connects) are not requests. */
function trafficLogDefaults(port: number | undefined): string[] {
  if (port === undefined) return [];
  return ["  log global", "  option dontlognull", `  log-format "${TRAFFIC_LOG_FORMAT}"`];
}

/** Requests in 1,000 whose log line is kept when the sample map does not name the backend: all of them. */
export const SAMPLE_ALL = KEEP_ALL;

/**
 * The request log is a latency sample, not a count (counts are HAProxy's own counters): of each
 * backend's requests, a random `keep` in 1,000 are logged, `keep` read from the sample map by
 * backend name (SAMPLE_ALL when absent). Rendered into every environment's backend (HAProxy 2.6
 * has no set-log-level after the response, and the frontend does not know the backend yet);
 * requests that reach no environment are logged and ignored. The agent lowers it for busy backends at runtime
 * (`set map`), so the log costs HAProxy and the agent little at any rate while quiet
 * environments keep every latency.
 */
function trafficLogSampling(port: number | undefined, sampleMap: string): string[] {
  if (port === undefined) return [];
  return [
    `  http-request set-var(txn.slw_keep) be_name,map_str_int(${sampleMap},${SAMPLE_ALL})`,
    "  http-request set-log-level silent if { rand(1000),sub(txn.slw_keep) -m int ge 0 }",
  ];
}

/** The sample map (`<backend> <keep in 1000>` per line, sorted); the no-environment backend is never logged. */
export function renderSampleMap(keep: ReadonlyMap<string, number>): string {
  const lines = ["# Rendered by the Slipway agent: backend -> requests in 1000 whose log line is kept.", `${DEFAULT_BACKEND} 0`];
  for (const backend of [...keep.keys()].sort()) {
    const k = keep.get(backend)!;
    if (!isValidBackendName(backend)) throw new Error(`invalid backend name '${backend}' in the sample map`);
    if (!Number.isInteger(k) || k < 0 || k > SAMPLE_ALL) throw new Error(`invalid sample of ${k} in 1000 for '${backend}'`);
    if (k !== SAMPLE_ALL) lines.push(`${backend} ${k}`);
  }
  return lines.join("\n") + "\n";
}

/** Renders haproxy.cfg. Backends are sorted by name so equal structures render byte-identical text. */
export function renderHaproxyConfig(spec: HaproxyConfigSpec): string {
  const { paths: p } = spec;
  if (!Number.isInteger(spec.httpPort) || spec.httpPort < 1 || spec.httpPort > 65535) throw new Error(`invalid HTTP port ${spec.httpPort}`);
  if (!/^[0-9a-fA-F.:]+$/.test(spec.bindAddress)) throw new Error(`bind address must be an IP address, got '${spec.bindAddress}'`);
  const hardStop = spec.hardStopAfterSeconds ?? 300;
  const backends = [...spec.backends].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const seen = new Set<string>();
  for (const b of backends) {
    if (seen.has(b.name)) throw new Error(`duplicate backend '${b.name}'`);
    seen.add(b.name);
  }
  const sampling = trafficLogSampling(spec.trafficLogPort, p.sampleMap);
  const lines = [
    "# Rendered by the Slipway agent; changes are overwritten.",
    "global",
    "  master-worker",
    `  stats socket ${p.adminSocket} mode 600 level admin expose-fd listeners`,
    "  stats timeout 30s",
    `  server-state-file ${p.serverStateFile}`,
    // HAProxy 2.6 closes idle keep-alive connections of the old worker at once
    // on reload, racing clients that reuse them (ECONNRESET). "infinite" keeps
    // them open; the frontend rule below then closes each one cleanly after
    // its next response. hard-stop-after bounds how long an old worker lives.
    "  close-spread-time infinite",
    `  hard-stop-after ${hardStop}s`,
    ...trafficLogGlobal(spec.trafficLogPort),
    "",
    "defaults",
    "  mode http",
    ...trafficLogDefaults(spec.trafficLogPort),
    "  option forwardfor",
    "  option redispatch",
    "  retries 3",
    "  retry-on conn-failure empty-response response-timeout",
    "  http-reuse safe",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "  timeout http-request 10s",
    "  timeout http-keep-alive 10s",
    "  timeout queue 30s",
    "  timeout tunnel 1h",
    "  timeout client-fin 10s",
    "  load-server-state-from-file global",
    "",
    "frontend http",
    `  bind ${spec.bindAddress}:${spec.httpPort}`,
    "  http-after-response set-header Connection close if { stopping }",
    ...acmeChallengeRule(spec.acmeThumbprint),
    ...httpsRedirectRule(spec),
    `  use_backend %[req.hdr(host),lower,word(1,:),map(${p.hostsMap})]`,
    `  default_backend ${DEFAULT_BACKEND}`,
    "",
    ...httpsFrontend(spec),
    `backend ${DEFAULT_BACKEND}`,
    // Never logged (0 in the sample map): unknown host names are no environment's traffic.
    ...trafficLogSampling(spec.trafficLogPort, p.sampleMap),
    `  http-request return status 404 content-type text/plain string "${NO_ENVIRONMENT_BODY}"`,
    "",
  ];
  if (spec.wakerPort !== undefined && (!Number.isInteger(spec.wakerPort) || spec.wakerPort < 1 || spec.wakerPort > 65535)) {
    throw new Error(`invalid waker port ${spec.wakerPort}`);
  }
  for (const b of backends) lines.push(...renderBackend(b, spec.wakerPort, sampling));
  return lines.join("\n");
}

/** Renders the host map (`<host> <backend>` per line, sorted). Throws on an invalid or duplicated host. */
export function renderHostMap(routes: Record<string, string>): string {
  const hosts = Object.keys(routes).sort();
  const lines = ["# Rendered by the Slipway agent: host name -> backend."];
  for (const host of hosts) {
    if (!isValidHostname(host)) throw new Error(`invalid host name '${host}'`);
    const backend = routes[host]!;
    if (!isValidBackendName(backend)) throw new Error(`invalid backend name '${backend}' for host '${host}'`);
    lines.push(`${host} ${backend}`);
  }
  return lines.join("\n") + "\n";
}

/** The longest HSTS max-age accepted: two years, what browsers' preload lists ask for. */
export const MAX_HSTS_SECONDS = 63_072_000;

/** Renders the HTTPS map (`<host> <HSTS max-age>` per line, sorted). Throws on an invalid host or max-age. */
export function renderHttpsMap(hosts: Record<string, number>): string {
  const lines = ["# Rendered by the Slipway agent: host name redirected to HTTPS -> HSTS max-age (0 = none)."];
  for (const host of Object.keys(hosts).sort()) {
    const maxAge = hosts[host]!;
    if (!isValidHostname(host)) throw new Error(`invalid host name '${host}' in the HTTPS map`);
    if (!Number.isInteger(maxAge) || maxAge < 0 || maxAge > MAX_HSTS_SECONDS) throw new Error(`invalid HSTS max-age ${maxAge} for '${host}'`);
    lines.push(`${host} ${maxAge}`);
  }
  return lines.join("\n") + "\n";
}

/** A slot holding a target. */
export interface SlotRecord extends BackendTarget {
  /** draining: the switch that replaces it has not finished (the agent may have died during it). */
  state: "active" | "draining";
}

/** One environment as the adapter persists it. */
export interface BackendRecord {
  hostnames: string[];
  basicAuth: BasicAuthSpec | null;
  /** Absent in state written before realms were given. */
  realm?: string;
  maxServers: number;
  /** Its host names redirected to HTTPS, each with its HSTS max-age (absent = none; issue 15). */
  https?: Record<string, number>;
  /** Occupied slots by slot name (s1…): which target is in which slot. */
  slots: Record<string, SlotRecord>;
}

/** The ingress structure persisted in `<dir>/ingress-state.json`; config and map render from it. */
export interface IngressStructure {
  version: 1;
  backends: Record<string, BackendRecord>;
  /** The ACME account thumbprint HTTP-01 challenges are answered with; absent until the control plane sends it. */
  acmeThumbprint?: string;
}

/** Checks a BackendConfig against the structure; throws StepFailure (not retryable) on bad input or a host name owned by another backend. */
export function validateBackend(cfg: BackendConfig, structure: IngressStructure): Omit<BackendRecord, "slots"> {
  const bad = (msg: string) => new StepFailure("ingress_invalid_backend", msg, false);
  if (!isValidBackendName(cfg.name)) throw bad(`invalid backend name '${cfg.name}'`);
  if (cfg.realm !== undefined && !isValidRealm(cfg.realm)) throw bad(`invalid basic auth realm '${cfg.realm}' of '${cfg.name}'`);
  if (!Number.isInteger(cfg.maxServers) || cfg.maxServers < 1 || cfg.maxServers > 1000) throw bad(`maxServers of '${cfg.name}' must be 1-1000`);
  const hostnames = [...new Set(cfg.hostnames.map((h) => h.toLowerCase()))].sort();
  for (const host of hostnames) {
    if (!isValidHostname(host)) throw bad(`invalid host name '${host}' for '${cfg.name}'`);
    const owner = Object.entries(structure.backends).find(([name, be]) => name !== cfg.name && be.hostnames.includes(host));
    if (owner) throw new StepFailure("ingress_hostname_conflict", `host name '${host}' is already routed to '${owner[0]}'`, false);
  }
  const auth = cfg.basicAuth ? { username: cfg.basicAuth.username, digest: cfg.basicAuth.digest.toLowerCase() } : null;
  if (auth && (!auth.username || auth.username.includes(":") || /[\x00-\x1f\x7f]/.test(auth.username) || !isValidDigest(auth.digest))) {
    throw bad(`basic auth of '${cfg.name}' needs a user name without ':' or control characters and a digest of 64 hex digits`);
  }
  return { hostnames, basicAuth: auth, maxServers: cfg.maxServers, ...(cfg.realm !== undefined ? { realm: cfg.realm } : {}) };
}

/** Targets must have unique ids, an IP address (the runtime API sets addresses, it does not resolve names) and a port. */
export function validateTargets(name: string, targets: BackendTarget[]): void {
  const ids = new Set<string>();
  for (const t of targets) {
    if (!t.id || ids.has(t.id)) throw new StepFailure("ingress_invalid_target", `target ids of '${name}' must be non-empty and unique`, false);
    ids.add(t.id);
    if (net.isIP(t.host) === 0) throw new StepFailure("ingress_invalid_target", `target host '${t.host}' must be an IP address`, false);
    if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new StepFailure("ingress_invalid_target", `invalid target port ${t.port}`, false);
  }
}

export function sameTarget(a: BackendTarget, b: BackendTarget): boolean {
  return a.id === b.id && a.host === b.host && a.port === b.port;
}

/** Never fewer slots than an occupied one's index, so shrinking maxServers cannot drop a live server. */
export function slotCount(be: BackendRecord): number {
  return Math.max(be.maxServers, ...Object.keys(be.slots).map((s) => slotIndex(s) ?? 0));
}

export function slotNames(be: BackendRecord): string[] {
  return Array.from({ length: slotCount(be) }, (_, i) => slotName(i + 1));
}

/** Host name -> backend for the host map. */
export function routes(structure: IngressStructure): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, be] of Object.entries(structure.backends)) for (const host of be.hostnames) out[host] = name;
  return out;
}

/** Host name -> HSTS max-age of every backend's host names redirected to HTTPS (the HTTPS map). */
export function httpsHosts(structure: IngressStructure): Record<string, number> {
  const out: Record<string, number> = {};
  for (const be of Object.values(structure.backends)) for (const [host, maxAge] of Object.entries(be.https ?? {})) if (be.hostnames.includes(host)) out[host] = maxAge;
  return out;
}

/** The backends of the rendered config. */
export function backendSpecs(structure: IngressStructure): BackendSpec[] {
  return Object.entries(structure.backends).map(([name, be]) => ({
    name,
    slots: slotCount(be),
    basicAuth: be.basicAuth ? { username: be.basicAuth.username, digest: be.basicAuth.digest } : null,
    ...(be.realm !== undefined ? { realm: be.realm } : {}),
  }));
}
