import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, envApp } from "./support/git-repo.js";
import { getVia, startLoad } from "./support/load.js";
import { waitFor } from "./support/processes.js";

const docker = (...args: string[]) => execFileSync("docker", args, { encoding: "utf8" }).trim();

// Environments as users expect them (issue 4), through the REST API and real HTTP through the ingress.
describe("environments end to end", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const api = () => platform.api;
  const seenOnNats: string[] = [];
  let natsClose: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    // Everything published on the job subjects, as a plain NATS subscriber sees it.
    const nc = await platform.natsAsControlPlane();
    const sub = nc.subscribe("slipway.jobs.>");
    void (async () => {
      for await (const m of sub) seenOnNats.push(Buffer.from(m.data).toString("latin1"));
    })();
    natsClose = () => nc.close();
    repo.commit(envApp("main v1", ["STAGE", "DEBUG", "GREETING"]), "v1");
    repo.git("checkout", "-q", "-b", "qa-branch");
    repo.commit({ "index.html": "qa branch" }, "qa");
    repo.git("checkout", "-q", "main");
    await api().call("POST", "/v1/apps", { name: "envs", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 10 } } });
  });
  afterAll(async () => {
    await natsClose?.();
    await platform.stop();
  });

  it("delivers changed variables with the next deployment, reporting unapplied changes before it, never in plain text on NATS or in the database", async () => {
    await api().call("PUT", "/v1/apps/envs/environments/test/variables", { GREETING: "hello-one" });
    const first = await api().deploy("envs", "test");
    expect(first.state, await api().log(first.id)).toBe("succeeded");
    let page = await getVia(agent.ingressPort, "envs-test.localhost", "/cgi-bin/env");
    expect(page.body).toContain("GREETING=hello-one");
    expect(page.body).toContain("STAGE=test");
    expect(page.body).toContain("DEBUG=True");
    await api().call("PATCH", "/v1/apps/envs/environments/test/variables", { GREETING: "hello-two-secret-value" });
    const env = await api().call("GET", "/v1/apps/envs/environments/test");
    expect(env.status.unappliedChanges).toBe(true);
    expect(env.status.message).toBe("All commits deployed, unapplied changes");
    const second = await api().deploy("envs", "test", { build: "reuse" });
    expect(second.state).toBe("succeeded");
    page = await getVia(agent.ingressPort, "envs-test.localhost", "/cgi-bin/env");
    expect(page.body).toContain("GREETING=hello-two-secret-value");
    expect((await api().call("GET", "/v1/apps/envs/environments/test")).status.unappliedChanges).toBe(false);
    expect(seenOnNats.length).toBeGreaterThanOrEqual(2);
    expect(seenOnNats.join("\n")).not.toContain("hello-two-secret-value");
    expect(seenOnNats.join("\n")).not.toContain("hello-one");
    const dump = execFileSync("pg_dump", ["--data-only", platform.databaseUrl!], { encoding: "utf8" });
    expect(dump).not.toContain("hello-two-secret-value");
    expect(dump).toContain("GREETING");
  });

  it("a qa environment based on test deploys its own branch at its own host name, and removing it leaves nothing behind", async () => {
    const qa = await api().call("POST", "/v1/apps/envs/environments", { name: "qa", basedOn: "test" });
    expect(qa.branch).toBe("main");
    await api().call("PATCH", "/v1/apps/envs/environments/qa", { branch: "qa-branch" });
    const d = await api().deploy("envs", "qa");
    expect(d.state, await api().log(d.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "envs-qa.localhost")).body).toBe("qa branch");
    expect((await getVia(agent.ingressPort, "envs-test.localhost")).body).toBe("main v1");
    expect((await getVia(agent.ingressPort, "envs-qa.localhost", "/cgi-bin/env")).body).toContain("GREETING=hello-two-secret-value");
    const qaContainers = docker("ps", "-aq", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.environment=qa");
    expect(qaContainers).not.toBe("");
    expect(docker("network", "ls", "-q", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.app=envs", "--filter", "label=io.slipway.environment=qa")).not.toBe("");

    expect((await api().raw("DELETE", "/v1/apps/envs/environments/live?confirm=live")).status).toBe(409);
    expect((await api().raw("DELETE", "/v1/apps/envs/environments/qa")).status).toBe(422);
    expect((await api().raw("DELETE", "/v1/apps/envs/environments/qa?confirm=qa")).status).toBe(200);
    await waitFor("qa's containers to go", async () => docker("ps", "-aq", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.environment=qa") === "", 30_000);
    expect(docker("network", "ls", "-q", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.app=envs", "--filter", "label=io.slipway.environment=qa")).toBe("");
    expect((await getVia(agent.ingressPort, "envs-qa.localhost")).status).toBe(404);
    expect((await api().raw("GET", "/v1/apps/envs/environments/qa")).status).toBe(404);
    expect((await getVia(agent.ingressPort, "envs-test.localhost")).body).toBe("main v1");
  });

  it("protects an environment with basic auth at the ingress", async () => {
    await api().call("PATCH", "/v1/apps/envs/environments/test", { basicAuth: { username: "ann", password: "correct horse" } });
    await waitFor("basic auth to apply", async () => (await getVia(agent.ingressPort, "envs-test.localhost")).status === 401, 20_000);
    const without = await getVia(agent.ingressPort, "envs-test.localhost");
    expect(without.status).toBe(401);
    const wrong = await getVia(agent.ingressPort, "envs-test.localhost", "/", { authorization: `Basic ${Buffer.from("ann:wrong").toString("base64")}` });
    expect(wrong.status).toBe(401);
    const right = await getVia(agent.ingressPort, "envs-test.localhost", "/", { authorization: `Basic ${Buffer.from("ann:correct horse").toString("base64")}` });
    expect(right).toEqual({ status: 200, body: "main v1" });
    await api().call("PATCH", "/v1/apps/envs/environments/test", { basicAuth: null });
    await waitFor("basic auth to be lifted", async () => (await getVia(agent.ingressPort, "envs-test.localhost")).status === 200, 20_000);
  });

  it("routes a custom domain without a dropped request", async () => {
    const load = startLoad({ port: agent.ingressPort, host: "envs-test.localhost", concurrency: 10, maxMs: 60_000 });
    await api().call("POST", "/v1/apps/envs/environments/test/domains", { hostname: "www.envs.example.com" });
    await waitFor("the custom domain to route", async () => (await getVia(agent.ingressPort, "www.envs.example.com")).body === "main v1", 20_000);
    const result = await load.stop();
    expect(result.failed, result.errors.slice(0, 3).join("; ")).toBe(0);
    await api().call("DELETE", "/v1/apps/envs/environments/test/domains/www.envs.example.com");
    await waitFor("the custom domain to stop routing", async () => (await getVia(agent.ingressPort, "www.envs.example.com")).status === 404, 20_000);
  });

  it("stops and starts an environment by hand", async () => {
    await api().call("POST", "/v1/apps/envs/environments/test/stop");
    await waitFor("test to be stopped", async () => (await api().call("GET", "/v1/apps/envs/environments/test")).state === "stopped", 30_000);
    const stopped = await getVia(agent.ingressPort, "envs-test.localhost");
    expect(stopped.status).toBe(503);
    expect(stopped.body).toContain("stopped");
    expect(docker("ps", "-q", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.environment=test")).toBe("");
    await api().call("POST", "/v1/apps/envs/environments/test/start");
    await waitFor("test to run", async () => (await api().call("GET", "/v1/apps/envs/environments/test")).state === "running", 30_000);
    expect((await getVia(agent.ingressPort, "envs-test.localhost")).body).toBe("main v1");
  });

  it("sleeps after the idle time and wakes on one plain request, answering normally", async () => {
    await api().call("PATCH", "/v1/apps/envs/environments/test", { sleepAfterSeconds: 3 });
    await waitFor("test to sleep", async () => (await api().call("GET", "/v1/apps/envs/environments/test")).state === "sleeping", 60_000, 500);
    expect(docker("ps", "-q", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.environment=test")).toBe("");
    const t0 = performance.now();
    const res = await getVia(agent.ingressPort, "envs-test.localhost");
    const wakeMs = performance.now() - t0;
    expect(res).toEqual({ status: 200, body: "main v1" });
    console.log(`wake from sleep: first answer after ${wakeMs.toFixed(0)} ms`);
    await waitFor("test to show running", async () => (await api().call("GET", "/v1/apps/envs/environments/test")).state === "running", 20_000);
    await api().call("PATCH", "/v1/apps/envs/environments/test", { sleepAfterSeconds: 900 });
  });

  it("live with 3 replicas balances across all of them and redeploys under load with 0 failed requests", async () => {
    await api().call("PATCH", "/v1/apps/envs/environments/live", { replicas: 3 });
    const d = await api().deploy("envs", "live");
    expect(d.state, await api().log(d.id)).toBe("succeeded");
    const hosts = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = await getVia(agent.ingressPort, "envs-live.localhost", "/cgi-bin/env");
      hosts.add(/HOST=(\S+)/.exec(r.body)![1]!);
    }
    expect(hosts.size).toBe(3);
    expect((await getVia(agent.ingressPort, "envs-live.localhost", "/cgi-bin/env")).body).toContain("DEBUG=False");
    repo.commit({ "index.html": "main v2" }, "v2");
    const load = startLoad({ port: agent.ingressPort, host: "envs-live.localhost", concurrency: 12, maxMs: 120_000 });
    const next = await api().deploy("envs", "live");
    await load.more(50);
    const result = await load.stop();
    expect(next.state, await api().log(next.id)).toBe("succeeded");
    expect(result.failed, result.errors.slice(0, 3).join("; ")).toBe(0);
    expect(result.bodies.get("main v1")).toBeGreaterThan(0);
    expect(result.lastBody).toBe("main v2");
    expect(docker("ps", "-q", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.environment=live").split("\n")).toHaveLength(3);
  });

  it("isolates one environment's containers from another's", async () => {
    const testId = docker("ps", "-q", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.environment=test").split("\n")[0]!;
    const liveId = docker("ps", "-q", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.environment=live").split("\n")[0]!;
    const liveIp = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", liveId);
    const testIp = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", testId);
    // busybox's wget crashes in this static build; nc speaks enough HTTP for the question.
    const attempt = (from: string, ip: string) => {
      try {
        const out = execFileSync("docker", ["exec", from, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 ${ip} 8080`], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 15_000 });
        return out.startsWith("HTTP/1.") ? "reached" : "refused";
      } catch {
        return "refused";
      }
    };
    // Same environment: reachable (the check itself works); across environments: not.
    expect(attempt(testId, testIp)).toBe("reached");
    expect(attempt(testId, liveIp)).toBe("refused");
    expect(attempt(liveId, testIp)).toBe("refused");
  });
});
