import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia, startLoad } from "./support/load.js";
import { waitFor } from "./support/processes.js";
import { openStream, readStream } from "./support/streams.js";

// Two agents on this machine as two hosts (own state dir, HAProxy and ports; one shared dockerd).
describe("a fleet of two hosts", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let a: AgentHandle;
  let b: AgentHandle;
  const api = () => platform.api;
  const agentOf = (hostId: string) => (hostId === a.hostId ? a : b);
  const envOf = (app: string, env: string) => api().call("GET", `/v1/apps/${app}/environments/${env}`);

  beforeAll(async () => {
    await platform.start();
    a = await platform.addAgent({ SLIPWAY_AGENT_LABELS: "zone=a" });
    b = await platform.addAgent({ SLIPWAY_AGENT_LABELS: "zone=b,disk=ssd" });
    repo.commit(helloApp("fleet", { cmd: '["httpd", "-f", "-vv", "-p", "8080", "-h", "/www"]' }), "fleet");
    for (const app of ["one", "two"]) await api().call("POST", "/v1/apps", { name: app, repository: repo.url });
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("places environments on both hosts, least loaded first, and lists both with load and heartbeat time", async () => {
    for (const [app, env] of [["one", "test"], ["two", "test"], ["one", "live"], ["two", "live"]] as const) {
      const d = await api().deploy(app, env);
      expect(d.state, await api().log(d.id)).toBe("succeeded");
    }
    const hosts = await api().call("GET", "/v1/hosts");
    const ours = hosts.filter((h: { id: string }) => h.id === a.hostId || h.id === b.hostId);
    expect(ours).toHaveLength(2);
    for (const h of ours) {
      expect(h.state).toBe("online");
      expect(Date.now() - Date.parse(h.lastHeartbeatAt)).toBeLessThan(5000);
      expect(h.environments).toHaveLength(2);
      expect(h.capacity.cpus).toBeGreaterThan(0);
      expect(typeof h.load.cpu).toBe("number");
      expect(h.ingressAddress).toBe(`127.0.0.1:${agentOf(h.id).ingressPort}`);
    }
    for (const [app, env] of [["one", "test"], ["two", "test"], ["one", "live"], ["two", "live"]] as const) {
      const e = await envOf(app, env);
      expect((await getVia(agentOf(e.host).ingressPort, `${app}-${env}.localhost`)).body).toBe("fleet");
    }
  });

  it("streams an environment's runtime log from whichever host runs it, and follows it live", async () => {
    for (const [app, env] of [["one", "test"], ["two", "test"]] as const) {
      const e = await envOf(app, env);
      await getVia(agentOf(e.host).ingressPort, `${app}-${env}.localhost`, `/from-${app}-${env}`);
      const text = await waitFor("the request in the log", async () => {
        const t = await api().call("GET", `/v1/apps/${app}/environments/${env}/logs`);
        return t.includes(`url:/from-${app}-${env}`) ? t : undefined;
      }, 10_000, 300);
      expect(text).toMatch(new RegExp(`^slipway-${app}-${env}-\\w+ \\S+ .*url:/from-${app}-${env}$`, "m"));
    }
    const e = await envOf("one", "live");
    const followed = await openStream("the followed runtime log", `${api().baseUrl}/v1/apps/one/environments/live/logs?follow=true&since=${encodeURIComponent(new Date().toISOString())}`, { headers: { authorization: `Bearer ${api().token}` } });
    try {
      expect(followed.res.status).toBe(200);
      // busybox httpd has no /live-N: its 404 shows the request reached the container (and its log).
      for (let i = 0; i < 3; i++) expect((await getVia(agentOf(e.host).ingressPort, "one-live.localhost", `/live-${i}`)).status).toBe(404);
      // A bounded read: a stream that stops delivering fails here, with what it delivered, instead of hanging.
      const seen = await readStream("the followed runtime log", followed.res.body, { until: (t) => t.includes("url:/live-2"), timeoutMs: 15_000 });
      expect(seen).toContain("url:/live-0");
    } finally {
      followed.close();
    }
    const bad = await api().raw("GET", "/v1/apps/one/environments/live/logs?since=yesterday");
    expect(bad.status).toBe(400);
    await api().call("POST", "/v1/apps", { name: "idle", repository: repo.url });
    expect((await api().raw("GET", "/v1/apps/idle/environments/test/logs")).status).toBe(409);
  });

  it("shows a stopped agent's host offline within 20 s and its environments unknown, and true states when it returns", async () => {
    const onB = (await api().call("GET", `/v1/hosts/${b.hostId}`)).environments as Array<{ app: string; environment: string }>;
    await b.stop();
    const t0 = Date.now();
    await waitFor("host b offline", async () => (await api().call("GET", `/v1/hosts/${b.hostId}`)).state === "offline", 20_000, 250);
    expect(Date.now() - t0).toBeLessThan(20_000);
    for (const e of onB) expect((await envOf(e.app, e.environment)).state).toBe("unknown");
    // Its ingress and containers kept serving meanwhile: an agent restart is not an outage.
    expect((await getVia(b.ingressPort, `${onB[0]!.app}-${onB[0]!.environment}.localhost`)).body).toBe("fleet");
    await b.start();
    await waitFor("host b online", async () => (await api().call("GET", `/v1/hosts/${b.hostId}`)).state === "online", 20_000, 250);
    for (const e of onB) await waitFor(`${e.app}/${e.environment} running`, async () => (await envOf(e.app, e.environment)).state === "running", 20_000, 250);
  });

  it("places nothing new on a cordoned host", async () => {
    await api().call("POST", `/v1/hosts/${a.hostId}/cordon`);
    expect((await api().call("GET", `/v1/hosts/${a.hostId}`)).state).toBe("cordoned");
    await api().call("POST", "/v1/apps", { name: "three", repository: repo.url });
    const d = await api().deploy("three", "test");
    expect(d.state).toBe("succeeded");
    expect((await envOf("three", "test")).host).toBe(b.hostId);
    await api().call("POST", `/v1/hosts/${a.hostId}/uncordon`);
  });

  it("places by host labels, and moves an environment whose labels change at its next deployment with 0 failed requests", async () => {
    expect((await api().call("GET", `/v1/hosts/${b.hostId}`)).labels).toEqual({ zone: "b", disk: "ssd" });
    await api().call("POST", "/v1/apps", { name: "five", repository: repo.url });
    await api().call("PATCH", "/v1/apps/five/environments/test", { hostLabels: { disk: "ssd" } });
    expect((await api().deploy("five", "test")).state).toBe("succeeded");
    expect((await envOf("five", "test")).host).toBe(b.hostId);
    // New labels: the next deployment moves it to host a; clients of b's ingress are forwarded meanwhile.
    await api().call("PATCH", "/v1/apps/five/environments/test", { hostLabels: { zone: "a" } });
    const load = startLoad({ port: b.ingressPort, host: "five-test.localhost", concurrency: 4, maxMs: 120_000 });
    const d = await api().deploy("five", "test");
    expect(d.state, await api().log(d.id)).toBe("succeeded");
    const fiveOn = (hostId: string | undefined) =>
      execFileSync("docker", ["ps", "-aq", "--filter", `label=io.slipway.host=${hostId}`, "--filter", "label=io.slipway.app=five"], { encoding: "utf8" }).split("\n").filter(Boolean);
    await waitFor("host b to hand five/test over and remove its container", async () => fiveOn(b.hostId).length === 0, 30_000, 500);
    expect(fiveOn(a.hostId)).toHaveLength(1);
    const r = await load.stop();
    expect(r.failed, r.errors.slice(0, 3).join("; ")).toBe(0);
    expect(r.ok).toBeGreaterThan(20);
    expect((await envOf("five", "test")).host).toBe(a.hostId);
    expect((await getVia(a.ingressPort, "five-test.localhost")).body).toBe("fleet");
    // No host has zone=c: the deployment is refused and the environment stays where it is.
    await api().call("PATCH", "/v1/apps/five/environments/test", { hostLabels: { zone: "c" } });
    const refused = await api().raw("POST", "/v1/apps/five/environments/test/deployments", {});
    expect(refused.status).toBe(409);
    expect((await envOf("five", "test")).host).toBe(a.hostId);
    await api().call("PATCH", "/v1/apps/five/environments/test", { hostLabels: {} });
  });

  it("drains a host: every environment moves to the other host with 0 failed requests under load", async () => {
    const onB = (await api().call("GET", `/v1/hosts/${b.hostId}`)).environments as Array<{ app: string; environment: string }>;
    expect(onB.length).toBeGreaterThanOrEqual(2);
    // Clients keep using host b's ingress throughout: it forwards once an environment has moved.
    const loads = onB.map((e) => startLoad({ port: b.ingressPort, host: `${e.app}-${e.environment}.localhost`, concurrency: 4, maxMs: 120_000 }));
    const progress = await api().call("POST", `/v1/hosts/${b.hostId}/drain`);
    expect(progress.environments).toBe(onB.length);
    expect((await api().call("GET", `/v1/hosts/${b.hostId}`)).state).toBe("draining");
    await waitFor("host b to be empty", async () => (await api().call("GET", `/v1/hosts/${b.hostId}/drain`)).environments === 0, 120_000, 500);
    await waitFor("b's containers to go", async () => platform.containers(b.hostId).length === 0, 30_000, 500);
    const results = await Promise.all(loads.map((l) => l.stop()));
    for (const r of results) {
      expect(r.failed, r.errors.slice(0, 3).join("; ")).toBe(0);
      expect(r.ok).toBeGreaterThan(20);
      expect([...r.bodies.keys()]).toEqual(["fleet"]);
    }
    for (const e of onB) {
      const env = await envOf(e.app, e.environment);
      expect(env.host).toBe(a.hostId);
      expect(env.state).toBe("running");
      expect((await getVia(a.ingressPort, `${e.app}-${e.environment}.localhost`)).body).toBe("fleet");
    }
    // A drained host takes no new environment.
    await api().call("POST", "/v1/apps", { name: "four", repository: repo.url });
    await api().deploy("four", "test");
    expect((await envOf("four", "test")).host).toBe(a.hostId);
  });

  it("cuts a revoked host off at once", async () => {
    await api().call("POST", `/v1/hosts/${b.hostId}/revoke`);
    const h = await api().call("GET", `/v1/hosts/${b.hostId}`);
    expect(h.state).toBe("revoked");
    await waitFor("b's agent to log its refusal", async () => /revoked|UNAUTHENTICATED|unknown or revoked/i.test(platform.tail("agent-1.log", 50)), 15_000, 250);
  });
});
