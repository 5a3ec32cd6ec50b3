import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ProbeSpec } from "@slipway/proto";
import { probeStep } from "./probe.step.js";
import { fakeDeployment, type FakeDeployment } from "../testing/deploy.fixture.js";

// Time is faked: a probe that "hangs" until its timeout and the pauses between
// probes take no real time, and Date.now() moves only with the timers.
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function deployment(probe: Partial<ProbeSpec>, answer: (port: number, path: string, timeoutMs: number) => Promise<number>, replicas = 1): FakeDeployment {
  const d = fakeDeployment({ answer });
  d.ctx.spec.probe = { ...d.ctx.spec.probe!, ...probe };
  d.ctx.webPort = 8000;
  for (let i = 0; i < replicas; i++) {
    const c = d.runtime.addContainer({ labels: {}, output: ["booting", `listening on 8000 (replica ${i})`] });
    d.ctx.started.push({ id: c.id, name: c.name, hostPort: c.hostPort!, address: c.address! });
  }
  return d;
}

/** Runs the probe step to its end under fake time; returns how long it took (fake ms) and its error, if any. */
async function run(d: FakeDeployment): Promise<{ ms: number; error?: { type?: string; message: string; retryable?: boolean } }> {
  const t0 = Date.now();
  let error: { type?: string; message: string; retryable?: boolean } | undefined;
  const done = probeStep(d.ctx).catch((err: unknown) => {
    error = err as typeof error;
  });
  await vi.runAllTimersAsync();
  await done;
  return { ms: Date.now() - t0, ...(error ? { error } : {}) };
}

/** A probe that gets no answer: it fails once its own timeout passes, as the HTTP probe does. */
const hang = (_port: number, _path: string, timeoutMs: number) =>
  new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs));

describe("startup probe", () => {
  it("accepts the first answer in the accepted statuses, probing the container's published port and path", async () => {
    const answers = [503, 302, 404];
    const d = deployment({ acceptedStatuses: "200-299,404" }, async () => answers.shift()!);
    const { ms, error } = await run(d);
    expect(error).toBeUndefined();
    expect(d.probes.map((p) => [p.port, p.path])).toEqual(Array(3).fill([d.ctx.started[0]!.hostPort, "/health"]));
    expect(ms).toBe(400); // two pauses of 200 ms
    expect(d.report.lines()).toContainEqual(expect.stringMatching(/GET \/health answered 404 after 3 probe\(s\)/));
  });

  it("fails after maxRetries probes, saying what the last answer was and showing the container's output", async () => {
    const d = deployment({ maxRetries: 3 }, async () => 500);
    const { error } = await run(d);
    expect(d.probes).toHaveLength(3);
    expect(error).toMatchObject({ type: "probe_failed", retryable: false });
    expect(error!.message).toMatch(/3 probes \(last: answered 500, not in 200-399\)/);
    expect(d.report.lines()).toContain("  listening on 8000 (replica 0)");
  });

  it("gives up when the startup timeout passes, however many probes are left", async () => {
    const d = deployment({ startupTimeoutMs: 1_000, maxRetries: 1_000 }, async () => 503);
    const { ms, error } = await run(d);
    expect(error).toMatchObject({ type: "probe_failed" });
    expect(error!.message).toMatch(/within 1 s/);
    expect(ms).toBe(1_000);
    expect(d.probes).toHaveLength(5); // at 0, 200, 400, 600 and 800 ms
  });

  it("bounds each probe by the per-probe timeout and by what is left of the startup timeout", async () => {
    const d = deployment({ startupTimeoutMs: 2_500, probeTimeoutMs: 1_000, maxRetries: 10 }, hang);
    const { ms, error } = await run(d);
    expect(d.probes.map((p) => p.timeoutMs)).toEqual([1_000, 1_000, 100]);
    expect(ms).toBe(2_500);
    expect(error!.message).toMatch(/last: no answer within 100 ms/);
  });

  it("fails at once with the container's last output when the container exits during the probe", async () => {
    const d = deployment({ maxRetries: 50 }, async () => {
      d.runtime.exit(d.ctx.started[0]!.id, 3, ["Traceback (most recent call last):", "ImportError: no module named 'shop'"]);
      return 503;
    });
    const { ms, error } = await run(d);
    expect(error).toMatchObject({ type: "container_exited", retryable: false });
    expect(error!.message).toMatch(/exited during the startup probe \(code 3\)/);
    expect(d.probes).toHaveLength(1);
    expect(ms).toBe(200);
    expect(d.report.lines()).toContain("  ImportError: no module named 'shop'");
  });

  it("counts a container the engine restarted as exited, before sending any probe", async () => {
    const d = deployment({}, async () => 200);
    d.runtime.containers.get(d.ctx.started[0]!.id)!.restartCount = 1;
    const { error } = await run(d);
    expect(error).toMatchObject({ type: "container_exited" });
    expect(d.probes).toHaveLength(0);
  });

  it("probes every replica and fails when one of them never answers acceptably", async () => {
    let bad = 0;
    const d = deployment({ maxRetries: 4 }, async (port) => (port === bad ? 500 : 200), 2);
    bad = d.ctx.started[1]!.hostPort!;
    const { error } = await run(d);
    expect(error).toMatchObject({ type: "probe_failed" });
    expect(error!.message).toContain(d.ctx.started[1]!.name);
    expect(d.probes.filter((p) => p.port === bad)).toHaveLength(4);
    expect(d.probes.filter((p) => p.port !== bad)).toHaveLength(1);
  });

  it("stops probing once the deployment is cancelled", async () => {
    const d = deployment({ maxRetries: 50 }, async () => {
      d.report.cancelRequested = true;
      return 503;
    });
    const { error } = await run(d);
    expect(error).toMatchObject({ type: "cancelled", retryable: false });
    expect(d.probes).toHaveLength(1);
  });
});
