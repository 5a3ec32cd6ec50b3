import { execFile } from "node:child_process";
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { explainGitFailure, gitAuthEnv, type GitAuth, type Logger } from "@slipway/core";
import { redactUrls } from "../services/repository-credential.js";

function git(args: string[], opts: { cwd?: string; timeoutMs: number; env?: Record<string, string> }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("git", args, { cwd: opts.cwd, timeout: opts.timeoutMs, env: { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C", ...opts.env }, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) =>
      // The URL git was given may carry a credential: git repeats it in some messages.
      err ? reject(new Error(redactUrls(`git ${args.find((a) => !a.startsWith("-") && !a.includes("="))}: ${String(stderr || err.message).trim().slice(-500)}`))) : resolve(stdout.trim()),
    );
  });
}

/** How to reach an app's repository right now (URL with its token, deploy key, pinned host keys). */
export interface MirrorSource {
  app: string;
  /** As shown (no credential): for messages. */
  shownUrl: string;
  /** Resolved when a fetch starts: secrets are opened only for the git process. */
  access: () => Promise<{ url: string; auth?: GitAuth }>;
  /** Seconds between background fetches; 0 = never (webhooks and deployments only). */
  intervalSeconds: number;
}

export interface MirrorState {
  /** The last fetch that succeeded. */
  syncedAt: string | null;
  /** Why the last fetch failed (null when it succeeded). */
  error: string | null;
  /** A fetch is running now. */
  syncing: boolean;
}

export interface PendingCommit {
  sha: string;
  author: string;
  at: string;
  message: string;
}

const MAX_BACKOFF_SECONDS = 3600;

/**
 * The control plane's bare mirror of each app's repository under `dir`, refreshed in the
 * background (every app's poll interval, at once on a push webhook), never while a status is
 * read: reading a status asks only the local mirror. A fetch that fails keeps the mirror as it
 * was and is tried again later, backing off (interval × 2^failures, at most an hour). The
 * repository URL is handed to each fetch and never written into the mirror (no origin, no
 * FETCH_HEAD): it may carry a credential.
 */
export class RepositoryMirrors {
  private readonly state = new Map<string, { syncedAt: number | null; attemptAt: number; failures: number; error: string | null }>();
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Mirrors checked for an origin remote this run (earlier versions cloned with one). */
  private readonly noOrigin = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(private readonly opts: { dir: string; log: Logger; timeoutMs?: number; readTimeoutMs?: number; maxConcurrent?: number }) {}

  private mirror(app: string): string {
    return path.join(this.opts.dir, `${app}.git`);
  }

  /**
   * Polls: every `tickMs`, starts fetching the apps (from `sources`) whose interval (with backoff)
   * has passed since their last attempt, at most `maxConcurrent` fetches running at once.
   */
  start(sources: () => Promise<MirrorSource[]>, tickMs = 2_000): void {
    const tick = async () => {
      if (this.ticking) return;
      this.ticking = true;
      try {
        const now = Date.now();
        // Started, not awaited: a git host that hangs holds its own fetch (until the timeout), never the others'.
        const room = Math.max(0, (this.opts.maxConcurrent ?? 4) - this.inFlight.size);
        for (const s of (await sources()).filter((x) => this.due(x, now)).slice(0, room)) void this.refresh(s);
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, "repository poll failed");
      } finally {
        this.ticking = false;
      }
    };
    this.timer = setInterval(() => void tick(), tickMs);
    this.timer.unref();
    void tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private due(s: MirrorSource, now: number): boolean {
    if (this.inFlight.has(s.app)) return false;
    const st = this.state.get(s.app);
    // Never fetched by this process: at once (a new app, or a restart).
    if (!st) return true;
    if (s.intervalSeconds <= 0) return false;
    const wait = Math.min(s.intervalSeconds * 2 ** st.failures, Math.max(MAX_BACKOFF_SECONDS, s.intervalSeconds));
    return now - st.attemptAt >= wait * 1000;
  }

  /** What the mirror knows: when it last synced, and why the last fetch failed. */
  syncState(app: string): MirrorState {
    const st = this.state.get(app);
    return { syncedAt: st?.syncedAt ? new Date(st.syncedAt).toISOString() : null, error: st?.error ?? null, syncing: this.inFlight.has(app) };
  }

