import { LABELS } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import type { DeployContext } from "./context.js";

/** Grace period for old web containers: in-flight requests were drained at the ingress already. */
const STOP_GRACE_SECONDS = 10;

/**
 * After a successful switch: stops and removes every web container of the
 * environment on this host that is not one of the new ones (the replaced
 * containers and leftovers of earlier interrupted deployments).
 */
export async function cleanupAfterSwitch(ctx: DeployContext): Promise<number> {
  const { spec } = ctx;
  const keep = new Set(ctx.started.map((c) => c.id));
  const all = await ctx.runtime.list({ [LABELS.host]: ctx.hostId, [AGENT_LABELS.environmentId]: spec.environmentId, [LABELS.role]: "web" });
  const stale = all.filter((c) => !keep.has(c.id));
  await Promise.all(stale.map((c) => ctx.runtime.stopAndRemove(c.id, STOP_GRACE_SECONDS)));
  for (const c of stale) ctx.report.logLine(`removed ${c.name}`);
  return stale.length;
}

/** After a failure before the switch: removes the containers this deployment started. */
export async function removeStarted(ctx: DeployContext): Promise<void> {
  await Promise.all(ctx.started.map((c) => ctx.runtime.stopAndRemove(c.id, 2)));
  for (const c of ctx.started) ctx.report.logLine(`removed new container ${c.name}`);
}
