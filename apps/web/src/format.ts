/** "4.2 s", "3 min 05 s", "1 h 02 min": how long a step took (or has been running). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** The duration between two ISO times; an unfinished one runs until `now`. */
export function durationBetween(startedAt: string | null, finishedAt: string | null, now: number): string {
  if (!startedAt) return "";
  const start = Date.parse(startedAt);
  const end = finishedAt ? Date.parse(finishedAt) : now;
  return formatDuration(end - start);
}

/** "2026-11-26 14:03:07" in the browser's time zone: precise and the same width in every list. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * A status line of the API with its ISO time shown as local time ("Last deployment succeeded at
 * 2026-…Z" → "… at 2026-11-26 14:03:07"); other lines unchanged.
 */
export function localizeStatusLine(line: string): string {
  return line.replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g, (iso) => formatTime(iso));
}

/** Human words for the API's states (`not_deployed` → "not deployed"). */
export function stateLabel(state: string): string {
  return state.replace(/_/g, " ");
}

const ACTIVE = new Set(["queued", "preparing", "building", "releasing", "starting", "probing", "switching"]);

export function isActiveDeployment(state: string): boolean {
  return ACTIVE.has(state);
}

/** A deployment can be cancelled until traffic switches (API: cancels before `switching`). */
export function isCancellable(state: string): boolean {
  return ACTIVE.has(state) && state !== "switching";
}
