import { StepFailure, environmentNetwork } from "@slipway/core";
import { webContainerName, webLabels } from "../envs/env-containers.js";
import type { DeployContext } from "./context.js";
import { checkCancelled, networkLabels, slugOf } from "./context.js";

/**
 * Starts the new web containers beside the old ones, each publishing the web
 * port on 127.0.0.1. The web port comes from the settings, else the image's
 * first EXPOSEd port; an image with neither fails clearly.
 */
export async function startStep(ctx: DeployContext): Promise<void> {
  const { spec, report } = ctx;
  const info = await ctx.runtime.imageInfo(ctx.image!);
  if (!info) throw new StepFailure("image_not_found", `image ${ctx.image} does not exist on this host`, false);
  const webPort = spec.webPort || info.exposedPorts[0];
  if (!webPort) {
    throw new StepFailure("no_web_port", "no web port: set 'webPort' in the application settings or EXPOSE a port in the Dockerfile", false);
  }
  ctx.webPort = webPort;
  report.logLine(`web port ${webPort}${spec.webPort ? " (from settings)" : " (from the image's EXPOSE)"}`);
  const network = environmentNetwork(slugOf(ctx), ctx.hostId);
  await ctx.runtime.ensureNetwork(network, networkLabels(ctx));
  const replicas = Math.max(1, spec.replicas);
  for (let i = 0; i < replicas; i++) {
    checkCancelled(ctx);
    const c = await ctx.runtime.start({
      name: webContainerName(spec.app, spec.environment),
      image: ctx.image!,
      env: { ...spec.variables, PORT: String(webPort) },
      labels: webLabels(ctx.hostId, spec),
      network,
      publishPort: webPort,
      ...(spec.limits ? { limits: spec.limits } : {}),
    });
    ctx.started.push(c);
    report.logLine(`started ${c.name} (${c.id.slice(0, 12)}) on 127.0.0.1:${c.hostPort}`);
  }
}
