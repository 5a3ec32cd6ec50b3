import { StepFailure } from "@slipway/core";
import type { DeployContext } from "./context.js";

/** Resolves the environment's branch to a commit in the host's mirror of the app's repository. */
export async function sourceStep(ctx: DeployContext): Promise<void> {
  const { spec, report } = ctx;
  if (spec.buildMode === "reuse") {
    if (!spec.currentImage) throw new StepFailure("nothing_to_reuse", "the environment has no image to reuse", false);
    ctx.image = spec.currentImage;
    await ctx.disk?.hold(ctx.jobId, spec.currentImage);
    ctx.commit = spec.currentImage.split(":").pop();
    report.logLine(`reusing the environment's current image ${spec.currentImage}; the branch is not consulted`);
    return;
  }
  report.logLine(`fetching ${redact(spec.repository)}`);
  await ctx.git.sync(spec.app, spec.repository);
  ctx.commit = await ctx.git.resolve(spec.app, spec.branch);
  report.logLine(`branch ${spec.branch} is at ${ctx.commit}`);
}

function redact(url: string): string {
  return url.replace(/\/\/[^/@]*@/, "//***@");
}
