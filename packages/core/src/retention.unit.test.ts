import { describe, expect, it } from "vitest";
import { backupsToKeep, defaultBackupSchedule, defaultRetention } from "./retention.js";

const day = (iso: string, hour = 3) => new Date(`${iso}T${String(hour).padStart(2, "0")}:00:00.000Z`);

describe("backup retention (7 daily, 4 weekly, 12 monthly by default)", () => {
  it("keeps everything while there are few backups", () => {
    const b = [{ id: "a", createdAt: day("2026-11-20") }, { id: "b", createdAt: day("2026-11-21") }];
    expect(backupsToKeep(b, defaultRetention)).toEqual(new Set(["a", "b"]));
  });

  it("keeps the newest of a day only", () => {
    const b = [
      { id: "early", createdAt: day("2026-11-21", 1) },
      { id: "late", createdAt: day("2026-11-21", 23) },
    ];
    expect(backupsToKeep(b, { daily: 7, weekly: 0, monthly: 0 })).toEqual(new Set(["late"]));
  });

  it("after a year of daily backups keeps 7 days, 4 weeks and 12 months", () => {
    const b = Array.from({ length: 365 }, (_, i) => {
      const d = new Date(Date.UTC(2025, 10, 23) + i * 86_400_000);
      return { id: d.toISOString().slice(0, 10), createdAt: d };
    });
    const keep = backupsToKeep(b, defaultRetention);
    const newest = b[b.length - 1]!.id;
    expect(keep.has(newest)).toBe(true);
    for (let i = 1; i <= 7; i++) expect(keep.has(b[b.length - i]!.id)).toBe(true);
    expect(keep.has(b[b.length - 8]!.id)).toBe(b[b.length - 8]!.createdAt.getUTCDay() === 0);
    // at most 7 + 4 + 12 distinct backups, and not all of them
    expect(keep.size).toBeLessThanOrEqual(23);
    expect(keep.size).toBeGreaterThanOrEqual(12);
    // one per month for the last 12 months: the newest of each month is kept
    const months = new Set([...keep].map((id) => id.slice(0, 7)));
    expect(months.size).toBe(12);
  });

  it("schedules live daily by default and nothing else", () => {
    expect(defaultBackupSchedule("live")).toEqual({ enabled: true, retention: { daily: 7, weekly: 4, monthly: 12 } });
    expect(defaultBackupSchedule("test").enabled).toBe(false);
  });
});
