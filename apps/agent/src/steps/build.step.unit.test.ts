import { describe, expect, it } from "vitest";
import { LABELS, StepFailure } from "@slipway/core";
import { buildStep } from "./build.step.js";
import { COMMIT, HOST_ID, fakeDeployment } from "../testing/deploy.fixture.js";
import type { DeployDisk } from "./context.js";

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
      { tag: TAG, context: `tree of shop@${COMMIT}`, noCache: false, labels: { [LABELS.managed]: "true", [LABELS.app]: "shop", [LABELS.host]: HOST_ID, "io.slipway.commit": COMMIT } },
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

  it("holds the image for the job, prunes first when the janitor says space is short, and fails a build that ran out of space saying so", async () => {
    const d = resolved("auto");
    const calls: string[] = [];
    const disk: DeployDisk = {
      hold: async (job, image) => void calls.push(`hold ${job} ${image}`),
      beforeBuild: async (say) => {
        calls.push("beforeBuild");
        say("pruned before");
      },
      buildEnded: () => void calls.push("buildEnded"),
      afterNoSpace: async (say) => {
        calls.push("afterNoSpace");
        say("pruned after");
      },
    };
    d.ctx.disk = disk;
    // A RUN step that fills the disk: Docker reports only its exit code, the step's output says why.
    d.runtime.buildImage = async (_context, _tag, opts) => {
      for (const line of ["Step 2/2 : RUN dd if=/dev/zero of=/big", "dd: error writing '/big': No space left on device"]) opts.onLog(line);
      throw new StepFailure("build_failed", "The command '/bin/sh -c dd if=/dev/zero of=/big' returned a non-zero code: 1", false);
    };
    await expect(buildStep(d.ctx)).rejects.toMatchObject({ type: "no_space", message: expect.stringMatching(/^no space left on device: the build ran out of disk space/) });
    expect(calls).toEqual([`hold ${d.ctx.jobId} ${TAG}`, "beforeBuild", "buildEnded", "afterNoSpace"]);
    expect(d.report.lines()).toContain("pruned after");
  });
});
