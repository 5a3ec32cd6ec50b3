import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia, startLoad } from "./support/load.js";
import { openStream, readStream } from "./support/streams.js";

// The foundation's end-to-end path: git → build → start → probe → HAProxy switch,
// with real dockerd, HAProxy, NATS and PostgreSQL.
describe("deployments end to end", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const host = "shop-test.localhost";

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    repo.commit(helloApp("v1"), "v1");
    await platform.api.call("POST", "/v1/apps", {
      name: "shop",
      repository: repo.url,
      settings: { startupProbe: { startupTimeoutSeconds: 8 } },
    });
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("deploys v1 and serves it through HAProxy by the environment's host name", async () => {
    const d = await platform.api.deploy("shop", "test");
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    expect(d.commit).toBe(repo.git("rev-parse", "HEAD"));
    expect(d.steps.map((s: { name: string }) => s.name)).toEqual(["source", "build", "release", "start", "probe", "switch", "cleanup"]);
    const res = await getVia(agent.ingressPort, host);
    expect(res).toEqual({ status: 200, body: "v1" });
    const env = await platform.api.call("GET", "/v1/apps/shop/environments/test");
    expect(env.state).toBe("running");
    expect(env.status.message).toMatch(/^Last deployment succeeded at /);
    const log = await platform.api.log(d.id);
    expect(log).toContain("===== docker build =====");
    expect(log).toContain("===== startup probe =====");
    // live was not deployed: its host name is not served
    expect((await getVia(agent.ingressPort, "shop-live.localhost")).status).toBe(404);
  });

  it("switches to v2 under a keep-alive load with 0 failed requests", async () => {
    const v2 = repo.commit(helloApp("v2"), "v2");
    const load = startLoad({ port: agent.ingressPort, host, concurrency: 12, maxMs: 120_000 });
    await load.more(100);
    const d = await platform.api.deploy("shop", "test");
    // The load goes on after the switch: its last answers are what the ingress serves now.
    await load.more(100);
    const result = await load.stop();
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    expect(d.commit).toBe(v2);
    expect(result.failed, result.errors.slice(0, 5).join("; ")).toBe(0);
    expect(result.ok).toBeGreaterThan(100);
    expect(result.bodies.get("v1")).toBeGreaterThan(0);
    expect(result.lastBody).toBe("v2");
    expect((await getVia(agent.ingressPort, host)).body).toBe("v2");
    // the old container is gone: exactly one web container serves test
    expect(platform.containers()).toHaveLength(1);
  });

  it("fails a commit whose app never answers at the probe step; the previous version keeps serving", async () => {
    repo.commit(helloApp("v3-broken", { cmd: '["sleep", "3600"]' }), "broken");
    const before = platform.containers();
    const load = startLoad({ port: agent.ingressPort, host, concurrency: 10, maxMs: 120_000 });
    const d = await platform.api.deploy("shop", "test");
    const result = await load.stop();
    expect(d.state).toBe("failed");
    expect(d.error.type).toBe("probe_failed");
    expect(d.error.message).toContain("web port 8080");
    const probe = d.steps.find((s: { name: string }) => s.name === "probe");
    expect(probe.state).toBe("failed");
    expect(d.steps.find((s: { name: string }) => s.name === "switch")).toBeUndefined();
    const log = await platform.api.log(d.id);
    expect(log).toContain("startup probe failed");
    expect(log).toContain("the previous version keeps serving");
    expect(result.failed).toBe(0);
    expect(new Set(result.bodies.keys())).toEqual(new Set(["v2"]));
    expect((await getVia(agent.ingressPort, host)).body).toBe("v2");
    expect(platform.containers()).toEqual(before);
    const env = await platform.api.call("GET", "/v1/apps/shop/environments/test");
    expect(env.state).toBe("running");
    expect(env.status.message).toMatch(/^Last deployment failed at /);
  });

  it("follows a deployment's log live until the deployment ends", async () => {
    const d = await platform.api.call("POST", "/v1/apps/shop/environments/test/deployments", { build: "reuse" });
    const { res } = await openStream("the followed deployment log", `${platform.api.baseUrl}/v1/deployments/${d.id}/log?follow=true`, { headers: { authorization: `Bearer ${platform.api.token}` } });
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await readStream("the followed deployment log, to its end", res.body, { timeoutMs: 90_000 });
    expect(text).toContain("===== startup probe =====");
    expect(text).toContain("deployment succeeded");
    expect((await platform.api.call("GET", `/v1/deployments/${d.id}`)).state).toBe("succeeded");
    expect(text.split("\n").filter((l) => l.startsWith("=====")).length).toBe(new Set(text.split("\n").filter((l) => l.startsWith("====="))).size);
  });

  it("refuses a second deployment of the same environment while one runs", async () => {
    const first = await platform.api.call("POST", "/v1/apps/shop/environments/test/deployments", { build: "reuse" });
    const second = await platform.api.raw("POST", "/v1/apps/shop/environments/test/deployments", {});
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe("conflict");
    const done = await platform.api.waitDeployment(first.id);
    expect(done.state).toBe("succeeded");
  });
});
