// Shared by the environment integration tests: a real dockerd, a real
// HAProxy and the agent's environment machinery, all on 127.0.0.1, plus
// cleanup of everything a test bed started. Not part of the build.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile, mkdir, chmod } from "node:fs/promises";
import http from "node:http";
import type { Readable } from "node:stream";
import os from "node:os";
import path from "node:path";
import Dockerode from "dockerode";
import { pino } from "pino";
import tar from "tar-fs";
import type { BasicAuth, DeploySpec, JobEvent } from "@slipway/proto";
import { LABELS } from "@slipway/core";
import { DockerRuntime } from "../docker/docker.runtime.js";
import { HaproxyIngress } from "../ingress/haproxy.ingress.js";
import { runDeployment } from "../jobs/deploy.runner.js";
import type { ControlPlaneClient } from "../report/control-plane.client.js";
import { JobReporter } from "../report/job-reporter.js";
import type { SourceRepository } from "../git/source-repository.js";
import { reservePort } from "../testing/ports.js";
import { EnvironmentRegistry } from "./environment-registry.js";
import { Environments } from "./environments.js";
import { Sleeper } from "./sleeper.js";
import { Waker } from "./waker.js";

export const BASE_IMAGE = "slipway/busybox:1";
export const PAGE = "hello from a slipway environment\n";
export const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });

/** Counts `docker start`s of existing containers, to prove that concurrent requests wake once. */
export class CountingRuntime extends DockerRuntime {
  restarts = 0;
  override async startExisting(id: string): Promise<boolean> {
    this.restarts++;
    return super.startExisting(id);
  }
}

/** A reporter whose "control plane" keeps the events in memory. */
export function memoryReporter(jobId = randomUUID()): { reporter: JobReporter; events: JobEvent[] } {
  const events: JobEvent[] = [];
  const client = {
    reportJobEvents: async (batch: JobEvent[]) => {
      events.push(...batch);
      return { acked: {}, cancelRequested: [] };
    },
  } as unknown as ControlPlaneClient;
  return { reporter: new JobReporter(client, jobId, 0, logger, 20), events };
}

export function logLines(events: JobEvent[]): string[] {
  return events.flatMap((e) => (e.event?.$case === "log" ? [e.event.value.text] : []));
}

export function resultOf(events: JobEvent[]): string | undefined {
  return events.flatMap((e) => (e.event?.$case === "result" ? [e.event.value.state] : [])).pop();
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** sha256("Basic " + base64(user:password)) in lowercase hex, as the control plane sends it. */
export function authDigest(user: string, password: string): string {
  return createHash("sha256").update(`Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`).digest("hex");
}

/** One GET on 127.0.0.1:port with the given Host header, a fresh connection each time. */
export function get(port: number, host: string, opts: { path?: string; auth?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: opts.path ?? "/", agent: false, auth: opts.auth, headers: { host, ...opts.headers } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on("error", reject);
    });
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
  });
}

export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

/** The agent's environment machinery on a real dockerd and HAProxy, with a busybox httpd image. */
export class Testbed {
  readonly run = randomBytes(3).toString("hex");
  readonly app = `t${this.run}`;
  readonly hostId = `testhost-${this.run}`;
  readonly image = `slipway-test/envs:${this.run}`;
  readonly docker = new Dockerode();
  readonly runtime = new CountingRuntime({ docker: this.docker, logger });
  dir = "";
  httpPort = 0;
  wakerPort = 0;
  waker!: Waker;
  ingress!: HaproxyIngress;
  registry!: EnvironmentRegistry;
  envs!: Environments;
  sleeper?: Sleeper;
  private readonly extraIngresses: HaproxyIngress[] = [];
  private readonly ids = new Map<string, string>();

  /** Builds the image (index page + a CGI that answers after `?<seconds>`), starts waker and HAProxy. */
  async start(): Promise<void> {
    this.dir = await mkdtemp(path.join(os.tmpdir(), "slipway-envs-"));
    const ctx = path.join(this.dir, "context");
    await mkdir(path.join(ctx, "www", "cgi-bin"), { recursive: true });
    await writeFile(path.join(ctx, "Dockerfile"), `FROM ${BASE_IMAGE}\nCOPY www /www\nEXPOSE 8080\nCMD ["httpd","-f","-p","8080","-h","/www"]\n`);
    await writeFile(path.join(ctx, "www", "index.html"), PAGE);
    await writeFile(path.join(ctx, "www", "cgi-bin", "slow"), '#!/bin/sh\nsleep "${QUERY_STRING:-3}"\nprintf "Content-Type: text/plain\\r\\n\\r\\nslow done\\n"\n');
    await chmod(path.join(ctx, "www", "cgi-bin", "slow"), 0o755);
    await this.runtime.buildImage(tar.pack(ctx) as unknown as Readable, this.image, { labels: { "io.slipway.test": this.run }, noCache: false, onLog: () => undefined });
    this.httpPort = await reservePort();
    this.registry = new EnvironmentRegistry(this.dir);
    await this.startAgentSide();
  }

