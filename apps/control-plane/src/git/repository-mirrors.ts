import { execFile } from "node:child_process";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { explainGitFailure, gitAuthEnv, gitScratchDir, splitUrlCredential, sweepGitScratch, type GitAuth, type Logger } from "@slipway/core";
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
  /** The app's id: its mirror's name (a recreated app of the same name starts afresh). */
  id: string;
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
const SHA_RE = /^[0-9a-f]{7,64}$/i;
const BRANCH_RE = /^(?!-)[^\s~^:?*[\\]+$/;

/**
 * The control plane's bare mirror of each app's repository under `dir` (named by the app's id),
 * refreshed in the background (every app's poll interval, at once on a push webhook), never while
 * a status is read: reading a status asks only the local mirror. A fetch that fails keeps the
 * mirror as it was and is tried again later, backing off (interval × 2^failures, at most an hour).
 * The repository's credential is handed to each fetch in its environment (never its argv, never
 * written into the mirror: no origin, no FETCH_HEAD).
 */
export class RepositoryMirrors {
  private readonly state = new Map<string, { syncedAt: number | null; attemptAt: number; failures: number; error: string | null }>();
  private readonly inFlight = new Map<string, Promise<void>>();
  /** A refresh asked for while a fetch ran: one more fetch after it (the push may have landed after it started). */
  private readonly again = new Map<string, MirrorSource>();
  /** Mirrors checked for an origin remote this run (earlier versions cloned with one). */
  private readonly noOrigin = new Set<string>();
  private readonly scratch: string;
  private swept?: Promise<void>;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private ticks = 0;

  constructor(private readonly opts: { dir: string; log: Logger; timeoutMs?: number; readTimeoutMs?: number; maxConcurrent?: number }) {
    this.scratch = gitScratchDir(opts.dir);
  }

  private mirror(id: string): string {
    return path.join(this.opts.dir, `${id}.git`);
  }

  /**
   * Polls: every `tickMs`, starts fetching the apps (from `sources`) whose interval (with backoff)
   * has passed since their last attempt, at most `maxConcurrent` fetches running at once; now and
   * then removes the mirrors of apps that are gone.
   */
  start(sources: () => Promise<MirrorSource[]>, tickMs = 2_000): void {
    const tick = async () => {
      if (this.ticking) return;
      this.ticking = true;
      try {
        const now = Date.now();
        const all = await sources();
        // Started, not awaited: a git host that hangs holds its own fetch (until the timeout), never the others'.
        const room = Math.max(0, (this.opts.maxConcurrent ?? 4) - this.inFlight.size);
        for (const s of all.filter((x) => this.due(x, now)).slice(0, room)) void this.refresh(s);
        if (this.ticks++ % 150 === 0) await this.removeOrphans(new Set(all.map((x) => x.id)));
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

  private async removeOrphans(ids: Set<string>): Promise<void> {
    for (const name of await readdir(this.opts.dir).catch(() => [] as string[])) {
      const id = name.endsWith(".git") ? name.slice(0, -4) : undefined;
      if (!id || ids.has(id) || this.inFlight.has(id)) continue;
      await rm(path.join(this.opts.dir, name), { recursive: true, force: true });
      this.state.delete(id);
      this.opts.log.info({ mirror: name }, "removed the mirror of an app that is gone");
    }
  }

  private due(s: MirrorSource, now: number): boolean {
    if (this.inFlight.has(s.id)) return false;
    const st = this.state.get(s.id);
    // Never fetched by this process: at once (a new app, or a restart).
    if (!st) return true;
    if (s.intervalSeconds <= 0) return false;
    const wait = Math.min(s.intervalSeconds * 2 ** st.failures, Math.max(MAX_BACKOFF_SECONDS, s.intervalSeconds));
    return now - st.attemptAt >= wait * 1000;
  }

  /** What the mirror knows: when it last synced, and why the last fetch failed. */
  syncState(id: string): MirrorState {
    const st = this.state.get(id);
    return { syncedAt: st?.syncedAt ? new Date(st.syncedAt).toISOString() : null, error: st?.error ?? null, syncing: this.inFlight.has(id) };
  }

  /** Whether a fetch may start now without being asked for: none running, the last one succeeded, and not within `minAgeMs`. */
  idle(id: string, minAgeMs: number): boolean {
    const st = this.state.get(id);
    return !this.inFlight.has(id) && (!st || (st.failures === 0 && Date.now() - st.attemptAt >= minAgeMs));
  }

  /** Forgets the failures (the repository or its credential changed): the next poll is due at once. */
  resetBackoff(id: string): void {
    this.state.delete(id);
  }

  /**
   * Fetches now. While a fetch runs, one more follows it (with `s` as it is now), and this waits
   * for that one: what was pushed before the call is in the mirror when it resolves. Never
   * throws: a failure is in syncState.
   */
  refresh(s: MirrorSource): Promise<void> {
    const running = this.inFlight.get(s.id);
    if (running) {
      this.again.set(s.id, s);
      return running;
    }
    const p = (async () => {
      await this.fetch(s);
      for (let next = this.again.get(s.id); next; next = this.again.get(s.id)) {
        this.again.delete(s.id);
        await this.fetch(next);
      }
    })().finally(() => this.inFlight.delete(s.id));
    this.inFlight.set(s.id, p);
    return p;
  }

  private async fetch(s: MirrorSource): Promise<void> {
    const dir = this.mirror(s.id);
    const timeoutMs = this.opts.timeoutMs ?? 60_000;
    const started = Date.now();
    const st = this.state.get(s.id) ?? { syncedAt: null, attemptAt: 0, failures: 0, error: null };
    st.attemptAt = started;
    this.state.set(s.id, st);
    let cleanup = async () => undefined as void;
    try {
      await (this.swept ??= sweepGitScratch(this.scratch).then((n) => void (n > 0 && this.opts.log.info({ removed: n }, "removed deploy keys left by a killed process"))));
      const access = await s.access();
      // The credential goes in the environment, never in git's argv (readable by every local user).
      const remote = splitUrlCredential(access.url);
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
      } else if (!this.noOrigin.has(s.id)) {
        await git(["config", "--remove-section", "remote.origin"], { cwd: dir, timeoutMs }).catch(() => undefined);
      }
      this.noOrigin.add(s.id);
      const ssh = await gitAuthEnv(this.scratch, access.auth);
      cleanup = ssh.cleanup;
      // No credential helper either: one configured for this user could store the credential.
      await git(["-c", "credential.helper=", "fetch", "--prune", "--quiet", "--no-tags", "--no-write-fetch-head", "--", remote.url, "+refs/heads/*:refs/heads/*"], { cwd: dir, timeoutMs, env: { ...remote.env, ...ssh.env } });
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
  async undeployedCommits(id: string, branch: string, deployedCommit: string): Promise<number | undefined> {
    if (!SHA_RE.test(deployedCommit) || !BRANCH_RE.test(branch)) return undefined;
    try {
      const out = await git(["rev-list", "--count", "--end-of-options", `${deployedCommit}..refs/heads/${branch}`, "--"], { cwd: this.mirror(id), timeoutMs: this.opts.readTimeoutMs ?? 5_000 });
      const n = Number(out);
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** The undeployed commits themselves, newest first (at most `limit`); undefined when unknown. */
  async pendingCommits(id: string, branch: string, deployedCommit: string | null, limit = 100): Promise<PendingCommit[] | undefined> {
    if ((deployedCommit !== null && !SHA_RE.test(deployedCommit)) || !BRANCH_RE.test(branch)) return undefined;
    const range = deployedCommit ? `${deployedCommit}..refs/heads/${branch}` : `refs/heads/${branch}`;
    try {
      const out = await git(["log", `--max-count=${limit}`, "--format=%H%x1f%an <%ae>%x1f%aI%x1f%s%x1e", "--end-of-options", range, "--"], { cwd: this.mirror(id), timeoutMs: this.opts.readTimeoutMs ?? 5_000 });
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
}
