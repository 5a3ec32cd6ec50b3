import { setTimeout as sleep } from "node:timers/promises";
import { authOf, authRealm, BACKEND_SLOTS } from "../envs/environments.js";
import { routeTarget } from "../envs/env-containers.js";
import type { BackendTarget } from "../ingress/ingress.js";
import { applyTls, sameKey, tlsSpecOf } from "../envs/env-certificates.js";
import type { DeployContext } from "./context.js";
import { checkCancelled, slugOf } from "./context.js";

/**
 * Moves the environment's traffic to the new containers in one step through
 * the ingress runtime API (in-flight requests on the old ones complete),
 * applying the spec's host names and basic auth, and records the environment
 * (image, containers, probe, sleep setting) for sleeping and waking. Runs
 * under the environment's lock, so it never interleaves with a sleep or a
 * wake. Then applies the spec's HTTPS part (ACME thumbprint, certificates;
 * failures are logged, never fatal). Returns the replaced targets.
 */
export async function switchStep(ctx: DeployContext): Promise<BackendTarget[]> {
  const { spec, report } = ctx;
  const slug = slugOf(ctx);
  const basicAuth = authOf(spec.basicAuth);
  if (ctx.pauseBeforeSwitchMs) {
    ctx.log.warn({ ms: ctx.pauseBeforeSwitchMs }, "test hook: pausing before the switch");
    await sleep(ctx.pauseBeforeSwitchMs, undefined, { signal: ctx.signal }).catch(() => checkCancelled(ctx));
  }
  return ctx.envs.exclusive(slug, async () => {
    await ctx.ingress.ensureBackend({ name: slug, realm: authRealm(spec), hostnames: spec.hostnames, basicAuth, maxServers: BACKEND_SLOTS });
    const targets = ctx.started.map((c) => routeTarget(c, ctx.webPort!));
    const old = await ctx.ingress.switchTraffic(slug, targets, ctx.pauseMidSwitchMs ? { testPauseMidSwitchMs: ctx.pauseMidSwitchMs } : undefined);
    ctx.switched = true;
    report.logLine(`traffic for ${spec.hostnames.join(", ")} now goes to ${targets.length} new container(s); ${old.length} old one(s) drained`);
    // HTTPS once the traffic moved: a certificate that cannot be installed never fails the deployment.
    const tlsCertificates = await applyTls({
      ingress: ctx.ingress,
      backend: slug,
      tls: tlsSpecOf(spec),
      hostnames: spec.hostnames,
      owned: ctx.envs.get(slug)?.tlsCertificates ?? [],
      ownedElsewhere: (key) => ctx.envs.all().some((e) => e.slug !== slug && (e.tlsCertificates ?? []).some((k) => sameKey(k, key))),
      logLine: (line) => report.logLine(line),
      log: ctx.log,
    });
    await ctx.envs.recordDeployment(
      {
        app: spec.app,
        environment: spec.environment,
        environmentId: spec.environmentId,
        slug,
        image: ctx.image!,
        webPort: ctx.webPort!,
        probe: spec.probe!,
        containerIds: ctx.started.map((c) => c.id),
        deploymentId: spec.deploymentId,
        hostnames: spec.hostnames,
        basicAuth,
        sleepAfterSeconds: spec.sleepAfterSeconds,
        ...(spec.limits ? { limits: spec.limits } : {}),
        tlsCertificates,
      },
      spec.variables,
    );
    if (basicAuth) report.logLine(`basic auth on (user ${basicAuth.username})`);
    if (spec.sleepAfterSeconds > 0) report.logLine(`sleeps after ${spec.sleepAfterSeconds} s without requests`);
    return old;
  });
}
