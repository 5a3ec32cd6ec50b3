// Integration tests of environment jobs (stop, start, routes, remove) and
// basic auth against the real dockerd and /usr/sbin/haproxy on 127.0.0.1.
// The control plane is an in-memory event sink. Tests run in order and share
// one test bed; everything is removed in afterAll.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EnvironmentSpec, JobEvent } from "@slipway/proto";
import { environmentNetwork, LABELS } from "@slipway/core";
import { HaproxyRuntime } from "../ingress/haproxy-runtime.js";
import { authDigest, logger, logLines, memoryReporter, PAGE, resultOf, Testbed } from "../envs/testbed.testkit.js";
import { runEnvironmentJob } from "./environment.runner.js";
import { AGENT_LABELS } from "../docker/labels.js";

const bed = new Testbed();

async function job(env: string, action: string, extra: Partial<EnvironmentSpec> = {}): Promise<JobEvent[]> {
  const { reporter, events } = memoryReporter();
  const spec: EnvironmentSpec = { action, app: bed.app, environment: env, environmentId: bed.id(env), hostnames: [bed.host(env)], sleepAfterSeconds: 0, ...extra };
  await runEnvironmentJob({ spec, envs: bed.envs, report: reporter, log: logger });
  await reporter.flush();
  reporter.close();
  return events;
}

function steps(events: JobEvent[]): string[] {
  return events.flatMap((e) => (e.event?.$case === "step" ? [`${e.event.value.name}:${e.event.value.state}`] : []));
}

