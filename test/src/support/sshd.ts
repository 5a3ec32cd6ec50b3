import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { TestRepo } from "./git-repo.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { startProcess, StopWaiting, waitFor, type Proc } from "./processes.js";

// sshd re-executes itself by the path it was started with: it must be absolute.
const SSHD = "/usr/sbin/sshd";
// sshd's privilege-separation directory (compiled in); Debian creates it only when its service starts.
const PRIVSEP_DIR = "/run/sshd";
const HOST = "127.0.0.1";
const REPO_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
// Every key may only run git-shell, which allows git-upload-pack / git-receive-pack / git-upload-archive.
const KEY_OPTIONS = 'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty';

export interface GitSshdOptions {
  /** Public key lines (`ssh-ed25519 AAAA… comment`) allowed from the start. */
  authorizedKeys?: string[];
}

/**
 * A real OpenSSH sshd on a loopback port that serves the bare repositories in its own
 * directory to the current user, every key forced to git-shell. Made by startGitSshd();
 * stop() it in afterAll. Methods are synchronous file edits unless they return a promise;
 * none is meant to be called concurrently with rotateHostKey() or stop().
 */
export interface GitSshd {
  readonly host: string;
  readonly port: number;
  /** The login name: the user the tests run as (git-shell runs as that user). */
  readonly user: string;
  /** The fixture's directory (host key, config, authorized_keys, repos/). */
  readonly dir: string;
  /** `ssh://user@127.0.0.1:port/abs/path/name.git`: git-shell takes the absolute path as is. */
  repoUrl(name: string): string;
  /** A bare repository `name` with one commit of `files` on `main`; returns the commit's sha. */
  createRepo(name: string, files: Record<string, string>): string;
  /** A new commit of `files` (added to or replacing what is there) on `main` of `name`; returns its sha. */
  commit(name: string, files: Record<string, string>, message?: string): string;
  /** Allows a public key line (idempotent); takes effect at the next connection, no restart. */
  authorize(publicKeyLine: string): void;
  /** Removes a public key line, matched by type and key, not comment (idempotent). */
  revoke(publicKeyLine: string): void;
  /** The known_hosts line for the current host key: `[127.0.0.1]:port ssh-ed25519 AAAA…`. */
  hostKeyLine(): string;
  /** A new host key and a restarted sshd on the same port; known_hosts written before no longer match. */
  rotateHostKey(): Promise<void>;
  /** sshd's stderr (LogLevel VERBOSE) so far, across restarts; still available after stop(). */
  logs(): string;
  /** Ends the sshd it started (by PID) and removes the directory. Idempotent; safe after a failed start. */
  stop(): Promise<void>;
}

/** Starts a GitSshd; if starting fails, what was made is removed and the error carries sshd's log. */
export async function startGitSshd(opts: GitSshdOptions = {}): Promise<GitSshd> {
  const sshd = new GitSshdServer();
  try {
    for (const key of opts.authorizedKeys ?? []) sshd.authorize(key);
    await sshd.start();
    return sshd;
  } catch (err) {
    const log = sshd.logs().slice(-2000);
    await sshd.stop();
    throw new Error(`could not start the git sshd: ${(err as Error).message}${log ? `\nsshd log:\n${log}` : ""}`, { cause: err });
  }
}

class GitSshdServer implements GitSshd {
  readonly host = HOST;
  readonly user = userInfo().username;
  readonly dir = mkdtempSync(path.join(tmpdir(), "slipway-sshd-"));
  port = 0;
  private proc?: Proc;
  private readonly hostKey = path.join(this.dir, "ssh_host_ed25519_key");
  private readonly authorizedKeysFile = path.join(this.dir, "authorized_keys");
  private readonly logFile = path.join(this.dir, "sshd.log");
  private readonly keys: string[] = [];
  private readonly workTrees = new Map<string, TestRepo>();
  private finalLog?: string;

  async start(): Promise<void> {
    this.port = await reservePort();
    mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
    mkdirSync(path.join(this.dir, "repos"));
    this.writeAuthorizedKeys();
    this.generateHostKey();
    await this.launch();
  }

  repoUrl(name: string): string {
    return `ssh://${this.user}@${HOST}:${this.port}${this.repoPath(name)}`;
  }

  createRepo(name: string, files: Record<string, string>): string {
    const bare = this.repoPath(name);
    if (existsSync(bare)) throw new Error(`repository ${name} exists already`);
    execFileSync("git", ["init", "-q", "--bare", "-b", "main", bare]);
    this.workTrees.set(name, new TestRepo());
    return this.commit(name, files, "initial");
  }

  commit(name: string, files: Record<string, string>, message = "change"): string {
    const work = this.workTrees.get(name);
    if (!work) throw new Error(`no repository ${name}: createRepo() it first`);
    const sha = work.commit(files, message);
    work.git("push", "-q", this.repoPath(name), "main");
    return sha;
  }

