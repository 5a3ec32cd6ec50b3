import type { ColumnType, Generated } from "kysely";
import type { ResourceLimits } from "@slipway/core";

/** A container of the environment killed or dead: `reason` as users read it ("killed: out of memory"). */
export interface EnvironmentIncident {
  at: string;
  reason: string;
  container: string;
  /** How many such incidents so far (since the environment was created). */
  count: number;
}

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export interface ApiTokensTable {
  id: string;
  name: string;
  role: "admin" | "deployer" | "viewer";
  apps: Json<string[]>;
  token_hash: string;
  created_at: Timestamp;
  revoked_at: Timestamp | null;
  expires_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** Written at most once a minute per token. */
  last_used_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** The bootstrap admin token (SLIPWAY_ADMIN_TOKEN or the generated one); replacing it revokes the previous one. */
  bootstrap: ColumnType<boolean, boolean | undefined, boolean>;
}
/** A browser session (migration 0018): the cookie's secret as its SHA-256 hash, bound to the token signed in with. */
export interface SessionsTable {
  id: string;
  secret_hash: string;
  token_id: string;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  /** Written at most once a minute per session, with the sliding expiry. */
  last_used_at: ColumnType<Date, Date | string | undefined, Date | string>;
  /** The shorter of the token's expiry and the last use plus the session TTL. */
  expires_at: Timestamp;
}
export interface JoinTokensTable {
  id: string;
  token_hash: string;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  created_at: Timestamp;
}
export interface HostsTable {
  id: string;
  name: string;
  labels: Json<Record<string, string>>;
  credential_hash: string;
  version: string;
  capacity: Json<{ cpus: number; memoryBytes: number; diskBytes: number }>;
  load: Json<{ cpu: number; memoryUsedBytes: number; diskUsedBytes: number; diskFreeBytes?: number; containers: number }>;
  /** Desired/admin state; online/offline is derived from last_heartbeat_at. */
  admin_state: "active" | "cordoned" | "draining" | "revoked";
  last_heartbeat_at: Timestamp | null;
  registered_at: Timestamp;
  ingress_address: ColumnType<string | null, string | null | undefined, string | null>;
  /** The host's NATS user: the public nkey its agent generated (migration 0013); null until the agent configured NATS. */
  nats_public_key: ColumnType<string | null, string | null | undefined, string | null>;
  /** The certificates its ingress serves, as its agent last reported them (migration 0023); null = never reported. */
  served_certificates: ColumnType<ServedCertificateRecord[] | null, string | null | undefined, string | null>;
  served_certificates_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}
