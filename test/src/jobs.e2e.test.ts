import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { JobMessage } from "@slipway/proto";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { sleep } from "./support/processes.js";

// Jobs travel through the outbox and JetStream: outages delay them, never lose or repeat them.
describe("job delivery", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    repo.commit(helloApp("one"), "one");
    await platform.api.call("POST", "/v1/apps", { name: "jobs", repository: repo.url });
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("runs a job published while the agent was down once it comes back", async () => {
    await agent.stop();
    const d = await platform.api.call("POST", "/v1/apps/jobs/environments/test/deployments", {});
    await sleep(3000);
    expect((await platform.api.call("GET", `/v1/deployments/${d.id}`)).state).toBe("queued");
    await agent.start();
    const done = await platform.api.waitDeployment(d.id);
    expect(done.state, await platform.api.log(d.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "jobs-test.localhost")).body).toBe("one");
  });

  it("does not run a redelivered job that already finished", async () => {
    const [last] = await platform.api.call("GET", "/v1/apps/jobs/environments/test/deployments");
    const logBefore = await platform.api.log(last.id);
    const containersBefore = platform.containers();
    // Publish the finished job again, as a redelivery would (new msg id to pass the dedupe window).
    const jobId = jobIdOf(platform, last.id);
    const nc = await connect({ servers: platform.nats.url });
    await jetstream(nc).publish(`slipway.jobs.${agent.hostId}`, JobMessage.encode({ jobId, kind: "deploy", hostId: agent.hostId!, deploymentId: last.id }).finish(), { msgID: `${jobId}-again` });
    await nc.close();
    await sleep(4000);
    expect(await platform.api.log(last.id)).toBe(logBefore);
    expect(platform.containers()).toEqual(containersBefore);
    expect((await platform.api.call("GET", `/v1/deployments/${last.id}`)).state).toBe("succeeded");
    expect(platform.tail("agent-0.log", 200)).toContain("job already finished");
  });

  it("delays a deployment while NATS is down and runs it when NATS is back", async () => {
    repo.commit(helloApp("two"), "two");
    await platform.nats.stop();
    const d = await platform.api.call("POST", "/v1/apps/jobs/environments/test/deployments", {});
    await sleep(3000);
    expect((await platform.api.call("GET", `/v1/deployments/${d.id}`)).state).toBe("queued");
    await platform.nats.start();
    const done = await platform.api.waitDeployment(d.id, 120_000);
    expect(done.state, await platform.api.log(d.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "jobs-test.localhost")).body).toBe("two");
  });
});

function jobIdOf(platform: Platform, deploymentId: string): string {
  return execFileSync("psql", [platform.databaseUrl!, "-tAc", `select id from jobs where deployment_id = '${deploymentId}'`], { encoding: "utf8" }).trim();
}
