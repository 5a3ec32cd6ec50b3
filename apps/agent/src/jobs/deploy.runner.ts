import { StepFailure, stepHeadings, toFailure, type StepName } from "@slipway/core";
import type { DeployContext } from "../steps/context.js";
import { checkCancelled } from "../steps/context.js";
import { sourceStep } from "../steps/source.step.js";
import { buildStep } from "../steps/build.step.js";
import { releaseStep } from "../steps/release.step.js";
import { contentStep } from "../steps/content.step.js";
import { startStep } from "../steps/start.step.js";
import { probeStep } from "../steps/probe.step.js";
import { switchStep } from "../steps/switch.step.js";
import { cleanupAfterSwitch, removeStarted } from "../steps/cleanup.step.js";
import { recoverEarlierAttempt } from "../steps/recover.step.js";

/** Runs one step under its heading; a step returning false is reported as skipped. */
async function step(ctx: DeployContext, name: StepName, fn: () => Promise<unknown>): Promise<void> {
  checkCancelled(ctx);
  ctx.report.heading(stepHeadings[name]);
  ctx.report.step(name, "running");
  const started = Date.now();
  try {
    const r = await fn();
    ctx.report.step(name, r === false ? "skipped" : "succeeded");
    if (r === false) ctx.report.logLine("(skipped)");
    ctx.log.info({ step: name, ms: Date.now() - started, skipped: r === false }, "step done");
  } catch (err) {
    ctx.report.step(name, "failed");
    throw err;
  }
}

/** source → build → (content) → release → start → probe → switch; returns the replaced targets. */
async function runUpToSwitch(ctx: DeployContext): Promise<Awaited<ReturnType<typeof switchStep>>> {
  for (const line of ctx.spec.preamble ?? []) ctx.report.logLine(line);
  await step(ctx, "source", () => sourceStep(ctx));
  await step(ctx, "build", () => buildStep(ctx));
  // The image's id is what was shipped: the same tag rebuilt later is another image.
  ctx.imageDigest = ctx.image ? (await ctx.runtime.imageInfo(ctx.image))?.id : undefined;
  ctx.report.facts(ctx.commit ?? "", ctx.image ?? "", ctx.imageDigest ?? "");
  if (ctx.spec.content) await step(ctx, "content", () => contentStep(ctx));
  await step(ctx, "release", () => releaseStep(ctx));
  await step(ctx, "start", () => startStep(ctx));
  await step(ctx, "probe", () => probeStep(ctx));
  checkCancelled(ctx);
  let old: Awaited<ReturnType<typeof switchStep>> = [];
  await step(ctx, "switch", async () => {
    old = await switchStep(ctx);
  });
  return old;
}

/**
 * A whole deployment: source → build → release → start → probe → switch,
 * the result, then cleanup. Any failure before the switch removes the new containers and
 * leaves routing untouched. A redelivered deployment (its agent died) first
 * clears what the earlier attempt left and runs again from the start, or only
 * finishes when that attempt had switched already. Reports the final result;
 * never throws.
 */
export async function runDeployment(ctx: DeployContext): Promise<"succeeded" | "failed" | "cancelled"> {
  try {
    let old: Awaited<ReturnType<typeof switchStep>> = [];
    if (ctx.earlierAttempt) ctx.report.logLine("----- the agent stopped during an earlier attempt of this deployment; it was delivered again -----");
    if (ctx.earlierAttempt && (await recoverEarlierAttempt(ctx)) === "finish") {
      ctx.report.step("switch", "succeeded");
    } else {
      old = await runUpToSwitch(ctx);
    }
    // Traffic has moved and the host names are served: the deployment has succeeded, and says so
    // at once (the reporter sends a result without waiting for its batch timer). Removing the old
    // containers is housekeeping after it; a failure there must not fail the deployment.
    ctx.log.info({ replaced: old.length }, "deployment succeeded");
    ctx.report.logLine(`deployment succeeded: ${ctx.image}`);
    // The cleanup (stopping containers) competes for the CPU: it starts once the result is stored.
    await ctx.report.result("succeeded", { ...(ctx.commit ? { commit: ctx.commit } : {}), ...(ctx.image ? { image: ctx.image } : {}), ...(ctx.imageDigest ? { imageDigest: ctx.imageDigest } : {}) });
    ctx.report.heading(stepHeadings.cleanup);
    ctx.report.step("cleanup", "running");
    try {
      await cleanupAfterSwitch(ctx);
      ctx.report.step("cleanup", "succeeded");
    } catch (err) {
      ctx.report.logLine(`warning: cleanup of old containers failed (${(err as Error).message}); they will be removed by the next deployment`);
      ctx.report.step("cleanup", "failed");
    }
    return "succeeded";
  } catch (err) {
    const f = toFailure(err);
    const cancelled = err instanceof StepFailure && err.type === "cancelled";
    ctx.log.warn({ failure: f }, cancelled ? "deployment cancelled" : "deployment failed");
    if (!ctx.switched) {
      await removeStarted(ctx).catch((e: unknown) => ctx.report.logLine(`warning: could not remove new containers: ${(e as Error).message}`));
      ctx.report.logLine(`deployment ${cancelled ? "cancelled" : "failed"}: ${f.message}`);
      ctx.report.logLine("the previous version keeps serving; nothing was switched");
    } else {
      ctx.report.logLine(`deployment failed after the switch: ${f.message}`);
    }
    ctx.report.result(cancelled ? "cancelled" : "failed", { ...(ctx.commit ? { commit: ctx.commit } : {}), ...(ctx.image ? { image: ctx.image } : {}), error: err });
    return cancelled ? "cancelled" : "failed";
  }
}
