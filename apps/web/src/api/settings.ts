// The settings area's calls: an environment's variables, domains and settings, an app's settings and
// repository, and the environments' lifecycle (add, remove, stop, start). Shapes as in shared API.md.
import { ApiError, request, seg, type AppView, type EnvironmentView } from "../api";
import { messageOf, type FormErrors } from "../errors";

export interface ResourceLimits {
  memoryMb: number;
  cpus: number;
  pids: number;
}

/** GET …/environments/{env} with the settings the App page's card does not show. */
export interface EnvironmentSettingsView extends EnvironmentView {
  autoDeploy: boolean;
  basicAuth: { username: string } | null;
  hostLabels: Record<string, string>;
  limits: ResourceLimits;
  limitsDefault: boolean;
  /** HTTP → HTTPS redirect (308) and HSTS, applied at once by the ingress (issue 15). */
  https: HttpsPolicy;
}

export interface HttpsPolicy {
  redirect: boolean;
  /** 0 = no Strict-Transport-Security header; more than 0 needs the redirect. */
  hstsMaxAgeSeconds: number;
}

/** The most GET/PATCH …/environments/{env} accepts for hstsMaxAgeSeconds (two years). */
export const HSTS_MAX_SECONDS = 63_072_000;

/** A host serving a custom domain, with the certificate its agent last reported serving for it (GET …/domains). */
export interface DomainServedBy {
  hostId: string;
  host: string;
  serial: string;
  notAfter: string;
  /** It is the certificate the control plane holds for the domain (a renewal reached the host). */
  current: boolean;
}

/** A custom domain's certificate as GET …/domains shows it. */
export interface DomainCertificate {
  state: "none" | "pending" | "valid" | "failed";
  serial: string | null;
  notAfter: string | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  /** Who keeps it: the ACME scheduler or an admin who uploaded it; absent with state none. */
  source?: "acme" | "uploaded";
}

export interface EnvironmentPatch {
  branch?: string;
  replicas?: number;
  sleepAfterSeconds?: number | null;
  basicAuth?: { username: string; password: string } | null;
  hostLabels?: Record<string, string>;
  limits?: Partial<ResourceLimits> | null;
  autoDeploy?: boolean;
  https?: Partial<HttpsPolicy>;
}

export interface ReleaseCommand {
  label: string;
  command: string;
}

export interface StartupProbe {
  path: string;
  acceptedStatuses: string;
  startupTimeoutSeconds: number;
  probeTimeoutSeconds: number;
  maxRetries: number;
}

export interface AppSettings {
  releaseCommands: ReleaseCommand[];
  releaseCommandTimeoutSeconds: number;
  webPort: number | null;
  startupProbe: StartupProbe;
}

/** The platform's defaults (packages/core settings.ts), shown beside each field. */
export const DEFAULT_APP_SETTINGS: AppSettings = {
  releaseCommands: [],
  releaseCommandTimeoutSeconds: 1800,
  webPort: null,
  startupProbe: { path: "/", acceptedStatuses: "200-499", startupTimeoutSeconds: 60, probeTimeoutSeconds: 10, maxRetries: 300 },
};

/** What the API shows for a stored value to anyone who does not reveal it; sent back, it keeps the value. */
export const MASK = "********";

const envPath = (app: string, env: string) => `/v1/apps/${seg(app)}/environments/${seg(env)}`;

export const settingsApi = {
  getEnvironment: (app: string, env: string) => request<EnvironmentSettingsView>("GET", envPath(app, env)),
  patchEnvironment: (app: string, env: string, patch: EnvironmentPatch) => request<EnvironmentSettingsView>("PATCH", envPath(app, env), patch),
  variables: (app: string, env: string, reveal = false) => request<Record<string, string>>("GET", `${envPath(app, env)}/variables${reveal ? "?reveal=true" : ""}`),
  /** Merges: a null value deletes its key. */
  patchVariables: (app: string, env: string, changes: Record<string, string | null>) => request<Record<string, string>>("PATCH", `${envPath(app, env)}/variables`, changes),
  addDomain: (app: string, env: string, hostname: string) => request<EnvironmentSettingsView>("POST", `${envPath(app, env)}/domains`, { hostname }),
  /** The custom domains (not the default one), each with its certificate. */
  domains: (app: string, env: string) => request<{ domains: Array<{ hostname: string; certificate: DomainCertificate; servedBy?: DomainServedBy[] }> }>("GET", `${envPath(app, env)}/domains`),
  removeDomain: (app: string, env: string, hostname: string) => request<EnvironmentSettingsView>("DELETE", `${envPath(app, env)}/domains/${seg(hostname)}`),

  addEnvironment: (app: string, input: { name: string; branch?: string; basedOn?: string }) => request<EnvironmentView>("POST", `/v1/apps/${seg(app)}/environments`, input),
  removeEnvironment: (app: string, env: string) => request<{ removed: string }>("DELETE", `${envPath(app, env)}?confirm=${seg(env)}`),
  setRunning: (app: string, env: string, action: "stop" | "start") => request<EnvironmentView>("POST", `${envPath(app, env)}/${action}`),

  getApp: (app: string) => request<AppView & { settings: AppSettings }>("GET", `/v1/apps/${seg(app)}`),
  patchAppSettings: (app: string, patch: Partial<AppSettings>) => request<AppSettings>("PATCH", `/v1/apps/${seg(app)}/settings`, patch),
  setRepository: (app: string, url: string) => request<AppView>("PUT", `/v1/apps/${seg(app)}/repository`, { url }),
};

/**
 * Like formErrors, but a detail may name a field's part ("limits.cpus", "hostLabels.zone"): the
 * message goes next to the field it belongs to, always in the API's words.
 */
export function settingsErrors(err: unknown, fields: readonly string[]): FormErrors {
  const message = messageOf(err);
  if (err instanceof ApiError) {
    for (const key of Object.keys(err.details)) {
      const field = fields.find((f) => key === f || key.startsWith(`${f}.`));
      if (field) return { fields: { [field]: message } };
    }
  }
  return { fields: {}, form: message };
}