  authorize(publicKeyLine: string): void {
    const key = parseKey(publicKeyLine);
    if (this.keys.some((k) => sameKey(k, key))) return;
    this.keys.push(key);
    this.writeAuthorizedKeys();
  }

  revoke(publicKeyLine: string): void {
    const key = parseKey(publicKeyLine);
    const i = this.keys.findIndex((k) => sameKey(k, key));
    if (i < 0) return;
    this.keys.splice(i, 1);
    this.writeAuthorizedKeys();
  }

  hostKeyLine(): string {
    const [type, blob] = readFileSync(`${this.hostKey}.pub`, "utf8").trim().split(/\s+/);
    return `[${HOST}]:${this.port} ${type} ${blob}`;
  }

  async rotateHostKey(): Promise<void> {
    await this.proc?.stop();
    this.proc = undefined;
    this.generateHostKey();
    await this.launch();
  }

  logs(): string {
    if (this.finalLog !== undefined) return this.finalLog;
    return existsSync(this.logFile) ? readFileSync(this.logFile, "utf8") : "";
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.proc = undefined;
    this.finalLog ??= this.logs();
    for (const work of this.workTrees.values()) rmSync(work.dir, { recursive: true, force: true });
    this.workTrees.clear();
    rmSync(this.dir, { recursive: true, force: true });
    if (this.port) releasePort(this.port);
  }

  private repoPath(name: string): string {
    if (!REPO_NAME.test(name)) throw new Error(`repository name ${JSON.stringify(name)}: letters, digits, '.', '_', '-' only`);
    return path.join(this.dir, "repos", `${name}.git`);
  }

  private generateHostKey(): void {
    rmSync(this.hostKey, { force: true });
    rmSync(`${this.hostKey}.pub`, { force: true });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "slipway-test-sshd", "-f", this.hostKey]);
  }

  /** Written whole and renamed into place: sshd reads the file at every login, possibly mid-write. */
  private writeAuthorizedKeys(): void {
    const tmp = `${this.authorizedKeysFile}.tmp`;
    writeFileSync(tmp, this.keys.map((k) => `${KEY_OPTIONS} ${k}\n`).join(""), { mode: 0o600 });
    renameSync(tmp, this.authorizedKeysFile);
  }

  private writeConfig(): string {
    const config = path.join(this.dir, "sshd_config");
    const lines = [
      `ListenAddress ${HOST}`,
      `Port ${this.port}`,
      `HostKey ${this.hostKey}`,
      `PidFile ${path.join(this.dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${this.authorizedKeysFile}`,
      `AllowUsers ${this.user}`,
      "AuthenticationMethods publickey",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      // The fixture's files live in a temp directory sshd would find too open.
      "StrictModes no",
      // The tests run as root; keys only, and each key forced to git-shell.
      "PermitRootLogin prohibit-password",
      "PermitUserEnvironment no",
      "X11Forwarding no",
      "AllowAgentForwarding no",
      "AllowTcpForwarding no",
      "AllowStreamLocalForwarding no",
      "PermitTunnel no",
      "PrintMotd no",
      "UseDNS no",
      // Lets git negotiate protocol v2, as with a hosted git server.
      "AcceptEnv GIT_PROTOCOL",
      "LogLevel VERBOSE",
      "",
    ];
    writeFileSync(config, lines.join("\n"));
    return config;
  }

  private async launch(): Promise<void> {
    const config = this.writeConfig();
    const proc = startProcess(SSHD, ["-D", "-e", "-f", config], { env: process.env, logFile: this.logFile });
    this.proc = proc;
    await waitFor(`sshd's banner on ${HOST}:${this.port}`, async () => {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new StopWaiting(`sshd exited (${proc.child.exitCode ?? proc.child.signalCode})`);
      return (await readBanner(this.port)).startsWith("SSH-2.0-");
    }, { timeoutMs: 20_000, intervalMs: 50 });
  }
}

/** The first line the server at the port sends ("" if it closes or fails before a line). */
function readBanner(port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = "";
    const s = net.connect(port, HOST);
    const done = (line: string) => {
      s.destroy();
      resolve(line);
    };
    s.setTimeout(2_000, () => done(""));
    s.on("data", (chunk) => {
      data += chunk.toString("latin1");
      const nl = data.indexOf("\n");
      if (nl >= 0) done(data.slice(0, nl).trim());
    });
    s.once("error", () => done(""));
    s.once("close", () => done(""));
  });
}

/** `type base64 [comment]` without options; throws on anything else (one line only). */
function parseKey(line: string): string {
  const key = line.trim();
  if (key.includes("\n") || !/^(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/=]+( .*)?$/.test(key)) {
    throw new Error(`not a public key line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return key;
}

function sameKey(a: string, b: string): boolean {
  const [ta, ka] = a.split(/\s+/);
  const [tb, kb] = b.split(/\s+/);
  return ta === tb && ka === kb;
}
