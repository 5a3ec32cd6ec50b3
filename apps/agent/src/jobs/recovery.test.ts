// Recovery after faults, against the real dockerd and HAProxy: a deployment
// redelivered after its agent died, and containers that Docker restarted on
// new ports behind the agent's back. One test bed; everything removed in afterAll.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS, environmentNetwork } from "@slipway/core";
import type { DeploySpec } from "@slipway/proto";
import type { SourceRepository } from "../git/source-repository.js";
import { webContainerName, webLabels } from "../envs/env-containers.js";
import { PAGE, Testbed, logLines, logger, memoryReporter, resultOf } from "../envs/testbed.testkit.js";
import { runDeployment } from "./deploy.runner.js";

const bed = new Testbed();
const env = "rec";

/** Runs a deployment of the bed's image as a redelivery (an earlier attempt reported events). */
async function redeliver(deploymentId: string): Promise<{ state: string; lines: string[] }> {
  const e = bed.envs.get(bed.slug(env))!;
  const spec: DeploySpec = {
    app: bed.app,
    environment: env,
    repository: "",
    branch: "main",
    buildMode: "reuse",
    currentImage: bed.image,
    webPort: 0,
    probe: e.probe,
    releaseCommands: [],
    releaseCommandTimeoutMs: 60_000,
    replicas: 1,
    variables: {},
    hostnames: [bed.host(env)],
    deploymentId,
    environmentId: e.environmentId,
    sleepAfterSeconds: 0,
  };
  const { reporter, events } = memoryReporter();
  await runDeployment({
    spec, hostId: bed.hostId, jobId: randomUUID(), runtime: bed.runtime, ingress: bed.ingress, git: {} as SourceRepository,
    envs: bed.envs, report: reporter, log: logger, signal: new AbortController().signal, started: [], switched: false, earlierAttempt: true,
  });
  await reporter.flush();
  reporter.close();
  return { state: resultOf(events) ?? "none", lines: logLines(events) };
}

/** A container as the earlier attempt of `deploymentId` would have left it. */
async function leftover(deploymentId: string, role: "web" | "release"): Promise<string> {
  const e = bed.envs.get(bed.slug(env))!;
  const c = await bed.runtime.start({
    name: role === "web" ? webContainerName(bed.app, env) : `slipway-${bed.app}-${env}-release-${deploymentId.slice(0, 6)}`,
    image: bed.image,
    env: {},
    labels: { ...webLabels(bed.hostId, { ...e, deploymentId }), [LABELS.role]: role },
    network: environmentNetwork(bed.slug(env), bed.hostId),
    ...(role === "web" ? { publishPort: 8080 } : { cmd: ["sleep", "60"] }),
  });
  return c.id;
}

const ids = async (labels: Record<string, string>) => (await bed.containers({ [LABELS.environment]: env, ...labels })).map((c) => c.Id);

describe("recovery after faults (real dockerd + HAProxy)", () => {
  beforeAll(async () => {
    await bed.start();
    await bed.deploy(env);
  });
  afterAll(async () => {
    await bed.close();
  });

  it("a redelivered deployment removes the earlier attempt's unrouted web container and release one-off, then runs again", async () => {
    const serving = bed.envs.get(bed.slug(env))!.containerIds;
    const id = randomUUID();
    const web = await leftover(id, "web");
    const release = await leftover(id, "release");
    const { state, lines } = await redeliver(id);
    expect(state, lines.join("\n")).toBe("succeeded");
    expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/left by the earlier attempt$/), "running the deployment again from the start"]));
    const now = await ids({});
    expect(now).not.toContain(web);
    expect(now).not.toContain(release);
    expect(now).not.toContain(serving[0]);
    expect(await ids({ [LABELS.deployment]: id, [LABELS.role]: "web" })).toEqual(now);
    expect(now).toHaveLength(1);
    expect(await bed.get(env)).toMatchObject({ status: 200, body: PAGE });
  });

  it("a deployment redelivered after its switch was recorded is finished, not repeated", async () => {
    const e = bed.envs.get(bed.slug(env))!;
    const { state, lines } = await redeliver(e.deploymentId);
    expect(state, lines.join("\n")).toBe("succeeded");
    expect(lines.some((l) => l.includes("finishing it"))).toBe(true);
    expect(lines.some((l) => l.startsWith("started "))).toBe(false);
    expect(await ids({})).toEqual(e.containerIds);
    expect(bed.envs.get(bed.slug(env))!.containerIds).toEqual(e.containerIds);
  });

  it("routes to the container's address on its network, and reconcile re-points a route that does not lead there", async () => {
    const [id] = bed.envs.get(bed.slug(env))!.containerIds;
    await bed.runtime.stop(id!, 5);
    await bed.runtime.startExisting(id!);
    const st = (await bed.runtime.inspect(id!))!;
    expect(st.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    // As an agent of an earlier version left it: the published loopback port (through Docker's proxy).
    await bed.ingress.switchTraffic(bed.slug(env), [{ id: id!, host: "127.0.0.1", port: st.hostPort! }], { drainTimeoutMs: 100 });
    expect(await bed.envs.reconcile()).toEqual([bed.slug(env)]);
    expect((await bed.ingress.current(bed.slug(env))).map((t) => `${t.host}:${t.port}`)).toEqual([`${st.address}:8080`]);
    expect(await bed.get(env)).toMatchObject({ status: 200, body: PAGE });
    expect(await bed.envs.reconcile()).toEqual([]);
  });
});
