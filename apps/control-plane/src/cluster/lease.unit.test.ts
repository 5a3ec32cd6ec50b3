import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "@slipway/core";
import { Lease, every, type LeasedWork, type LeaseStore } from "./lease.js";

/** The lease table in memory, judged by the (fake) clock, with a switch that makes every call hang (a partition). */
class FakeStore implements LeaseStore {
  row: { holder: string; token: number; expiresAt: number } | undefined;
  hang = false;
  releases: number[] = [];
  private gate<T>(f: () => T): Promise<T> {
    return this.hang ? new Promise<T>(() => undefined) : Promise.resolve().then(f);
  }
  acquire(_name: string, holder: string, ttlMs: number) {
    return this.gate(() => {
      const now = Date.now();
      if (this.row && this.row.expiresAt > now && this.row.holder !== holder) return undefined;
      this.row = { holder, token: (this.row?.token ?? 0) + 1, expiresAt: now + ttlMs };
      return { token: this.row.token, expiresAt: new Date(this.row.expiresAt) };
    });
  }
  renew(_name: string, holder: string, token: number, ttlMs: number) {
    return this.gate(() => {
      const now = Date.now();
      if (!this.row || this.row.holder !== holder || this.row.token !== token || this.row.expiresAt <= now) return undefined;
      this.row.expiresAt = now + ttlMs;
      return new Date(this.row.expiresAt);
    });
  }
  release(_name: string, holder: string, token: number) {
    return this.gate(() => {
      this.releases.push(token);
      if (!this.row || this.row.holder !== holder || this.row.token !== token || this.row.expiresAt <= Date.now()) return false;
      this.row.expiresAt = Date.now();
      return true;
    });
  }
}

function recorder(name = "work"): LeasedWork & { events: string[]; running: boolean } {
  const w = {
    name,
    events: [] as string[],
    running: false,
    start() {
      w.running = true;
      w.events.push(`start@${Date.now()}`);
    },
    stop() {
      w.running = false;
      w.events.push(`stop@${Date.now()}`);
    },
  };
  return w;
}

const log = createLogger("test", "silent");
const opts = (holder: string) => ({ name: "scheduler", holder, ttlMs: 6000, renewEveryMs: 2000, tryEveryMs: 2000, log, now: () => Date.now() });

describe("Lease", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("runs the work on one holder only, and the other takes over within one try of a release", async () => {
    const store = new FakeStore();
    const a = recorder();
    const b = recorder();
    const la = new Lease(store, opts("a")).add(a);
    const lb = new Lease(store, opts("b")).add(b);
    la.start();
    await vi.advanceTimersByTimeAsync(10);
    lb.start();
    await vi.advanceTimersByTimeAsync(20_000);
    expect([a.running, b.running]).toEqual([true, false]);
    expect(a.events).toHaveLength(1); // renewals do not restart it
    expect(la.token).toBe(1);

    await la.stop();
    expect(a.running).toBe(false);
    expect(store.releases).toEqual([1]);
    const stoppedAt = Date.now();
    await vi.advanceTimersByTimeAsync(2000);
    expect(b.running).toBe(true);
    expect(Number(b.events[0]!.split("@")[1]) - stoppedAt).toBeLessThanOrEqual(2000);
    expect(lb.token).toBe(2);
    await lb.stop();
  });

  it("a crashed holder (no renewal, no release) is replaced once its term has run out", async () => {
    const store = new FakeStore();
    const a = recorder();
    const b = recorder();
    const la = new Lease(store, opts("a")).add(a);
    const lb = new Lease(store, opts("b")).add(b);
    la.start();
    await vi.advanceTimersByTimeAsync(10);
    lb.start();
    await vi.advanceTimersByTimeAsync(4000);
    la.abandon();
    const crashedAt = Date.now();
    expect(store.releases).toEqual([]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(b.running).toBe(false); // the term (renewed at most 2 s before the crash) still runs
    await vi.advanceTimersByTimeAsync(5000);
    expect(b.running).toBe(true);
    expect(Number(b.events[0]!.split("@")[1]) - crashedAt).toBeLessThanOrEqual(6000 + 2000);
    await lb.stop();
  });

  it("stops the work at once when a renewal is refused, and tries to take the lease again", async () => {
    const store = new FakeStore();
    const a = recorder();
    const la = new Lease(store, opts("a")).add(a);
    la.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(a.running).toBe(true);
    // Another holder took it (as if the term had expired by the database's clock).
    store.row = { holder: "b", token: 2, expiresAt: Date.now() + 6000 };
    await vi.advanceTimersByTimeAsync(2000);
    expect(a.running).toBe(false);
    expect(la.held).toBe(false);
    // b stops renewing: a takes it back with a new token once b's term is over.
    await vi.advanceTimersByTimeAsync(8000);
    expect(a.running).toBe(true);
    expect(la.token).toBe(3);
    await la.stop();
  });

  it("cut off from the database, the holder stops its work before the database could give the lease to another", async () => {
    const store = new FakeStore();
    const a = recorder();
    const la = new Lease(store, opts("a")).add(a);
    la.start();
    await vi.advanceTimersByTimeAsync(3000); // renewed at 2000: the term ends at 8000 in the store
    store.hang = true;
    await vi.advanceTimersByTimeAsync(4990);
    expect(a.running).toBe(true);
    await vi.advanceTimersByTimeAsync(10);
    expect(a.running).toBe(false);
    expect(Date.now()).toBeLessThanOrEqual(store.row!.expiresAt);
    la.abandon();
  });

  it("a work that throws on start does not keep the others from running", async () => {
    const store = new FakeStore();
    const good = recorder("good");
    const la = new Lease(store, opts("a")).add({ name: "bad", start: () => { throw new Error("boom"); }, stop: () => undefined }).add(good);
    la.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(good.running).toBe(true);
    await la.stop();
    expect(good.running).toBe(false);
  });
});

describe("every", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("runs on its interval while started, never overlapping a slow run, and not at all once stopped", async () => {
    let started = 0;
    let finish: (() => void) | undefined;
    const w = every("slow", 100, () => {
      started++;
      return new Promise<void>((r) => (finish = r));
    }, { atStart: true });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toBe(1);
    await vi.advanceTimersByTimeAsync(500); // the first run is still going
    expect(started).toBe(1);
    finish!();
    await vi.advanceTimersByTimeAsync(100);
    expect(started).toBe(2);
    finish!();
    w.stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(started).toBe(2);
  });
});
