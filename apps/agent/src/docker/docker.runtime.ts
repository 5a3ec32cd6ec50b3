import { PassThrough, Writable, type Readable } from "node:stream";
import Dockerode from "dockerode";
import { LABELS, createLogger, StepFailure, type Logger } from "@slipway/core";
import { chooseCpuset, coreLoad, parseCpuset, type ConfinedUse } from "./cpuset.js";
import { DockerDisk } from "./docker.disk.js";
import { labelFilters } from "./labels.js";
import { DeliveredFilter, logTimestampNs, sinceArg } from "./log-follow.js";
import { contextFailure, isGone, messageOf, statusOf, toStepFailure } from "./docker.errors.js";
import type {
  ContainerRuntime,
  ContainerSpec,
  ContainerStatus,
  ContainerSummary,
  ImageInfo,
  OneOffResult,
  RunningContainer,
} from "./container-runtime.js";
import type { ContainerEventWatcher, ContainerExecutor, ContainerLogReader, ContainerStatsReader, DockerStats, ExecSession, OomKill } from "./container-access.js";
import { DockerExecSession } from "./docker.exec.js";

export interface DockerRuntimeOptions {
  /** Defaults to the local socket (DOCKER_HOST is honoured by dockerode). */
  docker?: Dockerode;
  logger?: Logger;
  /** Containers' logs are rotated at maxMb, keeping maxFiles files (Docker's json-file driver); default 10 MB × 5. */
  logRotation?: { maxMb: number; maxFiles: number };
}

interface BuildEvent {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** After a one-off exits, how long its output stream may take to drain. */
const OUTPUT_DRAIN_MS = 2_000;

/** Splits a byte stream into lines; `flush` emits a trailing partial line. */
function lineSink(onLine: (line: string) => void): Writable & { flush(): void } {
  let pending = "";
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString("utf8");
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      for (const p of parts) onLine(p.replace(/\r$/, ""));
      done();
    },
  });
  return Object.assign(sink, {
    flush() {
      if (pending !== "") onLine(pending.replace(/\r$/, ""));
      pending = "";
    },
  });
}

function tcpPorts(exposed: Record<string, unknown> | undefined | null): number[] {
  return Object.keys(exposed ?? {})
    .filter((k) => k.endsWith("/tcp"))
    .map((k) => Number(k.slice(0, -4)))
    .filter((p) => Number.isInteger(p))
    .sort((a, b) => a - b);
}

type PortMap = Record<string, { HostIp: string; HostPort: string }[] | null> | undefined;

/** The host port bound on loopback, for `port` or (if omitted) the first published one. */
function loopbackPort(ports: PortMap, port?: number): number | undefined {
  const entries = Object.entries(ports ?? {}).filter(([k]) => port === undefined || k === `${port}/tcp`);
  for (const [, bindings] of entries) {
    const b = (bindings ?? []).find((x) => x.HostIp === "127.0.0.1") ?? bindings?.[0];
    if (b?.HostPort) return Number(b.HostPort);
  }
  return undefined;
}

/** The container runtime on the Docker Engine, and the access to running containers (logs, exec, stats). */
export class DockerRuntime implements ContainerRuntime, ContainerLogReader, ContainerExecutor, ContainerStatsReader, ContainerEventWatcher {
  private readonly docker: Dockerode;
  private readonly log: Logger;
  private readonly networkLocks = new Map<string, Promise<void>>();
  private readonly logRotation: { maxMb: number; maxFiles: number };

  constructor(opts: DockerRuntimeOptions = {}) {
    this.docker = opts.docker ?? new Dockerode();
    this.logRotation = opts.logRotation ?? { maxMb: 10, maxFiles: 5 };
    this.log = (opts.logger ?? createLogger("agent")).child({ component: "docker" });
  }

  /** The engine's disk: its data root's space, images, build cache (the disk janitor's view). */
  disk(): DockerDisk {
    return new DockerDisk(this.docker);
  }

  async imageInfo(tag: string): Promise<ImageInfo | undefined> {
    try {
      const info = await this.docker.getImage(tag).inspect();
      return { id: info.Id, exposedPorts: tcpPorts(info.Config?.ExposedPorts) };
    } catch (err) {
      if (isGone(err)) return undefined;
      throw toStepFailure(err, `inspect image ${tag}`);
    }
  }