/** One certificate a host serves: host names, serial (uppercase hex) and expiry (ISO). */
export interface ServedCertificateRecord {
  hostnames: string[];
  serial: string;
  notAfter: string;
}
export interface AppsTable {
  id: string;
  name: string;
  /** Without any credential: that is in repository_credential_encrypted (migration 0012). */
  repository: string;
  repository_credential_encrypted: ColumnType<string | null, string | null | undefined, string | null>;
  /** The app's SSH deploy key (migration 0017): the public key in OpenSSH format, the private one sealed. */
  deploy_key_public: ColumnType<string | null, string | null | undefined, string | null>;
  deploy_key_private_encrypted: ColumnType<string | null, string | null | undefined, string | null>;
  /** The secret its push webhooks are signed with, sealed; null until first asked for. */
  webhook_secret_encrypted: ColumnType<string | null, string | null | undefined, string | null>;
  /** Seconds between background fetches of its repository; null = the platform's default, 0 = never (webhooks only). */
  poll_interval_seconds: ColumnType<number | null, number | null | undefined, number | null>;
  settings: Json<unknown>;
  settings_revision: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface EnvironmentsTable {
  id: string;
  app_id: string;
  name: string;
  branch: string;
  /** The derived lifecycle state (core's environmentState); written only by the lifecycle module. */
  state: string;
  /** What the user asked: running or stopped. */
  desired_state: ColumnType<string, string | undefined, string>;
  /** What the host last reported (running, sleeping, stopped); null before its first report. */
  observed_state: ColumnType<string | null, string | null | undefined, string | null>;
  replicas: number;
  sleep_after_seconds: number | null;
  host_id: string | null;
  /** Placement constraints: labels the host must have (key → value). */
  host_labels: ColumnType<Record<string, string>, string | undefined, string>;
  /** Bumped on every change a deployment applies (branch, variables, domains, replicas). */
  config_revision: number;
  deployed_config_revision: number | null;
  deployed_settings_revision: number | null;
  deployed_commit: string | null;
  current_image: string | null;
  last_success_at: Timestamp | null;
  basic_auth_username: ColumnType<string | null, string | null | undefined, string | null>;
  basic_auth_digest: ColumnType<string | null, string | null | undefined, string | null>;
  secret_key_encrypted: ColumnType<string | null, string | null | undefined, string | null>;
  db_password_encrypted: ColumnType<string | null, string | null | undefined, string | null>;
  backup_schedule: ColumnType<BackupSchedule | null, string | null | undefined, string | null>;
  /** The environment's database and login role, recorded at first provisioning (null before; see migration 0010 for older ones). */
  database_name: ColumnType<string | null, string | null | undefined, string | null>;
  database_role: ColumnType<string | null, string | null | undefined, string | null>;
  /** Where its media live in the media bucket (ends in "/"). */
  media_prefix: string;
  /** The environment's own media bucket under an isolating storage provider (migration 0015); null = the platform's shared media bucket. */
  media_bucket: ColumnType<string | null, string | null | undefined, string | null>;
  /** Its containers' S3 keys under an isolating provider (the secret sealed); null = the platform's keys. */
  storage_access_key: ColumnType<string | null, string | null | undefined, string | null>;
  storage_secret_encrypted: ColumnType<string | null, string | null | undefined, string | null>;
  /** The provider confirmed the identity and the bucket. */
  storage_ready: ColumnType<boolean, boolean | undefined, boolean>;
  /** The environment's own resource limits (migration 0016); null = the platform's defaults. */
  limits: ColumnType<Partial<ResourceLimits> | null, string | null | undefined, string | null>;
  /** The last time one of its containers was killed (out of memory) or died: shown on the environment. */
  last_incident: ColumnType<EnvironmentIncident | null, string | null | undefined, string | null>;
  /** Whether a push to its branch deploys it; null = the default (on, except for live). */
  auto_deploy: ColumnType<boolean | null, boolean | null | undefined, boolean | null>;
  /** HTTP → HTTPS (308) for its host names whose certificate is served (migration 0022). */
  https_redirect: ColumnType<boolean, boolean | undefined, boolean>;
  /** Strict-Transport-Security max-age of its HTTPS responses; 0 = none. */
  hsts_max_age_seconds: ColumnType<number, number | undefined, number>;
  /** Its default host name is `<host_label>.<base domain>`; unique across the platform. */
  host_label: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}
export interface EnvironmentVariablesTable {
  environment_id: string;
  key: string;
  value_encrypted: string;
  updated_at: Timestamp;
}
export interface DomainsTable {
  hostname: string;
  environment_id: string;
  created_at: Timestamp;
}
export interface DeploymentsTable {
  id: string;
  app_id: string;
  environment_id: string;
  state: string;
  build_mode: string;
  commit: string | null;
  image: string | null;
  steps: Json<unknown>;
  error: Json<unknown> | null;
  config_revision: number;
  settings_revision: number;
  requested_by: string;
  cancel_requested_at: Timestamp | null;
  /** The host that runs it, and the host the environment leaves when this deployment moves it (drain). */
  host_id: ColumnType<string | null, string | null | undefined, string | null>;
  moved_from_host_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** deploy (from its branch), promote (another environment's image) or rollback (an earlier deployment's image). */
  kind: ColumnType<DeploymentKind, DeploymentKind | undefined, DeploymentKind>;
  /** rollback: the deployment rolled back to; promote: the source environment's deployment whose image it ships. */
  source_deployment_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** promote: the environment promoted from. */
  promoted_from: ColumnType<string | null, string | null | undefined, string | null>;
  /** The image id (sha256:…) of what it shipped, as the agent's Docker reports it. */
  image_digest: ColumnType<string | null, string | null | undefined, string | null>;
  /** Queued behind the environment's running deployment; published when it ends. */
  waiting: ColumnType<boolean, boolean | undefined, boolean>;
  queued_at: Timestamp;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
}
export type DeploymentKind = "deploy" | "promote" | "rollback";
/** An SSH host key of a git host (migration 0017): `host` as in known_hosts ("github.com", "[git.example]:2222"). */
export interface GitHostKeysTable {
  host: string;
  /** known_hosts lines for that host, one per key type. */
  keys: string;
  source: "first-use" | "admin";
  pinned_by: string;
  pinned_at: ColumnType<Date, Date | string | undefined, Date | string>;
}
export interface WebhookDeliveriesTable {
  app_id: string;
  delivery_id: string;
  provider: string;
  received_at: ColumnType<Date, Date | string | undefined, Date | string>;
}
export interface DeploymentLogsTable {
  deployment_id: string;
  seq: number;
  at: Timestamp;
  text: string;
}
export interface JobsTable {
  id: string;
  kind: string;
  deployment_id: string | null;
  host_id: string | null;
  state: string;
  spec: Json<unknown>;
  last_seq: number;
  publish_attempts: number;
  last_publish_error: string | null;
  created_at: Timestamp;
  published_at: Timestamp | null;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  environment_id: ColumnType<string | null, string | null | undefined, string | null>;
  error: ColumnType<unknown, string | null | undefined, string | null>;
}
export interface BackupSchedule {
  enabled: boolean;
  retention: { daily: number; weekly: number; monthly: number };
}
export interface BackupsTable {
  id: string;
  app: string;
  environment: string;
  environment_id: string;
  /** upload: a database archive sent by a client (POST …/backups/upload), never pruned by retention. */
  kind: "manual" | "scheduled" | "safety" | "upload";
  state: string;
  database: boolean;
  media: boolean;
  database_bytes: ColumnType<string | number | null, number | null | undefined, number | null>;
  media_bytes: ColumnType<string | number | null, number | null | undefined, number | null>;
  media_objects: number | null;
  /** sha256 of the database archive (migration 0014); null for media-only backups and older ones. */
  database_sha256: ColumnType<string | null, string | null | undefined, string | null>;
  prefix: string;
  job_id: string | null;
  error: ColumnType<unknown, string | null | undefined, string | null>;
  requested_by: string;
  created_at: Timestamp;
  finished_at: Timestamp | null;
}
export interface ContentCopiesTable {
  id: string;
  app: string;
  source: string;
  target: string;
  source_environment_id: string;
  target_environment_id: string;
  kind: "copy" | "restore";
  state: string;
  database: boolean;
  media: boolean;
  phase: string | null;
  bytes: ColumnType<string | number, number | undefined, number>;
  objects: ColumnType<number, number | undefined, number>;
  safety_backup_id: string | null;
  job_id: string | null;
  deployment_id: string | null;
  error: ColumnType<unknown, string | null | undefined, string | null>;
  requested_by: string;
  created_at: Timestamp;
  finished_at: Timestamp | null;
}
export interface ActivityTable {
  id: Generated<number>;
  at: Timestamp;
  actor: string;
  app: string | null;
  environment: string | null;
  action: string;
  details: Json<unknown>;
}
/** bigint counters: strings from pg, numbers from PGlite (normalised in the repository). */
type Counter = ColumnType<string | number, number | undefined, number>;
/** One environment's metrics from one host over one minute (see metrics/latency-histogram.ts). */
export interface EnvironmentMetricsTable {
  environment_id: string;
  host_id: string;
  bucket: Timestamp;
  requests: Counter;
  status_1xx: Counter;
  status_2xx: Counter;
  status_3xx: Counter;
  status_4xx: Counter;
  status_5xx: Counter;
  /** Request weights per latency bucket, trailing zeros left out. */
  latency_histogram: ColumnType<number[] | string, string | undefined, string>;
  cpu_percent_sum: ColumnType<number, number | undefined, number>;
  cpu_samples: ColumnType<number, number | undefined, number>;
  memory_bytes_max: ColumnType<string | number | null, number | null | undefined, number | null>;
}
/** Requests of an environment since it exists (Prometheus counters: never pruned). */
export interface EnvironmentTrafficTotalsTable {
  environment_id: string;
  requests: Counter;
  status_1xx: Counter;
  status_2xx: Counter;
  status_3xx: Counter;
  status_4xx: Counter;
  status_5xx: Counter;
}
/** The newest metrics sample stored per host: older or equal ones are repeats. */
export interface MetricsHostWatermarksTable {
  host_id: string;
  last_sample_at: Timestamp;
}

/** The installation's ACME account at one directory URL (migration 0019); its key sealed by the secret box. */
export interface AcmeAccountsTable {
  id: string;
  directory_url: string;
  key_encrypted: string;
  contact: string | null;
  /** Null until the account is registered at the CA (the row is inserted first, so replicas share one key). */
  account_url: ColumnType<string | null, string | null | undefined, string | null>;
  /** RFC 7638 thumbprint of the account key: HTTP-01 answers are `<token>.<thumbprint>`. */
  thumbprint: string;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
}
/** A certificate for one set of host names (migration 0019): key sealed, chain in PEM; `ordering_until` is the order lock. */
export interface CertificatesTable {
  id: string;
  /** The host names lower-cased, sorted and joined with ",": one row (and one order at a time) per set. */
  hostnames_key: string;
  hostnames: Json<string[]>;
  status: ColumnType<"pending" | "valid" | "failed", "pending" | "valid" | "failed" | undefined, "pending" | "valid" | "failed">;
  private_key_encrypted: ColumnType<string | null, string | null | undefined, string | null>;
  certificate_chain: ColumnType<string | null, string | null | undefined, string | null>;
  serial: ColumnType<string | null, string | null | undefined, string | null>;
  not_before: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  not_after: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  /** Failed attempts in a row (0 after a success): the backoff's exponent. */
  attempts: ColumnType<number, number | undefined, number>;
  /** When the renewal scheduler next orders: the renewal point after a success, the backoff after a failure. */
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  ordering_until: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  ordering_by: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
  /**
   * Migration 0021: who keeps the row, the ACME scheduler or an admin who uploaded it (never
   * ordered; its `hostnames_key` is "uploaded:" + the names, beside any ACME row of the same names).
   */
  source: ColumnType<"acme" | "uploaded", "acme" | "uploaded" | undefined, "acme" | "uploaded">;
  /** Migration 0021: the name of the token that uploaded it (null for ACME rows). */
  uploaded_by: ColumnType<string | null, string | null | undefined, string | null>;
}
/** A host that forwards an environment's host names to where it moved (migration 0020): it serves them too. */
export interface EnvironmentForwardsTable {
  environment_id: string;
  host_id: string;
  /** The ingress (host:port) it forwards to. */
  forward_to: string;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
}
/** Migration 0024: a lease on work that must run on one replica at a time (issue 16). Times are the database's clock. */
export interface LeasesTable {
  name: string;
  /** The replica holding it (or that held it last, once expired or released). */
  holder: string;
  /** Fencing token: grows by one whenever the lease is acquired (a string from pg, a number from PGlite). */
  token: ColumnType<string | number, string | number, string | number>;
  acquired_at: ColumnType<Date, Date | string | undefined, Date | string>;
  renewed_at: ColumnType<Date, Date | string | undefined, Date | string>;
  /** Free once this is not in the future (a release sets it to now()). */
  expires_at: ColumnType<Date, Date | string, Date | string>;
}
export interface Database {
  api_tokens: ApiTokensTable;
  join_tokens: JoinTokensTable;
  sessions: SessionsTable;
  hosts: HostsTable;
  apps: AppsTable;
  environments: EnvironmentsTable;
  deployments: DeploymentsTable;
  deployment_logs: DeploymentLogsTable;
  jobs: JobsTable;
  activity: ActivityTable;
  environment_variables: EnvironmentVariablesTable;
  domains: DomainsTable;
  backups: BackupsTable;
  content_copies: ContentCopiesTable;
  environment_metrics: EnvironmentMetricsTable;
  environment_traffic_totals: EnvironmentTrafficTotalsTable;
  metrics_host_watermarks: MetricsHostWatermarksTable;
  git_host_keys: GitHostKeysTable;
  webhook_deliveries: WebhookDeliveriesTable;
  acme_accounts: AcmeAccountsTable;
  certificates: CertificatesTable;
  environment_forwards: EnvironmentForwardsTable;
  leases: LeasesTable;
}
