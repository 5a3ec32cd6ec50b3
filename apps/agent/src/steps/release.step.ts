import { randomBytes } from "node:crypto";
import { LABELS, StepFailure, environmentNetwork } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import type { DeployContext } from "./context.js";
import { checkCancelled, networkLabels, slugOf } from "./context.js";

/**
 * Runs the release commands in order, each in a fresh one-off container from
 * the new image with the environment's variables on its network. The first
 * failure (non-zero exit or timeout) fails the deployment. Returns false when
 * there were none.
 */
export async function releaseStep(ctx: DeployContext): Promise<boolean> {
  const { spec, report } = ctx;
  if (spec.releaseCommands.length === 0) return false;
  if (spec.skipRelease) {
    report.logLine(`the release commands are not run (${spec.releaseCommands.map((c) => c.label).join(", ")}): a rollback runs them only when asked ("runReleaseCommands": true)`);
    return false;
  }
  const network = environmentNetwork(slugOf(ctx), ctx.hostId);
  await ctx.runtime.ensureNetwork(network, networkLabels(ctx));
  for (const [i, cmd] of spec.releaseCommands.entries()) {
    checkCancelled(ctx);
    report.logLine(`----- ${cmd.label} -----`);
    report.logLine(`$ ${cmd.command}`);
    const started = Date.now();
    const r = await ctx.runtime
      .runOneOff(
      {
        name: `slipway-${spec.app}-${spec.environment}-release-${randomBytes(3).toString("hex")}`,
        image: ctx.image!,
        env: spec.variables,
        labels: {
          [LABELS.managed]: "true",
          [LABELS.host]: ctx.hostId,
          [LABELS.app]: spec.app,
          [LABELS.environment]: spec.environment,
          [LABELS.deployment]: spec.deploymentId,
          [LABELS.role]: "release",
          [AGENT_LABELS.environmentId]: spec.environmentId,
        },
        network,
        cmd: ["sh", "-c", cmd.command],
        ...(spec.limits ? { limits: spec.limits } : {}),
      },
      { timeoutMs: spec.releaseCommandTimeoutMs, onLog: (line) => report.logLine(line), signal: ctx.signal },
      )
      .catch((err: unknown) => {
        // The runtime reports any abort as a cancel; the reason says whether the user cancelled or the agent stops.
        if (ctx.signal.aborted) checkCancelled(ctx);
        throw err;
      });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const note = i > 0 || r.exitCode !== 0 ? " Release commands may already have changed the database or media; the site keeps serving the previous version." : "";
    if (r.timedOut) {
      throw new StepFailure("release_command_timeout", `release command '${cmd.label}' ran past its timeout of ${spec.releaseCommandTimeoutMs / 1000} s and was killed.${note}`, false);
    }
    if (r.oomKilled) {
      const limit = spec.limits ? ` (limit ${Math.round(spec.limits.memoryBytes / 1048576)} MiB)` : "";
      throw new StepFailure("release_command_oom", `release command '${cmd.label}' was killed: out of memory${limit}.${note}`, false, { exitCode: r.exitCode });
    }
    if (r.exitCode !== 0) {
      throw new StepFailure("release_command_failed", `release command '${cmd.label}' exited with code ${r.exitCode}.${note}`, false, { exitCode: r.exitCode });
    }
    report.logLine(`(${cmd.label}: exit 0 in ${secs} s)`);
  }
  return true;
}
