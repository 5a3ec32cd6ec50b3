import { describe, expect, it } from "vitest";
import { StepFailure } from "@slipway/core";
import { sourceStep } from "./source.step.js";
import { COMMIT, fakeDeployment } from "../testing/deploy.fixture.js";

describe("source step", () => {
  it("fetches the mirror, then resolves the branch to its commit", async () => {
    const d = fakeDeployment();
    await sourceStep(d.ctx);
    expect(d.git.calls).toEqual([
      { method: "sync", args: ["shop", "https://deploy:s3cret@git.example.test/shop.git"] },
      { method: "resolve", args: ["shop", "main"] },
    ]);
    expect(d.ctx.commit).toBe(COMMIT);
    expect(d.report.lines()).toContain(`branch main is at ${COMMIT}`);
  });

  it("never writes the repository's credentials to the log", async () => {
    const d = fakeDeployment();
    await sourceStep(d.ctx);
    expect(d.report.lines().join("\n")).not.toContain("s3cret");
    expect(d.report.lines()).toContain("fetching https://***@git.example.test/shop.git");
  });

  it("fails as the repository says: a missing branch is not retryable, an unreachable remote is", async () => {
    const missing = fakeDeployment({ spec: { branch: "nope" } });
    await expect(sourceStep(missing.ctx)).rejects.toMatchObject({ type: "branch_not_found", retryable: false });

    const down = fakeDeployment();
    down.git.fail("sync", new StepFailure("git_fetch_failed", "could not reach git.example.test", true));
    await expect(sourceStep(down.ctx)).rejects.toMatchObject({ type: "git_fetch_failed", retryable: true });
    expect(down.git.methods()).toEqual(["sync"]);
    expect(down.ctx.commit).toBeUndefined();
  });

  it("reuses the environment's current image without consulting git", async () => {
    const d = fakeDeployment({ spec: { buildMode: "reuse", currentImage: "slipway/shop:abc123" } });
    await sourceStep(d.ctx);
    expect(d.git.calls).toEqual([]);
    expect(d.ctx.image).toBe("slipway/shop:abc123");
    expect(d.ctx.commit).toBe("abc123");
  });

  it("refuses to reuse when the environment has no image yet", async () => {
    const d = fakeDeployment({ spec: { buildMode: "reuse", currentImage: "" } });
    await expect(sourceStep(d.ctx)).rejects.toMatchObject({ type: "nothing_to_reuse", retryable: false });
    expect(d.git.calls).toEqual([]);
  });
});