describe("environment jobs (real dockerd + HAProxy)", () => {
  beforeAll(async () => {
    await bed.start();
    await bed.deploy("qa");
  });

  afterAll(async () => {
    await bed.close();
  });

  it("stop: 503 'stopped' through the ingress, containers stopped and kept, no wake on request", async () => {
    const events = await job("qa", "stop");
    expect(resultOf(events)).toBe("succeeded");
    expect(logLines(events)[0]).toBe("===== stop =====");
    expect(steps(events)).toEqual(["stop:running", "stop:succeeded"]);
    expect(await bed.containersRunning("qa")).toEqual([false]);
    const before = bed.runtime.restarts;
    const r = await bed.get("qa");
    expect(r.status).toBe(503);
    expect(r.body).toBe(`environment ${bed.app}/qa is stopped\n`);
    expect(r.headers["content-type"]).toContain("text/plain");
    expect(bed.runtime.restarts).toBe(before);
    expect(await bed.containersRunning("qa")).toEqual([false]);
    expect(bed.envs.observations().find((o) => o.environment === "qa")?.state).toBe("stopped");
    expect(resultOf(await job("qa", "stop"))).toBe("succeeded");
  });

  it("start: 200 again; starting a running environment is a no-op success", async () => {
    const events = await job("qa", "start");
    expect(resultOf(events)).toBe("succeeded");
    expect(logLines(events)).toContain("===== start =====");
    expect(await bed.get("qa")).toMatchObject({ status: 200, body: PAGE });
    expect(bed.envs.get(bed.slug("qa"))?.state).toBe("running");
    const before = bed.runtime.restarts;
    const again = await job("qa", "start");
    expect(resultOf(again)).toBe("succeeded");
    expect(logLines(again).join("\n")).toContain("already running");
    expect(bed.runtime.restarts).toBe(before);
  });

  it("routes: basic auth by digest (401 without or with wrong credentials, 200 with the right ones), host names at runtime", async () => {
    const digest = authDigest("qa", "s3cret");
    const alias = `www.${bed.host("qa")}`;
    const events = await job("qa", "routes", { hostnames: [bed.host("qa"), alias], basicAuth: { username: "qa", digest }, sleepAfterSeconds: 600 });
    expect(resultOf(events)).toBe("succeeded");
    const anonymous = await bed.get("qa");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers["www-authenticate"]).toBe(`Basic realm="${bed.app}-qa"`);
    expect((await bed.get("qa", { auth: "qa:wrong" })).status).toBe(401);
    expect((await bed.get("qa", { auth: "someone:s3cret" })).status).toBe(401);
    expect(await bed.get("qa", { auth: "qa:s3cret" })).toMatchObject({ status: 200, body: PAGE });
    expect(bed.envs.get(bed.slug("qa"))).toMatchObject({ hostnames: [bed.host("qa"), alias], basicAuth: { username: "qa", digest }, sleepAfterSeconds: 600 });

    // Only host names change: a runtime map edit, the same HAProxy worker keeps serving.
    const admin = new HaproxyRuntime(path.join(bed.dir, "haproxy", "admin.sock"), path.join(bed.dir, "haproxy", "master.sock"));
    const worker = await admin.workerPid();
    expect(resultOf(await job("qa", "routes", { hostnames: [bed.host("qa")], basicAuth: { username: "qa", digest }, sleepAfterSeconds: 600 }))).toBe("succeeded");
    expect(await admin.workerPid()).toBe(worker);
    expect((await bed.get("qa", { auth: "qa:s3cret" })).status).toBe(200);

    expect(resultOf(await job("qa", "routes", { hostnames: [bed.host("qa")], sleepAfterSeconds: 0 }))).toBe("succeeded");
    expect(await bed.get("qa")).toMatchObject({ status: 200, body: PAGE });
  });

  it("basic auth from a deployment guards a sleeping environment: no credentials, no wake", async () => {
    await bed.deploy("private", { basicAuth: { username: "pm", digest: authDigest("pm", "pw") } });
    expect((await bed.get("private")).status).toBe(401);
    expect((await bed.get("private", { auth: "pm:pw" })).status).toBe(200);
    await bed.envs.sleep(bed.slug("private"), async () => true);
    const before = bed.runtime.restarts;
    expect((await bed.get("private")).status).toBe(401);
    expect(bed.runtime.restarts).toBe(before);
    expect(await bed.get("private", { auth: "pm:pw" })).toMatchObject({ status: 200, body: PAGE });
    expect(bed.runtime.restarts).toBe(before + 1);
  });

  it("routes for an environment this host does not serve succeed with a log line", async () => {
    const events = await job("nowhere", "routes");
    expect(resultOf(events)).toBe("succeeded");
    expect(logLines(events).join("\n")).toContain("not routed on this host yet");
  });

  it("remove: no container (any role), network, backend or registry entry remains; a second remove succeeds", async () => {
    // A leftover one-off container of the environment, as an interrupted release command would leave.
    const network = environmentNetwork(bed.slug("qa"), bed.hostId);
    await bed.runtime.ensureNetwork(network, { [LABELS.host]: bed.hostId });
    await bed.runtime.start({
      name: `slipway-${bed.app}-qa-release-left`,
      image: bed.image,
      env: {},
      labels: { [LABELS.host]: bed.hostId, [LABELS.app]: bed.app, [LABELS.environment]: "qa", [AGENT_LABELS.environmentId]: bed.id("qa"), [LABELS.role]: "release" },
      network,
    });
    expect((await bed.containers({ [LABELS.environment]: "qa" })).length).toBe(2);

    const events = await job("qa", "remove");
    expect(resultOf(events)).toBe("succeeded");
    expect(await bed.containers({ [LABELS.environment]: "qa" })).toEqual([]);
    expect(await bed.networks()).not.toContain(network);
    const r = await bed.get("qa");
    expect(r.status).toBe(404);
    expect(r.body).toBe("no environment is served at this host name");
    expect(bed.envs.get(bed.slug("qa"))).toBeUndefined();
    expect(await readFile(path.join(bed.dir, "environments.json"), "utf8")).not.toContain(`"${bed.slug("qa")}"`);
    expect(await bed.ingress.stats(bed.slug("qa"))).toBeUndefined();

    expect(resultOf(await job("qa", "remove"))).toBe("succeeded");
    // The other environment is untouched.
    expect((await bed.get("private", { auth: "pm:pw" })).status).toBe(200);
  });

  it("fails an unknown action", async () => {
    const events = await job("private", "explode");
    expect(resultOf(events)).toBe("failed");
    expect(steps(events)).toEqual(["explode:running", "explode:failed"]);
  });
});