  /** Waker, ingress (started or adopted), environments: what an agent start does. Call again to simulate an agent restart. */
  async startAgentSide(): Promise<void> {
    // The previous agent process is gone: its waker with it; HAProxy keeps running and is adopted.
    await this.waker?.close();
    if (this.ingress) this.extraIngresses.push(this.ingress);
    this.waker = new Waker(logger);
    this.wakerPort = await this.waker.listen(0);
    this.ingress = new HaproxyIngress({ dir: path.join(this.dir, "haproxy"), httpPort: this.httpPort, wakerPort: this.wakerPort, logger });
    await this.ingress.start();
    this.registry = new EnvironmentRegistry(this.dir);
    await this.registry.load();
    this.envs = new Environments({ hostId: this.hostId, registry: this.registry, runtime: this.runtime, ingress: this.ingress, log: logger });
    await this.envs.adopt();
    this.waker.serve(this.envs);
  }

  startSleeper(intervalMs = 200): Sleeper {
    this.sleeper = new Sleeper({ envs: this.envs, ingress: this.ingress, log: logger, intervalMs });
    this.sleeper.start();
    return this.sleeper;
  }

  host(env: string): string {
    return `${this.app}-${env}.localhost`;
  }

  /** The id of this test bed's environment `env` (the control plane's id: one per environment, for good). */
  id(env: string): string {
    let id = this.ids.get(env);
    if (!id) this.ids.set(env, (id = randomUUID()));
    return id;
  }

  /** The environment's backend name and registry key, as the agent derives it from the id. */
  slug(env: string): string {
    return this.envs.slugFor(this.id(env));
  }

  get(env: string, opts: Parameters<typeof get>[2] = {}): Promise<Reply> {
    return get(this.httpPort, this.host(env), opts);
  }

  /** A real deployment (reuse mode: no git, no build) through runDeployment. */
  async deploy(env: string, opts: { sleepAfterSeconds?: number; basicAuth?: BasicAuth; variables?: Record<string, string> } = {}): Promise<JobEvent[]> {
    const spec: DeploySpec = {
      app: this.app,
      environment: env,
      repository: "",
      branch: "main",
      buildMode: "reuse",
      currentImage: this.image,
      webPort: 0,
      probe: { path: "/", acceptedStatuses: "200-499", startupTimeoutMs: 30_000, probeTimeoutMs: 2_000, maxRetries: 300 },
      releaseCommands: [],
      releaseCommandTimeoutMs: 60_000,
      replicas: 1,
      variables: opts.variables ?? { GREETING: "hi" },
      hostnames: [this.host(env)],
      deploymentId: randomUUID(),
      environmentId: this.id(env),
      sleepAfterSeconds: opts.sleepAfterSeconds ?? 0,
      ...(opts.basicAuth ? { basicAuth: opts.basicAuth } : {}),
    };
    const { reporter, events } = memoryReporter();
    const state = await runDeployment({
      spec,
      hostId: this.hostId,
      jobId: randomUUID(),
      runtime: this.runtime,
      ingress: this.ingress,
      git: {} as SourceRepository,
      envs: this.envs,
      report: reporter,
      log: logger,
      signal: new AbortController().signal,
      started: [],
      switched: false,
    });
    await reporter.flush();
    reporter.close();
    if (state !== "succeeded") throw new Error(`deployment of ${env} ${state}: ${logLines(events).join("\n")}`);
    return events;
  }

  /** Whether every container of the environment's entry is running. */
  async containersRunning(env: string): Promise<boolean[]> {
    const e = this.envs.get(this.slug(env));
    return Promise.all((e?.containerIds ?? []).map(async (id) => (await this.runtime.inspect(id))?.running ?? false));
  }

  /** Containers of this test bed's host id (all roles), running or not. */
  async containers(labels: Record<string, string> = {}): Promise<Dockerode.ContainerInfo[]> {
    const filters = Object.entries({ [LABELS.host]: this.hostId, ...labels }).map(([k, v]) => `${k}=${v}`);
    return this.docker.listContainers({ all: true, filters: { label: filters } });
  }

  async networks(): Promise<string[]> {
    const nets = await this.docker.listNetworks({ filters: { label: [`${LABELS.host}=${this.hostId}`] } });
    return nets.map((n) => n.Name);
  }

  /** Removes everything: sleeper, wakers, HAProxy (by pid, through the adapter), containers, networks, image, files. */
  async close(): Promise<void> {
    await this.sleeper?.stop().catch(() => undefined);
    await this.waker?.close().catch(() => undefined);
    for (const i of [...this.extraIngresses, this.ingress]) await i?.stop().catch(() => undefined);
    const leftovers = await this.containers().catch(() => []);
    await Promise.all(leftovers.map((c) => this.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    for (const n of await this.networks().catch(() => [])) await this.docker.getNetwork(n).remove().catch(() => undefined);
    await this.docker.getImage(this.image).remove({ force: true }).catch(() => undefined);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
