/** Left-aligned columns separated by two spaces; the first row is a header unless told otherwise. */
export function table(rows: string[][], opts: { header?: boolean } = {}): string {
  if (rows.length === 0 || (opts.header !== false && rows.length === 1)) return opts.header === false ? "" : "(none)\n";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd() + "\n").join("");
}

/** 850 ms, 12.3 s, 4 m 05 s, 2 h 03 m. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} m`;
}

/** How long ago an ISO time was: "12 s ago", "3 m 10 s ago"; the time itself beyond a day. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  const ms = now - t;
  if (ms < 0 || ms > 86_400_000) return new Date(t).toISOString().replace(/\.\d+Z$/, "Z");
  return `${duration(ms).replace(/\.\d s$/, " s")} ago`;
}

/** 512 B, 1.5 KiB, 12.3 MiB, 2.0 GiB. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}
