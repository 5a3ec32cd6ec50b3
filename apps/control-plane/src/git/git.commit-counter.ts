import { execFile } from "node:child_process";
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "@slipway/core";
import type { CommitCounter } from "./commit-counter.js";
import { redactUrls } from "../services/repository-credential.js";

function git(args: string[], opts: { cwd?: string; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("git", args, { cwd: opts.cwd, timeout: opts.timeoutMs, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" }, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) =>
      // The URL git was given may carry a credential: git repeats it in some messages.
      err ? reject(new Error(redactUrls(`git ${args.find((a) => !a.startsWith("-") && !a.includes("="))}: ${String(stderr || err.message).trim().slice(-500)}`))) : resolve(stdout.trim()),
    );
  });
}

/**
 * A bare mirror per app under `dir`, fetched at most every `refreshMs` (on
 * demand, when a status is computed). A failing fetch falls back to the last
 * mirror state; a mirror that never synced gives "unknown". The repository
 * URL is handed to each fetch and never written into the mirror (no origin,
 * no FETCH_HEAD): it may carry a credential.
 */
export class GitCommitCounter implements CommitCounter {
  private readonly lastFetch = new Map<string, number>();
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Mirrors checked for an origin remote this run (earlier versions cloned with one). */
  private readonly noOrigin = new Set<string>();

  constructor(private readonly opts: { dir: string; log: Logger; refreshMs?: number; timeoutMs?: number; maxWaitMs?: number }) {}

  private mirror(app: string): string {
    return path.join(this.opts.dir, `${app}.git`);
  }

  private async sync(app: string, repository: string): Promise<void> {
    const last = this.lastFetch.get(app) ?? 0;
    if (Date.now() - last < (this.opts.refreshMs ?? 5000)) return;
    const running = this.inFlight.get(app);
    if (running) return running;
    const p = (async () => {
      const dir = this.mirror(app);
      const timeoutMs = this.opts.timeoutMs ?? 20_000;
      try {
        const exists = await stat(dir).then(() => true, () => false);
        if (!exists) {
          await mkdir(this.opts.dir, { recursive: true });
          await git(["init", "--bare", "--quiet", dir], { timeoutMs }).catch(async (err: unknown) => {
            await rm(dir, { recursive: true, force: true });
            throw err;
          });
        } else if (!this.noOrigin.has(app)) {
          await git(["config", "--remove-section", "remote.origin"], { cwd: dir, timeoutMs }).catch(() => undefined);
        }
        this.noOrigin.add(app);
        // No credential helper either: one configured for this user could store the credential.
        await git(["-c", "credential.helper=", "fetch", "--prune", "--quiet", "--no-tags", "--no-write-fetch-head", "--", repository, "+refs/heads/*:refs/heads/*"], { cwd: dir, timeoutMs });
        this.lastFetch.set(app, Date.now());
      } catch (err) {
        this.opts.log.warn({ app, err: (err as Error).message }, "could not refresh the repository mirror; commit counts may be stale");
      } finally {
        this.inFlight.delete(app);
      }
    })();
    this.inFlight.set(app, p);
    return p;
  }

  async undeployedCommits(app: string, repository: string, branch: string, deployedCommit: string): Promise<number | undefined> {
    // A slow or unreachable repository must not stall the API: after a short wait the count
    // comes from the mirror as it is, and the fetch finishes in the background.
    await Promise.race([this.sync(app, repository), new Promise((r) => setTimeout(r, this.opts.maxWaitMs ?? 2000).unref())]);
    try {
      const out = await git(["rev-list", "--count", `${deployedCommit}..refs/heads/${branch}`], { cwd: this.mirror(app), timeoutMs: 10_000 });
      const n = Number(out);
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }
}
