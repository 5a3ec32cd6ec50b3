import { LABELS } from "@slipway/core";
import type { DeployContext } from "./context.js";
import { imageTag } from "./context.js";

/**
 * Builds the image of the commit. `auto` builds only when the host has no image
 * for that commit; `force` builds without cache; `reuse` never builds.
 * Returns false when the step was skipped.
 */
export async function buildStep(ctx: DeployContext): Promise<boolean> {
  const { spec, report } = ctx;
  if (spec.buildMode === "reuse") return false;
  const tag = imageTag(spec.app, ctx.commit!);
  ctx.image = tag;
  if (spec.buildMode !== "force" && (await ctx.runtime.imageInfo(tag))) return false;
  report.logLine(`building ${tag}${spec.buildMode === "force" ? " without cache" : ""}`);
  await ctx.runtime.buildImage(ctx.git.archive(spec.app, ctx.commit!), tag, {
    labels: { [LABELS.managed]: "true", [LABELS.app]: spec.app, "io.slipway.commit": ctx.commit! },
    noCache: spec.buildMode === "force",
    onLog: (line) => report.logLine(line),
  });
  report.logLine(`built ${tag}`);
  return true;
}
