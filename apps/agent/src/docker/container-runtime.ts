import type { Readable } from "node:stream";

/** What to run: a web container or a one-off release container. */
export interface ContainerSpec {
  name: string;
  image: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Docker network the container joins (created with ensureNetwork first). */
  network: string;
  /** Container port to publish on 127.0.0.1:<ephemeral>; omit for one-off containers. */
  publishPort?: number;
  /** Command override, e.g. ["sh", "-c", "python manage.py migrate"]. */
  cmd?: string[];
  /** What the container may take; absent = unbounded. */
  limits?: ContainerLimits;
}

/** Enforced by the engine: memory (swap included: none beyond it), CPU (1e9 nano-CPUs = one core), processes. */
export interface ContainerLimits {
  memoryBytes: number;
  nanoCpus: number;
  pids: number;
}

export interface RunningContainer {
  id: string;
  name: string;
  /** The host port bound on 127.0.0.1 for publishPort, when published. */
  hostPort?: number;
  /** The container's IPv4 address on its (environment's) network, which the host reaches directly. */
  address?: string;
}

export interface ContainerStatus {
  id: string;
  running: boolean;
  exitCode: number | null;
  /** The kernel killed it for exceeding its memory limit (its last exit, when it was restarted since). */
  oomKilled: boolean;
  /** How often the engine restarted it (restart policy); > 0 means its process exited at least once. */
  restartCount: number;
  hostPort?: number;
  address?: string;
}

/** How a one-off ended: its exit code (null when killed for the timeout), and whether the kernel killed it for memory. */
export interface OneOffResult {
  exitCode: number | null;
  timedOut: boolean;
  oomKilled: boolean;
}

export interface ContainerSummary {
  id: string;
  name: string;
  state: string; // docker's state: running, exited, created, ...
  labels: Record<string, string>;
}

export interface ImageInfo {
  id: string;
  /** Ports from the image's EXPOSE, tcp only, ascending. */
  exposedPorts: number[];
}

/**
 * The subset of the Docker Engine the agent uses. Every method is safe to call
 * concurrently for different containers. Failures are thrown as StepFailure
 * (from @slipway/core) with a type and retryability where the cause is known.
 */
export interface ContainerRuntime {
  /** undefined when the image does not exist locally. */
  imageInfo(tag: string): Promise<ImageInfo | undefined>;
  /**
   * Builds `tag` from a tar stream of the build context (Dockerfile at its root).
   * Streams build output line by line to onLog. A Dockerfile error throws
   * StepFailure("build_failed", …, retryable=false).
   */
  buildImage(context: Readable, tag: string, opts: { labels: Record<string, string>; noCache: boolean; onLog: (line: string) => void }): Promise<ImageInfo>;
  /** Creates a bridge network if missing. Idempotent. */
  ensureNetwork(name: string, labels: Record<string, string>): Promise<void>;
  /** Removes a network; missing is fine. */
  removeNetwork(name: string): Promise<void>;
  /** Creates and starts a container (init: true, restart policy unless-stopped for web containers). */
  start(spec: ContainerSpec): Promise<RunningContainer>;
  /**
   * Runs a one-off container to completion, streaming its output (stdout and
   * stderr) to onLog line by line; kills it after timeoutMs; always removes it.
   */
  runOneOff(spec: ContainerSpec, opts: { timeoutMs: number; onLog: (line: string) => void; signal?: AbortSignal }): Promise<OneOffResult>;
  /** undefined when the container does not exist. */
  inspect(id: string): Promise<ContainerStatus | undefined>;
  /** The last `lines` lines of the container's output. */
  logsTail(id: string, lines: number): Promise<string>;
  /**
   * Starts an existing, stopped container again (`docker start`): it keeps its
   * env and labels but gets a new host port. Already running is fine; false
   * when the container no longer exists.
   */
  startExisting(id: string): Promise<boolean>;
  /** SIGTERM, wait up to graceSeconds, then kill; the container is kept. Missing or already stopped is fine. */
  stop(id: string, graceSeconds: number): Promise<void>;
  /** SIGTERM, wait up to graceSeconds, then kill; then remove. Missing container is fine. */
  stopAndRemove(id: string, graceSeconds: number): Promise<void>;
  /** Containers (running or not) carrying all the given labels. */
  list(labels: Record<string, string>): Promise<ContainerSummary[]>;
}
