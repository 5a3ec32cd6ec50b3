import { describe, expect, it } from "vitest";
import { LABELS, StepFailure } from "@slipway/core";
import { webLabels } from "../envs/env-containers.js";
import { cleanupAfterSwitch, removeStarted } from "./cleanup.step.js";
import { ENV_ID, HOST_ID, fakeDeployment, withCurrentDeployment } from "../testing/deploy.fixture.js";

const OTHER_ENV_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

function switched() {
  const d = fakeDeployment();
  const old = withCurrentDeployment(d, 2);
  const labels = webLabels(HOST_ID, { app: "shop", environment: "test", environmentId: ENV_ID, deploymentId: "dep-new" });
  const fresh = [d.runtime.addContainer({ labels }), d.runtime.addContainer({ labels })];
  d.ctx.started = fresh.map((c) => ({ id: c.id, name: c.name }));
  d.ctx.switched = true;
  return { d, old, fresh };
}

describe("cleanup after the switch", () => {
  it("removes the replaced containers and leftovers of interrupted deployments, keeping the new ones", async () => {
    const { d, old, fresh } = switched();
    const leftover = d.runtime.addContainer({ running: false, labels: webLabels(HOST_ID, { app: "shop", environment: "test", environmentId: ENV_ID, deploymentId: "dep-crashed" }) });
    expect(await cleanupAfterSwitch(d.ctx)).toBe(3);
    expect([...d.runtime.containers.keys()].sort()).toEqual(fresh.map((c) => c.id).sort());
    expect(d.runtime.removed.map((r) => r.id).sort()).toEqual([...old.containers.map((c) => c.id), leftover.id].sort());
    expect(d.runtime.removed.every((r) => r.graceSeconds === 10)).toBe(true);
    expect(d.report.lines()).toEqual(expect.arrayContaining(old.containers.map((c) => `removed ${c.name}`)));
  });

  it("touches nothing of other environments (by id, whatever their names), other hosts, or release one-offs", async () => {
    const { d } = switched();
    const others = [
      // Same app and environment names, another environment: e.g. an app removed and created again.
      d.runtime.addContainer({ labels: webLabels(HOST_ID, { app: "shop", environment: "test", environmentId: OTHER_ENV_ID, deploymentId: "d" }) }),
      d.runtime.addContainer({ labels: webLabels(HOST_ID, { app: "shop", environment: "live", environmentId: OTHER_ENV_ID, deploymentId: "d" }) }),
      d.runtime.addContainer({ labels: webLabels("host-2", { app: "shop", environment: "test", environmentId: ENV_ID, deploymentId: "d" }) }),
      d.runtime.addContainer({ labels: { ...webLabels(HOST_ID, { app: "shop", environment: "test", environmentId: ENV_ID, deploymentId: "d" }), [LABELS.role]: "release" } }),
    ];
    await cleanupAfterSwitch(d.ctx);
    for (const c of others) expect(d.runtime.containers.has(c.id)).toBe(true);
  });

  it("fails when a container cannot be removed (the runner then only warns)", async () => {
    const { d } = switched();
    d.runtime.fail("stopAndRemove", new StepFailure("docker_unavailable", "connect ENOENT /var/run/docker.sock", true));
    await expect(cleanupAfterSwitch(d.ctx)).rejects.toMatchObject({ type: "docker_unavailable" });
  });
});

describe("removing the new containers after a failure before the switch", () => {
  it("removes exactly the containers this deployment started, quickly", async () => {
    const { d, old, fresh } = switched();
    d.ctx.switched = false;
    await removeStarted(d.ctx);
    expect(d.runtime.removed).toEqual(fresh.map((c) => ({ id: c.id, graceSeconds: 2 })));
    for (const c of old.containers) expect(d.runtime.containers.get(c.id)?.running).toBe(true);
    expect(d.report.lines()).toEqual(fresh.map((c) => `removed new container ${c.name}`));
  });
});
