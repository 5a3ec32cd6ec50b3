import fs from "node:fs/promises";
import path from "node:path";
import type { ProbeSpec } from "@slipway/proto";
import type { ContainerLimits } from "../docker/container-runtime.js";

/** running: routed to its containers; sleeping: containers stopped, the next request wakes it; stopped: stopped by hand, requests get 503. */
export type EnvironmentState = "running" | "sleeping" | "stopped";

/** Basic auth as the ingress checks it: `digest` = lowercase hex sha256("Basic " + base64(user:password)). */
export interface EnvironmentAuth {
  username: string;
  digest: string;
}

/** One environment this agent serves, as persisted in `<stateDir>/environments.json`. */
export interface EnvironmentEntry {
  app: string;
  environment: string;
  environmentId: string;
  /**
   * The ingress backend's name and the key of everything the agent keeps for the environment
   * (lock, network): core's environmentSlug(environmentId) when recorded by this version,
   * `<app>--<env>` for environments an older agent recorded (kept: see slugFor).
   */
  slug: string;
  image: string;
  /** Images of its last successful deployments here, most recent first (the current one included): what rollback keeps. */
  recentImages?: string[];
  /** What its containers may take (recreated containers get the same). */
  limits?: ContainerLimits;
  webPort: number;
  probe: ProbeSpec;
  /** The web containers of the routed deployment (kept while sleeping or stopped, for a fast start). */
  containerIds: string[];
  deploymentId: string;
  hostnames: string[];
  basicAuth: EnvironmentAuth | null;
  /** 0 = never sleeps. */
  sleepAfterSeconds: number;
  state: EnvironmentState;
  /**
   * The certificates (by their host names, sorted) this environment's specs installed on the
   * ingress or found served: what its removal or a host-name change may take away again.
   */
  tlsCertificates?: string[][];
}

interface RegistryFile {
  version: 1;
  environments: Record<string, EnvironmentEntry>;
}

/**
 * The environments this agent serves, keyed by slug, persisted as JSON with
 * write-then-rename so a crash never leaves half a file. The environment
 * variables of the last deployment are secrets and are kept in memory only
 * (a stopped container keeps its own env; they are needed only to recreate a
 * container that disappeared). Callers serialise changes per environment;
 * writes of the file are serialised here.
 */
export class EnvironmentRegistry {
  private entries = new Map<string, EnvironmentEntry>();
  private readonly variables = new Map<string, Record<string, string>>();
  private writing: Promise<void> = Promise.resolve();
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "environments.json");
  }

  /** Reads the file; a missing file is an empty registry. */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    const parsed = JSON.parse(text) as RegistryFile;
    if (parsed.version !== 1 || typeof parsed.environments !== "object") throw new Error(`unsupported environment registry in ${this.file}`);
    this.entries = new Map(Object.entries(parsed.environments));
  }

  get(slug: string): EnvironmentEntry | undefined {
    const e = this.entries.get(slug);
    return e ? structuredClone(e) : undefined;
  }

  /** The slug recorded for the environment with this id, if any. */
  slugOf(environmentId: string): string | undefined {
    if (!environmentId) return undefined;
    for (const e of this.entries.values()) if (e.environmentId === environmentId) return e.slug;
    return undefined;
  }

  all(): EnvironmentEntry[] {
    return [...this.entries.values()].map((e) => structuredClone(e));
  }

  /** Replaces (or adds) the entry and persists; `variables` stay in memory only. */
  async put(entry: EnvironmentEntry, variables?: Record<string, string>): Promise<void> {
    this.entries.set(entry.slug, structuredClone(entry));
    if (variables) this.variables.set(entry.slug, { ...variables });
    await this.save();
  }

  /** Changes some fields of an existing entry and persists; returns the new entry, or undefined when there is none. */
  async update(slug: string, change: Partial<Omit<EnvironmentEntry, "slug">>): Promise<EnvironmentEntry | undefined> {
    const e = this.entries.get(slug);
    if (!e) return undefined;
    const next = { ...e, ...structuredClone(change) };
    this.entries.set(slug, next);
    await this.save();
    return structuredClone(next);
  }

  async delete(slug: string): Promise<void> {
    this.variables.delete(slug);
    if (!this.entries.delete(slug)) return;
    await this.save();
  }

  /** The variables of the environment's last deployment on this agent run, if known. */
  variablesOf(slug: string): Record<string, string> | undefined {
    const v = this.variables.get(slug);
    return v ? { ...v } : undefined;
  }

  private save(): Promise<void> {
    const next = this.writing.catch(() => undefined).then(async () => {
      const body: RegistryFile = { version: 1, environments: Object.fromEntries(this.entries) };
      const tmp = `${this.file}.${process.pid}.tmp`;
      await fs.writeFile(tmp, JSON.stringify(body, null, 2) + "\n", { mode: 0o600 });
      await fs.rename(tmp, this.file);
    });
    this.writing = next;
    return next;
  }
}
