// The API calls and types of the admin pages (Fleet, Tokens, Certificates) and of the Activity feed.
import { request, seg, type Role } from "../api";

export type HostAdminState = "active" | "cordoned" | "draining" | "revoked";

/** GET /v1/hosts: `state` is derived (offline wins); `adminState` is what an admin set. */
export interface FleetHost {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: "online" | "offline" | "cordoned" | "draining" | "revoked";
  adminState?: HostAdminState;
  lastHeartbeatAt: string | null;
  ingressAddress: string | null;
  version: string;
  capacity: { cpus?: number; memoryBytes?: number; diskBytes?: number } | null;
  requested?: { memoryBytes: number; cpus: number };
  allocatable?: { memoryBytes: number; cpus: number };
  load: { cpu?: number; memoryUsedBytes?: number; diskUsedBytes?: number; diskFreeBytes?: number; containers?: number } | null;
  environments: Array<{ app: string; environment: string }>;
}

/** GET/POST /v1/hosts/{id}/drain. */
export interface DrainProgress {
  state: "running" | "done" | "failed" | "not_draining";
  startedAt: string | null;
  environments: number;
  moving: number;
  moved: number;
  remaining: Array<{ app: string; environment: string; deployment: string | null; state: string | null }>;
  failed: Array<{ app: string; environment: string; deployment: string; state: string; reason: string }>;
}

export interface ApiToken {
  id: string;
  name: string;
  role: Role;
  apps: string[];
  bootstrap: boolean;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** GET /v1/certificates: a stored certificate, uploaded or issued by ACME (never its key). */
export interface StoredCertificate {
  id: string;
  hostnames: string[];
  source: "acme" | "uploaded";
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  status: "pending" | "valid" | "failed" | "expired";
  lastError: string | null;
  uploadedBy: string | null;
  updatedAt: string;
}

/** POST /v1/certificates: the certificate stored, whether it replaced one for the same names, the hosts' jobs queued. */
export interface CertificateUpload {
  certificate: StoredCertificate;
  replaced: boolean;
  replacedSerial: string | null;
  jobsQueued: number | null;
}

export interface ActivityEntry {
  id: number;
  at: string;
  actor: string;
  app: string | null;
  environment: string | null;
  action: string;
  details: Record<string, unknown>;
}

export interface ActivityFilter {
  app?: string;
  env?: string;
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const adminApi = {
  listHosts: () => request<FleetHost[]>("GET", "/v1/hosts"),
  cordon: (id: string) => request<FleetHost>("POST", `/v1/hosts/${seg(id)}/cordon`),
  uncordon: (id: string) => request<FleetHost>("POST", `/v1/hosts/${seg(id)}/uncordon`),
  revoke: (id: string) => request<FleetHost>("POST", `/v1/hosts/${seg(id)}/revoke`),
  drain: (id: string) => request<DrainProgress>("POST", `/v1/hosts/${seg(id)}/drain`),
  drainProgress: (id: string) => request<DrainProgress>("GET", `/v1/hosts/${seg(id)}/drain`),
  createJoinToken: () => request<{ token: string; expiresAt: string }>("POST", "/v1/join-tokens"),

  listTokens: () => request<ApiToken[]>("GET", "/v1/tokens"),
  createToken: (input: { name: string; role: Role; apps?: string[] }) => request<ApiToken & { token: string }>("POST", "/v1/tokens", input),
  revokeToken: (id: string) => request<ApiToken>("DELETE", `/v1/tokens/${seg(id)}`),

  listCertificates: () => request<StoredCertificate[]>("GET", "/v1/certificates"),
  uploadCertificate: (input: { certificate: string; privateKey: string }) => request<CertificateUpload>("POST", "/v1/certificates", input),
  removeCertificate: (id: string) => request<StoredCertificate>("DELETE", `/v1/certificates/${seg(id)}`),

  activity: (filter: ActivityFilter, page: { before?: number; limit: number }) =>
    request<ActivityEntry[]>("GET", `/v1/activity${query({ app: filter.app, env: filter.env, before: page.before, limit: page.limit })}`),
};

/** The activity feed live; it resumes after `after` (the newest entry the page has) on its first connection. */
export function activityStream(filter: ActivityFilter, after: number | undefined): string {
  return `/v1/activity/events${query({ app: filter.app, environment: filter.env, lastEventId: after })}`;
}
