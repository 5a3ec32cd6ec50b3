import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { createLogger, explainGitFailure, gitAuthEnv, gitScratchDir, isValidAppName, splitUrlCredential, StepFailure, sweepGitScratch, type GitAuth, type Logger } from "@slipway/core";
import type { SourceRepository } from "./source-repository.js";

export interface GitSourceOptions {
  /** State directory; the mirror of app `a` lives in `<dir>/a.git`. */
  dir: string;
  logger?: Logger;
  /** A clone or fetch running longer than this is killed (a hung remote must not block the app forever). */
  syncTimeoutMs?: number;
}

interface GitResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const DEFAULT_SYNC_TIMEOUT_MS = 15 * 60_000;
const STDERR_TAIL_LINES = 20;
const COMMIT_RE = /^[0-9a-f]{7,64}$/i;

/** Never prompt for credentials: the agent has no terminal and would hang. */
const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" };

/** Hides `user:password@` in URLs so tokens don't reach logs or failure messages. */
export function redactUrl(text: string): string {
  return text.replace(/(\w+:\/\/)[^/@\s]+@/g, "$1***@");
}

function stderrTail(stderr: string): string {
  const lines = stderr.trim().split("\n").filter((l) => l.trim() !== "");
  return redactUrl(lines.slice(-STDERR_TAIL_LINES).join("\n"));
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs git to completion, collecting its output; rejects only when git cannot be run or times out. */
function runGit(args: string[], timeoutMs?: number, env: Record<string, string> = {}): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, { env: { ...gitEnv, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString("utf8");
      if (timedOut) reject(new Error(`git ${args[0] === "-C" ? args[2] : args[0]} timed out after ${timeoutMs} ms\n${stderr}`));
      else resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr });
    });
  });
}

export class GitSource implements SourceRepository {
  private readonly dir: string;
  private readonly log: Logger;
  private readonly syncTimeoutMs: number;
  /** Tail of the per-app operation chain; calls for one app run one after another. */
  private readonly chains = new Map<string, Promise<void>>();
  /** Where deploy keys are written for one command (tmpfs when there is one). */
  private readonly scratch: string;
  private swept?: Promise<void>;

  constructor(opts: GitSourceOptions) {
    this.dir = opts.dir;
    this.log = (opts.logger ?? createLogger("agent")).child({ component: "git" });
    this.syncTimeoutMs = opts.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS;
    this.scratch = gitScratchDir(opts.dir);
  }

  sync(app: string, url: string, auth?: GitAuth): Promise<void> {
    return this.serial(app, () => this.doSync(app, url, auth));
  }

  resolve(app: string, branch: string): Promise<string> {
    return this.serial(app, () => this.doResolve(app, branch));
  }

