import { PassThrough, type Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import type { Logger } from "@slipway/core";
import type { ExecSession } from "./container-access.js";

/**
 * How long, after a command's output ended, Docker may take to record its exit
 * (the exit event is processed apart from the output streams; under load it
 * lags by more than the inspect that follows the end of the output).
 */
const EXIT_RECORDED_WITHIN_MS = 5_000;
/** How long after its start Docker may report a running command without its pid. */
const PID_KNOWN_WITHIN_MS = 2_000;
/** The terminal's end-of-file character (Ctrl-D). */
const EOT = Buffer.from([4]);

/** A command started with `docker exec`, attached both ways over one hijacked connection. */
export class DockerExecSession implements ExecSession {
  readonly exit: Promise<number | undefined>;
  private closed = false;

  private constructor(
    private readonly exec: Dockerode.Exec,
    private readonly stream: Duplex,
    private readonly tty: boolean,
    private readonly container: string,
    private readonly log: Logger,
    onOutput: (stream: "stdout" | "stderr", chunk: Buffer) => void,
    modem: { demuxStream(stream: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): void },
  ) {
    if (tty) stream.on("data", (chunk: Buffer) => onOutput("stdout", chunk));
    else {
      const out = new PassThrough();
      const err = new PassThrough();
      out.on("data", (chunk: Buffer) => onOutput("stdout", chunk));
      err.on("data", (chunk: Buffer) => onOutput("stderr", chunk));
      modem.demuxStream(stream, out, err);
    }
    const ended = new Promise<void>((resolve) => {
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", () => resolve());
    });
    this.exit = ended.then(() => this.exitCode());
  }

  static async start(
    container: Dockerode.Container,
    name: string,
    opts: { cmd: string[]; tty: boolean; rows: number; cols: number },
    onOutput: (stream: "stdout" | "stderr", chunk: Buffer) => void,
    modem: { demuxStream(stream: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): void },
    log: Logger,
  ): Promise<DockerExecSession> {
    const exec = await container.exec({
      Cmd: opts.cmd,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: opts.tty,
      Env: opts.tty ? ["TERM=xterm-256color"] : [],
    });
    const stream = (await exec.start({ hijack: true, stdin: true, Tty: opts.tty })) as Duplex;
    const session = new DockerExecSession(exec, stream, opts.tty, name, log, onOutput, modem);
    if (opts.tty && opts.rows > 0 && opts.cols > 0) await session.resize(opts.rows, opts.cols);
    return session;
  }

  write(chunk: Uint8Array): void {
    if (!this.closed) this.stream.write(chunk);
  }

  endInput(): void {
    if (this.closed) return;
    // Half-closing a terminal session's connection makes Docker end the whole session, output and
    // exit status included, while the command still runs: a terminal's end of input is Ctrl-D.
    if (this.tty) this.stream.write(EOT);
    else this.stream.end();
  }

  async resize(rows: number, cols: number): Promise<void> {
    if (!this.tty || rows <= 0 || cols <= 0) return;
    await this.exec.resize({ h: rows, w: cols }).catch(() => undefined);
  }

  close(): void {
    this.closed = true;
    this.stream.destroy();
  }

  async hangUp(): Promise<void> {
    this.close();
    for (const signal of ["SIGHUP", "SIGKILL"] as const) {
      if (signal === "SIGKILL") await sleep(2000);
      const pid = await this.runningPid();
      if (pid === undefined) return;
      try {
        process.kill(pid, signal);
        this.log.info({ container: this.container, pid, signal }, "stopped the command of an abandoned shell session");
      } catch (err) {
        // An agent in another pid namespace than dockerd cannot see the process.
        this.log.warn({ container: this.container, pid, err: (err as Error).message }, "could not stop the command of an abandoned shell session");
        return;
      }
    }
  }

  /** The command's host pid while it runs; right after the start Docker reports it running with pid 0 for a moment. */
  private async runningPid(): Promise<number | undefined> {
    const until = Date.now() + PID_KNOWN_WITHIN_MS;
    for (let pauseMs = 10; ; pauseMs = Math.min(pauseMs * 2, 250)) {
      const info = await this.exec.inspect().catch(() => undefined);
      if (!info?.Running) return undefined;
      // Never 0: process.kill(0) would signal the agent's own process group.
      if (info.Pid > 0) return info.Pid;
      if (Date.now() >= until) return undefined;
      await sleep(pauseMs);
    }
  }

  /** The exit status, once Docker has recorded it; undefined when the command still runs after EXIT_RECORDED_WITHIN_MS. */
  private async exitCode(): Promise<number | undefined> {
    const until = Date.now() + EXIT_RECORDED_WITHIN_MS;
    for (let pauseMs = 10; ; pauseMs = Math.min(pauseMs * 2, 250)) {
      const info = await this.exec.inspect().catch((err: unknown) => {
        this.log.warn({ container: this.container, err: (err as Error).message }, "could not inspect a finished shell command");
        return undefined;
      });
      if (info && !info.Running && typeof info.ExitCode === "number") return info.ExitCode;
      if (!info || Date.now() >= until) return undefined;
      await sleep(pauseMs);
    }
  }
}
