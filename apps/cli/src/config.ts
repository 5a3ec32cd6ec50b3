import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";

/** A mistake in how the command was called: exit status 2, nothing was sent. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A command that could not do its work for a reason of its own (a local tool failed, a check did not hold): exit status 1. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CommandError";
  }
}

export interface Credentials {
  url: string;
  token: string;
}

/** `$SLIPWAY_CONFIG`, else `$XDG_CONFIG_HOME/slipway/config.json`, else `~/.config/slipway/config.json`. */
export function configPath(env: NodeJS.ProcessEnv): string {
  if (env.SLIPWAY_CONFIG) return env.SLIPWAY_CONFIG;
  return path.join(env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), ".config"), "slipway", "config.json");
}

/** A control plane URL as typed: http(s) only, no path beyond `/`. */
export function normalizeUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`'${raw}' is not a URL (example: http://127.0.0.1:7700)`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new UsageError(`'${raw}' is not an http(s) URL`);
  if (u.search || u.hash) throw new UsageError(`'${raw}': give the control plane's address without a query`);
  return u.toString().replace(/\/+$/, "");
}

/**
 * Where to send requests and with which token: `--url`/`--token`, else
 * SLIPWAY_URL/SLIPWAY_TOKEN (for CI), else what `slipway login` saved.
 */
export function resolveCredentials(env: NodeJS.ProcessEnv, flags: { url?: string; token?: string }): Credentials {
  let saved: Partial<Credentials> = {};
  try {
    saved = JSON.parse(readFileSync(configPath(env), "utf8")) as Partial<Credentials>;
  } catch {
    saved = {};
  }
  const url = flags.url ?? env.SLIPWAY_URL ?? saved.url;
  const token = flags.token ?? env.SLIPWAY_TOKEN ?? saved.token;
  if (!url || !token) throw new UsageError("not logged in: run `slipway login --url <control plane> --token <token>`, or set SLIPWAY_URL and SLIPWAY_TOKEN");
  return { url: normalizeUrl(url), token };
}

/** Saves the credentials readable by the user only (0600 in a 0700 directory), atomically. */
export function saveCredentials(file: string, creds: Credentials): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function removeCredentials(file: string): boolean {
  try {
    rmSync(file);
    return true;
  } catch {
    return false;
  }
}
