import { LABELS } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import { slugOf, type DeployContext } from "./context.js";

/** Release one-offs are killed at once: the deployment runs them again from the start. */
const RELEASE_STOP_GRACE_SECONDS = 2;
/** Web containers of the earlier attempt never received traffic. */
const WEB_STOP_GRACE_SECONDS = 2;

/**
 * Before a redelivered deployment runs again (its agent died mid-way): when
 * the earlier attempt had already switched traffic and recorded the
 * environment, the deployment is finished rather than repeated ("finish":
 * ctx.started, image and commit are restored, ctx.switched is set). Otherwise
 * ("rerun") removes what the earlier attempt left behind: its web containers
 * that receive no traffic and every release one-off of the environment (at
 * most one deployment of an environment runs, so any one-off left is the
 * earlier attempt's, possibly still running). The agent's start already put
 * the routing back to the environment's recorded containers. Runs under the
 * environment's lock, so no sleep, wake or reconcile moves traffic meanwhile.
 * Idempotent.
 */
export async function recoverEarlierAttempt(ctx: DeployContext): Promise<"finish" | "rerun"> {
  const { spec, report, runtime } = ctx;
  const slug = slugOf(ctx);
  return ctx.envs.exclusive(slug, async () => {
    const entry = ctx.envs.get(slug);
    if (entry?.deploymentId === spec.deploymentId) {
      ctx.image = entry.image;
      ctx.commit = entry.image.split(":").pop();
      ctx.webPort = entry.webPort;
      ctx.started = entry.containerIds.map((id) => ({ id, name: id.slice(0, 12) }));
      ctx.switched = true;
      report.logLine(`the earlier attempt had switched traffic to ${entry.containerIds.length} container(s) of ${entry.image} before the agent stopped; finishing it`);
      return "finish";
    }
    const keep = new Set([...(entry?.containerIds ?? []), ...(await ctx.ingress.current(slug)).map((t) => t.id)]);
    const base = { [LABELS.host]: ctx.hostId, [AGENT_LABELS.environmentId]: spec.environmentId };
    const web = (await runtime.list({ ...base, [LABELS.role]: "web", [LABELS.deployment]: spec.deploymentId })).filter((c) => !keep.has(c.id));
    const release = await runtime.list({ ...base, [LABELS.role]: "release" });
    await Promise.all([
      ...web.map((c) => runtime.stopAndRemove(c.id, WEB_STOP_GRACE_SECONDS)),
      ...release.map((c) => runtime.stopAndRemove(c.id, RELEASE_STOP_GRACE_SECONDS)),
    ]);
    for (const c of [...web, ...release]) report.logLine(`removed ${c.name}, left by the earlier attempt`);
    report.logLine(`${web.length + release.length === 0 ? "nothing was left behind; " : ""}running the deployment again from the start`);
    return "rerun";
  });
}
