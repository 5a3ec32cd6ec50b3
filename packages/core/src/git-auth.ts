import { randomBytes } from "node:crypto";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
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
 * Writes the deploy key and the pinned host keys into a private directory under `parent` for
 * one git command, and answers the environment that makes git use them (and nothing else: no
 * agent, no other identity, no prompt, no new host keys learned). The directory is removed by
 * `cleanup`. Without an SSH key nothing is written.
 */
export async function gitAuthEnv(parent: string, auth: GitAuth | undefined): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  if (!auth?.sshPrivateKey) return { env: {}, cleanup: async () => undefined };
  const dir = path.join(parent, `.ssh-${randomBytes(6).toString("hex")}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const key = path.join(dir, "id");
  const known = path.join(dir, "known_hosts");
  const pem = auth.sshPrivateKey.endsWith("\n") ? auth.sshPrivateKey : `${auth.sshPrivateKey}\n`;
  await writeFile(key, pem, { mode: 0o600 });
  await writeFile(known, auth.knownHosts ? `${auth.knownHosts.trim()}\n` : "", { mode: 0o600 });
  const q = (p: string) => `'${p.replace(/'/g, "'\\''")}'`;
  const cmd = [
    "ssh",
    `-i ${q(key)}`,
    "-o IdentitiesOnly=yes",
    "-o IdentityAgent=none",
    "-o BatchMode=yes",
    `-o UserKnownHostsFile=${q(known)}`,
    "-o GlobalKnownHostsFile=/dev/null",
    "-o StrictHostKeyChecking=yes",
    "-o ConnectTimeout=15",
    "-o ServerAliveInterval=15",
    "-o ServerAliveCountMax=4",
  ].join(" ");
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
    return { reason: `the SSH host key of ${host} is not pinned, so the host cannot be trusted: an admin pins it (PUT /v1/git-host-keys/${encodeURIComponent(host)})`, retryable: false };
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