  async buildImage(
    context: Readable,
    tag: string,
    opts: { labels: Record<string, string>; noCache: boolean; onLog: (line: string) => void },
  ): Promise<ImageInfo> {
    const started = Date.now();
    this.log.info({ tag, noCache: opts.noCache }, "image build started");
    // A failing context (e.g. git archive) would otherwise leave the upload hanging.
    const abort = new AbortController();
    let contextError: unknown;
    const onContextError = (err: unknown) => {
      contextError = err;
      abort.abort();
    };
    context.once("error", onContextError);
    try {
      const stream = await this.docker
        .buildImage(context as NodeJS.ReadableStream, {
          t: tag,
          labels: opts.labels,
          nocache: opts.noCache,
          rm: true,
          forcerm: true,
          abortSignal: abort.signal,
        } as Dockerode.ImageBuildOptions)
        .catch((err: unknown) => {
          throw this.buildError(err, tag);
        });
      const failure = await this.followBuild(stream, opts.onLog);
      if (contextError !== undefined) throw contextError;
      if (failure !== undefined) throw new StepFailure("build_failed", failure, false);
    } catch (err) {
      this.log.warn({ tag, err, ms: Date.now() - started }, "image build failed");
      if (contextError !== undefined) throw contextFailure(contextError);
      throw toStepFailure(err, `build ${tag}`);
    } finally {
      context.off("error", onContextError);
    }
    const info = await this.imageInfo(tag);
    if (!info) throw new StepFailure("build_failed", `build of ${tag} reported success but the image is missing`, true);
    this.log.info({ tag, imageId: info.id, ms: Date.now() - started }, "image build finished");
    return info;
  }

  /** The daemon refuses some bad builds up front (HTTP 4xx) instead of in the stream. */
  private buildError(err: unknown, tag: string): StepFailure {
    const status = statusOf(err);
    if (status !== undefined && status >= 400 && status < 500) return new StepFailure("build_failed", messageOf(err), false);
    return toStepFailure(err, `build ${tag}`);
  }

