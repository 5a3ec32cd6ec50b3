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
  if (spec.buildMode === "image") {
    // A rollback or a promotion: exactly this image, which must still be on this host. Held first:
    // the janitor must not prune it between the check and the start.
    if (!spec.image) throw new StepFailure("nothing_to_reuse", "no image given to deploy", false);
    await ctx.disk?.hold(ctx.jobId, spec.image);
    const info = await ctx.runtime.imageInfo(spec.image);
    if (!info) {
      throw new StepFailure(
        "image_not_on_host",
        `image ${spec.image} is no longer on this host (the disk janitor keeps the images of the last deployments of each environment, see SLIPWAY_ROLLBACK_IMAGES, and an image built on another host is not copied here): deploy from the branch instead`,
        false,
      );
    }
    if (spec.imageDigest && info.id !== spec.imageDigest) {
      throw new StepFailure(
        "image_changed",
        `image ${spec.image} is now ${info.id}, not ${spec.imageDigest} as shipped then (it was rebuilt since, e.g. with "build": "force"): deploying it would ship other code; deploy from the branch instead`,
        false,
      );
    }
    ctx.image = spec.image;
    ctx.commit = spec.image.split(":").pop();
    report.logLine(`deploying image ${spec.image} (${info.id}); the branch is not consulted and nothing is built`);
    return;
  }
  report.logLine(`fetching ${redact(spec.repository)}`);
  await ctx.git.sync(spec.app, spec.repository, spec.gitSshKey ? { sshPrivateKey: spec.gitSshKey, knownHosts: spec.gitKnownHosts } : undefined);
  ctx.commit = await ctx.git.resolve(spec.app, spec.branch);
  report.logLine(`branch ${spec.branch} is at ${ctx.commit}`);
}

function redact(url: string): string {
  return url.replace(/\/\/[^/@]*@/, "//***@");
}
