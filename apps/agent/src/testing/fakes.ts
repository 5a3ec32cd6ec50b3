// In-memory fakes of the agent's narrow interfaces, for unit tests: one per
// interface, each recording its calls and able to fail on demand. They keep
// just enough state to answer later calls consistently (a started container is
// listed and inspected, a switch changes what `current` returns), so a test
// asserts what a user would see: what is routed, what runs, what was reported.
import { X509Certificate } from "node:crypto";
import { Readable } from "node:stream";
import type { BackupFacts } from "@slipway/proto";
import { StepFailure, environmentSlug, toFailure, type FailureData, type StepState } from "@slipway/core";
import type { ContainerRuntime, ContainerSpec, ContainerStatus, ContainerSummary, ImageInfo, OneOffResult, RunningContainer } from "../docker/container-runtime.js";
import type { BackendConfig, BackendStats, BackendTarget, CertificateInput, Ingress, IngressTls, InstalledCertificate, SwitchOptions } from "../ingress/ingress.js";
import { normalizeSerial } from "../ingress/tls-store.js";
import type { SourceRepository } from "../git/source-repository.js";
import type { EnvironmentEntry } from "../envs/environment-registry.js";
import type { DeployEnvironments, DeployReporter } from "../steps/context.js";
import { Recorder } from "./recorder.js";

export type { Call } from "./recorder.js";

/** A container as the fake engine keeps it. */
export interface FakeContainer {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  network: string;
  cmd?: string[];
  running: boolean;
  exitCode: number | null;
  restartCount: number;
  hostPort?: number;
  address?: string;
  /** What logsTail returns. */
  output: string[];
}

/** How one release one-off ends: `hang` runs until the job's signal aborts (the real runtime then throws a cancel). */
export interface OneOffScript {
  exitCode?: number | null;
  timedOut?: boolean;
  /** Killed by the kernel for its memory limit (exit code 137). */
  oomKilled?: boolean;
  output?: string[];
  hang?: boolean;
}

type RuntimeMethod = keyof ContainerRuntime;

/** The Docker engine of one host, in memory. */
export class FakeContainerRuntime extends Recorder<RuntimeMethod> implements ContainerRuntime {
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Map<string, ImageInfo>();
  readonly networks = new Map<string, Record<string, string>>();
  /** Each build: the tag and the build context it was given (the fake git's archive text). */
  readonly builds: Array<{ tag: string; context: string; noCache: boolean; labels: Record<string, string> }> = [];
  /** The one-offs run, in order, with their spec. */
  readonly oneOffs: ContainerSpec[] = [];
  /** Scripts of the next one-offs, in order; once used up, a one-off exits 0. */
  oneOffScripts: OneOffScript[] = [];
  /** Lines a build prints. */
  buildOutput = ["Step 1/2 : FROM slipway/busybox:1", "Successfully built"];
  /** Ports a built image EXPOSEs. */
  buildExposes: number[] = [8000];
  /** Every (id, grace) that stopAndRemove was asked for. */
  readonly removed: Array<{ id: string; graceSeconds: number }> = [];
  private seq = 0;

  /** A container that exists before the test (e.g. the environment's current one). */
  addContainer(c: Partial<FakeContainer> & Pick<FakeContainer, "labels">): FakeContainer {
    const n = ++this.seq;
    const full: FakeContainer = {
      id: `c${String(n).padStart(3, "0")}`.padEnd(64, "0"),
      name: `container-${n}`,
      image: "slipway/app:old",
      env: {},
      network: "",
      running: true,
      exitCode: null,
      restartCount: 0,
      hostPort: 40000 + n,
      address: `172.18.0.${n + 1}`,
      output: [],
      ...c,
    };
    this.containers.set(full.id, full);
    return full;
  }

  /** Makes a container's process exit (as a crash would). */
  exit(id: string, exitCode: number, output: string[] = []): void {
    const c = this.containers.get(id)!;
    c.running = false;
    c.exitCode = exitCode;
    c.output.push(...output);
  }