  /** Fetches now (joins a fetch already running); never throws: a failure is in syncState. */
  refresh(s: MirrorSource): Promise<void> {
    const running = this.inFlight.get(s.app);
    if (running) return running;
    const p = this.fetch(s).finally(() => this.inFlight.delete(s.app));
    this.inFlight.set(s.app, p);
    return p;
  }

  private async fetch(s: MirrorSource): Promise<void> {
    const dir = this.mirror(s.app);
    const timeoutMs = this.opts.timeoutMs ?? 60_000;
    const started = Date.now();
    const st = this.state.get(s.app) ?? { syncedAt: null, attemptAt: 0, failures: 0, error: null };
    st.attemptAt = started;
    this.state.set(s.app, st);
    let cleanup = async () => undefined as void;
    try {
      const { url, auth } = await s.access();
      const exists = await stat(dir).then(
        () => true,
        () => false,
      );
      if (!exists) {
        await mkdir(this.opts.dir, { recursive: true });
        await git(["init", "--bare", "--quiet", dir], { timeoutMs }).catch(async (err: unknown) => {
          await rm(dir, { recursive: true, force: true });
          throw err;
        });
      } else if (!this.noOrigin.has(s.app)) {
        await git(["config", "--remove-section", "remote.origin"], { cwd: dir, timeoutMs }).catch(() => undefined);
      }
      this.noOrigin.add(s.app);
      const ssh = await gitAuthEnv(this.opts.dir, auth);
      cleanup = ssh.cleanup;
      // No credential helper either: one configured for this user could store the credential.
      await git(["-c", "credential.helper=", "fetch", "--prune", "--quiet", "--no-tags", "--no-write-fetch-head", "--", url, "+refs/heads/*:refs/heads/*"], { cwd: dir, timeoutMs, env: ssh.env });
      Object.assign(st, { syncedAt: Date.now(), failures: 0, error: null });
      this.opts.log.debug({ app: s.app, ms: Date.now() - started }, "repository mirror refreshed");
    } catch (err) {
      const raw = (err as Error).message;
      const explained = explainGitFailure(raw, s.shownUrl);
      const error = explained ? explained.reason : /timed out|ETIMEDOUT|SIGTERM/i.test(raw) || Date.now() - started >= timeoutMs ? `no answer from the git host within ${Math.round(timeoutMs / 1000)} s` : raw;
      st.failures = Math.min(st.failures + 1, 12);
      st.error = error;
      this.opts.log.warn({ app: s.app, err: error, failures: st.failures }, "could not refresh the repository mirror; commit counts may be stale");
    } finally {
      await cleanup();
    }
  }

  /** Commits on `branch` that `deployedCommit` does not contain, from the mirror as it is; undefined when unknown. */
  async undeployedCommits(app: string, branch: string, deployedCommit: string): Promise<number | undefined> {
    try {
      const out = await git(["rev-list", "--count", `${deployedCommit}..refs/heads/${branch}`, "--"], { cwd: this.mirror(app), timeoutMs: this.opts.readTimeoutMs ?? 5_000 });
      const n = Number(out);
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** The undeployed commits themselves, newest first (at most `limit`); undefined when unknown. */
  async pendingCommits(app: string, branch: string, deployedCommit: string | null, limit = 100): Promise<PendingCommit[] | undefined> {
    const range = deployedCommit ? `${deployedCommit}..refs/heads/${branch}` : `refs/heads/${branch}`;
    try {
      const out = await git(["log", `--max-count=${limit}`, "--format=%H%x1f%an <%ae>%x1f%aI%x1f%s%x1e", range, "--"], { cwd: this.mirror(app), timeoutMs: this.opts.readTimeoutMs ?? 5_000 });
      return out
        .split("\x1e")
        .map((r) => r.trim())
        .filter((r) => r !== "")
        .map((r) => {
          const [sha, author, at, message] = r.split("\x1f");
          return { sha: sha!, author: author!, at: at!, message: message ?? "" };
        });
    } catch {
      return undefined;
    }
  }

  /** Whether the mirror has the commit (a deployment may have shipped a commit fetched after the last refresh). */
  async hasCommit(app: string, sha: string): Promise<boolean> {
    return git(["cat-file", "-e", `${sha}^{commit}`], { cwd: this.mirror(app), timeoutMs: this.opts.readTimeoutMs ?? 5_000 }).then(
      () => true,
      () => false,
    );
  }
}
