import { describe, expect, it } from "vitest";
import { chooseCpuset, coreLoad, ingressCores, parseCpuset } from "./cpuset.js";

describe("confining a container's CPU to ceil(limit) cores", () => {
  it("reads Docker's cpuset notation", () => {
    expect(parseCpuset("0-2,5")).toEqual([0, 1, 2, 5]);
    expect(parseCpuset("1")).toEqual([1]);
    expect(parseCpuset("")).toEqual([]);
  });

  it("spreads each confined container's limit over its cores", () => {
    expect(coreLoad(4, [{ cpus: 1, cpuset: [0] }, { cpus: 1, cpuset: [1, 2] }, { cpus: 0.5, cpuset: [0] }, { cpus: 3, cpuset: [9] }])).toEqual([1.5, 0.5, 0.5, 0]);
  });

  it("picks the least loaded cores, as many as the limit rounds up to, and leaves a container of every core unconfined", () => {
    expect(chooseCpuset(0.5, [0, 0])).toBe("0");
    expect(chooseCpuset(0.5, [0.5, 0])).toBe("1");
    expect(chooseCpuset(1, [1, 0.5, 0.25, 2])).toBe("2");
    expect(chooseCpuset(1.5, [1, 0.5, 0.25, 2])).toBe("1,2");
    expect(chooseCpuset(2, [0, 0])).toBeUndefined();
    expect(chooseCpuset(3, [0, 0])).toBeUndefined();
    expect(chooseCpuset(1, [0])).toBeUndefined();
  });

  it("keeps the ingress off the cores of confined containers that use their whole limit", () => {
    // The hog of half a core burning on core 1, the neighbour idle on core 0.
    expect(ingressCores(2, [{ cpuset: [1], cpus: 0.5, usedCpus: 0.49 }, { cpuset: [0], cpus: 1, usedCpus: 0.05 }])).toBe("0");
    // Below 80 % of its limit it is not busy.
    expect(ingressCores(2, [{ cpuset: [1], cpus: 0.5, usedCpus: 0.3 }])).toBe("0,1");
    expect(ingressCores(4, [{ cpuset: [1, 2], cpus: 2, usedCpus: 1.9 }])).toBe("0,3");
    // Every core busy: all of them (nowhere better to go).
    expect(ingressCores(2, [{ cpuset: [0], cpus: 1, usedCpus: 1 }, { cpuset: [1], cpus: 1, usedCpus: 0.9 }])).toBe("0,1");
    expect(ingressCores(2, [])).toBe("0,1");
  });
});