  /** Containers carrying all the given labels, running or not. */
  withLabels(labels: Record<string, string>): FakeContainer[] {
    return [...this.containers.values()].filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v));
  }

  async imageInfo(tag: string): Promise<ImageInfo | undefined> {
    await this.enter("imageInfo", [tag]);
    return this.images.get(tag);
  }

  async buildImage(context: Readable, tag: string, opts: { labels: Record<string, string>; noCache: boolean; onLog: (line: string) => void }): Promise<ImageInfo> {
    await this.enter("buildImage", [tag, opts]);
    let text = "";
    for await (const chunk of context) text += String(chunk);
    for (const line of this.buildOutput) opts.onLog(line);
    this.builds.push({ tag, context: text, noCache: opts.noCache, labels: opts.labels });
    const info = { id: `sha256:${tag}`, exposedPorts: [...this.buildExposes] };
    this.images.set(tag, info);
    return info;
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<void> {
    await this.enter("ensureNetwork", [name, labels]);
    if (!this.networks.has(name)) this.networks.set(name, labels);
  }

  async removeNetwork(name: string): Promise<void> {
    await this.enter("removeNetwork", [name]);
    this.networks.delete(name);
  }

  async start(spec: ContainerSpec): Promise<RunningContainer> {
    await this.enter("start", [spec]);
    const c = this.addContainer({ name: spec.name, image: spec.image, env: spec.env, labels: spec.labels, network: spec.network, ...(spec.cmd ? { cmd: spec.cmd } : {}) });
    if (spec.publishPort === undefined) delete c.hostPort;
    return { id: c.id, name: c.name, ...(c.hostPort ? { hostPort: c.hostPort } : {}), ...(c.address ? { address: c.address } : {}) };
  }

  async runOneOff(spec: ContainerSpec, opts: { timeoutMs: number; onLog: (line: string) => void; signal?: AbortSignal }): Promise<OneOffResult> {
    await this.enter("runOneOff", [spec, { timeoutMs: opts.timeoutMs }]);
    if (opts.signal?.aborted) throw new StepFailure("cancelled", `one-off ${spec.name} cancelled before it started`, false);
    this.oneOffs.push(spec);
    const script = this.oneOffScripts.shift() ?? {};
    for (const line of script.output ?? []) opts.onLog(line);
    if (script.hang) {
      // Like the real runtime: an abort kills the one-off and is reported as a cancel.
      await new Promise<void>((_, reject) => {
        const abort = () => reject(new StepFailure("cancelled", `one-off ${spec.name} was cancelled`, false));
        if (opts.signal?.aborted) abort();
        opts.signal?.addEventListener("abort", abort, { once: true });
      });
    }
    return { exitCode: script.timedOut ? null : script.oomKilled ? 137 : (script.exitCode ?? 0), timedOut: script.timedOut ?? false, oomKilled: script.oomKilled ?? false };
  }

  async inspect(id: string): Promise<ContainerStatus | undefined> {
    await this.enter("inspect", [id]);
    const c = this.containers.get(id);
    if (!c) return undefined;
    return { id, running: c.running, exitCode: c.exitCode, oomKilled: false, restartCount: c.restartCount, ...(c.hostPort ? { hostPort: c.hostPort } : {}), ...(c.address ? { address: c.address } : {}) };
  }

  async logsTail(id: string, lines: number): Promise<string> {
    await this.enter("logsTail", [id, lines]);
    return (this.containers.get(id)?.output ?? []).slice(-lines).join("\n");
  }

  async startExisting(id: string): Promise<boolean> {
    await this.enter("startExisting", [id]);
    const c = this.containers.get(id);
    if (!c) return false;
    c.running = true;
    return true;
  }

  async stop(id: string, graceSeconds: number): Promise<void> {
    await this.enter("stop", [id, graceSeconds]);
    const c = this.containers.get(id);
    if (c) c.running = false;
  }

  async stopAndRemove(id: string, graceSeconds: number): Promise<void> {
    await this.enter("stopAndRemove", [id, graceSeconds]);
    this.removed.push({ id, graceSeconds });
    this.containers.delete(id);
  }

  async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    await this.enter("list", [labels]);
    return this.withLabels(labels).map((c) => ({ id: c.id, name: c.name, state: c.running ? "running" : "exited", labels: { ...c.labels } }));
  }
}

