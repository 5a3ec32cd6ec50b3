import { execFileSync, spawn } from "node:child_process";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { RepositoryMirrors, type MirrorSource } from "./repository-mirrors.js";

const TOKEN = "ghp_mirrorS3cretT0ken";

/** Every file under `dir` that contains `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesContaining(p, needle));
    else if (readFileSync(p).includes(needle)) out.push(p);
  }
  return out;
}

/** A git smart-HTTP server (git http-backend as CGI) that wants basic auth `bot:<TOKEN>`. */
function gitHttpServer(root: string): http.Server {
  return http.createServer((req, res) => {
    if (req.headers.authorization !== `Basic ${Buffer.from(`bot:${TOKEN}`).toString("base64")}`) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="git"' }).end();
      return;
    }
    const u = new URL(req.url ?? "/", "http://localhost");
    const child = spawn("git", ["http-backend"], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: u.pathname,
        QUERY_STRING: u.search.slice(1),
        REQUEST_METHOD: req.method ?? "GET",
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        REMOTE_USER: "bot",
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    req.pipe(child.stdin);
    let head = Buffer.alloc(0);
    let started = false;
    child.stdout.on("data", (chunk: Buffer) => {
      if (started) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      started = true;
      let statusCode = 200;
      for (const line of head.subarray(0, end).toString("latin1").split("\r\n")) {
        const i = line.indexOf(":");
        const [name, value] = [line.slice(0, i).trim(), line.slice(i + 1).trim()];
        if (name.toLowerCase() === "status") statusCode = Number.parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.writeHead(statusCode);
      res.write(head.subarray(end + 4));
    });
    child.stdout.on("end", () => res.end());
  });
}

// Issue 11, finding 7: the control plane's mirror of a private repository needs the credential to
// fetch, and used to keep the URL with it as its origin in the mirror's config. It is handed to
// each fetch now and written nowhere.
describe("RepositoryMirrors with a repository that needs a credential", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-mirror-"));
  const mirrors = path.join(dir, "mirrors");
  const logged: string[] = [];
  let server: http.Server;
  let base = "";
  let first = "";

  beforeAll(async () => {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" } }).trim();
    git("init", "--quiet", "-b", "main", "src");
    for (const n of [1, 2, 3]) git("-C", "src", "commit", "--quiet", "--allow-empty", "-m", `commit ${n}`);
    first = git("-C", "src", "rev-list", "--max-parents=0", "HEAD");
    git("clone", "--quiet", "--bare", "src", "repo.git");
    server = gitHttpServer(dir);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const firstSha = () => first;
  const mirrorsOf = () => new RepositoryMirrors({ dir: mirrors, timeoutMs: 30_000, log: createLogger("t", "info", { write: (l: string) => void logged.push(l) }) });
  const source = (app: string, url: string): MirrorSource => ({ id: app, app, shownUrl: url.replace(/\/\/[^@]*@/, "//"), access: async () => ({ url }), intervalSeconds: 60 });

  it("fetches with the credential, and the mirror on disk holds no trace of it", async () => {
    const m = mirrorsOf();
    await m.refresh(source("shop", `http://bot:${TOKEN}@${base}/repo.git`));
    expect(await m.undeployedCommits("shop", "main", first)).toBe(2);
    expect(m.syncState("shop")).toMatchObject({ error: null, syncing: false });
    expect(m.syncState("shop").syncedAt).not.toBeNull();
    // A second round fetches into the existing mirror.
    await m.refresh(source("shop", `http://bot:${TOKEN}@${base}/repo.git`));
    expect(await m.undeployedCommits("shop", "main", first)).toBe(2);
    expect((await m.pendingCommits("shop", "main", first))?.map((c) => c.message)).toEqual(["commit 3", "commit 2"]);
    expect(filesContaining(mirrors, TOKEN)).toEqual([]);
    expect(filesContaining(mirrors, Buffer.from(`bot:${TOKEN}`).toString("base64"))).toEqual([]);
  });

  it("a refused credential gives an unknown count and says why, without the credential", async () => {
    const m = mirrorsOf();
    logged.length = 0;
    await m.refresh(source("other", `http://bot:${TOKEN}-revoked@${base}/repo.git`));
    expect(await m.undeployedCommits("other", "main", first)).toBeUndefined();
    expect(m.syncState("other").error).toMatch(/refused the credentials/);
    expect(m.syncState("other").syncedAt).toBeNull();
    expect(logged.join("\n")).toContain("could not refresh the repository mirror");
    expect(logged.join("\n")).not.toContain(TOKEN);
  });

  it("removes the origin (and the credential in it) that mirrors cloned by earlier versions kept", async () => {
    execFileSync("git", ["clone", "--quiet", "--mirror", path.join(dir, "repo.git"), path.join(mirrors, "old.git")]);
    execFileSync("git", ["-C", path.join(mirrors, "old.git"), "remote", "set-url", "origin", `http://bot:${TOKEN}@${base}/repo.git`]);
    expect(filesContaining(path.join(mirrors, "old.git"), TOKEN)).not.toEqual([]);
    const m = mirrorsOf();
    await m.refresh(source("old", `http://bot:${TOKEN}@${base}/repo.git`));
    expect(await m.undeployedCommits("old", "main", first)).toBe(2);
    expect(filesContaining(path.join(mirrors, "old.git"), TOKEN)).toEqual([]);
  });

  it("reads counts from the mirror at once while a fetch hangs on a git host that never answers", async () => {
    const m = mirrorsOf();
    await m.refresh(source("slow", `http://bot:${TOKEN}@${base}/repo.git`));
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => void sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const hanging = m.refresh(source("slow", `http://127.0.0.1:${(silent.address() as AddressInfo).port}/repo.git`));
      expect(m.syncState("slow").syncing).toBe(true);
      const t0 = performance.now();
      expect(await m.undeployedCommits("slow", "main", first)).toBe(2);
      // A read that waited for the fetch would take until the fetch's timeout (30 s); a git process
      // of its own on a loaded machine may take a second or two.
      expect(performance.now() - t0).toBeLessThan(10_000);
      expect(m.syncState("slow").syncing).toBe(true);
      // The hung fetch ends when the server goes: the mirror keeps what it had.
      for (const sock of sockets) sock.destroy();
      silent.close();
      await hanging;
      expect(m.syncState("slow").error).not.toBeNull();
      expect(await m.undeployedCommits("slow", "main", first)).toBe(2);
    } finally {
      for (const sock of sockets) sock.destroy();
      silent.close();
    }
  });

  it("keeps polling the other apps while one git host hangs", async () => {
    const m = mirrorsOf();
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => void sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const hung: MirrorSource = { ...source("hung", `http://127.0.0.1:${(silent.address() as AddressInfo).port}/repo.git`), intervalSeconds: 1 };
      const healthy: MirrorSource = { ...source("healthy", `http://bot:${TOKEN}@${base}/repo.git`), intervalSeconds: 1 };
      const synced = new Set<string>();
      m.start(async () => [hung, healthy], 100);
      const deadline = Date.now() + 10_000;
      while (synced.size < 3 && Date.now() < deadline) {
        const at = m.syncState("healthy").syncedAt;
        if (at) synced.add(at);
        await new Promise((r) => setTimeout(r, 50));
      }
      m.stop();
      // Three fetches of the healthy app, one a second, while the first fetch of the hung one still waits.
      expect(synced.size).toBeGreaterThanOrEqual(3);
      expect(m.syncState("hung")).toMatchObject({ syncing: true, syncedAt: null });
    } finally {
      for (const sock of sockets) sock.destroy();
      silent.close();
    }
  });

  it("never puts the credential in git's arguments (every local user can read them)", async () => {
    const bin = mkdtempSync(path.join(tmpdir(), "slipway-fakegit-"));
    const argsLog = path.join(bin, "args.log");
    const realGit = execFileSync("sh", ["-c", "command -v git"], { encoding: "utf8" }).trim();
    writeFileSync(path.join(bin, "git"), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argsLog}'\nexec '${realGit}' "$@"\n`, { mode: 0o755 });
    const before = process.env.PATH;
    process.env.PATH = `${bin}:${before}`;
    try {
      const m = mirrorsOf();
      await m.refresh(source("argv", `http://bot:${TOKEN}@${base}/repo.git`));
      expect(await m.undeployedCommits("argv", "main", first)).toBe(2);
      const args = readFileSync(argsLog, "utf8");
      expect(args).toContain(`http://${base}/repo.git`);
      expect(args).not.toContain(TOKEN);
      expect(args).not.toContain(Buffer.from(`bot:${TOKEN}`).toString("base64"));
    } finally {
      process.env.PATH = before;
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it("a refresh asked for while a fetch runs is followed by another fetch, with the source as it is then", async () => {
    const m = mirrorsOf();
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => void sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      // The first fetch hangs (an old URL); the push's refresh comes with the new one.
      const first = m.refresh(source("moved", `http://127.0.0.1:${(silent.address() as AddressInfo).port}/repo.git`));
      await new Promise((r) => setTimeout(r, 200));
      const second = m.refresh(source("moved", `http://bot:${TOKEN}@${base}/repo.git`));
      for (const sock of sockets) sock.destroy();
      silent.close();
      await Promise.all([first, second]);
      expect(await m.undeployedCommits("moved", "main", firstSha())).toBe(2);
      expect(m.syncState("moved")).toMatchObject({ error: null, syncing: false });
    } finally {
      for (const sock of sockets) sock.destroy();
      silent.close();
    }
  });
});
