import { LABELS, StepFailure } from "@slipway/core";
import type { DeployContext } from "./context.js";
import { imageTag } from "./context.js";

/**
 * Builds the image of the commit. `auto` builds only when the host has no image
 * for that commit; `force` builds without cache; `reuse` and `image` never build.
 * Returns false when the step was skipped.
 */
export async function buildStep(ctx: DeployContext): Promise<boolean> {
  const { spec, report } = ctx;
  if (spec.buildMode === "reuse" || spec.buildMode === "image") return false;
  const tag = imageTag(spec.app, ctx.commit!);
  ctx.image = tag;
  // Held from here to the job's end: no prune removes it meanwhile.
  await ctx.disk?.hold(ctx.jobId, tag);
  if (spec.buildMode !== "force" && (await ctx.runtime.imageInfo(tag))) return false;
  await ctx.disk?.beforeBuild((line) => report.logLine(line));
  report.logLine(`building ${tag}${spec.buildMode === "force" ? " without cache" : ""}`);
  // The last lines of output (the failing step's): a RUN step that fills the disk fails with its own words ("No space
  // left on device") and Docker only says that it "returned a non-zero code".
  const recent: string[] = [];
  let failure: unknown;
  try {
    await ctx.runtime.buildImage(ctx.git.archive(spec.app, ctx.commit!), tag, {
      // The host that built it: its janitor prunes only its own builds.
      labels: { [LABELS.managed]: "true", [LABELS.app]: spec.app, [LABELS.host]: ctx.hostId, "io.slipway.commit": ctx.commit! },
      noCache: spec.buildMode === "force",
      onLog: (line) => {
        recent.push(line);
        if (recent.length > 10) recent.shift();
        report.logLine(line);
      },
    });
  } catch (err) {
    failure = err;
  } finally {
    ctx.disk?.buildEnded();
  }
  if (failure !== undefined) {
    if (isNoSpace(failure) || recent.some((l) => isNoSpace(l))) {
      // What the build left (its layers so far) is given back at once; the failure says why.
      await ctx.disk?.afterNoSpace((line) => report.logLine(line)).catch(() => undefined);
      throw new StepFailure("no_space", `no space left on device: the build ran out of disk space (${(failure as Error).message})`, false);
    }
    throw failure;
  }
  report.logLine(`built ${tag}`);
  return true;
}

/** A failure whose cause is a full disk (ENOSPC, as Docker and the kernel word it). */
export function isNoSpace(err: unknown): boolean {
  return /no space left on device|ENOSPC/i.test(err instanceof Error ? err.message : String(err));
}
