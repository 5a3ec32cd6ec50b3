import { describe, expect, it } from "vitest";
import { LABELS, StepFailure } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import { startStep } from "./start.step.js";
import { ENV_ID, HOST_ID, fakeDeployment, type FakeDeploymentOptions } from "../testing/deploy.fixture.js";

const IMAGE = "slipway/shop:new";

function built(spec: FakeDeploymentOptions["spec"] = {}, exposed: number[] = [5000]) {
  const d = fakeDeployment({ spec });
  d.ctx.image = IMAGE;
  d.runtime.images.set(IMAGE, { id: "sha256:new", exposedPorts: exposed });
  return d;
}

describe("start step", () => {
  it("starts every replica within the environment's limits (none given: unbounded, as jobs of older control planes)", async () => {
    const limits = { memoryBytes: 512 * 1048576, nanoCpus: 1_000_000_000, pids: 512 };
    const d = built({ replicas: 2, limits });
    await startStep(d.ctx);
    expect(d.runtime.callsOf("start").map((a) => (a[0] as { limits?: unknown }).limits)).toEqual([limits, limits]);
    const old = built({});
    await startStep(old.ctx);
    expect((old.runtime.callsOf("start")[0]![0] as { limits?: unknown }).limits).toBeUndefined();
  });

  it("starts the replicas beside the old containers, on the environment's network, publishing the image's EXPOSEd port", async () => {
    const d = built({ replicas: 3 });
    await startStep(d.ctx);
    // Named after the environment's id and the host, never after app and environment names.
    const network = "env-5b0e1d2c3a4f4e6d9c8b7a6f5e4d3c2b--host1";
    expect(d.runtime.networks.has(network)).toBe(true);
    expect(d.runtime.callsOf("ensureNetwork")[0]![1]).toMatchObject({ [AGENT_LABELS.environmentId]: ENV_ID, [LABELS.app]: "shop", [LABELS.environment]: "test" });
    const specs = d.runtime.callsOf("start").map((a) => a[0]);
    expect(specs).toHaveLength(3);
    for (const s of specs) {
      expect(s).toMatchObject({ image: IMAGE, network, publishPort: 5000, env: { GREETING: "hi", PORT: "5000" } });
      expect((s as { labels: Record<string, string> }).labels).toMatchObject({ [LABELS.role]: "web", [LABELS.deployment]: "dep-new", [LABELS.host]: HOST_ID, [AGENT_LABELS.environmentId]: ENV_ID, [LABELS.app]: "shop", [LABELS.environment]: "test" });
    }
    expect(d.ctx.webPort).toBe(5000);
    expect(d.ctx.started.map((c) => c.id)).toEqual(d.runtime.withLabels({ [LABELS.deployment]: "dep-new" }).map((c) => c.id));
    expect(d.report.lines()[0]).toBe("web port 5000 (from the image's EXPOSE)");
  });

  it("takes the web port from the settings over the image's EXPOSE, and starts at least one replica", async () => {
    const d = built({ webPort: 8080, replicas: 0 }, [5000]);
    await startStep(d.ctx);
    expect(d.ctx.webPort).toBe(8080);
    expect(d.ctx.started).toHaveLength(1);
    expect(d.runtime.callsOf("start")[0]![0]).toMatchObject({ publishPort: 8080, env: { PORT: "8080" } });
  });

  it("fails clearly when the image is missing or has no web port, starting nothing", async () => {
    const missing = fakeDeployment();
    missing.ctx.image = IMAGE;
    await expect(startStep(missing.ctx)).rejects.toMatchObject({ type: "image_not_found", retryable: false });

    const portless = built({}, []);
    await expect(startStep(portless.ctx)).rejects.toMatchObject({ type: "no_web_port", message: expect.stringMatching(/set 'webPort'/) });
    expect(portless.runtime.methods()).not.toContain("start");
  });

  it("keeps the containers it started before a failing one in ctx.started, so they can be removed", async () => {
    const d = built({ replicas: 3 });
    d.runtime.fail("start", new StepFailure("container_start_failed", "port allocation failed", true), { after: 1 });
    await expect(startStep(d.ctx)).rejects.toMatchObject({ type: "container_start_failed", retryable: true });
    expect(d.ctx.started).toHaveLength(1);
    expect(d.runtime.containers.has(d.ctx.started[0]!.id)).toBe(true);
  });

  it("starts no further replica once a cancel is requested", async () => {
    const d = built({ replicas: 3 });
    d.runtime.on("start", () => {
      d.report.cancelRequested = true;
    });
    await expect(startStep(d.ctx)).rejects.toMatchObject({ type: "cancelled" });
    expect(d.ctx.started).toHaveLength(1);
  });
});
