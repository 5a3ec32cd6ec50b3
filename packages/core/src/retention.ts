/** How many scheduled backups to keep: the newest of each of the last N days, weeks and months. */
export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
}

export const defaultRetention: Readonly<RetentionPolicy> = Object.freeze({ daily: 7, weekly: 4, monthly: 12 });

/** Default schedule per environment: live is backed up daily, others only on demand. */
export function defaultBackupSchedule(env: string): { enabled: boolean; retention: RetentionPolicy } {
  return { enabled: env === "live", retention: { ...defaultRetention } };
}

function dayKey(d: Date): string {
  return d.toISOString().slice(0, 10);
}
/** ISO week (year and week number; weeks start on Monday). */
function weekKey(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = new Date(Date.UTC(t.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((t.getTime() - yearStart.getTime()) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${week}`;
}
function monthKey(d: Date): string {
  return d.toISOString().slice(0, 7);
}

/**
 * Grandfather-father-son retention: keeps the newest backup of each of the
 * `daily` most recent days that have one, of each of the `weekly` most recent
 * weeks and of each of the `monthly` most recent months. Returns the ids to
 * keep; everything else may be pruned. Pure; order of input does not matter.
 */
export function backupsToKeep(backups: Array<{ id: string; createdAt: Date }>, policy: RetentionPolicy): Set<string> {
  const newestFirst = [...backups].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  const keep = new Set<string>();
  const take = (key: (d: Date) => string, count: number) => {
    const seen = new Set<string>();
    for (const b of newestFirst) {
      if (seen.size >= count) break;
      const k = key(b.createdAt);
      if (seen.has(k)) continue;
      seen.add(k);
      keep.add(b.id);
    }
  };
  take(dayKey, policy.daily);
  take(weekKey, policy.weekly);
  take(monthKey, policy.monthly);
  return keep;
}
