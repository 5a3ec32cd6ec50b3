import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./platform.js";

/**
 * The release before this one, as `deploy/previous-release` names it (its first word: a commit of
 * this repository). The version-skew policy (docs/DECISIONS.md) is tested against it.
 */
export function previousReleaseCommit(): string {
  const text = readFileSync(path.join(repoRoot, "deploy/previous-release"), "utf8");
  const commit = text.split("\n").map((l) => l.trim()).find((l) => l && !l.startsWith("#"))?.split(/\s+/)[0] ?? "";
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`deploy/previous-release names no commit (a 40-digit hash on its first line that is not a comment): ${JSON.stringify(commit)}`);
  return commit;
}

/**
 * The previous release's agent, built from this repository's history into
 * `.slipway/previous-<commit>/` (ignored by git; kept, so later runs start at once): the commit's
 * files (`git archive`, no worktree registered), its dependencies (a hard-linked copy of this
 * checkout's node_modules when the lock file is the same, which is what `npm ci` would lay out:
 * the workspace links are relative; else `npm ci` there), then its proto, core and agent builds.
 * Returns the agent's entry point. `progress` hears each stage.
 */
export function buildPreviousAgent(progress: (msg: string) => void = () => undefined): { commit: string; main: string } {
  const commit = previousReleaseCommit();
  const dir = path.join(repoRoot, ".slipway", `previous-${commit.slice(0, 12)}`);
  const main = path.join(dir, "apps/agent/dist/main.js");
  const done = path.join(dir, ".built");
  if (existsSync(done) && existsSync(main)) return { commit, main };
  try {
    execFileSync("git", ["-C", repoRoot, "cat-file", "-e", `${commit}^{commit}`], { stdio: "ignore" });
  } catch {
    throw new Error(`the previous release ${commit} is not in this clone's history (a shallow clone? fetch it: git fetch --unshallow)`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  progress(`previous release ${commit.slice(0, 12)}: its files`);
  execFileSync("sh", ["-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", repoRoot, commit, dir], { stdio: ["ignore", "ignore", "pipe"] });
  const sameLock = readFileSync(path.join(dir, "package-lock.json"), "utf8") === readFileSync(path.join(repoRoot, "package-lock.json"), "utf8");
  if (sameLock) {
    progress("its dependencies: the same lock file, node_modules hard-linked");
    execFileSync("cp", ["-al", path.join(repoRoot, "node_modules"), path.join(dir, "node_modules")]);
  } else {
    progress("its dependencies: another lock file, npm ci");
    execFileSync("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 600_000 });
  }
  for (const ws of ["packages/proto", "packages/core", "apps/agent"]) {
    progress(`builds ${ws}`);
    execFileSync("npm", ["run", "build"], { cwd: path.join(dir, ws), stdio: ["ignore", "ignore", "pipe"], timeout: 600_000 });
  }
  if (!existsSync(main)) throw new Error(`the previous release's build made no ${main}`);
  writeFileSync(done, `${new Date().toISOString()}\n`);
  return { commit, main };
}
