import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { JobMessage } from "@slipway/proto";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { waitFor } from "./support/processes.js";

// Jobs travel through the outbox and JetStream: outages delay them, never lose or repeat them.
describe("job delivery", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const agentLog = () => readFileSync(path.join(platform.dir, "agent-0.log"), "utf8");

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
    // The control plane has dealt with the job (published it to the absent agent's queue, or found no host online)…
    await waitFor("the control plane to publish the job or find no host for it", async () => {
      const job = jobOf(platform, d.id);
      return job.published || job.error !== "";
    }, { timeoutMs: 15_000, intervalMs: 100 });
    // …and nothing ran it.
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
    const jobId = jobOf(platform, last.id).id;
    const logFrom = agentLog().length;
    const nc = await platform.natsAsControlPlane();
    await jetstream(nc).publish(`slipway.jobs.${agent.hostId}`, JobMessage.encode({ jobId, kind: "deploy", hostId: agent.hostId!, deploymentId: last.id }).finish(), { msgID: `${jobId}-again` });
    await nc.close();
    // The agent received it and acknowledged it without running it.
    await waitFor("the agent to acknowledge the finished job", async () => agentLog().slice(logFrom).includes("job already finished"), { timeoutMs: 15_000, intervalMs: 100 });
    expect(await platform.api.log(last.id)).toBe(logBefore);
    expect(platform.containers()).toEqual(containersBefore);
    expect((await platform.api.call("GET", `/v1/deployments/${last.id}`)).state).toBe("succeeded");
  });

  it("delays a deployment while NATS is down and runs it when NATS is back", async () => {
    repo.commit(helloApp("two"), "two");
    await platform.nats.stop();
    const d = await platform.api.call("POST", "/v1/apps/jobs/environments/test/deployments", {});
    await waitFor("the control plane's publish of the job to fail", async () => jobOf(platform, d.id).error !== "", { timeoutMs: 30_000, intervalMs: 200 });
    expect(jobOf(platform, d.id).published).toBe(false);
    expect((await platform.api.call("GET", `/v1/deployments/${d.id}`)).state).toBe("queued");
    await platform.nats.start();
    const done = await platform.api.waitDeployment(d.id, 120_000);
    expect(done.state, await platform.api.log(d.id)).toBe("succeeded");
    expect((await getVia(agent.ingressPort, "jobs-test.localhost")).body).toBe("two");
  });
});

/** The deployment's job row: id, whether it was published, the last publish error ("" if none). */
function jobOf(platform: Platform, deploymentId: string): { id: string; published: boolean; error: string } {
  const out = execFileSync("psql", [platform.databaseUrl!, "-tA", "-F", "\t", "-c", `select id, published_at is not null, coalesce(last_publish_error, '') from jobs where deployment_id = '${deploymentId}'`], { encoding: "utf8" }).trim();
  const [id = "", published = "", error = ""] = out.split("\t");
  return { id, published: published === "t", error };
}
