import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, assertLimits, effectiveLimits, parseLimits, requestOf } from "./limits.js";

describe("resource limits", () => {
  it("parses the platform's default limits from configuration, any subset", () => {
    expect(parseLimits("memoryMb=256,cpus=0.5,pids=128", "X")).toEqual({ memoryMb: 256, cpus: 0.5, pids: 128 });
    expect(parseLimits(" cpus=2 ", "X")).toEqual({ cpus: 2 });
    expect(parseLimits("", "X")).toEqual({});
    for (const bad of ["memory=512", "memoryMb=512m", "cpus=-1", "memoryMb=8", "cpus=0.001", "pids=1.5", "memoryMb"]) {
      expect(() => parseLimits(bad, "SLIPWAY_DEFAULT_LIMITS"), bad).toThrow(/SLIPWAY_DEFAULT_LIMITS/);
    }
  });

  it("accepts limits within their bounds only, CPU to hundredths of a core", () => {
    expect(() => assertLimits({ memoryMb: 16, cpus: 0.01, pids: 16 })).not.toThrow();
    expect(() => assertLimits({ memoryMb: 1_048_576, cpus: 256, pids: 1_000_000 })).not.toThrow();
    for (const bad of [{ memoryMb: 15 }, { memoryMb: 100.5 }, { cpus: 0.005 }, { cpus: 0.333 }, { cpus: Infinity }, { pids: 15 }, { pids: Number.NaN }]) {
      expect(() => assertLimits(bad), JSON.stringify(bad)).toThrow(/limits\./);
    }
  });

  it("takes an environment's own limits over the defaults, and counts replicas in its request", () => {
    const l = effectiveLimits({ cpus: 0.5 }, DEFAULT_LIMITS);
    expect(l).toEqual({ memoryMb: 512, cpus: 0.5, pids: 512 });
    expect(effectiveLimits(null, DEFAULT_LIMITS)).toEqual(DEFAULT_LIMITS);
    expect(requestOf(l, 3)).toEqual({ memoryBytes: 3 * 512 * 1024 * 1024, cpus: 1.5 });
  });
});
