import { execFile } from "node:child_process";
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { pino } from "pino";
import tar from "tar-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StepFailure } from "@slipway/core";
import { GitSource, redactUrl } from "./git.source.js";

const exec = promisify(execFile);

/** Commits need an identity; the test must not depend on the machine's git config. */
const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: "Slipway Test",
  GIT_AUTHOR_EMAIL: "test@slipway.invalid",
  GIT_COMMITTER_NAME: "Slipway Test",
  GIT_COMMITTER_EMAIL: "test@slipway.invalid",
  GIT_CONFIG_NOSYSTEM: "1",
};

let root: string;
let repo: string;
let source: GitSource;

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await exec("git", args, { cwd, env: gitEnv });
  return stdout.trim();
}

async function commit(files: Record<string, string>, message: string): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(repo, name, ".."), { recursive: true });
    await writeFile(join(repo, name), content);
  }
  await git(repo, "add", "-A");
  await git(repo, "commit", "-q", "-m", message);
  return git(repo, "rev-parse", "HEAD");
}

async function failureOf(p: Promise<unknown>): Promise<StepFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StepFailure);
  return err as StepFailure;
}

describe("GitSource against the real git", () => {
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "slipway-git-"));
    repo = join(root, "upstream");
    await mkdir(repo);
    await git(repo, "init", "-q", "-b", "main");
    source = new GitSource({ dir: join(root, "mirrors"), logger: pino({ level: "silent" }) });
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("mirrors a local repository and follows new commits", async () => {
    const first = await commit({ "README.md": "v1\n" }, "first");
    await source.sync("shop", repo);
    expect(await source.resolve("shop", "main")).toBe(first);

    const second = await commit({ "README.md": "v2\n" }, "second");
    expect(await source.resolve("shop", "main")).toBe(first);
    await source.sync("shop", repo);
    expect(await source.resolve("shop", "main")).toBe(second);
    expect(second).toMatch(/^[0-9a-f]{40}$/);
  });

  it("works with file:// URLs and prunes deleted branches", async () => {
    await git(repo, "branch", "feature");
    await source.sync("shop-file", `file://${repo}`);
    expect(await source.resolve("shop-file", "feature")).toBe(await git(repo, "rev-parse", "feature"));

    await git(repo, "branch", "-D", "feature");
    await source.sync("shop-file", `file://${repo}`);
    const err = await failureOf(source.resolve("shop-file", "feature"));
    expect(err.type).toBe("branch_not_found");
  });

  it("reports an unknown branch as branch_not_found, not retryable", async () => {
    await source.sync("shop", repo);
    const err = await failureOf(source.resolve("shop", "nope"));
    expect(err.type).toBe("branch_not_found");
    expect(err.retryable).toBe(false);
    expect(err.message).toBe(`branch 'nope' does not exist in ${repo}`);
  });

  it("does not take a tag or a sha for a branch", async () => {
    const head = await git(repo, "rev-parse", "HEAD");
    await git(repo, "tag", "v1");
    await source.sync("shop", repo);
    expect((await failureOf(source.resolve("shop", "v1"))).type).toBe("branch_not_found");
    expect((await failureOf(source.resolve("shop", head))).type).toBe("branch_not_found");
  });

  it("serialises concurrent calls for one app", async () => {
    const head = await git(repo, "rev-parse", "HEAD");
    const results = await Promise.all([
      source.sync("shop-concurrent", repo),
      source.sync("shop-concurrent", repo),
      source.resolve("shop-concurrent", "main"),
    ]);
    expect(results[2]).toBe(head);
  });

  it("fails a sync from a missing repository as git_sync_failed, retryable, leaving no mirror", async () => {
    const missing = join(root, "does-not-exist");
    const err = await failureOf(source.sync("ghost", missing));
    expect(err.type).toBe("git_sync_failed");
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/does not exist|not a git repository|could not read/i);
    expect((await readdir(join(root, "mirrors"))).filter((n) => n.startsWith("ghost"))).toEqual([]);
    expect((await failureOf(source.resolve("ghost", "main"))).type).toBe("source_not_synced");
  });

  it("archives a commit as a tar of the committed files", async () => {
    const sha = await commit({ "index.html": "<h1>hi</h1>\n", "app/main.py": "print('hi')\n" }, "site");
    await writeFile(join(repo, "untracked.txt"), "not committed\n");
    await source.sync("shop", repo);
    expect(await source.resolve("shop", "main")).toBe(sha);

    const out = join(root, "extract");
    await pipeline(source.archive("shop", sha), tar.extract(out));
    expect((await readdir(out)).sort()).toEqual(["README.md", "app", "index.html"]);
    expect(await readFile(join(out, "app/main.py"), "utf8")).toBe("print('hi')\n");
    expect(await readFile(join(out, "README.md"), "utf8")).toBe("v2\n");
  });

  it("destroys the archive stream with an error when git fails", async () => {
    const unknown = "0123456789abcdef0123456789abcdef01234567";
    const err = await failureOf(pipeline(source.archive("shop", unknown), tar.extract(join(root, "never"))));
    expect(err.type).toBe("git_archive_failed");
    expect(err.message).toMatch(/not a valid object name|not a tree object/i);

    const bad = await failureOf(pipeline(source.archive("shop", "--output=/tmp/x"), tar.extract(join(root, "never2"))));
    expect(bad.type).toBe("git_archive_failed");
  });

  it("keeps credentials out of messages", () => {
    expect(redactUrl("fatal: unable to access 'https://user:tok3n@git.example.com/a.git/'")).toBe(
      "fatal: unable to access 'https://***@git.example.com/a.git/'",
    );
  });
});
