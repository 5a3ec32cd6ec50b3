import { execFile } from "node:child_process";
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "@slipway/core";
import type { CommitCounter } from "./commit-counter.js";

function git(args: string[], opts: { cwd?: string; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("git", args, { cwd: opts.cwd, timeout: opts.timeoutMs, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" }, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`git ${args[0]}: ${String(stderr || err.message).trim().slice(-500)}`)) : resolve(stdout.trim()),
    );
  });
}

/**
 * A bare mirror per app under `dir`, fetched at most every `refreshMs` (on
 * demand, when a status is computed). A failing fetch falls back to the last
 * mirror state; a mirror that never synced gives "unknown".
 */
export class GitCommitCounter implements CommitCounter {
  private readonly lastFetch = new Map<string, number>();
  private readonly inFlight = new Map<string, Promise<void>>();

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
          await git(["clone", "--mirror", "--quiet", repository, dir], { timeoutMs }).catch(async (err: unknown) => {
            await rm(dir, { recursive: true, force: true });
            throw err;
          });
        } else {
          await git(["remote", "set-url", "origin", repository], { cwd: dir, timeoutMs });
          await git(["fetch", "--prune", "--quiet", "origin"], { cwd: dir, timeoutMs });
        }
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