type IngressMethod = "start" | "stop" | "ensureBackend" | "removeBackend" | "switchTraffic" | "current" | "stats" | "setAcmeThumbprint" | "setHttpsHosts";

type TlsMethod = keyof IngressTls;

/**
 * The certificates of an ingress's HTTPS port, in memory, keyed by sorted host names like
 * TlsStore: the PEM is parsed for its serial and expiry (never checked further), a certificate
 * for the same names replaces the previous one, names served by another certificate are refused.
 */
export class FakeTls extends Recorder<Exclude<TlsMethod, "generation">> implements IngressTls {
  readonly served = new Map<string, InstalledCertificate & { keyPem: string }>();
  generation = 0;

  async install(input: CertificateInput): Promise<InstalledCertificate> {
    await this.enter("install", [{ hostnames: input.hostnames, certPem: input.certPem }]);
    const hostnames = [...new Set(input.hostnames.map((h) => h.toLowerCase()))].sort();
    const leaf = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(input.certPem)?.[0] ?? "");
    const key = hostnames.join(" ");
    for (const [k, c] of this.served) {
      if (k !== key && c.hostnames.some((h) => hostnames.includes(h))) throw new StepFailure("tls_hostname_conflict", `host names are served by the certificate for ${c.hostnames.join(", ")}: remove it first`, false);
    }
    const cert = { name: hostnames[0]!, path: `/certs/${hostnames[0]}.pem`, hostnames, serial: normalizeSerial(leaf.serialNumber), notAfter: new Date(leaf.validTo), keyPem: input.keyPem };
    this.served.set(key, cert);
    this.generation++;
    return { name: cert.name, path: cert.path, hostnames, serial: cert.serial, notAfter: cert.notAfter };
  }

  async remove(hostnames: string[]): Promise<boolean> {
    await this.enter("remove", [hostnames]);
    const removed = this.served.delete([...new Set(hostnames.map((h) => h.toLowerCase()))].sort().join(" "));
    if (removed) this.generation++;
    return removed;
  }

  async list(): Promise<InstalledCertificate[]> {
    await this.enter("list", []);
    return [...this.served.values()].map(({ keyPem: _key, ...c }) => ({ ...c, hostnames: [...c.hostnames] }));
  }
}

/** The HTTP ingress of one host: which targets each backend routes to. */
export class FakeIngress extends Recorder<IngressMethod> implements Ingress {
  readonly httpPort = 8080;
  /** undefined with `{ https: false }`: HTTPS off on this host. */
  readonly httpsPort: number | undefined;
  readonly tls: FakeTls | undefined;
  /** The ACME thumbprint challenges are answered with; `thumbprintChanges` counts the reloads it would take. */
  acmeThumbprint: string | undefined;
  thumbprintChanges = 0;

  constructor(opts: { https?: boolean } = {}) {
    super();
    const https = opts.https ?? true;
    this.httpsPort = https ? 8443 : undefined;
    this.tls = https ? new FakeTls() : undefined;
  }

  async setAcmeThumbprint(thumbprint: string): Promise<void> {
    await this.enter("setAcmeThumbprint", [thumbprint]);
    if (this.acmeThumbprint === thumbprint) return;
    this.acmeThumbprint = thumbprint;
    this.thumbprintChanges++;
  }
  /** Host names redirected to HTTPS by backend, with their HSTS max-age (setHttpsHosts). */
  readonly httpsHosts = new Map<string, Record<string, number>>();
  async setHttpsHosts(backend: string, hosts: Record<string, number>): Promise<void> {
    await this.enter("setHttpsHosts", [backend, hosts]);
    if (!this.backends.has(backend)) return;
    if (Object.keys(hosts).length > 0) this.httpsHosts.set(backend, { ...hosts });
    else this.httpsHosts.delete(backend);
  }
  readonly backends = new Map<string, { config?: BackendConfig; targets: BackendTarget[] }>();
  /** What stats() answers per backend. */
  readonly backendStats = new Map<string, BackendStats>();

