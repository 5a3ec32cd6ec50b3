import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitSshd, type GitSshd } from "./sshd.js";

/** Proves the git-over-SSH fixture with the real ssh and git clients (issue 13, must show 1). */

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("git sshd fixture", () => {
  let sshd: GitSshd | undefined;
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-sshd-client-"));
  const knownHosts = path.join(dir, "known_hosts");
  let clones = 0;

  async function keyPair(name: string): Promise<{ file: string; pub: string }> {
    const file = path.join(dir, name);
    const r = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
    expect(r.code, r.stderr).toBe(0);
    return { file, pub: readFileSync(`${file}.pub`, "utf8").trim() };
  }

  // No user or system ssh configuration, no agent, no prompt: only the key and known_hosts given.
  function sshOptions(keyFile: string): string[] {
    return ["-F", "none", "-i", keyFile, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"];
  }

  function clone(name: string, keyFile: string): Promise<Result & { dest: string }> {
    const dest = path.join(dir, `clone-${++clones}`);
    const env = { GIT_SSH_COMMAND: ["ssh", ...sshOptions(keyFile)].join(" "), GIT_TERMINAL_PROMPT: "0" };
    return run("git", ["clone", "-q", sshd!.repoUrl(name), dest], env).then((r) => ({ ...r, dest }));
  }

  let deployKey: { file: string; pub: string };
  let otherKey: { file: string; pub: string };
  let firstSha: string;

  beforeAll(async () => {
    deployKey = await keyPair("deploy_key");
    otherKey = await keyPair("other_key");
    sshd = await startGitSshd({ authorizedKeys: [deployKey.pub] });
    firstSha = sshd.createRepo("app", { "README.md": "private\n", "src/index.js": "console.log(1)\n" });
    writeFileSync(knownHosts, `${sshd.hostKeyLine()}\n`);
  });

  afterAll(async () => {
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("clones a private repository with an authorized ed25519 key over ssh", async () => {
    const r = await clone("app", deployKey.file);
    expect(r.code, `${r.stderr}\n${sshd!.logs()}`).toBe(0);
    expect(readFileSync(path.join(r.dest, "README.md"), "utf8")).toBe("private\n");
    expect(readFileSync(path.join(r.dest, "src/index.js"), "utf8")).toBe("console.log(1)\n");
    const head = await run("git", ["-C", r.dest, "rev-parse", "HEAD"]);
    expect(head.stdout.trim()).toBe(firstSha);
    expect(sshd!.logs()).toMatch(/Accepted publickey for \S+ from 127\.0\.0\.1/);
  });

  it("serves a new commit on main", async () => {
    const sha = sshd!.commit("app", { "README.md": "changed\n" });
    const r = await clone("app", deployKey.file);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(r.dest, "README.md"), "utf8")).toBe("changed\n");
    expect((await run("git", ["-C", r.dest, "rev-parse", "HEAD"])).stdout.trim()).toBe(sha);
  });

  it("refuses a key that was not added, and one that was revoked", async () => {
    const refused = await clone("app", otherKey.file);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("Permission denied (publickey)");

    sshd!.authorize(otherKey.pub);
    const allowed = await clone("app", otherKey.file);
    expect(allowed.code, allowed.stderr).toBe(0);

    sshd!.revoke(otherKey.pub);
    const revoked = await clone("app", otherKey.file);
    expect(revoked.code).not.toBe(0);
    expect(revoked.stderr).toContain("Permission denied (publickey)");
  });

  it("gives an authorized key git-shell only, no shell", async () => {
    const r = await run("ssh", [...sshOptions(deployKey.file), "-p", String(sshd!.port), `${sshd!.user}@${sshd!.host}`, "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("fatal: unrecognized command 'true'");
  });

  it("detects a changed host key", async () => {
    await sshd!.rotateHostKey();
    expect(readFileSync(knownHosts, "utf8").trim()).not.toBe(sshd!.hostKeyLine());
    const r = await clone("app", deployKey.file);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);

    // The new key, once known, is accepted again: the restarted server serves the same repositories.
    writeFileSync(knownHosts, `${sshd!.hostKeyLine()}\n`);
    const again = await clone("app", deployKey.file);
    expect(again.code, again.stderr).toBe(0);
  });
});
