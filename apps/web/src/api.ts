// The one typed client of the REST API (docs: /docs, shared API.md). Same origin: the session cookie
// travels with every call (credentials: "same-origin"); a change (any method but GET and HEAD)
// carries the session's CSRF token in X-CSRF-Token. Every failure is an ApiError with the API's
// own code and message (its error body), which the pages show as they are.

export type Role = "admin" | "deployer" | "viewer";

export interface Principal {
  name: string;
  role: Role;
  /** The apps a deployer or viewer may act on; empty for admins (every app). */
  apps: string[];
}

export interface Session {
  csrfToken: string;
  principal: Principal;
  expiresAt: string;
}

export interface EnvironmentStatus {
  message: string;
  lines: string[];
  lastDeployment?: { state: string; finishedAt: string };
  undeployedCommits: number | null;
  unappliedChanges: boolean;
  syncedAt?: string | null;
  syncError?: string | null;
}

export interface EnvironmentView {
  name: string;
  branch: string;
  state: string;
  status: EnvironmentStatus;
  autoDeploy?: boolean;
  url: string;
  domains: string[];
  replicas: number;
  sleepAfterSeconds: number | null;
  host: string | null;
  deployedCommit?: string | null;
  image?: string | null;
}

export interface AppView {
  name: string;
  repository: string;
  repositoryCredentials?: boolean;
  environments: EnvironmentView[];
  createdAt: string;
}

export interface StepRecord {
  name: string;
  state: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface DeploymentView {
  id: string;
  app: string;
  environment: string;
  state: string;
  build: string;
  commit: string | null;
  image: string | null;
  steps: StepRecord[];
  error: { type?: string; message?: string } | null;
  requestedBy?: string;
  kind?: string;
  imageDigest?: string | null;
  /** In listings: its image is still kept, so it can be deployed again (`{"rollbackTo": id}`). */
  rollbackable?: boolean;
  waiting?: boolean;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface HostView {
  id: string;
  name: string;
  state: string;
}

export interface DeployKey {
  publicKey: string;
  fingerprint: string;
}

export interface PendingCommit {
  sha: string;
  author: string;
  at: string;
  message: string;
}

/** GET …/pending: what a deployment of the environment would bring (names of changes, never values). */
export interface PendingView {
  app: string;
  environment: string;
  branch: string;
  deployedCommit: string | null;
  status: { message: string; syncedAt: string | null; syncError: string | null };
  /** Newest first; null when the control plane's mirror cannot tell. */
  commits: PendingCommit[] | null;
  changes: {
    branch?: { from: string; to: string };
    variables?: { added: string[]; changed: string[]; removed: string[] };
    settings?: string[];
    domains?: { added: string[]; removed: string[] };
    replicas?: { from: number; to: number };
    limits?: { from: Record<string, number>; to: Record<string, number> };
  };
}

/** POST …/deployments: build from the branch, promote another environment's image, or roll back; content optionally copied. */
export interface DeployInput {
  build?: "auto" | "force" | "reuse";
  promoteFrom?: string;
  rollbackTo?: string;
  content?: { from: string; database: boolean; media: boolean; confirm: true };
}

/** A refusal or failure of the API, with its error body's code, message and per-field details. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let csrfToken: string | undefined;
let onUnauthenticated: (() => void) | undefined;

/** The session's CSRF token, sent with every change; undefined after sign-out. */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

/** Called when the API answers 401 (the session expired or was ended elsewhere). */
export function setUnauthenticatedHandler(handler: () => void): void {
  onUnauthenticated = handler;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: Record<string, string> } };
    if (body.error?.message) return new ApiError(res.status, body.error.code ?? "error", body.error.message, body.error.details ?? {});
  } catch {
    // not the API's error body: a proxy in between, or the control plane is down
  }
  return new ApiError(res.status, "http_error", `the server answered ${res.status} ${res.statusText}`.trim());
}

let inFlight = 0;
let settled: Array<() => void> = [];

/** Resolves once no call is in flight (at most `maxMs` later): sign-out waits for calls made as its session. */
export function idle(maxMs = 2000): Promise<void> {
  if (inFlight === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, maxMs);
    settled.push(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  inFlight++;
  try {
    return await send<T>(method, path, body);
  } finally {
    if (--inFlight === 0) {
      const waiting = settled;
      settled = [];
      for (const w of waiting) w();
    }
  }
}

async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["x-csrf-token"] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, credentials: "same-origin", ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch {
    throw new ApiError(0, "network", "the control plane cannot be reached: check the connection and try again");
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && !path.startsWith("/v1/sessions")) onUnauthenticated?.();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get("content-type") ?? "";
  return (type.includes("json") ? await res.json() : await res.text()) as T;
}

export const seg = encodeURIComponent;

export const api = {
  signIn: (token: string) => request<Session>("POST", "/v1/sessions", { token }),
  currentSession: () => request<Session>("GET", "/v1/sessions/current"),
  signOut: () => request<void>("DELETE", "/v1/sessions/current"),

  listApps: () => request<AppView[]>("GET", "/v1/apps"),
  getApp: (app: string) => request<AppView>("GET", `/v1/apps/${seg(app)}`),
  createApp: (input: { name: string; repository: string }) => request<AppView>("POST", "/v1/apps", input),
  deployKey: (app: string) => request<DeployKey>("GET", `/v1/apps/${seg(app)}/deploy-key`),

  /** Newest first; `before` = the last id of the previous page. */
  listDeployments: (app: string, env: string, limit = 20, before?: string) =>
    request<DeploymentView[]>("GET", `/v1/apps/${seg(app)}/environments/${seg(env)}/deployments?limit=${limit}${before ? `&before=${seg(before)}` : ""}`),
  deploy: (app: string, env: string, input: DeployInput) =>
    request<{ id: string; state: string }>("POST", `/v1/apps/${seg(app)}/environments/${seg(env)}/deployments`, input),
  pending: (app: string, env: string) => request<PendingView>("GET", `/v1/apps/${seg(app)}/environments/${seg(env)}/pending`),
  getDeployment: (id: string) => request<DeploymentView>("GET", `/v1/deployments/${seg(id)}`),
  cancelDeployment: (id: string) => request<DeploymentView>("POST", `/v1/deployments/${seg(id)}/cancel`),

  listHosts: () => request<HostView[]>("GET", "/v1/hosts"),
};

/** Live streams (Server-Sent Events) of the API, same origin: the session cookie authorises them. */
export const streams = {
  deploymentLog: (id: string) => `/v1/deployments/${seg(id)}/log/events`,
  app: (app: string) => `/v1/apps/${seg(app)}/events`,
  activity: () => "/v1/activity/events",
};

/** Whether a repository URL is reached over SSH (it then needs the app's deploy key). */
export function isSshRepository(url: string): boolean {
  const u = url.trim();
  return /^ssh:\/\//i.test(u) || /^[\w.-]+@[\w.-]+:/.test(u);
}
