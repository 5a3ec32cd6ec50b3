import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "../client.js";
import type { Io } from "../io.js";

export type OptionSpec = { type: "string" | "boolean"; short?: string; description: string };
export type Values = Record<string, string | boolean | undefined>;

/** What a command runs with: its parsed arguments and options, and the API client (made on first use). */
export interface Ctx {
  io: Io;
  args: string[];
  opts: Values;
  client: () => Client;
  json: boolean;
}

/** One command of the `slipway` command line; the dispatcher (cli.ts) parses and checks its arguments. */
export interface Command {
  /** One or two words: `deploy`, `vars set`. */
  name: string;
  /** Positional arguments; a last one ending in `...` takes one or more. */
  args: string[];
  summary: string;
  options?: Record<string, OptionSpec>;
  /** Resolves with the exit status. */
  run(ctx: Ctx): Promise<number>;
}

/** Options every command takes. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  url: { type: "string", description: "control plane URL (else SLIPWAY_URL, else the saved login)" },
  token: { type: "string", description: "API token (else SLIPWAY_TOKEN, else the saved login)" },
  json: { type: "boolean", description: "print JSON instead of text" },
  help: { type: "boolean", short: "h", description: "show help" },
};

/** States after which a deployment, copy or backup changes no more. */
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const enc = encodeURIComponent;
export const envPath = (app: string, env: string) => `/apps/${enc(app)}/environments/${enc(env)}`;

/** Prints `data` as JSON with --json, else `text()`. */
export function print(ctx: Ctx, data: unknown, text: () => string): void {
  ctx.io.out(ctx.json ? `${JSON.stringify(data, null, 2)}\n` : text());
}

/** Polls `get` until it returns a value, or Ctrl-C. */
export async function until<T>(io: Io, get: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    await sleep(io.pollMs ?? 1000, undefined, io.signal ? { signal: io.signal } : undefined);
  }
}

/** `--detach`: print the id of what was started (or all of it with --json) and return at once. */
export function detached(ctx: Ctx, started: { id: string }): number {
  print(ctx, started, () => `${started.id}\n`);
  return 0;
}

/** `--database` / `--media` of a content copy, backup or deployment with content. */
export function contentParts(opts: Values): { database: boolean; media: boolean } {
  // Neither flag: both, as the API's default content copy does.
  const database = opts.database === true;
  const media = opts.media === true;
  return database || media ? { database, media } : { database: true, media: true };
}
