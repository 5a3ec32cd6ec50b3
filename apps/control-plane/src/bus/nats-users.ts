import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, rename, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { AuthorizationError, nkeyAuthenticator, nkeys, type Authenticator } from "@nats-io/nats-core";
import { natsHostPermissions, type Logger } from "@slipway/core";
import { natsServers } from "./nats-servers.js";

/** A host's NATS user: its id and the public nkey its agent generated. */
export interface NatsHostUser {
  hostId: string;
  publicKey: string;
}

/** How the control plane itself reaches NATS: the address, and its nkey when users are enforced. */
export interface NatsAccess {
  /** One URL, or a cluster's nodes comma-separated (nats-servers.ts). */
  url: string;
  authenticator?: Authenticator;
}

/** True for an nkey user public key ("U" + 55 base32 characters with a valid checksum). */
export function isNatsUserKey(key: unknown): key is string {
  if (typeof key !== "string" || !/^U[A-Z2-7]{55}$/.test(key)) return false;
  try {
    nkeys.fromPublic(key);
    return true;
  } catch {
    return false;
  }
}

/** The control plane's own nkey seed: read from `file`, created there (mode 0600) on first use. */
export async function loadOrCreateSeed(file: string): Promise<Uint8Array> {
  try {
    const seed = (await readFile(file, "utf8")).trim();
    nkeys.fromSeed(new TextEncoder().encode(seed));
    return new TextEncoder().encode(seed);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`${file} does not hold an nkey seed: ${(err as Error).message}`);
  }
  const seed = nkeys.createUser().getSeed();
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file + ".tmp", new TextDecoder().decode(seed) + "\n", { mode: 0o600 });
  await rename(file + ".tmp", file);
  return seed;
}

export function publicKeyOf(seed: Uint8Array): string {
  return nkeys.fromSeed(seed).getPublicKey();
}

/**
 * The `authorization` block of a nats-server configuration (NATS's config
 * syntax accepts JSON values): the control plane (every permission), one
 * user per host allowed only `natsHostPermissions(hostId)`, and the reload
 * marker, a user with no permission at all whose key changes with every
 * write: once it can connect, the server runs this very file. The first line
 * carries a digest of the users without the marker, so an unchanged fleet is
 * not written (nor reloaded) again, by this control plane or another replica.
 */
export function renderNatsUsers(opts: { controlPlaneKey: string; hosts: NatsHostUser[]; markerKey?: string }): string {
  const users: unknown[] = [{ nkey: opts.controlPlaneKey }];
  for (const h of opts.hosts) {
    const p = natsHostPermissions(h.hostId);
    users.push({ nkey: h.publicKey, permissions: { publish: { allow: p.publish }, subscribe: { allow: p.subscribe } } });
  }
  const digest = usersDigest(users);
  // The marker: no permission at all; it only proves which version of this file the server runs.
  if (opts.markerKey) users.push({ nkey: opts.markerKey, permissions: { publish: { deny: [">"] }, subscribe: { deny: [">"] } } });
  return [
    `${DIGEST_PREFIX}${digest}`,
    "# Written by the Slipway control plane: one NATS user per host, allowed only its own subjects.",
    "# Do not edit: it is rewritten whenever a host joins, changes its key or is revoked.",
    `authorization { users = ${JSON.stringify(users, null, 1)} }`,
    "",
  ].join("\n");
}

const DIGEST_PREFIX = "# slipway users digest: ";

function usersDigest(users: unknown[]): string {
  return createHash("sha256").update(JSON.stringify(users)).digest("hex");
}

function digestOf(text: string): string | undefined {
  const first = text.slice(0, text.indexOf("\n"));
  return first.startsWith(DIGEST_PREFIX) ? first.slice(DIGEST_PREFIX.length) : undefined;
}

/**
 * Keeps a nats-server's users in step with the fleet: renders the hosts that
 * are not revoked into `file` (atomically), asks the server to reload, and
 * resolves only once the server enforces that file (the marker user can
 * connect). Calls coalesce: one sync runs at a time, and a call made while one
 * runs is answered by the next, which reads the hosts after the call.
 */
export class NatsUserDirectory {
  private running?: Promise<void>;
  private queued?: Promise<void>;
  /** Whether the server was seen running the file as it is now (it started with it, or a reload was confirmed): if not, a sync always reloads. */
  private confirmedOnce = false;