  /** Routes a backend to targets before the test (the environment's current deployment). */
  route(name: string, targets: BackendTarget[]): void {
    const b = this.backends.get(name);
    this.backends.set(name, { ...(b?.config ? { config: b.config } : {}), targets: targets.map((t) => ({ ...t })) });
  }

  /** The targets a backend routes to now (no call recorded). */
  routed(name: string): BackendTarget[] {
    return (this.backends.get(name)?.targets ?? []).map((t) => ({ ...t }));
  }

  async start(): Promise<void> {
    await this.enter("start", []);
  }

  async stop(): Promise<void> {
    await this.enter("stop", []);
  }

  async ensureBackend(cfg: BackendConfig): Promise<void> {
    await this.enter("ensureBackend", [cfg]);
    this.backends.set(cfg.name, { config: structuredClone(cfg), targets: this.backends.get(cfg.name)?.targets ?? [] });
  }

  async removeBackend(name: string): Promise<void> {
    await this.enter("removeBackend", [name]);
    this.backends.delete(name);
  }

  async switchTraffic(name: string, targets: BackendTarget[], opts?: SwitchOptions): Promise<BackendTarget[]> {
    await this.enter("switchTraffic", [name, targets, opts]);
    const b = this.backends.get(name);
    if (!b) throw new Error(`no backend ${name}`);
    const old = b.targets;
    b.targets = targets.map((t) => ({ ...t }));
    return old;
  }

  async current(name: string): Promise<BackendTarget[]> {
    await this.enter("current", [name]);
    return this.routed(name);
  }

  async stats(name: string): Promise<BackendStats | undefined> {
    await this.enter("stats", [name]);
    return this.backendStats.get(name);
  }
}

type GitMethod = keyof SourceRepository;

/** The app's repository: branch → commit. */
export class FakeSourceRepository extends Recorder<GitMethod> implements SourceRepository {
  readonly branches: Map<string, string>;

  constructor(branches: Record<string, string> = { main: "0123456789abcdef0123456789abcdef01234567" }) {
    super();
    this.branches = new Map(Object.entries(branches));
  }

  async sync(app: string, url: string): Promise<void> {
    await this.enter("sync", [app, url]);
  }

  async resolve(app: string, branch: string): Promise<string> {
    await this.enter("resolve", [app, branch]);
    const sha = this.branches.get(branch);
    if (!sha) throw new StepFailure("branch_not_found", `branch ${branch} does not exist in the repository of ${app}`, false);
    return sha;
  }

  /** A stream whose text names the commit, so a test can tell which tree a build got. */
  archive(app: string, commit: string): Readable {
    this.enterSync("archive", [app, commit]);
    return Readable.from([`tree of ${app}@${commit}`]);
  }
}

/** One thing a job reported. */
export type ReportEvent =
  | { kind: "log"; text: string }
  | { kind: "heading"; title: string }
  | { kind: "step"; name: string; state: StepState }
  | { kind: "progress"; phase: string; bytes: number; objects: number }
  | { kind: "backup"; facts: BackupFacts }
  | { kind: "facts"; commit: string; image: string; imageDigest?: string }
  | { kind: "result"; state: "succeeded" | "failed" | "cancelled"; commit?: string; image?: string; imageDigest?: string; failure?: FailureData };

type ReportMethod = "heading" | "logLine" | "step" | "progress" | "backup" | "facts" | "result";

/**
 * A job's reporting, kept in order as it would reach the control plane (the
 * result's error converted to its failure data, as JobReporter sends it).
 * `cancelRequested` is set by a test, as the control plane's answer would.
 */
export class FakeJobReporter extends Recorder<ReportMethod> implements DeployReporter {
  readonly events: ReportEvent[] = [];
  cancelRequested = false;