  /**
   * Not serialised: it returns a stream synchronously. Safe beside a running
   * fetch, since git writes objects before moving refs and prune only drops refs.
   */
  archive(app: string, commit: string): Readable {
    const out = new PassThrough();
    const invalid = !isValidAppName(app) ? `invalid app name '${app}'` : !COMMIT_RE.test(commit) ? `'${commit}' is not a commit sha` : undefined;
    if (invalid) {
      process.nextTick(() => out.destroy(new StepFailure("git_archive_failed", invalid, false)));
      return out;
    }
    const mirror = this.mirrorPath(app);
    const child = spawn("git", ["-C", mirror, "archive", "--format=tar", commit], { env: gitEnv, stdio: ["ignore", "pipe", "pipe"] });
    const err: Buffer[] = [];
    child.stderr.on("data", (b: Buffer) => err.push(b));
    // Ending is decided on exit, not on stdout's end: a git that dies mid-way must
    // surface as an error, never as a short but "complete" tar.
    child.stdout.pipe(out, { end: false });
    let failed = false;
    const fail = (message: string, cause?: unknown) => {
      if (failed) return;
      failed = true;
      this.log.warn({ app, commit, message }, "git archive failed");
      out.destroy(new StepFailure("git_archive_failed", message, false, undefined, { cause }));
    };
    child.once("error", (e) => fail(`git archive could not run: ${e.message}`, e));
    child.once("close", (code, signal) => {
      if (code === 0) out.end();
      else fail(stderrTail(Buffer.concat(err).toString("utf8")) || `git archive exited with ${code ?? signal}`);
    });
    // A consumer that gives up (a cancelled build) must not leave git writing into a full pipe.
    out.once("close", () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    return out;
  }

  private mirrorPath(app: string): string {
    return join(this.dir, `${app}.git`);
  }

  private serial<T>(app: string, fn: () => Promise<T>): Promise<T> {
    if (!isValidAppName(app)) {
      return Promise.reject(new StepFailure("invalid_app_name", `invalid app name '${app}'`, false));
    }
    const prev = this.chains.get(app) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.chains.set(app, tail);
    void tail.then(() => {
      if (this.chains.get(app) === tail) this.chains.delete(app);
    });
    return run;
  }

  private async doSync(app: string, url: string, auth?: GitAuth): Promise<void> {
    if (url.startsWith("-")) throw new StepFailure("git_sync_failed", `invalid repository url '${redactUrl(url)}'`, false);
    const started = Date.now();
    const mirror = this.mirrorPath(app);
    const fresh = !(await exists(join(mirror, "HEAD")));
    // The credential never reaches the mirror's config: git records the bare URL.
    const remote = splitUrlCredential(url);
    // The deploy key and the pinned host keys live in a private directory (tmpfs) for this one command.
    await (this.swept ??= sweepGitScratch(this.scratch).then((n) => void (n > 0 && this.log.info({ removed: n }, "removed deploy keys left by a killed agent"))));
    const ssh = await gitAuthEnv(this.scratch, auth);
    try {
      const env = { ...remote.env, ...ssh.env };
      if (fresh) await this.clone(remote.url, mirror, env);
      else await this.fetch(remote.url, mirror, env);
    } catch (err) {
      // What the git host said, in words a user can act on (a refused key, a changed host key).
      const explained = err instanceof StepFailure ? explainGitFailure(err.message, url) : undefined;
      if (explained) throw new StepFailure("git_sync_failed", `cannot read ${redactUrl(remote.url)}: ${explained.reason}\n${err instanceof Error ? err.message : ""}`.trim(), explained.retryable, undefined, { cause: err });
      throw err;
    } finally {
      await ssh.cleanup();
    }
    this.log.info({ app, url: redactUrl(url), clone: fresh, ssh: auth?.sshPrivateKey !== undefined, ms: Date.now() - started }, "source synced");
  }

  /** Clones beside the target and renames, so a crash mid-clone never leaves a half mirror in place. */
  private async clone(url: string, mirror: string, env: Record<string, string>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await rm(mirror, { recursive: true, force: true });
    const tmp = `${mirror}.tmp-${randomBytes(4).toString("hex")}`;
    try {
      await this.gitOrFail(["clone", "--mirror", "--quiet", "--", url, tmp], "git clone", env);
      await rename(tmp, mirror);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  private async fetch(url: string, mirror: string, env: Record<string, string>): Promise<void> {
    // The URL may have changed in the app's settings since the clone (and an older agent may
    // have recorded it with its credential): set it, bare, every time.
    await this.gitOrFail(["-C", mirror, "remote", "set-url", "origin", url], "git remote set-url");
    await this.gitOrFail(["-C", mirror, "fetch", "--prune", "--quiet", "origin"], "git fetch", env);
  }

  private async gitOrFail(args: string[], what: string, env: Record<string, string> = {}): Promise<void> {
    let res: GitResult;
    try {
      res = await runGit(args, this.syncTimeoutMs, env);
    } catch (err) {
      throw new StepFailure("git_sync_failed", redactUrl(`${what}: ${(err as Error).message}`), true, undefined, { cause: err });
    }
    if (res.code !== 0) {
      // Retryable: most failures here are a remote that is down or unreachable for a moment.
      throw new StepFailure("git_sync_failed", stderrTail(res.stderr) || `${what} exited with ${res.code}`, true);
    }
  }

  private async doResolve(app: string, branch: string): Promise<string> {
    const mirror = this.mirrorPath(app);
    if (!(await exists(join(mirror, "HEAD")))) {
      throw new StepFailure("source_not_synced", `no mirror for app '${app}': sync it first`, false);
    }
    // refs/heads/ keeps a branch name from being read as a tag, a sha or an option.
    const res = await runGit(["-C", mirror, "rev-parse", "--verify", "--quiet", `refs/heads/${branch}^{commit}`]);
    if (res.code === 0) return res.stdout.trim();
    if (res.code === 1) {
      const origin = await runGit(["-C", mirror, "config", "--get", "remote.origin.url"]);
      throw new StepFailure("branch_not_found", `branch '${branch}' does not exist in ${redactUrl(origin.stdout.trim())}`, false);
    }
    throw new StepFailure("git_resolve_failed", stderrTail(res.stderr) || `git rev-parse exited with ${res.code}`, true);
  }
}
