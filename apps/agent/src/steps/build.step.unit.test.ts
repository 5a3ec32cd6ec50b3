import { describe, expect, it } from "vitest";
import { LABELS, StepFailure } from "@slipway/core";
import { buildStep } from "./build.step.js";
import { COMMIT, fakeDeployment } from "../testing/deploy.fixture.js";

const TAG = `slipway/shop:${COMMIT}`;

function resolved(buildMode: string) {
  const d = fakeDeployment({ spec: { buildMode } });
  d.ctx.commit = COMMIT;
  return d;
}

describe("build step", () => {
  it("auto: builds the commit's tree when the host has no image for it, streaming the build output", async () => {
    const d = resolved("auto");
    expect(await buildStep(d.ctx)).toBe(true);
    expect(d.runtime.builds).toEqual([
      { tag: TAG, context: `tree of shop@${COMMIT}`, noCache: false, labels: { [LABELS.managed]: "true", [LABELS.app]: "shop", "io.slipway.commit": COMMIT } },
    ]);
    expect(d.ctx.image).toBe(TAG);
    expect(d.report.lines()).toEqual([`building ${TAG}`, ...d.runtime.buildOutput, `built ${TAG}`]);
  });

  it("auto: reuses the host's image of the same commit (the step is skipped)", async () => {
    const d = resolved("auto");
    d.runtime.images.set(TAG, { id: "sha256:x", exposedPorts: [8000] });
    expect(await buildStep(d.ctx)).toBe(false);
    expect(d.runtime.builds).toEqual([]);
    expect(d.ctx.image).toBe(TAG);
  });

  it("force: builds without cache even when the image exists", async () => {
    const d = resolved("force");
    d.runtime.images.set(TAG, { id: "sha256:x", exposedPorts: [8000] });
    expect(await buildStep(d.ctx)).toBe(true);
    expect(d.runtime.builds.map((b) => [b.tag, b.noCache])).toEqual([[TAG, true]]);
    expect(d.runtime.methods()).not.toContain("imageInfo");
    expect(d.report.lines()[0]).toBe(`building ${TAG} without cache`);
  });

  it("reuse: never builds", async () => {
    const d = fakeDeployment({ spec: { buildMode: "reuse", currentImage: "slipway/shop:abc" } });
    d.ctx.image = "slipway/shop:abc";
    expect(await buildStep(d.ctx)).toBe(false);
    expect(d.runtime.calls).toEqual([]);
    expect(d.ctx.image).toBe("slipway/shop:abc");
  });

  it("passes a failed build on as the runtime typed it", async () => {
    const d = resolved("auto");
    d.runtime.fail("buildImage", new StepFailure("build_failed", "Dockerfile:2 unknown instruction: FROBNICATE", false));
    await expect(buildStep(d.ctx)).rejects.toMatchObject({ type: "build_failed", retryable: false });
    expect(d.runtime.images.has(TAG)).toBe(false);
  });
});
