import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_MAIN, Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia, startLoad, type LoadResult } from "./support/load.js";
import { waitFor } from "./support/processes.js";
import { buildPreviousAgent } from "./support/previous-release.js";

/**
 * Issue 16, the version-skew policy (docs/DECISIONS.md): control planes are upgraded first, then
 * agents; a control plane serves agents of its own release and of the one before. Here the agent
 * of the release before (deploy/previous-release, built from this repository's history) joins
 * this checkout's control plane, deploys, redeploys under load with 0 failed requests and serves
 * its runtime log; then it is upgraded in place to this checkout's agent under load, 0 failed,
 * and the next deployment runs on the new agent. Real dockerd, HAProxy, NATS, PostgreSQL.
 */
describe("version skew: the previous release's agent with this control plane", () => {
  const platform = new Platform();
  const repo = new TestRepo();
  let agent: AgentHandle;
  let previous: { commit: string; main: string };
  const api = () => platform.api;
  const httpd = (body: string) => helloApp(body, { cmd: '["httpd", "-f", "-vv", "-p", "8080", "-h", "/www"]' });

  beforeAll(async () => {
    previous = buildPreviousAgent((msg) => console.info(`[version skew] ${msg}`));
    await platform.start();
    agent = await platform.addAgent({}, { main: previous.main });
  }, 600_000);
  afterAll(async () => {
    await platform.stop();
  });

  it("deploys, redeploys under load with 0 failed requests and streams the runtime log", async () => {
    expect(agent.proc.child.spawnargs).toContain(previous.main);
    repo.commit(httpd("v1 on the previous agent"), "v1");
    await api().call("POST", "/v1/apps", { name: "skew", repository: repo.url });
    const first = await api().deploy("skew", "test");
    expect(first.state, await api().log(first.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "skew-test.localhost")).body).toBe("v1 on the previous agent");

    const load = startLoad({ port: agent.ingressPort, host: "skew-test.localhost", concurrency: 4, maxMs: 180_000 });
    let second!: { id: string; state: string };
    let result!: LoadResult;
    try {
      await new Promise((r) => setTimeout(r, 500));
      repo.commit(httpd("v2 on the previous agent"), "v2");
      second = await api().deploy("skew", "test");
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      result = await load.stop();
    }
    expect(second.state, await api().log(second.id)).toBe("succeeded");
    expect(result.failed, result.errors.slice(0, 3).join("; ")).toBe(0);
    expect(result.bodies.get("v2 on the previous agent") ?? 0).toBeGreaterThan(0);

    // The runtime log: the control plane's signed request, the agent's lines back over NATS.
    await getVia(agent.ingressPort, "skew-test.localhost", "/from-the-skew-test");
    const text = await waitFor("the request in the runtime log", async () => {
      const t = (await api().call("GET", "/v1/apps/skew/environments/test/logs")) as string;
      return t.includes("url:/from-the-skew-test") ? t : undefined;
    }, 15_000, 300);
    expect(text).toMatch(/^slipway-skew-test-\w+ \S+ .*url:\/from-the-skew-test$/m);
    const hosts = (await api().call("GET", "/v1/hosts")) as Array<{ id: string; state: string }>;
    expect(hosts.find((h) => h.id === agent.hostId)?.state).toBe("online");
  }, 300_000);

  it("upgrades the agent in place to this release under load: 0 failed requests, and deploys on it", async () => {
    const load = startLoad({ port: agent.ingressPort, host: "skew-test.localhost", concurrency: 4, maxMs: 180_000 });
    let result!: LoadResult;
    try {
      await new Promise((r) => setTimeout(r, 1000));
      await agent.stop();
      agent.main = AGENT_MAIN;
      await agent.start();
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      result = await load.stop();
    }
    expect(result.failed, result.errors.slice(0, 3).join("; ")).toBe(0);
    expect([...result.bodies.keys()]).toEqual(["v2 on the previous agent"]);
    expect(agent.proc.child.spawnargs).toContain(AGENT_MAIN);
    repo.commit(httpd("v3 on this release's agent"), "v3");
    const third = await api().deploy("skew", "test");
    expect(third.state, await api().log(third.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "skew-test.localhost")).body).toBe("v3 on this release's agent");
  }, 300_000);
});
