import type { DeployContext } from "./context.js";
import { checkCancelled } from "./context.js";
import { probeContainers } from "../envs/container-probe.js";

/** The deployment's probe step: probes the containers this deployment started. */
export async function probeStep(ctx: DeployContext): Promise<void> {
  await probeContainers(ctx.started, {
    runtime: ctx.runtime,
    probe: ctx.spec.probe!,
    webPort: ctx.webPort!,
    logLine: (line) => ctx.report.logLine(line),
    check: () => checkCancelled(ctx),
    ...(ctx.sendProbe ? { send: ctx.sendProbe } : {}),
  });
}
