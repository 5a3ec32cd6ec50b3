import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * How git reaches a private repository: over SSH with the app's deploy key, checked against the
 * git host's pinned host keys; over HTTPS with a token (joined into the URL only for the git
 * process, see the control plane's repository-credential.ts).
 */
export interface GitAuth {
  /** The app's deploy key, OpenSSH private key format. */
  sshPrivateKey?: string;
  /** known_hosts lines of the git host; empty = not pinned (ssh then refuses the host). */
  knownHosts?: string;
}

/** Where an SSH repository URL points: `host` as known_hosts names it ("github.com", "[git.example]:2222"). */
export interface SshRemote {
  hostname: string;
  port: number;
  knownHostsName: string;
}

/**
 * The SSH host of a repository URL (`ssh://user@host[:port]/path`, `git+ssh://…` or scp-like
 * `user@host:path`); undefined for http(s), file:// and paths.
 */
export function sshRemoteOf(url: string): SshRemote | undefined {
  let hostname: string;
  let port = 22;
  const m = /^(?:git\+)?ssh:\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\//i.exec(url);
  if (m) {
    hostname = m[1]!.replace(/^\[|\]$/g, "");
    if (m[2]) port = Number(m[2]);
  } else {
    if (url.includes("://")) return undefined;
    const scp = /^(?:[\w.-]+@)?([\w.-]+):\S+$/.exec(url);
    if (!scp) return undefined;
    hostname = scp[1]!;
  }
  if (!/^[A-Za-z0-9.:-]+$/.test(hostname) || port < 1 || port > 65535) return undefined;
  const host = hostname.toLowerCase();
  return { hostname: host, port, knownHostsName: port === 22 ? host : `[${host}]:${port}` };
}

/** The known_hosts lines of `text` that name `knownHostsName` with a key (comments and other hosts dropped). */
export function knownHostsLinesFor(text: string, knownHostsName: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .filter((l) => {
      const [names, type, key] = l.split(/\s+/);
      return names !== undefined && type !== undefined && key !== undefined && names.split(",").includes(knownHostsName) && /^(ssh-|ecdsa-|sk-)/.test(type);
    });
}

/**
 * Where a git process's deploy key is written for its one command: on tmpfs (`/dev/shm`) when the
 * machine has one, so a key left by a killed process never reaches a disk or a backup of the
 * state directory; else under `stateDir`. One directory per state directory (an agent and a
 * control plane on one machine do not share it); `sweepGitScratch` empties it at start.
 */
export function gitScratchDir(stateDir: string, shm = "/dev/shm"): string {
  const id = createHash("sha256").update(path.resolve(stateDir)).digest("hex").slice(0, 16);
  return existsSync(shm) ? path.join(shm, `slipway-git-${id}`) : path.join(stateDir, ".git-scratch");
}

/** Removes what a killed process left in its scratch directory (keys of commands that never ended). */
export async function sweepGitScratch(scratch: string): Promise<number> {
  const names = await readdir(scratch).catch(() => [] as string[]);
  for (const n of names) await rm(path.join(scratch, n), { recursive: true, force: true });
  return names.length;
}

/**
 * An HTTP(S) repository URL's credential (`https://user:token@host/…` or `https://token@host/…`)
 * taken out of it: git is given the bare URL (its argv is readable by every local user, and git
 * records URLs in a mirror's config), and the credential as an `Authorization: Basic` header
 * through GIT_CONFIG_* environment variables (readable by this user only), for that one command.
 * Other URLs (ssh, file, paths) are left as they are.
 */
