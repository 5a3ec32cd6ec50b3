import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia, startLoad } from "./support/load.js";
import { waitFor } from "./support/processes.js";

const step = (d: any, name: string) => d.steps.find((s: { name: string }) => s.name === name);

// The whole pipeline of PRODUCT.md (Deployments, Status): build modes, release commands,
// web port and probe settings, cancel, queue, status lines. Real dockerd, HAProxy, NATS, PostgreSQL.
describe("deployment pipeline", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const host = "pipe-test.localhost";
  const api = () => platform.api;
  const releaseContainers = () =>
    execFileSync("docker", ["ps", "-aq", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.role=release"], { encoding: "utf8" }).trim();
  const webContainers = () =>
    execFileSync("docker", ["ps", "-aq", "--filter", `label=io.slipway.host=${agent.hostId}`, "--filter", "label=io.slipway.role=web", "--filter", "label=io.slipway.environment=test"], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  const status = async () => (await api().call("GET", "/v1/apps/pipe/environments/test")).status.message as string;

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    repo.commit({ ...helloApp("v1"), VERSION: "v1" }, "v1");
    await api().call("POST", "/v1/apps", { name: "pipe", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 6 } } });
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("says 'Server not deployed yet' before the first deployment", async () => {
    expect(await status()).toBe("Server not deployed yet");
  });

  it("runs release commands in order in the new image with the environment's variables, before the new containers start", async () => {
    repo.commit({ Dockerfile: helloApp("v1").Dockerfile!.replace("COPY index.html", "COPY VERSION /VERSION\nCOPY index.html") }, "ship VERSION");
    await api().call("PATCH", "/v1/apps/pipe/settings", {
      releaseCommands: [
        { label: "first marker", command: 'echo "marker-1 stage=$STAGE debug=$DEBUG image=$(cat /VERSION) at=$(date +%s%N)"' },
        { label: "second marker", command: 'echo "marker-2 branch=$GIT_BRANCH"' },
      ],
    });
    const d = await api().deploy("pipe", "test");
    const log = await api().log(d.id);
    expect(d.state, log).toBe("succeeded");
    expect(log).toContain("===== docker release commands =====");
    expect(log).toMatch(/----- first marker -----[\s\S]*marker-1 stage=test debug=True image=v1[\s\S]*----- second marker -----[\s\S]*marker-2 branch=main/);
    const release = step(d, "release");
    const start = step(d, "start");
    expect(release.state).toBe("succeeded");
    expect(Date.parse(release.finishedAt)).toBeLessThanOrEqual(Date.parse(start.startedAt));
    expect(log.indexOf("marker-2")).toBeLessThan(log.indexOf("===== docker start ====="));
    expect(releaseContainers()).toBe("");
    expect(await status()).toMatch(/^Last deployment succeeded at /);
  });

  it("fails on a release command that exits 3; the previous version keeps serving with 0 failed requests", async () => {
    repo.commit({ "index.html": "v2" }, "v2");
    await api().call("PATCH", "/v1/apps/pipe/settings", { releaseCommands: [{ label: "migrate", command: "echo migrating; exit 3" }] });
    const load = startLoad({ port: agent.ingressPort, host, concurrency: 10, maxMs: 60_000 });
    const d = await api().deploy("pipe", "test");
    const result = await load.stop();
    const log = await api().log(d.id);
    expect(d.state).toBe("failed");
    expect(d.error.type).toBe("release_command_failed");
    expect(d.error.message).toContain("exited with code 3");
    expect(d.error.message).toContain("may already have changed");
    expect(log).toContain("migrating");
    expect(step(d, "start")).toBeUndefined();
    expect(result.failed, result.errors.slice(0, 3).join("; ")).toBe(0);
    expect([...result.bodies.keys()]).toEqual(["v1"]);
    expect(releaseContainers()).toBe("");
    expect(webContainers()).toHaveLength(1);
    expect(await status()).toMatch(/^Last deployment failed at /);
  });

  it("kills a release command past its timeout; the previous version keeps serving", async () => {
    await api().call("PATCH", "/v1/apps/pipe/settings", { releaseCommands: [{ label: "slow", command: "sleep 60" }], releaseCommandTimeoutSeconds: 2 });
    const load = startLoad({ port: agent.ingressPort, host, concurrency: 10, maxMs: 60_000 });
    const t0 = Date.now();
    const d = await api().deploy("pipe", "test");
    const result = await load.stop();
    expect(d.state).toBe("failed");
    expect(d.error.type).toBe("release_command_timeout");
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(result.failed).toBe(0);
    expect([...result.bodies.keys()]).toEqual(["v1"]);
    expect(releaseContainers()).toBe("");
    expect(webContainers()).toHaveLength(1);
  });

  it("counts undeployed commits, then unapplied changes", async () => {
    await api().call("PATCH", "/v1/apps/pipe/settings", { releaseCommands: [], releaseCommandTimeoutSeconds: 1800 });
    const ok = await api().deploy("pipe", "test");
    expect(ok.state, await api().log(ok.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, host)).body).toBe("v2");
    expect(await status()).toMatch(/^Last deployment succeeded at /);
    repo.commit({ "a.txt": "a" }, "a");
    repo.commit({ "b.txt": "b" }, "b");
    // The control plane polls the repository in the background (here every 5 s; webhooks are in webhooks.e2e.test.ts):
    // the count follows within that, and reading the status never waits on the git host.
    await api().call("PATCH", "/v1/apps/pipe/hooks", { pollIntervalSeconds: 5 });
    await waitFor("the 2 new commits to be counted", async () => (await status()) === "2 undeployed commits", { timeoutMs: 20_000, intervalMs: 500 });
    await api().call("PATCH", "/v1/apps/pipe/settings", { startupProbe: { path: "/index.html" } });
    expect(await status()).toBe("2 undeployed commits and unapplied changes");
    const env = await api().call("GET", "/v1/apps/pipe/environments/test");
    expect(env.status).toMatchObject({ undeployedCommits: 2, unappliedChanges: true });
  });

  it("'reuse' deploys the current image with the changed settings, ignoring new commits", async () => {
    const before = await api().call("GET", "/v1/apps/pipe/environments/test");
    const d = await api().deploy("pipe", "test", { build: "reuse" });
    expect(d.state, await api().log(d.id)).toBe("succeeded");
    expect(d.image).toBe(before.image);
    expect(step(d, "build").state).toBe("skipped");
    const after = await api().call("GET", "/v1/apps/pipe/environments/test");
    expect(after.status).toMatchObject({ undeployedCommits: 2, unappliedChanges: false });
    expect(after.status.message).toBe("2 undeployed commits");
  });

  it("'auto' builds a new commit once and reuses the image for an unchanged commit; 'force' rebuilds", async () => {
    const first = await api().deploy("pipe", "test");
    expect(first.state).toBe("succeeded");
    expect(step(first, "build").state).toBe("succeeded");
    const again = await api().deploy("pipe", "test", { build: "auto" });
    const againLog = await api().log(again.id);
    expect(again.state).toBe("succeeded");
    expect(step(again, "build").state).toBe("skipped");
    expect(againLog).not.toMatch(/^building /m);
    expect(again.image).toBe(first.image);
    const forced = await api().deploy("pipe", "test", { build: "force" });
    const forcedLog = await api().log(forced.id);
    expect(forced.state).toBe("succeeded");
    expect(step(forced, "build").state).toBe("succeeded");
    expect(forcedLog).toContain("without cache");
    expect(await status()).toMatch(/^Last deployment succeeded at /);
    expect((await api().call("GET", "/v1/apps/pipe/environments/test")).status.lines).toContain("All commits deployed");
  });

  it("takes the web port from settings or EXPOSE, and names a wrong port", async () => {
    repo.commit(helloApp("no-expose", { expose: false }), "no expose");
    const none = await api().deploy("pipe", "test");
    expect(none.state).toBe("failed");
    expect(none.error.type).toBe("no_web_port");
    expect(none.error.message).toContain("webPort");
    await api().call("PATCH", "/v1/apps/pipe/settings", { webPort: 8080, startupProbe: { path: "/" } });
    const fromSettings = await api().deploy("pipe", "test");
    expect(fromSettings.state, await api().log(fromSettings.id)).toBe("succeeded");
    expect(await api().log(fromSettings.id)).toContain("web port 8080 (from settings)");
    expect((await getVia(agent.ingressPort, host)).body).toBe("no-expose");
    await api().call("PATCH", "/v1/apps/pipe/settings", { webPort: 9999 });
    const wrong = await api().deploy("pipe", "test", { build: "reuse" });
    expect(wrong.state).toBe("failed");
    expect(wrong.error.type).toBe("probe_failed");
    expect(wrong.error.message).toContain("web port 9999");
    expect((await getVia(agent.ingressPort, host)).body).toBe("no-expose");
    // The serving image has no EXPOSE: later deployments that reuse it need the port from settings.
    await api().call("PATCH", "/v1/apps/pipe/settings", { webPort: 8080 });
  });

  it("fails early with the container's last output when it exits during the probe", async () => {
    repo.commit(helloApp("crash", { cmd: '["sh", "-c", "echo booting; echo fatal: no config >&2; exit 4"]' }), "crash");
    const t0 = Date.now();
    const d = await api().deploy("pipe", "test");
    expect(d.state).toBe("failed");
    expect(d.error.type).toBe("container_exited");
    expect(Date.now() - t0).toBeLessThan(15_000);
    const log = await api().log(d.id);
    expect(log).toContain("fatal: no config");
    expect(webContainers()).toHaveLength(1);
    expect((await getVia(agent.ingressPort, host)).body).toBe("no-expose");
  });

  it("cancels a running deployment (killing its release command) and queues one behind another", async () => {
    repo.commit(helloApp("v9"), "v9");
    await api().call("PATCH", "/v1/apps/pipe/settings", { releaseCommands: [{ label: "long", command: "echo started; sleep 120" }] });
    const d = await api().call("POST", "/v1/apps/pipe/environments/test/deployments", {});
    // Settings are frozen into a deployment when it is requested: the queued one runs without the long command.
    await api().call("PATCH", "/v1/apps/pipe/settings", { releaseCommands: [] });
    const queued = await api().call("POST", "/v1/apps/pipe/environments/test/deployments", { queue: true, build: "reuse" });
    expect(queued).toMatchObject({ state: "queued", waiting: true });
    await waitFor("the release command to run", async () => (await api().log(d.id)).includes("started"), 60_000);
    const t0 = Date.now();
    await api().call("POST", `/v1/deployments/${d.id}/cancel`);
    const done = await api().waitDeployment(d.id);
    expect(done.state).toBe("cancelled");
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(releaseContainers()).toBe("");
    const next = await api().waitDeployment(queued.id);
    expect(next.state, await api().log(queued.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, host)).body).toBe("no-expose");
    const history = await api().call("GET", "/v1/apps/pipe/environments/test/deployments");
    expect(history[0].id).toBe(queued.id);
    expect(history[1].id).toBe(d.id);
    expect(history.every((h: { queuedAt: string }, i: number) => i === 0 || Date.parse(history[i - 1].queuedAt) >= Date.parse(h.queuedAt))).toBe(true);
    const activity = await api().call("GET", "/v1/activity?app=pipe");
    expect(activity.map((a: { action: string }) => a.action)).toEqual(expect.arrayContaining(["settings.changed", "deployment.requested", "deployment.succeeded", "deployment.failed", "deployment.cancel_requested"]));
  });
});
