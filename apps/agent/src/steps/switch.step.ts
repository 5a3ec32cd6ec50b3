import { environmentSlug } from "@slipway/core";
import type { BackendTarget } from "../ingress/ingress.js";
import type { DeployContext } from "./context.js";

/** Server slots per backend: room for the old and the new containers of the largest replica count. */
export const MAX_REPLICAS = 10;

/**
 * Moves the environment's traffic to the new containers in one step through
 * the ingress runtime API; in-flight requests on the old ones complete.
 * Returns the replaced targets.
 */
export async function switchStep(ctx: DeployContext): Promise<BackendTarget[]> {
  const { spec, report } = ctx;
  const name = environmentSlug(spec.app, spec.environment);
  await ctx.ingress.ensureBackend({ name, hostnames: spec.hostnames, maxServers: 2 * MAX_REPLICAS });
  const targets = ctx.started.map((c) => ({ id: c.id, host: "127.0.0.1", port: c.hostPort! }));
  const old = await ctx.ingress.switchTraffic(name, targets);
  ctx.switched = true;
  report.logLine(`traffic for ${spec.hostnames.join(", ")} now goes to ${targets.length} new container(s); ${old.length} old one(s) drained`);
  return old;
}
