import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, repoRoot, type AgentHandle } from "./support/platform.js";
import { NetnsHosts, type NetnsHost } from "./support/netns-hosts.js";
import { TestRepo } from "./support/git-repo.js";
import { keepAliveAppFiles } from "./support/keepalive-app.js";
import { getVia, startLoad } from "./support/load.js";
import { reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "./support/processes.js";

// Issue 16, must show 3: two agents on hosts of their own — each in its own network namespace
// with its own dockerd and an address on a bridge, like two servers on a LAN. The control plane,
// its gRPC and NATS are reached at the bridge's address over the veth; the load comes from this
// machine to the hosts' addresses; a drained environment's requests go from one host's HAProxy to
// the other's across the bridge. Deploy, drain under load, agent upgrade under load.

describe("agents on hosts of their own (network namespaces)", () => {
  const hosts = new NetnsHosts();
  let platform: Platform;
  const repo = new TestRepo();
  const agents: Array<{ host: NetnsHost; agent: AgentHandle; port: number }> = [];
  const releaseRoot = mkdtempSync(path.join(tmpdir(), "slipway-netns-release-"));

  beforeAll(async () => {
    await hosts.start(2);
    const natsPort = await reservePort();
    platform = new Platform({
      database: "postgres",
      // Listening on every address, the bridge's included; agents are given the bridge's address for NATS.
      cpEnv: { SLIPWAY_HTTP_HOST: "0.0.0.0", SLIPWAY_GRPC_HOST: "0.0.0.0", SLIPWAY_NATS_PUBLIC_URL: `nats://${hosts.gateway}:${natsPort}` },
    });
    platform.nats.listenHost = "0.0.0.0";
    platform.nats.port = natsPort;
    await platform.start();
    platform.agentControlPlane = `${hosts.gateway}:${platform.grpcPort}`;
    for (const host of hosts.hosts) {
      const port = await reservePort();
      const agent = await platform.addAgent(
        {
          DOCKER_HOST: `unix://${host.dockerSocket}`,
          SLIPWAY_AGENT_NAME: `${platform.label}-${host.name}`,
          SLIPWAY_INGRESS_BIND: host.address,
          SLIPWAY_INGRESS_HTTP_PORT: String(port),
          SLIPWAY_INGRESS_ADVERTISE: `${host.address}:${port}`,
        },
        { wrap: hosts.wrap(host) },
      );
      agents.push({ host, agent, port });
    }
  }, 300_000);
  afterAll(async () => {
    await platform?.stop();
    await hosts.stop();
    rmSync(releaseRoot, { recursive: true, force: true });
  }, 120_000);

  it("deploys onto a host, drains it to the other under load, and upgrades that host's agent under load: 0 failed requests", { timeout: 600_000 }, async () => {
    const api = platform.api;
    // The hosts as the control plane sees them: their own addresses.
    const listed = (await api.call("GET", "/v1/hosts")) as Array<{ id: string; ingressAddress?: string; state: string }>;
    for (const a of agents) expect(listed.find((h) => h.id === a.agent.hostId)).toMatchObject({ state: "online" });

    repo.commit(keepAliveAppFiles, "keep-alive app");
    await api.call("POST", "/v1/apps", { name: "lan", repository: repo.url });
    const d = await api.deploy("lan", "live");
    expect(d.state, await api.log(d.id)).toBe("succeeded");
    const env = await api.call("GET", "/v1/apps/lan/environments/live");
    const from = agents.find((a) => a.agent.hostId === env.host)!;
    expect(from, `environment on host ${env.host}`).toBeDefined();
    const to = agents.find((a) => a !== from)!;
    // Its container runs in that host's dockerd only.
    const containersOf = (a: (typeof agents)[number]) => a.host.docker(["ps", "-q", "--filter", "label=io.slipway.app=lan"]).split("\n").filter(Boolean);
    expect(containersOf(from).length).toBeGreaterThan(0);
    expect(containersOf(to)).toEqual([]);
    expect((await getVia(from.port, "lan-live.localhost", "/", {}, from.host.address)).status).toBe(200);

    // Drain under a load sent to the first host's address (DNS still points there).
    const load = startLoad({ port: from.port, host: "lan-live.localhost", address: from.host.address, concurrency: 8, maxMs: 300_000 });
    let drained: Awaited<ReturnType<typeof load.stop>>;
    try {
      await load.more(300);
      await api.call("POST", `/v1/hosts/${from.agent.hostId}/drain`);
      await waitFor("the first host to be empty", async () => (await api.call("GET", `/v1/hosts/${from.agent.hostId}/drain`)).environments === 0, { timeoutMs: 180_000, intervalMs: 500 });
      await load.more(300);
    } finally {
      drained = await load.stop();
    }
    console.info(`[netns hosts] drain ${from.host.name} (${from.host.address}) → ${to.host.name} (${to.host.address}) under load: ${drained.ok} requests, ${drained.failed} failed`);
    expect(drained.failed, drained.errors.slice(0, 5).join("; ")).toBe(0);
    // The environment runs on the other host now (the first removes its containers once it handed
    // over); the first forwards what still reaches it, across the bridge.
    await waitFor("the first host's containers to go", async () => (containersOf(from).length === 0 ? true : undefined), { timeoutMs: 60_000, intervalMs: 250 });
    expect(containersOf(to).length).toBeGreaterThan(0);
    expect((await getVia(from.port, "lan-live.localhost", "/", {}, from.host.address)).status).toBe(200);
    expect((await getVia(to.port, "lan-live.localhost", "/", {}, to.host.address)).status).toBe(200);

    // An agent upgrade on the host that now runs it: stop, a new release (deploy/install.sh), start.
    execFileSync("bash", [path.join(repoRoot, "deploy/install.sh"), "agent", "--root", releaseRoot, "--no-start"], { encoding: "utf8", timeout: 120_000 });
    const upgrade = startLoad({ port: to.port, host: "lan-live.localhost", address: to.host.address, concurrency: 8, maxMs: 300_000 });
    let upgraded: Awaited<ReturnType<typeof upgrade.stop>>;
    try {
      await upgrade.more(300);
      await to.agent.stop();
      to.agent.main = path.join(releaseRoot, "opt/slipway/current/apps/agent/dist/main.js");
      await to.agent.start();
      await upgrade.more(300);
    } finally {
      upgraded = await upgrade.stop();
    }
    console.info(`[netns hosts] agent of ${to.host.name} upgraded under load: ${upgraded.ok} requests, ${upgraded.failed} failed`);
    expect(upgraded.failed, upgraded.errors.slice(0, 5).join("; ")).toBe(0);
    expect((await api.call("GET", `/v1/hosts/${to.agent.hostId}`)).state).toBe("online");
  });
});
