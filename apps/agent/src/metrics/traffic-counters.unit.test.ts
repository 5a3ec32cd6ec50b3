import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { TrafficCounters, type BackendCounters, type CounterSource } from "./traffic-counters.js";

const log = pino({ level: "silent" });
const c = (requests: number, ok = requests, notFound = 0): BackendCounters => ({ requests, status: [0, ok, 0, notFound, 0] });

/** A proxy whose workers and counters the test sets; a worker not in `counters` has exited. */
function fakeProxy() {
  const state = { current: [] as number[], old: [] as number[], counters: new Map<number, Map<string, BackendCounters>>(), failWorkers: false, masterAsked: 0 };
  const source: CounterSource = {
    current: async () => {
      if (state.failWorkers) throw new Error("worker busy");
      const pid = state.current[0]!;
      return { pid, counters: new Map(state.counters.get(pid)) };
    },
    oldWorkers: async () => {
      state.masterAsked++;
      if (state.failWorkers) throw new Error("master re-executing");
      return [...state.old];
    },
    oldCounters: async (pid) => state.counters.get(pid),
  };
  return { state, source };
}

const plain = (m: Map<string, BackendCounters>) => Object.fromEntries(m);

describe("TrafficCounters", () => {
  it("counts what the workers counted after the agent started, not before", async () => {
    const { state, source } = fakeProxy();
    state.current = [10];
    state.counters.set(10, new Map([["env-a", c(500)]]));
    const counters = new TrafficCounters({ source, log });
    await counters.start();
    counters.stop();
    expect(plain(await counters.take())).toEqual({});
    state.counters.set(10, new Map([["env-a", c(530, 520, 10)], ["env-b", c(7)]]));
    expect(plain(await counters.take())).toEqual({ "env-a": c(30, 20, 10), "env-b": c(7) });
    expect(plain(await counters.take())).toEqual({});
  });

  it("adds a new worker's counts from zero and the old worker's last requests across a reload", async () => {
    const { state, source } = fakeProxy();
    state.current = [10];
    state.counters.set(10, new Map([["env-a", c(100)]]));
    const counters = new TrafficCounters({ source, log });
    await counters.start();
    counters.stop();
    state.counters.set(10, new Map([["env-a", c(150)]]));
    await counters.poll();
    // Reload: 11 is the new worker, 10 finishes its connections.
    state.current = [11];
    state.old = [10];
    state.counters.set(11, new Map([["env-a", c(40)], ["env-new", c(3)]]));
    state.counters.set(10, new Map([["env-a", c(160)]]));
    await counters.poll();
    // The old one serves two more, then exits; the new one goes on.
    state.counters.set(10, new Map([["env-a", c(162)]]));
    await counters.poll();
    state.old = [];
    state.counters.delete(10);
    state.counters.set(11, new Map([["env-a", c(45)], ["env-new", c(3)]]));
    expect(plain(await counters.take())).toEqual({ "env-a": c(50 + 10 + 40 + 2 + 5), "env-new": c(3) });
  });

  it("asks the master for old workers only around a reload, not at every read", async () => {
    const { state, source } = fakeProxy();
    state.current = [10];
    state.counters.set(10, new Map([["env-a", c(1)]]));
    const counters = new TrafficCounters({ source, log });
    await counters.start();
    counters.stop();
    const asked = state.masterAsked;
    for (let i = 0; i < 5; i++) await counters.poll();
    expect(state.masterAsked).toBe(asked);
    // A new current worker: the master is asked, and again while the old one lives.
    state.current = [11];
    state.old = [10];
    state.counters.set(11, new Map([["env-a", c(2)]]));
    await counters.poll();
    await counters.poll();
    expect(state.masterAsked).toBe(asked + 2);
    state.old = [];
    state.counters.delete(10);
    await counters.poll();
    await counters.poll();
    await counters.poll();
    expect(state.masterAsked).toBe(asked + 3);
    expect(plain(await counters.take())).toEqual({ "env-a": c(2) });
  });

  it("takes counters that went down for a new start of the object (everything counted since)", async () => {
    const { state, source } = fakeProxy();
    state.current = [10];
    state.counters.set(10, new Map([["env-a", c(100)]]));
    const counters = new TrafficCounters({ source, log });
    await counters.start();
    counters.stop();
    state.counters.set(10, new Map([["env-a", c(4)]]));
    expect(plain(await counters.take())).toEqual({ "env-a": c(4) });
  });

  it("loses nothing when a read fails: the next one counts the difference", async () => {
    const { state, source } = fakeProxy();
    state.current = [10];
    state.counters.set(10, new Map([["env-a", c(1)]]));
    const counters = new TrafficCounters({ source, log });
    await counters.start();
    counters.stop();
    state.failWorkers = true;
    state.counters.set(10, new Map([["env-a", c(9)]]));
    expect(plain(await counters.take())).toEqual({});
    state.failWorkers = false;
    expect(plain(await counters.take())).toEqual({ "env-a": c(8) });
  });

  it("reports each backend's requests per second of the last period", async () => {
    const { state, source } = fakeProxy();
    state.current = [10];
    state.counters.set(10, new Map([["env-a", c(0)]]));
    const rates: Array<Map<string, number>> = [];
    const counters = new TrafficCounters({ source, log, onRates: (r) => rates.push(r) });
    await counters.start();
    counters.stop();
    await new Promise((r) => setTimeout(r, 200));
    state.counters.set(10, new Map([["env-a", c(100)], ["env-b", c(0)]]));
    await counters.poll();
    expect(rates).toHaveLength(1);
    const a = rates[0]!.get("env-a")!;
    // 100 requests over ~0.2 s.
    expect(a).toBeGreaterThan(300);
    expect(a).toBeLessThan(600);
    expect(rates[0]!.has("env-b")).toBe(false);
  });
});
