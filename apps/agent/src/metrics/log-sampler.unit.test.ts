import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { KEEP_ALL, LogSampler, sampleKeeps } from "./log-sampler.js";

const log = pino({ level: "silent" });

describe("sampleKeeps", () => {
  it("logs every request of a quiet backend and about perBackend lines a second of a busy one", () => {
    const k = sampleKeeps(new Map([["quiet", 20], ["edge", 100], ["busy", 7000], ["huge", 500_000]]), { perBackend: 100, total: 1_000_000 });
    expect(k.get("quiet")).toBe(KEEP_ALL);
    expect(k.get("edge")).toBe(KEEP_ALL);
    expect(k.get("busy")).toBe(14);
    expect((7000 * 14) / 1000).toBeCloseTo(98, 0);
    // Never below 1 in 1000: a busy backend keeps some latencies.
    expect(k.get("huge")).toBe(1);
  });

  it("scales every backend down together when they would exceed the total", () => {
    const rates = new Map(Array.from({ length: 40 }, (_, i) => [`env-${i}`, 1000] as [string, number]));
    const k = sampleKeeps(rates, { perBackend: 100, total: 2000 });
    const lines = [...rates].reduce((sum, [b, r]) => sum + (r * k.get(b)!) / 1000, 0);
    expect(lines).toBeLessThanOrEqual(2000);
    expect(new Set(k.values())).toEqual(new Set([50]));
  });
});

describe("LogSampler", () => {
  const flush = () => new Promise((r) => setTimeout(r, 0));

  it("thins a backend that got busy, leaves small changes, and logs everything again when it is quiet", async () => {
    const applied: Array<Record<string, number>> = [];
    const s = new LogSampler({ apply: async (ch) => void applied.push(Object.fromEntries(ch)), targets: { perBackend: 100, total: 2000 }, log });
    s.onRates(new Map([["env-a", 8000]]));
    await flush();
    // A rise counts at once: 8000/s → 12 in 1000.
    expect(applied).toEqual([{ "env-a": 12 }]);
    s.onRates(new Map([["env-a", 6000]]));
    await flush();
    // A fall by half (7000/s → 14): less than a quarter away, left.
    expect(applied).toHaveLength(1);
    s.onRates(new Map([["env-a", 2000]]));
    await flush();
    // 4500/s → 22: more than a quarter away, applied.
    expect(applied.at(-1)).toEqual({ "env-a": 22 });
    expect(s.current.get("env-a")).toBe(22);
    for (let i = 0; i < 12; i++) {
      s.onRates(new Map());
      await flush();
    }
    expect(applied.at(-1)).toEqual({ "env-a": KEEP_ALL });
    expect(s.current.size).toBe(0);
  });

  it("tries a failed change again at the next reading", async () => {
    let fail = true;
    const applied: Array<Record<string, number>> = [];
    const s = new LogSampler({
      apply: async (ch) => {
        if (fail) throw new Error("socket busy");
        applied.push(Object.fromEntries(ch));
      },
      log,
    });
    s.onRates(new Map([["env-a", 10_000]]));
    await flush();
    expect(s.current.size).toBe(0);
    fail = false;
    s.onRates(new Map([["env-a", 10_000]]));
    await flush();
    expect(applied).toEqual([{ "env-a": 10 }]);
  });
});
