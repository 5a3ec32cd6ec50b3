// The API calls of the Metrics and Data pages (GET …/metrics; backups, restores, content copies,
// the backup schedule), typed as the control plane answers them (routes/env-metrics.routes.ts,
// routes/data.routes.ts).
import { request, seg } from "../api";

/** One minute of an environment, oldest first. */
export interface MetricsPoint {
  at: string;
  requests: number;
  status: { "1xx": number; "2xx": number; "3xx": number; "4xx": number; "5xx": number };
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  cpuPercent: number | null;
  memoryBytes: number | null;
}

export interface BackupView {
  id: string;
  app: string;
  environment: string;
  kind: string;
  state: string;
  database: boolean;
  media: boolean;
  databaseBytes: number | null;
  mediaBytes: number | null;
  mediaObjects: number | null;
  sizeBytes: number | null;
  error: { message?: string } | null;
  createdAt: string;
  finishedAt: string | null;
}

/** A content copy or a restore (kind "copy" | "restore"), with its live progress. */
export interface ContentCopyView {
  id: string;
  app: string;
  kind: string;
  from: string;
  to: string;
  state: string;
  database: boolean;
  media: boolean;
  progress: { phase: string | null; bytes: number; objects: number };
  safetyBackupId: string | null;
  error: { message?: string } | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface BackupSchedule {
  enabled: boolean;
  retention: { daily: number; weekly: number; monthly: number };
}

const env = (app: string, name: string) => `/v1/apps/${seg(app)}/environments/${seg(name)}`;

export const metricsApi = {
  series: (app: string, name: string, since: string) => request<{ series: MetricsPoint[] }>("GET", `${env(app, name)}/metrics?since=${seg(since)}`),
};

export const dataApi = {
  listBackups: (app: string, name: string) => request<BackupView[]>("GET", `${env(app, name)}/backups`),
  createBackup: (app: string, name: string, input: { database: boolean; media: boolean }) => request<BackupView>("POST", `${env(app, name)}/backups`, input),
  restore: (backupId: string, into: string) => request<ContentCopyView>("POST", `/v1/backups/${seg(backupId)}/restore`, { into, confirm: true }),
  contentCopy: (app: string, name: string, input: { from: string; database: boolean; media: boolean }) =>
    request<ContentCopyView>("POST", `${env(app, name)}/content-copies`, { ...input, confirm: true }),
  getContentCopy: (id: string) => request<ContentCopyView>("GET", `/v1/content-copies/${seg(id)}`),
  getSchedule: (app: string, name: string) => request<BackupSchedule>("GET", `${env(app, name)}/backup-schedule`),
  setSchedule: (app: string, name: string, schedule: BackupSchedule) => request<BackupSchedule>("PUT", `${env(app, name)}/backup-schedule`, schedule),
  /** Where the browser downloads a finished backup's part (the session cookie authorises the GET). */
  downloadUrl: (backupId: string, part: "database" | "media") => `/v1/backups/${seg(backupId)}/${part}`,
};

/** Final states of backups, copies and restores. */
export function isFinished(state: string): boolean {
  return state === "succeeded" || state === "failed" || state === "cancelled";
}

/** "1.4 MB", "512 B": sizes in decimal units. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