  /** Resolves with the build's error message, or undefined when it succeeded. */
  private followBuild(stream: NodeJS.ReadableStream, onLog: (line: string) => void): Promise<string | undefined> {
    const sink = lineSink(onLog);
    let failure: string | undefined;
    return new Promise((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          sink.flush();
          if (err) reject(err);
          else resolve(failure);
        },
        (ev: BuildEvent) => {
          if (ev.stream) sink.write(ev.stream);
          const msg = ev.errorDetail?.message ?? ev.error;
          if (msg) {
            failure ??= msg.trim();
            sink.write(`${msg.trim()}\n`);
          }
        },
      );
    });
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<void> {
    // Serialised per name so two concurrent deploys of one environment don't create twins.
    const prev = this.networkLocks.get(name) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.createNetworkIfMissing(name, labels));
    this.networkLocks.set(name, next);
    try {
      await next;
    } finally {
      if (this.networkLocks.get(name) === next) this.networkLocks.delete(name);
    }
  }

  private async createNetworkIfMissing(name: string, labels: Record<string, string>): Promise<void> {
    try {
      await this.docker.getNetwork(name).inspect();
      return;
    } catch (err) {
      if (!isGone(err)) throw toStepFailure(err, `inspect network ${name}`);
    }
    try {
      await this.docker.createNetwork({ Name: name, Driver: "bridge", Labels: labels, CheckDuplicate: true });
      this.log.info({ network: name }, "network created");
    } catch (err) {
      // Another agent process won the race: the network exists, which is all we want.
      if (statusOf(err) === 409) return;
      throw toStepFailure(err, `create network ${name}`);
    }
  }

  async removeNetwork(name: string): Promise<void> {
    try {
      await this.docker.getNetwork(name).remove();
      this.log.info({ network: name }, "network removed");
    } catch (err) {
      if (!isGone(err)) throw toStepFailure(err, `remove network ${name}`);
    }
  }

  async start(spec: ContainerSpec): Promise<RunningContainer> {
    const container = await this.create(spec, false);
    try {
      await container.start();
      const info = await container.inspect();
      const hostPort = spec.publishPort === undefined ? undefined : loopbackPort(info.NetworkSettings.Ports as PortMap, spec.publishPort);
      const address = networkAddress(info.NetworkSettings?.Networks);
      this.log.info({ container: spec.name, id: container.id, image: spec.image, hostPort, address }, "container started");
      return { id: container.id, name: spec.name, ...(hostPort !== undefined ? { hostPort } : {}), ...(address ? { address } : {}) };
    } catch (err) {
      // A container that never ran is useless and would block the name for the retry.
      await this.removeQuietly(container, spec.name);
      throw toStepFailure(err, `start container ${spec.name}`);
    }
  }

  async runOneOff(
    spec: ContainerSpec,
    opts: { timeoutMs: number; onLog: (line: string) => void; signal?: AbortSignal },
  ): Promise<OneOffResult> {
    if (opts.signal?.aborted) throw new StepFailure("cancelled", `one-off ${spec.name} cancelled before it started`, false);
    const container = await this.create({ ...spec, publishPort: undefined }, true);
    const started = Date.now();
    try {
      const result = await this.runToCompletion(container, spec, opts);
      this.log.info({ container: spec.name, ...result, ms: Date.now() - started }, "one-off finished");
      return result;
    } catch (err) {
      throw toStepFailure(err, `run one-off ${spec.name}`);
    } finally {
      await this.removeQuietly(container, spec.name);
    }
  }

  private async runToCompletion(
    container: Dockerode.Container,
    spec: ContainerSpec,
    opts: { timeoutMs: number; onLog: (line: string) => void; signal?: AbortSignal },
  ): Promise<OneOffResult> {
    // Attach before start so the first lines of output are not lost.
    const output = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
    const stdout = lineSink(opts.onLog);
    const stderr = lineSink(opts.onLog);
    this.docker.modem.demuxStream(output, stdout, stderr);
    const drained = new Promise<void>((resolve) => {
      output.once("end", resolve);
      output.once("close", resolve);
      output.once("error", () => resolve());
    });

    let timedOut = false;
    let aborted = false;
    let running = false;
    const kill = () => {
      if (!running) return;
      container.kill().catch((err: unknown) => {
        if (!isGone(err, 409)) this.log.warn({ container: spec.name, err }, "kill failed");
      });
    };
    const onAbort = () => {
      aborted = true;
      kill();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      if (opts.signal?.aborted) aborted = true;
      if (!aborted) {
        await container.start();
        running = true;
        // An abort that arrived while start() was in flight found nothing to kill.
        if (aborted) kill();
        timer = setTimeout(() => {
          timedOut = true;
          this.log.warn({ container: spec.name, timeoutMs: opts.timeoutMs }, "one-off timed out, killing");
          kill();
        }, opts.timeoutMs);
      }
      const exit = running ? ((await container.wait()) as { StatusCode: number }) : undefined;
      if (running) await Promise.race([drained, new Promise((r) => setTimeout(r, OUTPUT_DRAIN_MS).unref())]);
      stdout.flush();
      stderr.flush();
      if (aborted) throw new StepFailure("cancelled", `one-off ${spec.name} was cancelled`, false);
      const oomKilled = running ? Boolean((await container.inspect().catch(() => undefined))?.State?.OOMKilled) : false;
      return { exitCode: timedOut || !exit ? null : exit.StatusCode, timedOut, oomKilled };
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      output.destroy();
    }
  }

  /** The engine's CPU count, read once. */
  private cores?: Promise<number>;
  private coreCount(): Promise<number> {
    this.cores ??= this.docker.info().then((i: { NCPU?: number }) => Number(i.NCPU) || 1);
    return this.cores.catch((err: unknown) => {
      this.cores = undefined; // asked again next time
      throw err;
    });
  }

  /** One cpuset choice and create at a time, so that two containers started together do not pick the same idle core. */
  private cpusetChain: Promise<unknown> = Promise.resolve();

  /**
   * The cores a container limited to `cpus` may run on (cpuset.ts): the least loaded of this
   * host's, by what the running containers confined so far were given; undefined when it may
   * use every core.
   */
  private async cpusetFor(cpus: number): Promise<string | undefined> {
    const cores = await this.coreCount();
    if (Math.ceil(cpus - 1e-9) >= cores) return undefined;
    const running = await this.docker.listContainers({ filters: { label: labelFilters({ [LABELS.managed]: "true" }), status: ["running", "created"] } });
    const confined: Array<{ cpus: number; cpuset: number[] }> = [];
    for (const c of running) {
      const info = await this.docker.getContainer(c.Id).inspect().catch(() => undefined);
      const hc = info?.HostConfig as { CpusetCpus?: string; NanoCpus?: number } | undefined;
      if (!hc?.CpusetCpus || !hc.NanoCpus) continue;
      confined.push({ cpus: hc.NanoCpus / 1e9, cpuset: parseCpuset(hc.CpusetCpus) });
    }
    return chooseCpuset(cpus, coreLoad(cores, confined));
  }

  /** Each confined container's settings (they do not change) and its last CPU reading (ns of CPU time, ns of wall time). */
  private confinedSeen = new Map<string, { cpuset: number[]; cpus: number; usage?: number; at?: bigint }>();

  /**
   * What each running confined container (cpuset.ts) of this host used since the previous call,
   * in cores (Docker's one-shot stats: no wait for a second reading). A container seen for the
   * first time has no figure yet and is left out.
   */
  async confinedUse(hostId: string): Promise<{ cores: number; confined: ConfinedUse[] }> {
    const cores = await this.coreCount();
    const running = await this.docker.listContainers({ filters: { label: labelFilters({ [LABELS.managed]: "true", [LABELS.host]: hostId }), status: ["running"] } });
    const seen = new Map<string, { cpuset: number[]; cpus: number; usage?: number; at?: bigint }>();
    const out: ConfinedUse[] = [];
    for (const c of running) {
      let known = this.confinedSeen.get(c.Id);
      if (!known) {
        const hc = (await this.docker.getContainer(c.Id).inspect().catch(() => undefined))?.HostConfig as { CpusetCpus?: string; NanoCpus?: number } | undefined;
        known = { cpuset: hc?.CpusetCpus && hc.NanoCpus ? parseCpuset(hc.CpusetCpus) : [], cpus: (hc?.NanoCpus ?? 0) / 1e9 };
      }
      seen.set(c.Id, known);
      if (known.cpuset.length === 0) continue; // not confined: never read
      const stats = (await this.docker.getContainer(c.Id).stats({ stream: false, "one-shot": true } as { stream: false }).catch(() => undefined)) as DockerStats | undefined;
      const usage = stats?.cpu_stats?.cpu_usage?.total_usage;
      const at = process.hrtime.bigint();
      if (usage === undefined) continue;
      if (known.usage !== undefined && known.at !== undefined && at > known.at) {
        out.push({ cpuset: known.cpuset, cpus: known.cpus, usedCpus: Math.max(0, usage - known.usage) / Number(at - known.at) });
      }
      known.usage = usage;
      known.at = at;
    }
    // Only containers running now: removed ones must not accumulate.
    this.confinedSeen = seen;
    return { cores, confined: out };
  }

  /** Runs `create` with the container's cpuset, one at a time: the next choice sees this container. */
  private withCpuset<T>(limits: ContainerSpec["limits"], create: (cpuset: string | undefined) => Promise<T>): Promise<T> {
    if (!limits) return create(undefined);
    const run = this.cpusetChain.then(async () => create(await this.cpusetFor(limits.nanoCpus / 1e9).catch(() => undefined)));
    this.cpusetChain = run.catch(() => undefined);
    return run;
  }

  /** Creates (not starts) a container; a missing image is a non-retryable failure. */
  private create(spec: ContainerSpec, oneOff: boolean): Promise<Dockerode.Container> {
    return this.withCpuset(spec.limits, (cpuset) => this.createWith(spec, oneOff, cpuset));
  }

  private async createWith(spec: ContainerSpec, oneOff: boolean, cpuset: string | undefined): Promise<Dockerode.Container> {
    const exposed = spec.publishPort !== undefined ? { [`${spec.publishPort}/tcp`]: {} } : undefined;
    const options: Dockerode.ContainerCreateOptions = {
      name: spec.name,
      Image: spec.image,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: spec.labels,
      ...(spec.cmd ? { Cmd: spec.cmd } : {}),
      ...(exposed ? { ExposedPorts: exposed } : {}),
      HostConfig: {
        // Without an init, a PID 1 that ignores SIGTERM makes every stop wait the full grace period.
        Init: true,
        NetworkMode: spec.network,
        // The environment's database and S3 endpoint on this host are reached through the host gateway.
        ExtraHosts: ["host.docker.internal:host-gateway"],
        // A web container that dies (killed for memory too) is restarted by the engine, with its backoff.
        ...(oneOff ? {} : { RestartPolicy: { Name: "unless-stopped" } }),
        // CPU: a quota (Docker's 100 ms period), a weight in proportion (1024 a core, as Kubernetes
        // derives cpu.shares from a request) and ceil(limit) cores of the host's (cpuset.ts).
        ...(spec.limits
          ? { Memory: spec.limits.memoryBytes, MemorySwap: spec.limits.memoryBytes, NanoCpus: spec.limits.nanoCpus, CpuShares: Math.max(2, Math.round((spec.limits.nanoCpus / 1e9) * 1024)), PidsLimit: spec.limits.pids }
          : {}),
        ...(cpuset ? { CpusetCpus: cpuset } : {}),
        // Whatever the daemon's default driver, a container's log is bounded: json-file (which
        // `docker logs` and the runtime-log API read, following across a rotation), rotated.
        LogConfig: { Type: "json-file", Config: { "max-size": `${this.logRotation.maxMb}m`, "max-file": String(this.logRotation.maxFiles) } },
        ...(exposed ? { PortBindings: { [`${spec.publishPort}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] } } : {}),
      },
    };
    try {
      return await this.docker.createContainer(options);
    } catch (err) {
      // 404 also means "no such network"; only the image check tells them apart.
      if (statusOf(err) === 404 && (await this.imageInfo(spec.image)) === undefined) {
        throw new StepFailure("image_not_found", `image ${spec.image} does not exist on this host`, false);
      }
      throw toStepFailure(err, `create container ${spec.name}`);
    }
  }

  private async removeQuietly(container: Dockerode.Container, name: string): Promise<void> {
    try {
      await container.remove({ force: true });
    } catch (err) {
      // 409: removal already in progress, which ends the same way.
      if (!isGone(err, 409)) this.log.warn({ container: name, err }, "container removal failed; left for cleanup");
    }
  }

  async inspect(id: string): Promise<ContainerStatus | undefined> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      const hostPort = loopbackPort(info.NetworkSettings?.Ports as PortMap);
      const address = info.State.Running ? networkAddress(info.NetworkSettings?.Networks) : undefined;
      return {
        id: info.Id,
        // A container in a restart loop shows Running between crashes; Restarting and RestartCount tell.
        running: info.State.Running && !info.State.Restarting,
        exitCode: info.State.Running || info.State.Status === "created" ? null : info.State.ExitCode,
        oomKilled: Boolean(info.State.OOMKilled),
        restartCount: info.RestartCount ?? 0,
        ...(hostPort !== undefined ? { hostPort } : {}),
        ...(address ? { address } : {}),
      };
    } catch (err) {
      if (isGone(err)) return undefined;
      throw toStepFailure(err, `inspect container ${id}`);
    }
  }

  async logsTail(id: string, lines: number): Promise<string> {
    let raw: Buffer;
    try {
      raw = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail: lines, follow: false })) as Buffer;
    } catch (err) {
      throw toStepFailure(err, `logs of ${id}`);
    }
    const out: string[] = [];
    const sink = lineSink((l) => out.push(l));
    const source = new PassThrough();
    const done = new Promise((resolve) => source.once("end", resolve));
    this.docker.modem.demuxStream(source, sink, sink);
    source.end(raw);
    await done;
    sink.flush();
    return out.slice(-lines).join("\n");
  }

  async startExisting(id: string): Promise<boolean> {
    try {
      await this.docker.getContainer(id).start();
      this.log.info({ id }, "container started again");
      return true;
    } catch (err) {
      if (isGone(err)) return false;
      // 304: already running, which is what the caller wants.
      if (statusOf(err) === 304) return true;
      throw toStepFailure(err, `start container ${id}`);
    }
  }

  async stop(id: string, graceSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: graceSeconds });
      this.log.info({ id }, "container stopped");
    } catch (err) {
      if (isGone(err) || statusOf(err) === 304) return;
      throw toStepFailure(err, `stop container ${id}`);
    }
  }

  async stopAndRemove(id: string, graceSeconds: number): Promise<void> {
    const container = this.docker.getContainer(id);
    try {
      await container.stop({ t: graceSeconds });
    } catch (err) {
      // 304: already stopped; 404: already gone. Both are the state we want.
      if (isGone(err)) return;
      if (statusOf(err) !== 304) throw toStepFailure(err, `stop container ${id}`);
    }
    try {
      await container.remove({ force: true });
      this.log.info({ id }, "container stopped and removed");
    } catch (err) {
      if (!isGone(err, 409)) throw toStepFailure(err, `remove container ${id}`);
    }
  }

  async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    try {
      const found = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } });
      return found.map((c) => ({
        id: c.Id,
        name: (c.Names?.[0] ?? "").replace(/^\//, ""),
        state: c.State,
        labels: c.Labels ?? {},
      }));
    } catch (err) {
      throw toStepFailure(err, "list containers");
    }
  }

  watchOomKills(labels: Record<string, string>, onOom: (kill: OomKill) => void): () => void {
    let stopped = false;
    let current: Readable | undefined;
    const filters = { type: ["container" as const], event: ["oom"], label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    const run = async (): Promise<void> => {
      while (!stopped) {
        try {
          const stream = (await this.docker.getEvents({ filters })) as unknown as Readable;
          current = stream;
          let buf = "";
          await new Promise<void>((resolve) => {
            stream.on("data", (chunk: Buffer) => {
              buf += chunk.toString("utf8");
              for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
                const line = buf.slice(0, nl).trim();
                buf = buf.slice(nl + 1);
                if (!line) continue;
                try {
                  const ev = JSON.parse(line) as { id?: string; time?: number; Actor?: { ID?: string; Attributes?: Record<string, string> } };
                  const attrs = ev.Actor?.Attributes ?? {};
                  const { name = "", image: _image, ...rest } = attrs;
                  onOom({ id: ev.Actor?.ID ?? ev.id ?? "", name, labels: rest, at: ev.time ? new Date(ev.time * 1000) : new Date() });
                } catch (err) {
                  this.log.warn({ err: (err as Error).message }, "unreadable docker event");
                }
              }
            });
            stream.once("end", resolve);
            stream.once("close", resolve);
            stream.once("error", () => resolve());
          });
        } catch (err) {
          if (!stopped) this.log.warn({ err: (err as Error).message }, "cannot watch docker events; retrying in 1 s");
        }
        if (!stopped) await new Promise((r) => setTimeout(r, 1000));
      }
    };
    void run();
    return () => {
      stopped = true;
      current?.destroy();
    };
  }

  async logs(id: string, opts: { follow: boolean; since: number; tail: number; signal?: AbortSignal }, onLine: (line: string) => void): Promise<void> {
    if (opts.signal?.aborted) return;
    if (!opts.follow) {
      const got = (await this.docker.getContainer(id).logs({ follow: false, stdout: true, stderr: true, timestamps: true, since: opts.since, tail: opts.tail })) as unknown;
      // Without follow, dockerode hands back the whole multiplexed log as one buffer.
      for (const line of demuxBuffer(got as Buffer).split("\n").filter(Boolean)) onLine(line);
      return;
    }
    // Followed: anew from the last delivered line whenever the engine's follow is stuck behind a rotation,
    // or ends while the container still runs (log-follow.ts).
    const delivered = new DeliveredFilter();
    let from: { since: number | string; tail: number | "all" } = { since: opts.since, tail: opts.tail };
    let endedAt = 0;
    while (!opts.signal?.aborted) {
      const stuck = await this.followOnce(id, from, delivered, opts.signal, onLine);
      if (opts.signal?.aborted) return;
      if (stuck) {
        this.log.info({ container: id }, "a followed log went silent behind a rotation; following anew from its last delivered line");
      } else {
        if (!(await this.isRunning(id))) return;
        // Never a busy loop: an engine that ends every follow at once is asked again at most once a second.
        const wait = endedAt + 1000 - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        endedAt = Date.now();
        this.log.info({ container: id }, "a followed log ended while its container runs; following anew from its last delivered line");
      }
      const last = delivered.lastNs;
      delivered.resume();
      from = { since: last !== undefined ? sinceArg(last) : opts.since, tail: "all" };
    }
  }

  /**
   * Whether more output can come: the engine's Running, a restart loop included (unlike inspect()'s
   * `running`, which leaves a restarting container out: a follow should wait for its next output).
   */
  private async isRunning(id: string): Promise<boolean> {
    const info = await this.docker.getContainer(id).inspect().catch(() => undefined);
    return Boolean(info?.State?.Running);
  }

  /** How long a followed log may be silent before it is checked against the log's last line (and how often, while silent). */
  static followCheckMs = 2000;

  /** One engine follow; resolves true when it was found stuck (the log has newer lines than it delivered), false when it ended (the engine ends a follow when the container stops, and Docker 20.10's also in the middle of a flood of rotations while the container runs). */
  private async followOnce(id: string, from: { since: number | string; tail: number | "all" }, delivered: DeliveredFilter, signal: AbortSignal | undefined, onLine: (line: string) => void): Promise<boolean> {
    const container = this.docker.getContainer(id);
    const raw = (await container.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since: from.since as number, tail: from.tail as number })) as unknown as NodeJS.ReadableStream & { destroy?: () => void };
    let lastActivity = Date.now();
    let stuck = false;
    // Activity is a new line: after a rotation the engine may also re-read what it delivered.
    const sink = lineSink((line) => {
      if (!delivered.admit(line)) return;
      lastActivity = Date.now();
      onLine(line);
    });
    this.docker.modem.demuxStream(raw, sink, sink);
    const stop = () => raw.destroy?.();
    signal?.addEventListener("abort", stop, { once: true });
    let checking = false;
    const check = setInterval(() => {
      if (checking || Date.now() - lastActivity < DockerRuntime.followCheckMs) return;
      checking = true;
      const last = delivered.lastNs;
      void container
        .logs({ follow: false, stdout: true, stderr: true, timestamps: true, tail: 1, since: (last !== undefined ? sinceArg(last) : from.since) as number })
        .then((got) => {
          const line = demuxBuffer(got as unknown as Buffer).split("\n").find(Boolean);
          const ts = line !== undefined ? logTimestampNs(line) : undefined;
          // Only a line newer than any delivered, while the follow stayed silent, says it is stuck.
          if (ts !== undefined && (last === undefined || ts > last) && Date.now() - lastActivity >= DockerRuntime.followCheckMs) {
            stuck = true;
            stop();
          }
        })
        .catch(() => undefined)
        .finally(() => {
          checking = false;
        });
    }, DockerRuntime.followCheckMs);
    try {
      await new Promise<void>((resolve) => {
        raw.on("end", resolve);
        raw.on("close", resolve);
        raw.on("error", () => resolve());
        if (signal?.aborted) stop();
      });
    } finally {
      clearInterval(check);
      signal?.removeEventListener("abort", stop);
      if (!stuck) sink.flush();
    }
    return stuck && !signal?.aborted;
  }

  async exec(id: string, opts: { cmd: string[]; tty: boolean; rows: number; cols: number }, onOutput: (stream: "stdout" | "stderr", chunk: Buffer) => void): Promise<ExecSession> {
    return DockerExecSession.start(this.docker.getContainer(id), id, opts, onOutput, this.docker.modem, this.log);
  }

  async stats(id: string): Promise<DockerStats | undefined> {
    try {
      return (await this.docker.getContainer(id).stats({ stream: false })) as DockerStats;
    } catch (err) {
      if (isGone(err)) return undefined;
      throw err;
    }
  }
}

/** The container's IPv4 address on its first network that has one (the environment's bridge network). */
export function networkAddress(networks: Record<string, { IPAddress?: string }> | undefined): string | undefined {
  for (const n of Object.values(networks ?? {})) if (n?.IPAddress) return n.IPAddress;
  return undefined;
}

/** Docker's multiplexed log format: frames of an 8-byte header (stream, 0, 0, 0, size u32 BE) and a payload. */
export function demuxBuffer(buf: Buffer): string {
  let out = "";
  let i = 0;
  while (i + 8 <= buf.length) {
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString("utf8");
    i += 8 + size;
  }
  // A TTY container's log is not multiplexed.
  return i === 0 && buf.length > 0 ? buf.toString("utf8") : out;
}
