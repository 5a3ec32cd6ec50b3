import { execFile } from "node:child_process";
import sshpk from "sshpk";
import { InvalidRequestError, NotFoundError, knownHostsLinesFor, sshRemoteOf, type GitAuth, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import type { AppRow } from "../repositories/apps.repository.js";
import * as keys from "../repositories/git-keys.repository.js";
import type { SecretBox } from "../services/secret-box.js";
import { joinRepositoryCredential } from "../services/repository-credential.js";

export interface DeployKeyView {
  /** One line for the git host's "deploy keys" page. */
  publicKey: string;
  fingerprint: string;
}

export interface HostKeyView {
  host: string;
  keys: string[];
  source: "first-use" | "admin";
  pinnedBy: string;
  pinnedAt: string;
}

/** An ed25519 key pair: the private key in OpenSSH's format, the public one as authorized_keys has it. */
export function generateDeployKey(comment: string): { privateKey: string; publicKey: string } {
  const key = sshpk.generatePrivateKey("ed25519");
  key.comment = comment;
  return { privateKey: key.toString("openssh"), publicKey: key.toPublic().toString("ssh") };
}

export function fingerprintOf(publicKey: string): string {
  return sshpk.parseKey(publicKey, "ssh").fingerprint("sha256").toString();
}

/** Asks the git host for its keys (known_hosts lines), as `ssh-keyscan` does. */
export type HostKeyScanner = (hostname: string, port: number) => Promise<string>;

const scanWithKeyscan =
  (timeoutSeconds: number): HostKeyScanner =>
  (hostname, port) =>
    new Promise((resolve, reject) => {
      execFile("ssh-keyscan", ["-T", String(timeoutSeconds), "-p", String(port), "-t", "ed25519,ecdsa,rsa", "--", hostname], { timeout: (timeoutSeconds + 5) * 1000 }, (err, stdout, stderr) => {
        if (stdout.trim()) resolve(stdout);
        else reject(new Error(err ? `ssh-keyscan: ${String(stderr || err.message).trim().slice(-300)}` : `no SSH host key from ${hostname}:${port}`));
      });
    });

/**
 * How the platform reads an app's repository: the app's SSH deploy key (generated once, sealed;
 * only the public key is ever shown) and the git hosts' SSH host keys, pinned the first time a
 * host is used (or set by an admin). A host presenting another key than the pinned one is refused
 * by ssh; the pin changes only by an admin's hand.
 */
export class GitAccess {
  private readonly scan: HostKeyScanner;
  /** One pinning per host at a time (a first deployment and the first fetch race otherwise). */
  private readonly pinning = new Map<string, Promise<string>>();

  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly log: Logger,
    opts: { scan?: HostKeyScanner; keyscanTimeoutSeconds?: number } = {},
  ) {
    this.scan = opts.scan ?? scanWithKeyscan(opts.keyscanTimeoutSeconds ?? 10);
  }

  /** The app's deploy key, made the first time it is asked for. */
  async deployKey(app: AppRow): Promise<DeployKeyView> {
    const publicKey = app.deploy_key_public ?? (await this.ensureDeployKey(app)).publicKey;
    return { publicKey, fingerprint: fingerprintOf(publicKey) };
  }

  /** A new key pair for the app; the old one stops working once removed from the git host. */
  async rotateDeployKey(app: AppRow): Promise<DeployKeyView> {
    const k = generateDeployKey(`slipway-${app.name}`);
    await keys.setDeployKey(this.db, app.id, k.publicKey, this.box.encrypt(k.privateKey));
    app.deploy_key_public = k.publicKey;
    this.log.info({ app: app.name, fingerprint: fingerprintOf(k.publicKey) }, "deploy key rotated");
    return { publicKey: k.publicKey, fingerprint: fingerprintOf(k.publicKey) };
  }

  private async ensureDeployKey(app: AppRow): Promise<{ publicKey: string; privateKey: string }> {
    if (app.deploy_key_public && app.deploy_key_private_encrypted) return { publicKey: app.deploy_key_public, privateKey: this.box.decrypt(app.deploy_key_private_encrypted) };
    const k = generateDeployKey(`slipway-${app.name}`);
    // Two first requests at once: the first write wins, both answer the stored key.
    const stored = await keys.setDeployKeyIfMissing(this.db, app.id, k.publicKey, this.box.encrypt(k.privateKey));
    app.deploy_key_public = stored.publicKey;
    app.deploy_key_private_encrypted = stored.privateSealed;
    return { publicKey: stored.publicKey, privateKey: this.box.decrypt(stored.privateSealed) };
  }

  /**
   * What a git process needs to read the app's repository: the URL with its token (https), or the
   * deploy key and the pinned host keys (ssh; the host's keys are pinned now if this is its first use).
   */
  async forGit(app: AppRow): Promise<{ url: string; auth?: GitAuth; warning?: string }> {
    const url = app.repository_credential_encrypted ? joinRepositoryCredential(app.repository, this.box.decrypt(app.repository_credential_encrypted)) : app.repository;
    const remote = sshRemoteOf(app.repository);
    if (!remote) return { url };
    const key = await this.ensureDeployKey(app);
    try {
      return { url, auth: { sshPrivateKey: key.privateKey, knownHosts: await this.knownHosts(remote.knownHostsName, remote.hostname, remote.port) } };
    } catch (err) {
      // ssh then refuses the unknown host; the deployment's log says why it is not pinned (tried again next time).
      const why = `could not pin the SSH host key of ${remote.knownHostsName} on first use (${(err as Error).message}); it is tried again at the next fetch, or an admin pins it (PUT /v1/git-host-keys/${encodeURIComponent(remote.knownHostsName)})`;
      this.log.warn({ app: app.name, host: remote.knownHostsName, err: (err as Error).message }, "could not pin the git host's SSH key");
      return { url, auth: { sshPrivateKey: key.privateKey, knownHosts: "" }, warning: why };
    }
  }

  /** The pinned keys of a host; pinned now, from the host itself, when it has none (trust on first use). */
  async knownHosts(name: string, hostname: string, port: number): Promise<string> {
    const pinned = await keys.findHostKey(this.db, name);
    if (pinned) return pinned.keys;
    const running = this.pinning.get(name);
    if (running) return running;
    const p = (async () => {
      const lines = knownHostsLinesFor(await this.scan(hostname, port), name);
      if (lines.length === 0) throw new Error(`${name} offered no SSH host key`);
      const stored = await keys.insertHostKeyIfMissing(this.db, { host: name, keys: lines.join("\n"), source: "first-use", pinned_by: "first use" });
      this.log.info({ host: name, keys: lines.map((l) => l.split(/\s+/)[1]) }, "git host's SSH key pinned on first use");
      return stored.keys;
    })().finally(() => this.pinning.delete(name));
    this.pinning.set(name, p);
    return p;
  }

  async listHostKeys(): Promise<HostKeyView[]> {
    return (await keys.listHostKeys(this.db)).map(toHostKeyView);
  }

  /** An admin pins a host's keys (known_hosts lines, or bare "type key" lines); replaces what was pinned. */
  async pinHostKeys(by: string, host: string, text: string): Promise<HostKeyView> {
    const name = host.trim().toLowerCase();
    if (!/^(\[[a-z0-9.:-]+\]:\d{1,5}|[a-z0-9.:-]+)$/.test(name)) {
      throw new InvalidRequestError(`invalid git host '${host}': use a host name ("github.com") or "[host]:port" for another port than 22`, { details: { host: "invalid" } });
    }
    const lines = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => (/^(ssh-|ecdsa-|sk-)/.test(l) ? `${name} ${l}` : l));
    const valid = knownHostsLinesFor(lines.join("\n"), name);
    for (const l of valid) {
      const [, type, b64] = l.split(/\s+/);
      try {
        sshpk.parseKey(`${type} ${b64}`, "ssh");
      } catch {
        throw new InvalidRequestError(`not an SSH public key: '${l.slice(0, 80)}'`, { details: { keys: "invalid" } });
      }
    }
    if (valid.length === 0 || valid.length !== lines.length) {
      throw new InvalidRequestError(`give the host's keys as known_hosts lines for ${name} (as \`ssh-keyscan\` prints them) or as "<type> <key>" lines`, { details: { keys: "invalid" } });
    }
    const row = await keys.upsertHostKey(this.db, { host: name, keys: valid.join("\n"), source: "admin", pinned_by: by });
    this.log.info({ host: name, by }, "git host's SSH key pinned by an admin");
    return toHostKeyView(row);
  }

  /** Forgets a host's keys: the next use pins what the host then presents. */
  async unpinHostKeys(host: string): Promise<void> {
    if (!(await keys.deleteHostKey(this.db, host.trim().toLowerCase()))) throw new NotFoundError(`no SSH key is pinned for ${host}`);
  }
}

function toHostKeyView(r: keys.HostKeyRow): HostKeyView {
  return { host: r.host, keys: r.keys.split("\n"), source: r.source, pinnedBy: r.pinned_by, pinnedAt: r.pinned_at.toISOString() };
}
