import { StepFailure } from "@slipway/core";
import { runDataJob, type DataReporter } from "../data/data.runner.js";
import type { DeployContext } from "./context.js";

/**
 * "Deploy the content of another environment to this one": runs the copy
 * (backup of this environment first, then database and/or media replaced)
 * inside the deployment, after the build and before the release commands, so
 * migrations run against the copied database. The copy's own steps become log
 * lines; its result becomes this step's outcome.
 */
export async function contentStep(ctx: DeployContext): Promise<boolean> {
  const spec = ctx.spec.content;
  if (!spec) return false;
  let failure: unknown;
  const report: DataReporter = {
    heading: (t) => ctx.report.logLine(`--- ${t} ---`),
    logLine: (t) => ctx.report.logLine(t),
    step: (name, state) => ctx.report.logLine(`(${name}: ${state})`),
    progress: (p) => ctx.report.progress(p),
    backup: (f) => ctx.report.backup(f),
    result: (_state, info) => {
      failure = info.error;
    },
  };
  ctx.report.logLine(`copying the ${[spec.database && "database", spec.media && "media"].filter(Boolean).join(" and ")} of ${spec.app} into ${spec.environment}; a backup of ${spec.environment} is taken first`);
  const outcome = await runDataJob(spec, { report, log: ctx.log, signal: ctx.signal });
  if (outcome !== "succeeded") {
    if (failure instanceof StepFailure) throw failure;
    throw new StepFailure(outcome === "cancelled" ? "cancelled" : "content_copy_failed", `content copy ${outcome}`, false);
  }
  return true;
}
