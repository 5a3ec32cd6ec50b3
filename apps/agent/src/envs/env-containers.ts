import { randomBytes } from "node:crypto";
import { LABELS, StepFailure, environmentNetwork } from "@slipway/core";
import type { ContainerRuntime, RunningContainer } from "../docker/container-runtime.js";
import { AGENT_LABELS } from "../docker/labels.js";
import type { EnvironmentEntry } from "./environment-registry.js";
import type { BackendTarget } from "../ingress/ingress.js";

/** How long a web container gets to stop on SIGTERM when its environment sleeps or stops. */
export const STOP_GRACE_SECONDS = 10;

/** The labels of an environment's web containers; the same for a deployment's and for replacements made by a wake. */
export function webLabels(hostId: string, e: Pick<EnvironmentEntry, "app" | "environment" | "environmentId" | "deploymentId">): Record<string, string> {
  return {
    [LABELS.managed]: "true",
    [LABELS.host]: hostId,
    [LABELS.app]: e.app,
    [LABELS.environment]: e.environment,
    [LABELS.deployment]: e.deploymentId,
    [LABELS.role]: "web",
    [AGENT_LABELS.environmentId]: e.environmentId,
  };
}

/** A fresh web container name, as a deployment names them. */
export function webContainerName(app: string, environment: string): string {
  return `slipway-${app}-${environment}-${randomBytes(4).toString("hex")}`;
}

/**
 * Starts an environment's web containers again: `docker start` of each kept
 * container (a restart gets a new host port, read back with inspect), and a
 * new container from the entry's image for each one that is gone, which needs
 * the variables of the last deployment (kept in memory only). Returns the
 * running containers; on failure stops what it started.
 */
export async function startWebContainers(
  runtime: ContainerRuntime,
  hostId: string,
  e: EnvironmentEntry,
  variables: Record<string, string> | undefined,
  logLine: (line: string) => void,
): Promise<RunningContainer[]> {
  const running: RunningContainer[] = [];
  try {
    const restarted = await Promise.all(
      e.containerIds.map(async (id) => {
        if (!(await runtime.startExisting(id))) return undefined;
        const st = await runtime.inspect(id);
        if (!st?.hostPort) throw new StepFailure("no_host_port", `container ${id.slice(0, 12)} publishes no port on 127.0.0.1`, false);
        return { id, name: id.slice(0, 12), hostPort: st.hostPort, ...(st.address ? { address: st.address } : {}) };
      }),
    );
    for (const c of restarted) if (c) running.push(c);
    const missing = Math.max(1, e.containerIds.length) - running.length;
    if (missing > 0) {
      if (!variables) {
        throw new StepFailure(
          "containers_gone",
          `${missing} container(s) of ${e.app}/${e.environment} are gone and their variables are not known since the agent restarted: deploy the environment again`,
          false,
        );
      }
      logLine(`${missing} container(s) are gone; starting new ones from ${e.image}`);
      await runtime.ensureNetwork(environmentNetwork(e.slug, hostId), { [LABELS.managed]: "true", [LABELS.app]: e.app, [LABELS.environment]: e.environment, [AGENT_LABELS.environmentId]: e.environmentId, [LABELS.host]: hostId });
      for (let i = 0; i < missing; i++) {
        running.push(
          await runtime.start({
            name: webContainerName(e.app, e.environment),
            image: e.image,
            env: { ...variables, PORT: String(e.webPort) },
            labels: webLabels(hostId, e),
            network: environmentNetwork(e.slug, hostId),
            publishPort: e.webPort,
            ...(e.limits ? { limits: e.limits } : {}),
          }),
        );
      }
    }
    return running;
  } catch (err) {
    await stopWebContainers(runtime, running.map((c) => c.id));
    throw err;
  }
}

/** `docker stop` of each container, kept for the next start; gone or already stopped is fine. */
export async function stopWebContainers(runtime: ContainerRuntime, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => runtime.stop(id, STOP_GRACE_SECONDS)));
}

/**
 * Where the ingress sends an environment's traffic for one of its
 * containers: the container's own address on its network and its web port,
 * which the host reaches directly over the bridge; the port published on
 * 127.0.0.1 only when the container has no such address. The published port
 * goes through Docker's userland proxy, which cost more CPU per request than
 * HAProxy itself (BENCHMARKS.md, "Ingress ratio, re-measured").
 */
export function routeTarget(c: { id: string; address?: string; hostPort?: number }, webPort: number): BackendTarget {
  if (c.address) return { id: c.id, host: c.address, port: webPort };
  return { id: c.id, host: "127.0.0.1", port: c.hostPort! };
}
