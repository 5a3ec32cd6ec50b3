import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
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

/** Every file under `dir` whose bytes contain `needle`. */
async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = join(entry.parentPath, entry.name);
    if ((await readFile(file)).includes(needle)) hits.push(file);
  }
  return hits;
}

// Issue 11, found 7: a token in the repository URL reaches the remote and nothing else: not the
// mirror's git config, nor any other file the agent keeps. A real git over HTTP (the "dumb"
// protocol, served statically) behind basic auth.
describe("GitSource with credentials in the repository URL", () => {
  const SECRET = "s3cret-token-4f9a";
  let dir: string;
  let server: Server;
  let port = 0;
  const unauthorised: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "slipway-git-auth-"));
    const work = join(dir, "work");
    await mkdir(work);
    await exec("git", ["init", "-q", "-b", "main"], { cwd: work, env: gitEnv });
    await writeFile(join(work, "a.txt"), "one");
    await exec("git", ["add", "-A"], { cwd: work, env: gitEnv });
    await exec("git", ["commit", "-q", "-m", "one"], { cwd: work, env: gitEnv });
    await exec("git", ["clone", "-q", "--bare", work, join(dir, "served", "repo.git")], { env: gitEnv });
    await exec("git", ["update-server-info"], { cwd: join(dir, "served", "repo.git"), env: gitEnv });
    const expected = `Basic ${Buffer.from(`deploy:${SECRET}`).toString("base64")}`;
    server = createServer((req, res) => {
      if (req.headers.authorization !== expected) {
        unauthorised.push(req.url ?? "");
        res.writeHead(401, { "www-authenticate": 'Basic realm="git"' }).end();
        return;
      }
      const file = join(dir, "served", decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
      readFile(file).then(
        (b) => res.writeHead(200).end(b),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it("clones and fetches with the credential, and keeps it in no file of the mirror", async () => {
    const mirrors = join(dir, "mirrors");
    const src = new GitSource({ dir: mirrors, logger: pino({ level: "silent" }) });
    const url = `http://deploy:${SECRET}@127.0.0.1:${port}/repo.git`;
    await src.sync("private", url);
    expect(await src.resolve("private", "main")).toMatch(/^[0-9a-f]{40}$/);
    expect(await filesContaining(mirrors, SECRET)).toEqual([]);
    // The remote is recorded without the credential; a fetch sends it again.
    const config = await readFile(join(mirrors, "private.git", "config"), "utf8").catch(async () => readFile(join(mirrors, (await readdir(mirrors))[0]!, "config"), "utf8"));
    expect(config).toContain(`http://127.0.0.1:${port}/repo.git`);
    await src.sync("private", url);
    expect(await filesContaining(mirrors, SECRET)).toEqual([]);
    // A wrong credential is refused by the remote, and the message does not show it either.
    const wrong = await failureOf(src.sync("private", `http://deploy:wrong-${SECRET}@127.0.0.1:${port}/repo.git`));
    expect(wrong.message).not.toContain(SECRET);
    expect(unauthorised.length).toBeGreaterThan(0);
  });

  it("removes a credential an older agent left in a mirror's config at the next sync", async () => {
    const mirrors = join(dir, "old-mirrors");
    const src = new GitSource({ dir: mirrors, logger: pino({ level: "silent" }) });
    const url = `http://deploy:${SECRET}@127.0.0.1:${port}/repo.git`;
    await src.sync("legacy", url);
    const mirror = join(mirrors, (await readdir(mirrors))[0]!);
    await exec("git", ["-C", mirror, "remote", "set-url", "origin", url], { env: gitEnv });
    expect(await filesContaining(mirrors, SECRET)).not.toEqual([]);
    await src.sync("legacy", url);
    expect(await filesContaining(mirrors, SECRET)).toEqual([]);
  });
});