export function splitUrlCredential(url: string): { url: string; env: Record<string, string> } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url, env: {} };
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || (!u.username && !u.password)) return { url, env: {} };
  const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64");
  u.username = "";
  u.password = "";
  return { url: u.toString(), env: { GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "http.extraHeader", GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}` } };
}

/**
 * The environment for one git command against a remote: ssh always runs hardened (no user or
 * system ssh configuration, no agent, no identity but the deploy key, only the pinned host keys,
 * never a prompt), so an SSH URL without a deploy key fails instead of falling back to the
 * machine's own keys. With a deploy key, it and the pinned keys are written into a private
 * directory under `scratch`, removed by `cleanup`.
 */
export async function gitAuthEnv(scratch: string, auth: GitAuth | undefined): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const q = (p: string) => `'${p.replace(/'/g, "'\\''")}'`;
  const hardened = [
    "ssh",
    "-F /dev/null",
    "-o IdentitiesOnly=yes",
    "-o IdentityAgent=none",
    "-o BatchMode=yes",
    "-o GlobalKnownHostsFile=/dev/null",
    "-o StrictHostKeyChecking=yes",
    "-o ConnectTimeout=15",
    "-o ServerAliveInterval=15",
    "-o ServerAliveCountMax=4",
  ];
  if (!auth?.sshPrivateKey) {
    return { env: { GIT_SSH_COMMAND: [...hardened, "-o IdentityFile=none", "-o UserKnownHostsFile=/dev/null"].join(" "), GIT_SSH_VARIANT: "ssh" }, cleanup: async () => undefined };
  }
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  const dir = path.join(scratch, `ssh-${randomBytes(6).toString("hex")}`);
  await mkdir(dir, { mode: 0o700 });
  await chmod(dir, 0o700);
  const key = path.join(dir, "id");
  const known = path.join(dir, "known_hosts");
  const pem = auth.sshPrivateKey.endsWith("\n") ? auth.sshPrivateKey : `${auth.sshPrivateKey}\n`;
  await writeFile(key, pem, { mode: 0o600 });
  await writeFile(known, auth.knownHosts ? `${auth.knownHosts.trim()}\n` : "", { mode: 0o600 });
  const cmd = [...hardened, `-i ${q(key)}`, `-o UserKnownHostsFile=${q(known)}`].join(" ");
  return { env: { GIT_SSH_COMMAND: cmd, GIT_SSH_VARIANT: "ssh" }, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** What a failed git command against a remote means to a user; undefined when it says nothing known. */
export function explainGitFailure(stderr: string, url: string): { reason: string; retryable: boolean } | undefined {
  const remote = sshRemoteOf(url);
  const host = remote ? remote.knownHostsName : hostOfUrl(url);
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(stderr)) {
    return {
      reason: `the SSH host key of ${host} has changed since it was pinned: this may be an attack (or the git host replaced its key). If the new key is right, an admin pins it (PUT /v1/git-host-keys/${encodeURIComponent(host)}) and deploys again`,
      retryable: false,
    };
  }
  if (/No (ED25519|ECDSA|RSA|[A-Z0-9-]+) host key is known for|Host key verification failed/i.test(stderr)) {
    return {
      reason: `the SSH host key of ${host} is not pinned, so the host cannot be trusted: the control plane pins it on first use when it can reach the host (see its log), or an admin pins it (PUT /v1/git-host-keys/${encodeURIComponent(host)})`,
      retryable: false,
    };
  }
  if (/Permission denied \(publickey/i.test(stderr)) {
    return { reason: `${host} refused the app's deploy key: add the public key (GET /v1/apps/<app>/deploy-key, or \`slipway keys <app>\`) to the repository as a read-only deploy key`, retryable: false };
  }
  if (/Authentication failed|HTTP Basic: Access denied|returned error: 40[13]|could not read Username|terminal prompts disabled/i.test(stderr)) {
    return { reason: `${host} refused the credentials: the repository is private and its token is missing, expired or lacks read access`, retryable: false };
  }
  if (/repository .* not found|does not appear to be a git repository|Repository not found|returned error: 404/i.test(stderr)) {
    return { reason: `${host} says the repository does not exist or this key/token may not read it`, retryable: false };
  }
  if (/Could not resolve host|Name or service not known|Temporary failure in name resolution/i.test(stderr)) {
    return { reason: `the git host ${host} cannot be resolved (DNS)`, retryable: true };
  }
  if (/Connection refused|Connection timed out|Operation timed out|Network is unreachable|No route to host|Connection reset|timed out/i.test(stderr)) {
    return { reason: `the git host ${host} cannot be reached (${/refused/i.test(stderr) ? "connection refused" : "no answer"})`, retryable: true };
  }
  return undefined;
}

function hostOfUrl(url: string): string {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}