  constructor(
    private readonly opts: {
      file: string;
      controlPlaneSeed: Uint8Array;
      hosts: () => Promise<NatsHostUser[]>;
      /** Asks the server to reload its configuration (SIGHUP, or the operator's command). */
      reload: () => Promise<void>;
      url: () => string;
      log: Logger;
      /** How long the server may take to run a new file. */
      confirmTimeoutMs?: number;
    },
  ) {}

  /** Writes the file without asking for a reload: before the embedded server starts (and then runs it). */
  async writeInitial(): Promise<void> {
    await this.write(renderNatsUsers({ controlPlaneKey: publicKeyOf(this.opts.controlPlaneSeed), hosts: await this.opts.hosts() }));
    this.confirmedOnce = true;
  }

  /** Brings the server's users up to date with the hosts; resolves once the server enforces them. */
  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    // The running sync may have read the hosts before this call's change: one more follows it.
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.sync();
      });
    return this.queued;
  }

  private async run(): Promise<void> {
    const hosts = await this.opts.hosts();
    const controlPlaneKey = publicKeyOf(this.opts.controlPlaneSeed);
    const current = await readFile(this.opts.file, "utf8").catch(() => "");
    if (digestOf(current) === digestOf(renderNatsUsers({ controlPlaneKey, hosts })) && this.confirmedOnce) return;
    const marker = nkeys.createUser();
    // Until the server is seen running the new file, the next sync reloads even when nothing changed.
    this.confirmedOnce = false;
    await this.write(renderNatsUsers({ controlPlaneKey, hosts, markerKey: marker.getPublicKey() }));
    const started = Date.now();
    await this.opts.reload();
    await this.confirm(marker.getSeed());
    this.confirmedOnce = true;
    this.opts.log.info({ hosts: hosts.length, ms: Date.now() - started }, "NATS users updated (one per host)");
  }

  private async write(text: string): Promise<void> {
    await mkdir(path.dirname(this.opts.file), { recursive: true });
    await writeFile(this.opts.file + ".tmp", text, { mode: 0o600 });
    await rename(this.opts.file + ".tmp", this.opts.file);
  }

  /**
   * Waits until the marker user can connect: the server then runs the file just written. On a
   * cluster every node is asked: each must run the file, except one that does not answer at
   * all (it is down, and reads the file when it starts); at least one must have let it in.
   */
  private async confirm(seed: Uint8Array): Promise<void> {
    const timeoutMs = this.opts.confirmTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(natsServers(this.opts.url()));
    let confirmed = 0;
    let last = "";
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      await new Promise((r) => setTimeout(r, delay));
      const down: string[] = [];
      for (const server of [...pending]) {
        try {
          const nc = await connect({ servers: server, authenticator: nkeyAuthenticator(seed), reconnect: false, timeout: 2000, name: "slipway-control-plane-reload-check" });
          await nc.close();
          pending.delete(server);
          confirmed++;
        } catch (err) {
          last = `${server}: ${(err as Error).message}`;
          if (!(err instanceof AuthorizationError)) down.push(server);
        }
      }
      if (pending.size === 0 || (confirmed > 0 && down.length === pending.size)) {
        if (pending.size > 0) this.opts.log.warn({ unreachable: [...pending] }, "NATS nodes that do not answer will read the new users when they start");
        return;
      }
      if (Date.now() > deadline) throw new Error(`the NATS server did not apply its new users within ${timeoutMs / 1000} s (last: ${last}); is its reload configured?`);
    }
  }
}

/** Reloads an external nats-server with the operator's command (`sh -c`), e.g. `nats-server --signal reload=<pid file>`. */
export function reloadByCommand(command: string): () => Promise<void> {
  return () =>
    new Promise((resolve, reject) => {
      execFile("/bin/sh", ["-c", command], { timeout: 10_000 }, (err, _stdout, stderr) => {
        if (err) reject(new Error(`SLIPWAY_NATS_RELOAD_COMMAND failed: ${(stderr || err.message).trim().slice(0, 500)}`));
        else resolve();
      });
    });
}

/** How the control plane reaches a NATS that knows its nkey (the seed signs the server's nonce). */
export function accessWithSeed(url: string, seed: Uint8Array): NatsAccess {
  return { url, authenticator: nkeyAuthenticator(seed) };
}
