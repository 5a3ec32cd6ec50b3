import { describe, expect, it } from "vitest";
import { LABELS } from "@slipway/core";
import { routeTarget, webLabels } from "../envs/env-containers.js";
import { recoverEarlierAttempt } from "./recover.step.js";
import { ENV_ID, HOST_ID, OLD_IMAGE, fakeDeployment, withCurrentDeployment } from "../testing/deploy.fixture.js";

const newLabels = webLabels(HOST_ID, { app: "shop", environment: "test", environmentId: ENV_ID, deploymentId: "dep-new" });
const releaseLabels = { ...newLabels, [LABELS.role]: "release" };

function redelivered() {
  return fakeDeployment({ ctx: { earlierAttempt: true } });
}

describe("recovering an earlier attempt of a redelivered deployment", () => {
  it("finishes an attempt that had switched and recorded the environment, restoring what it knew", async () => {
    const d = redelivered();
    const current = withCurrentDeployment(d, 2);
    const entry = d.envs.entries.get(d.slug)!;
    entry.deploymentId = "dep-new";
    expect(await recoverEarlierAttempt(d.ctx)).toBe("finish");
    expect(d.ctx).toMatchObject({ image: OLD_IMAGE, commit: OLD_IMAGE.split(":")[1], webPort: 8000, switched: true });
    expect(d.ctx.started.map((c) => c.id)).toEqual(current.containers.map((c) => c.id));
    expect(d.runtime.removed).toEqual([]);
  });

  it("removes the unrouted web containers and every release one-off the attempt left, keeping what serves", async () => {
    const d = redelivered();
    const current = withCurrentDeployment(d);
    const unrouted = d.runtime.addContainer({ labels: newLabels });
    const oneOff = d.runtime.addContainer({ labels: releaseLabels });
    expect(await recoverEarlierAttempt(d.ctx)).toBe("rerun");
    expect(d.runtime.removed.map((r) => r.id).sort()).toEqual([unrouted.id, oneOff.id].sort());
    expect(d.runtime.containers.has(current.containers[0]!.id)).toBe(true);
    expect(d.ingress.routed(d.slug)).toEqual(current.targets);
    expect(d.ctx.switched).toBe(false);
    expect(d.report.lines()).toContain(`removed ${oneOff.name}, left by the earlier attempt`);
    expect(d.report.lines().at(-1)).toBe("running the deployment again from the start");
  });

  it("keeps a container of this deployment that the ingress routes, even when the environment was not recorded", async () => {
    const d = redelivered();
    const routed = d.runtime.addContainer({ labels: newLabels });
    d.ingress.route(d.slug, [routeTarget(routed, 5000)]);
    expect(await recoverEarlierAttempt(d.ctx)).toBe("rerun");
    expect(d.runtime.containers.has(routed.id)).toBe(true);
  });

  it("says so when nothing was left behind, and works under the environment's lock", async () => {
    const d = redelivered();
    withCurrentDeployment(d);
    expect(await recoverEarlierAttempt(d.ctx)).toBe("rerun");
    expect(d.runtime.removed).toEqual([]);
    expect(d.envs.methods()[0]).toBe("exclusive");
    expect(d.report.lines()).toEqual(["nothing was left behind; running the deployment again from the start"]);
  });
});