  heading(title: string): void {
    this.enterSync("heading", [title]);
    this.events.push({ kind: "heading", title });
  }
  logLine(text: string): void {
    this.enterSync("logLine", [text]);
    this.events.push({ kind: "log", text });
  }
  step(name: string, state: StepState): void {
    this.enterSync("step", [name, state]);
    this.events.push({ kind: "step", name, state });
  }
  progress(p: { phase: string; bytes: number; objects: number }): void {
    this.enterSync("progress", [p]);
    this.events.push({ kind: "progress", ...p });
  }
  backup(f: BackupFacts): void {
    this.enterSync("backup", [f]);
    this.events.push({ kind: "backup", facts: f });
  }
  facts(commit: string, image: string, imageDigest = ""): void {
    this.enterSync("facts", [commit, image, imageDigest]);
    this.events.push({ kind: "facts", commit, image, ...(imageDigest ? { imageDigest } : {}) });
  }
  result(state: "succeeded" | "failed" | "cancelled", info: { commit?: string; image?: string; imageDigest?: string; error?: unknown }): Promise<void> {
    this.enterSync("result", [state, info]);
    this.events.push({
      kind: "result",
      state,
      ...(info.commit ? { commit: info.commit } : {}),
      ...(info.image ? { image: info.image } : {}),
      ...(info.imageDigest ? { imageDigest: info.imageDigest } : {}),
      ...(info.error !== undefined ? { failure: toFailure(info.error) } : {}),
    });
    return Promise.resolve();
  }

  /** The log lines, in order. */
  lines(): string[] {
    return this.events.flatMap((e) => (e.kind === "log" ? [e.text] : []));
  }

  /** Every step change as "name:state", in order. */
  steps(): string[] {
    return this.events.flatMap((e) => (e.kind === "step" ? [`${e.name}:${e.state}`] : []));
  }

  /** The results reported (a job reports exactly one). */
  results(): Array<Extract<ReportEvent, { kind: "result" }>> {
    return this.events.filter((e): e is Extract<ReportEvent, { kind: "result" }> => e.kind === "result");
  }
}

type EnvMethod = "exclusive" | "get" | "recordDeployment";

/**
 * The environments a host serves, in memory, with the same per-environment
 * FIFO lock as Environments; `recordedUnderLock` tells whether each recorded
 * deployment was written while its environment's lock was held.
 */
export class FakeEnvironments extends Recorder<EnvMethod> implements DeployEnvironments {
  readonly entries = new Map<string, EnvironmentEntry>();
  readonly variables = new Map<string, Record<string, string>>();
  readonly recordedUnderLock: boolean[] = [];
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly held = new Set<string>();

  exclusive<T>(slug: string, fn: () => Promise<T>): Promise<T> {
    this.enterSync("exclusive", [slug]);
    const run = async () => {
      this.held.add(slug);
      try {
        return await fn();
      } finally {
        this.held.delete(slug);
      }
    };
    const prev = this.locks.get(slug) ?? Promise.resolve();
    const result = prev.then(run, run);
    this.locks.set(slug, result.catch(() => undefined));
    return result;
  }

  /** Like Environments.slugFor: the recorded slug of the id, else core's environmentSlug (not recorded as a call: a pure lookup). */
  slugFor(environmentId: string): string {
    for (const e of this.entries.values()) if (e.environmentId === environmentId) return e.slug;
    return environmentSlug(environmentId);
  }

  /** Every entry (not recorded as a call: a pure lookup). */
  all(): EnvironmentEntry[] {
    return [...this.entries.values()].map((e) => structuredClone(e));
  }

  get(slug: string): EnvironmentEntry | undefined {
    this.enterSync("get", [slug]);
    const e = this.entries.get(slug);
    return e ? structuredClone(e) : undefined;
  }

  async recordDeployment(entry: Omit<EnvironmentEntry, "state">, variables: Record<string, string>): Promise<void> {
    this.enterSync("recordDeployment", [entry, variables]);
    this.recordedUnderLock.push(this.held.has(entry.slug));
    this.entries.set(entry.slug, { ...structuredClone(entry), state: "running" });
    this.variables.set(entry.slug, { ...variables });
  }
}
