import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, nkeyAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import { NatsCluster } from "./support/nats.js";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { waitFor } from "./support/processes.js";

const STREAM = "SLIPWAY_JOBS";
const ENVS = ["test", "live", "qa1", "qa2", "qa3"];

// Issue 16, must show 2: the jobs stream replicated (R3) on a three-node NATS cluster; a node
// killed with jobs queued loses none and runs none twice, and rejoins.
describe("jobs on a three-node NATS cluster", () => {
  const cluster = new NatsCluster(3);
  const repo = new TestRepo();
  let platform: Platform | undefined;
  let agent: AgentHandle;
  let nc: NatsConnection | undefined;
  const p = () => platform!;
  const agentLog = () => readFileSync(path.join(p().dir, "agent-0.log"), "utf8");

  // One object, read at every control-plane start: a test changes it before a restart.
  const cpEnv: Record<string, string> = {};

  beforeAll(async () => {
    await cluster.start();
    // Started as a platform that began on one NATS server would run on a cluster: replicas 1. A short
    // ack wait, so a job whose ack is lost comes back within seconds rather than a minute.
    Object.assign(cpEnv, { NATS_URL: cluster.url, SLIPWAY_NATS_USERS_FILE: cluster.usersFile, SLIPWAY_NATS_RELOAD_COMMAND: cluster.reloadCommand, SLIPWAY_NATS_REPLICAS: "1", SLIPWAY_JOB_ACK_WAIT_SECONDS: "10" });
    // The backup scheduler stays out, as the platform leaves it by default: the counts of runs per
    // deployment below are about deployments only.
    // The platform's own single nats-server is started too but unused: NATS_URL names the cluster.
    platform = new Platform({ database: "postgres", cpEnv });
    await platform.start();
    agent = await platform.addAgent();
    repo.commit(helloApp("one"), "one");
    await platform.api.call("POST", "/v1/apps", { name: "jobs", repository: repo.url });
    for (const name of ["qa1", "qa2", "qa3"]) await platform.api.call("POST", "/v1/apps/jobs/environments", { name, basedOn: "test" });
    // As the control plane: the cluster enforces the users it wrote (one per host, and its own).
    const seed = readFileSync(path.join(platform.dir, "cp", "nats-control-plane.nk"), "utf8").trim();
    nc = await connect({ servers: cluster.url.split(","), authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  }, 180_000);

  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await platform?.stop();
    await cluster.stop();
  });

  const streamInfo = async (): Promise<StreamInfo> => (await jetstreamManager(nc!, { timeout: 3000 })).streams.info(STREAM);

  it("gives the agent every node's address, and moves the jobs stream and the host's consumer to three nodes when the replicas setting says 3", async () => {
    const identity = JSON.parse(readFileSync(path.join(agent.stateDir, "identity.json"), "utf8")) as { natsUrl: string };
    expect(identity.natsUrl.split(",").sort()).toEqual(cluster.nodes.map((n) => n.url).sort());
    const jsm = await jetstreamManager(nc!, { timeout: 3000 });
    expect((await streamInfo()).config.num_replicas).toBe(1);
    expect((await jsm.consumers.info(STREAM, `agent-${agent.hostId}`)).cluster?.replicas ?? []).toEqual([]);

    cpEnv.SLIPWAY_NATS_REPLICAS = "3";
    await p().cp!.stop();
    await p().startControlPlane();
    // Deployed once, so each environment has its host: a later job goes to that host's queue even while its agent is down.
    const first = await Promise.all(ENVS.map((env) => p().api.call("POST", `/v1/apps/jobs/environments/${env}/deployments`, {})));
    for (const d of first) expect((await p().api.waitDeployment(d.id, 180_000)).state, await p().api.log(d.id)).toBe("succeeded");
    const si = await waitFor("the jobs stream's two other replicas to be current", async () => {
      const info = await streamInfo();
      return info.cluster?.replicas?.length === 2 && info.cluster.replicas.every((r) => r.current) ? info : undefined;
    }, { timeoutMs: 30_000 });
    expect(si.config.num_replicas).toBe(3);
    // The host's consumer has no replica count of its own: it follows the stream's.
    const ci = await jsm.consumers.info(STREAM, `agent-${agent.hostId}`);
    expect(new Set([ci.cluster?.leader, ...(ci.cluster?.replicas ?? []).map((r) => r.name)]).size).toBe(3);
    expect(readFileSync(path.join(p().dir, "control-plane.log"), "utf8")).toContain('"changed replicas of jobs stream"');
    // The work queue still drops what the agent acked (a consumer carried over from R1 would leave it: see nats.job-bus.ts).
    await waitFor("the acked jobs to leave the stream", async () => (await streamInfo()).state.messages === 0, { timeoutMs: 10_000 });
  }, 300_000);

  it("loses no job and runs none twice when the stream leader is killed with jobs queued, and the node rejoins", async () => {
    repo.commit(helloApp("clustered"), "two");
    await agent.stop();
    // Three jobs queued in the stream while no agent consumes them.
    const before = await deployAll(p(), ["test", "live", "qa1"]);
    const si = await streamInfo();
    expect(si.state.messages).toBe(3);
    const leader = cluster.node(si.cluster!.leader!);
    const killedAt = Date.now();
    await leader.kill();
    const newLeader = await waitFor("another node to lead the jobs stream", async () => {
      const info = await streamInfo();
      return info.cluster?.leader && info.cluster.leader !== leader.serverName ? info.cluster.leader : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    const electedMs = Date.now() - killedAt;
    expect((await streamInfo()).state.messages).toBe(3);
    // Two more published while the node is down: a quorum of two stores them.
    const during = await deployAll(p(), ["qa2", "qa3"]);
    expect((await streamInfo()).state.messages).toBe(5);

    const logFrom = agentLog().length;
    const startedAt = Date.now();
    await agent.start();
    const all = [...before, ...during];
    for (const d of all) {
      const done = await p().api.waitDeployment(d.deploymentId, 180_000);
      expect(done.state, await p().api.log(d.deploymentId)).toBe("succeeded");
    }
    const allDoneMs = Date.now() - startedAt;
    // Acked jobs leave the work queue.
    await waitFor("the jobs stream to be empty", async () => (await streamInfo()).state.messages === 0, { timeoutMs: 30_000 });
    // Every job run once (a delivery the agent acknowledged without running is no run).
    const runs = runsOf(agentLog().slice(logFrom), all.map((d) => d.jobId));
    expect(runs.map((r) => r.runs)).toEqual(all.map(() => 1));
    for (const d of all) {
      const lines = (await p().api.log(d.deploymentId)).split("\n");
      const first = lines.find((l) => l.startsWith("====="));
      expect(lines.filter((l) => l === first), `deployment ${d.env}`).toHaveLength(1);
    }
    for (const env of ENVS) expect((await getVia(agent.ingressPort, `jobs-${env}.localhost`)).body).toBe("clustered");

    const restartedAt = Date.now();
    await leader.start();
    const rejoined = await waitFor(`${leader.serverName} to be a current replica again`, async () => {
      const info = await streamInfo();
      const peers = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name)];
      return peers.length === 3 && peers.includes(leader.serverName) ? peers : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    const rejoinMs = Date.now() - restartedAt;
    console.log(JSON.stringify({ killed: leader.serverName, newLeader, electedMs, queuedBefore: before.length, publishedDuring: during.length, deliveries: runs.map((r) => r.delivered), allDoneMs, rejoinMs, peers: rejoined }));

    // And the platform goes on with the node back: one more deployment through the cluster.
    repo.commit(helloApp("after rejoin"), "three");
    const d = await p().api.deploy("jobs", "test");
    expect(d.state).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "jobs-test.localhost")).body).toBe("after rejoin");
  }, 600_000);

  it("runs every job once when the stream leader is killed while the agent is running them", async () => {
    repo.commit(helloApp("four"), "four");
    const logFrom = agentLog().length;
    const jobs = await deployAll(p(), ENVS);
    const leader = cluster.node((await streamInfo()).cluster!.leader!);
    const running = await p().api.call("GET", `/v1/deployments/${jobs[0]!.deploymentId}`);
    await leader.kill();
    for (const d of jobs) {
      const done = await p().api.waitDeployment(d.deploymentId, 180_000);
      expect(done.state, await p().api.log(d.deploymentId)).toBe("succeeded");
      // Run once: one pass through the steps in its log.
      const lines = (await p().api.log(d.deploymentId)).split("\n");
      expect(lines.filter((l) => l === lines.find((x) => x.startsWith("====="))), `deployment ${d.env}`).toHaveLength(1);
    }
    for (const env of ENVS) expect((await getVia(agent.ingressPort, `jobs-${env}.localhost`)).body).toBe("four");
    // An ack sent while the consumer elects its leader is lost: JetStream delivers that job again after
    // the ack wait, and the agent acknowledges the copy without running it (it finds the job finished).
    await waitFor("the jobs stream to be empty", async () => (await streamInfo()).state.messages === 0, { timeoutMs: 60_000 });
    const runs = runsOf(agentLog().slice(logFrom), jobs.map((j) => j.jobId));
    expect(runs.map((r) => r.runs)).toEqual(jobs.map(() => 1));
    await leader.start();
    await waitFor(`${leader.serverName} to be a current replica again`, async () => {
      const info = await streamInfo();
      return [info.cluster?.leader, ...(info.cluster?.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name)].length === 3;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    console.log(JSON.stringify({ killed: leader.serverName, firstJobStateAtKill: running.state, jobs: jobs.length, deliveries: runs.map((r) => r.delivered), runs: runs.map((r) => r.runs) }));
  }, 600_000);
});

/**
 * Per job, from the agent's log: how often JetStream delivered it, and how often the agent ran it
 * (a delivery it acknowledged without running, finished already or running here, is no run).
 */
function runsOf(log: string, jobIds: string[]): Array<{ jobId: string; delivered: number; runs: number }> {
  const records: Array<{ jobId?: string; msg?: string }> = [];
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      records.push(JSON.parse(line) as { jobId?: string; msg?: string });
    } catch {
      // a line still being written
    }
  }
  return jobIds.map((jobId) => {
    const mine = records.filter((r) => r.jobId === jobId);
    // The consumer logs "job received" before handling a delivery, except a copy that arrives while
    // the job still runs here: that one is logged as such instead (and was counted as a received one
    // taken back, which made a job redelivered mid-run under a loaded machine count 0 runs).
    const received = mine.filter((r) => r.msg === "job received").length;
    const whileRunning = mine.filter((r) => r.msg?.startsWith("job redelivered while still running")).length;
    const finishedAlready = mine.filter((r) => r.msg?.startsWith("job already finished")).length;
    return { jobId, delivered: received + whileRunning, runs: received - finishedAlready };
  });
}

/** Starts a deployment of each environment and waits until its job is stored in JetStream. */
async function deployAll(platform: Platform, envs: string[]): Promise<Array<{ env: string; deploymentId: string; jobId: string }>> {
  const out = [];
  for (const env of envs) {
    const d = await platform.api.call("POST", `/v1/apps/jobs/environments/${env}/deployments`, {});
    const job = await waitFor(`the job of ${env}'s deployment to be published`, async () => {
      const j = jobOf(platform, d.id);
      return j.published ? j : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    out.push({ env, deploymentId: d.id as string, jobId: job.id });
  }
  return out;
}

/** The deployment's job row: id and whether the outbox published it. */
function jobOf(platform: Platform, deploymentId: string): { id: string; published: boolean } {
  const out = execFileSync("psql", [platform.databaseUrl!, "-tA", "-F", "\t", "-c", `select id, published_at is not null from jobs where deployment_id = '${deploymentId}'`], { encoding: "utf8" }).trim();
  const [id = "", published = ""] = out.split("\t");
  return { id, published: published === "t" };
}
