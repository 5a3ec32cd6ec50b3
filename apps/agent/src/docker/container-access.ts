/**
 * What the agent does inside running containers besides running them
 * (ContainerRuntime): read their output (runtime logs), run commands in them
 * (shells), read their resource use (metrics). Narrow interfaces, one per
 * user, each implemented by DockerRuntime; the log server, the shell server
 * and the metrics sampler know only these.
 */

/** Reads containers' output for the runtime log. */
export interface ContainerLogReader {
  /**
   * Calls onLine with each line of the container's output (stdout and stderr
   * interleaved, each prefixed with Docker's RFC 3339 timestamp): at most
   * `tail` earlier lines since `since` (Unix seconds, 0 = from the start);
   * with `follow`, then new lines as they come. Resolves when the output ends:
   * at once without follow, else when the container stops or `signal` aborts.
   * A last line without a newline is delivered too. Safe to call concurrently.
   */
  logs(id: string, opts: { follow: boolean; since: number; tail: number; signal?: AbortSignal }, onLine: (line: string) => void): Promise<void>;
}

/** A container the kernel killed for exceeding its memory limit (Docker's `oom` event). */
export interface OomKill {
  id: string;
  name: string;
  labels: Record<string, string>;
  at: Date;
}

/** Watches the engine for containers killed for memory. */
export interface ContainerEventWatcher {
  /**
   * Calls onOom for every container carrying all `labels` that the kernel kills for its memory
   * limit, from now on; reconnects to the engine when its event stream breaks. Returns a stop function.
   */
  watchOomKills(labels: Record<string, string>, onOom: (kill: OomKill) => void): () => void;
}

/** Starts commands in running containers, for shells. */
export interface ContainerExecutor {
  /**
   * Starts `cmd` in the running container `id`, input attached; with `tty`, in
   * a pseudo-terminal of rows × cols (TERM=xterm-256color). Output goes to
   * onOutput as it comes (with a terminal everything is "stdout"). Resolves
   * once the command runs. Safe to call concurrently.
   */
  exec(id: string, opts: { cmd: string[]; tty: boolean; rows: number; cols: number }, onOutput: (stream: "stdout" | "stderr", chunk: Buffer) => void): Promise<ExecSession>;
}

/** One command started by ContainerExecutor.exec. */
export interface ExecSession {
  /** Input to the command. */
  write(chunk: Uint8Array): void;
  /**
   * The end of the input. Without a terminal the command reads end-of-file;
   * with one it reads the terminal's end-of-file character (Ctrl-D), as at a
   * keyboard, because closing a terminal's input makes Docker drop the
   * session, output and exit status included, while the command still runs.
   */
  endInput(): void;
  /** A new terminal size; ignored without a terminal, failures ignored. */
  resize(rows: number, cols: number): Promise<void>;
  /**
   * Settles when the command's output has ended: with its exit status once
   * Docker has recorded it (which can lag behind the end of the output, so it
   * is waited for, a few seconds at most), or `undefined` when the command
   * still runs by then (it closed its output and went on, or close() dropped
   * the session). Never -1 or any status the command did not exit with.
   */
  readonly exit: Promise<number | undefined>;
  /** Drops the connection to the command; the command itself goes on (see hangUp). */
  close(): void;
  /**
   * For a client that went away: drops the connection and stops the command
   * (SIGHUP, then SIGKILL after 2 s), as an SSH server does when the
   * connection drops, since Docker's exec API cannot signal an exec'd process.
   */
  hangUp(): Promise<void>;
}

/** The CPU part of Docker's stats (`cpu_stats` and `precpu_stats`), in nanoseconds. */
export interface CpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] | null };
  system_cpu_usage?: number;
  online_cpus?: number;
}

/** The fields of `GET /containers/{id}/stats` the agent reads. */
export interface DockerStats {
  cpu_stats?: CpuStats;
  precpu_stats?: CpuStats;
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
}

/** Reads one container's stats; the narrow part of the Docker API the metrics sampler needs. */
export interface ContainerStatsReader {
  /** One reading (not a stream); undefined when the container is gone. Safe to call concurrently. */
  stats(id: string): Promise<DockerStats | undefined>;
}
