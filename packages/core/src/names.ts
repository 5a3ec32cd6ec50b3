import { InvalidRequestError } from "./errors.js";

/** DNS label used for app and environment names. */
export const NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$";
const nameRe = new RegExp(NAME_PATTERN);
export const ENV_NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$";
const envNameRe = new RegExp(ENV_NAME_PATTERN);
/** POSIX environment variable names. */
export const VARIABLE_KEY_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";
/** A git branch name (conservative subset of git-check-ref-format). */
export const BRANCH_PATTERN = "^(?!/)(?!.*\\.\\.)(?!.*//)(?!.*@\\{)[A-Za-z0-9._/-]{1,200}(?<![/.])$";

/** Host labels (SLIPWAY_AGENT_LABELS) and an environment's placement constraints (`hostLabels`): key=value. */
export const HOST_LABEL_KEY_PATTERN = "^[a-zA-Z0-9._/-]{1,63}$";
export const HOST_LABEL_VALUE_PATTERN = "^[a-zA-Z0-9._-]{0,63}$";
/** True when the host has every label the constraints ask for, with the same value. */
export function labelsMatch(hostLabels: Record<string, string>, constraints: Record<string, string>): boolean {
  return Object.entries(constraints).every(([k, v]) => hostLabels[k] === v);
}

/** `k1=v1,k2=v2` (keys sorted), as SLIPWAY_AGENT_LABELS is written. */
export function formatLabels(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

export const DEFAULT_ENVIRONMENTS = ["test", "live"] as const;

export function isValidAppName(name: string): boolean {
  return nameRe.test(name);
}
export function isValidEnvironmentName(name: string): boolean {
  return envNameRe.test(name);
}
export function assertAppName(name: string): void {
  if (!isValidAppName(name)) {
    throw new InvalidRequestError(`invalid app name '${name}': use 1-40 of a-z, 0-9 and '-', not starting or ending with '-'`, {
      details: { name: "must match " + NAME_PATTERN },
    });
  }
}

/*
 * Identity. Names (app, environment) are for people: they may be renamed one
 * day, and concatenated they collide (`shop-api` + `live` and `shop` +
 * `api-live` both read `shop-api-live`; `a--b` + `c` and `a` + `b--c` both
 * `a--b--c`). Everything the platform creates for an environment (database,
 * role, Docker network, HAProxy backend, media and backup locations) is named
 * after the environment's id, a UUID given at creation that never changes.
 */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The 32 lowercase hex digits of an environment id (a UUID); throws on anything else. */
export function environmentKey(environmentId: string): string {
  if (!UUID_RE.test(environmentId)) throw new Error(`environment id '${environmentId}' is not a UUID`);
  return environmentId.toLowerCase().replace(/-/g, "");
}

/**
 * The name of an environment's HAProxy backend and the agent's key for it:
 * `env-<32 hex>` (36 characters; HAProxy's name rules: lowercase letters,
 * digits, `-`). Environments an agent recorded under an older scheme keep the
 * name it recorded (the agent looks it up by id first).
 */
export function environmentSlug(environmentId: string): string {
  return `env-${environmentKey(environmentId)}`;
}
const slugRe = /^env-[0-9a-f]{32}$/;
/** Whether a name is an environment slug as environmentSlug gives them. */
export function isEnvironmentSlug(name: string): boolean {
  return slugRe.test(name);
}

/**
 * The Docker network of an environment on one host: its slug and the host.
 * The host id is part of it because hosts may share a Docker engine (tests,
 * small set-ups): a move from one host to another must not tear down the
 * network the other one now uses.
 */
export function environmentNetwork(slug: string, hostId: string): string {
  return `${slug}--${hostId.replace(/-/g, "").slice(0, 8)}`;
}

/** Where an environment's media live in the media bucket: `envs/<id>/` (recorded per environment at creation). */
export function environmentMediaPrefix(environmentId: string): string {
  environmentKey(environmentId);
  return `envs/${environmentId.toLowerCase()}/`;
}

/** Where one backup of an environment lives in the backup bucket (recorded per backup). */
export function backupLocation(environmentId: string, backupId: string): string {
  environmentKey(environmentId);
  if (!UUID_RE.test(backupId)) throw new Error(`backup id '${backupId}' is not a UUID`);
  return `envs/${environmentId.toLowerCase()}/${backupId.toLowerCase()}/`;
}

/** Prefix of the platform's database and role names (SLIPWAY_DATABASE_NAME_PREFIX): a letter, then up to 15 of a-z, 0-9, _. */
export const DATABASE_NAME_PREFIX_PATTERN = "^[a-z][a-z0-9_]{0,15}$";
const dbPrefixRe = new RegExp(DATABASE_NAME_PREFIX_PATTERN);

/**
 * The database (and login role) of an environment: `<prefix>_e_<32 hex>`, at
 * most 51 bytes, within PostgreSQL's 63-byte identifier limit, no quoting needed.
 */
export function environmentDatabaseName(prefix: string, environmentId: string): string {
  if (!dbPrefixRe.test(prefix)) throw new Error(`invalid database name prefix '${prefix}'`);
  return `${prefix}_e_${environmentKey(environmentId)}`;
}

/**
 * The label of an environment's default host name as first given: `<app>-<env>`
 * (at most 61 characters, a DNS label). It is stored per environment, unique
 * across the platform, so a label another environment holds is refused.
 */
export function defaultHostLabel(app: string, env: string): string {
  return `${app}-${env}`;
}

/** A default host name: the environment's stored label under the platform's base domain. */
export function defaultHostname(hostLabel: string, baseDomain: string): string {
  return `${hostLabel}.${baseDomain}`;
}

/** NATS naming for jobs. */
export const JOBS_STREAM = "SLIPWAY_JOBS";
export const JOBS_SUBJECT_PREFIX = "slipway.jobs";
export function jobsSubject(hostId: string): string {
  return `${JOBS_SUBJECT_PREFIX}.${hostId}`;
}
export function jobsConsumer(hostId: string): string {
  return `agent-${hostId}`;
}
/**
 * How an agent pulls its jobs. A pull waits up to `expires` for a message (a job is delivered the
 * moment it is stored, whatever is left of the wait); the server's idle heartbeat, every
 * `idle_heartbeat`, shows the pull is alive, and two missed ones make the client pull anew (a lost
 * NATS node). nats.js' default expiry is 30 s: an idle consumer exchanged 12 messages every 2
 * minutes (4 pulls, 4 expiries, 4 idle heartbeats); at 120 s, 9 (1, 1, 7). The idle heartbeat stays
 * at its default for a 30 s pull (15 s), so a lost pull is found as soon.
 */
export const JOBS_PULL = { expires: 120_000, idle_heartbeat: 15_000 } as const;

/** Container labels the agent puts on everything it starts. */
export const LABELS = {
  managed: "io.slipway.managed",
  host: "io.slipway.host",
  app: "io.slipway.app",
  environment: "io.slipway.environment",
  deployment: "io.slipway.deployment",
  role: "io.slipway.role",
} as const;

/** Whether a certificate's name (exact, or `*.` for exactly one label, as TLS clients match it) covers a host name. */
export function nameCovers(certName: string, hostname: string): boolean {
  const c = certName.toLowerCase();
  const h = hostname.toLowerCase();
  if (c === h) return true;
  if (!c.startsWith("*.")) return false;
  const dot = h.indexOf(".");
  return dot > 0 && h.slice(dot + 1) === c.slice(2);
}
