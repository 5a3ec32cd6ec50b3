import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Api, Platform, type AgentHandle } from "./support/platform.js";
import { CpBalancer } from "./support/cp-balancer.js";
import { TestRepo } from "./support/git-repo.js";
import { keepAliveAppFiles } from "./support/keepalive-app.js";
import { startLoad } from "./support/load.js";
import { waitFor, type Proc } from "./support/processes.js";
import { openStream, readStream } from "./support/streams.js";

// Issue 16, must show 1: two control-plane replicas on one PostgreSQL and one NATS, behind a load
// balancer (HAProxy, TCP, for REST and gRPC) that the API client and the agent talk to. The replica
// holding the singletons' lease (scheduler) is SIGKILLed in the middle of a deployment while a
// keep-alive load runs through the ingress.

describe("two control-plane replicas behind a load balancer", () => {
  const platform = new Platform({
    database: "postgres",
    // Replicas share the secret key; the backup scheduler looks every second.
    cpEnv: { SLIPWAY_SECRET_KEY: randomBytes(32).toString("base64"), SLIPWAY_BACKUP_SCHEDULER_INTERVAL_SECONDS: "1" },
  });
  // Agents on the first replica, the one that takes the lease first (it starts first).
  const balancer = new CpBalancer(platform.dir, "first");
  const repo = new TestRepo();
  let replica2: { proc: Proc; httpPort: number; grpcPort: number };
  let agent: AgentHandle;
  let db: pg.Client;

  beforeAll(async () => {
    await platform.start();
    replica2 = await platform.startReplica(2);
    await balancer.start([{ httpPort: platform.httpPort, grpcPort: platform.grpcPort }, replica2]);
    platform.api = new Api(`http://127.0.0.1:${balancer.httpPort}`, platform.adminToken);
    platform.agentControlPlane = `127.0.0.1:${balancer.grpcPort}`;
    agent = await platform.addAgent();
    db = new pg.Client({ connectionString: platform.databaseUrl });
    await db.connect();
  }, 120_000);
  afterAll(async () => {
    await db?.end().catch(() => undefined);
    await balancer.stop();
    await replica2?.proc.stop();
    await platform.stop();
  });

  it("survives a SIGKILL of the replica that schedules, mid-deployment under load: the deployment succeeds, 0 failed requests, the log is followed to its end through the other, the scheduler moves within 10 s, nothing runs twice", { timeout: 300_000 }, async () => {
    const api = platform.api;
    repo.commit(keepAliveAppFiles, "keep-alive app");
    await api.call("POST", "/v1/apps", { name: "twin", repository: repo.url });
    const first = await api.deploy("twin", "live");
    expect(first.state, await api.log(first.id)).toBe("succeeded");

    // Live is backed up daily by default: the replica holding the lease queues it within seconds.
    const scheduledBackups = async () => Number((await db.query("SELECT count(*) FROM backups WHERE app = 'twin' AND environment = 'live' AND kind = 'scheduled'")).rows[0].count);
    await waitFor("live's scheduled backup", async () => ((await scheduledBackups()) >= 1 ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 }).catch((e: Error) => {
      // What each replica's lease and scheduler said, for the failure's report.
      const said = (log: string) => platform.tail(log, 400).split("\n").filter((l) => /backup|lease|schedul/i.test(l)).slice(-15).join("\n");
      throw new Error(`${e.message}\ncontrol-plane.log:\n${said("control-plane.log")}\ncontrol-plane-2.log:\n${said("control-plane-2.log")}`);
    });

    await waitFor("the scheduled backup to finish", async () => {
      const r = await db.query("SELECT state FROM backups WHERE app = 'twin' AND environment = 'live' AND kind = 'scheduled'");
      return r.rows.every((b) => ["succeeded", "failed"].includes(b.state)) ? r.rows : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });

    // Which replica holds it: its pid is in the holder's name (host/pid/random).
    const holder = async () => String((await db.query("SELECT holder FROM leases WHERE name = 'scheduler' AND expires_at > now()")).rows[0]?.holder ?? "");
    const replicas = [
      { name: "control-plane", proc: platform.cp!, httpPort: platform.httpPort },
      { name: "control-plane-2", proc: replica2.proc, httpPort: replica2.httpPort },
    ];
    const held = await holder();
    const victim = replicas.find((r) => held.split("/")[1] === String(r.proc.child.pid));
    // The first replica: the one the agent's gRPC streams go to, so the agent loses its replica too.
    expect(victim?.name, `lease holder ${held}`).toBe("control-plane");
    const survivor = replicas.find((r) => r !== victim)!;

    // A deployment whose release command takes a while, so that the kill lands in its middle.
    await api.call("PATCH", "/v1/apps/twin/settings", { releaseCommands: [{ label: "slow", command: "for i in 1 2 3 4 5 6 7 8; do echo release-step-$i; sleep 1; done" }] });
    const load = startLoad({ port: agent.ingressPort, host: "twin-live.localhost", concurrency: 8, maxMs: 120_000 });
    let killedAt = 0;
    let result: Awaited<ReturnType<typeof load.stop>> | undefined;
    let deployment: { id: string };
    try {
      await load.more(300);
      deployment = await api.call("POST", "/v1/apps/twin/environments/live/deployments", {});
      await waitFor("the release command to be half way", async () => ((await api.log(deployment.id)).includes("release-step-3") ? true : undefined), { timeoutMs: 120_000, intervalMs: 100 });
      victim!.proc.child.kill("SIGKILL");
      killedAt = Date.now();

      // The scheduler moves: the survivor holds the lease within 10 s.
      await waitFor("the survivor to hold the scheduler's lease", async () => {
        const h = await holder();
        return h.split("/")[1] === String(survivor.proc.child.pid) ? h : undefined;
      }, { timeoutMs: 10_000, intervalMs: 100 });
      const tookOverMs = Date.now() - killedAt;
      console.info(`scheduler lease taken over ${tookOverMs} ms after the SIGKILL`);
      expect(tookOverMs).toBeLessThan(10_000);

      // The log followed from its start through the surviving replica, to its end.
      const stream = await openStream("deployment log", `http://127.0.0.1:${survivor.httpPort}/v1/deployments/${deployment.id}/log/events`, { headers: { authorization: `Bearer ${platform.adminToken}` } });
      const text = await readStream("deployment log", stream.res.body, { until: (t) => t.includes("event: end"), timeoutMs: 150_000 });
      stream.close();
      const followed = text.split("\n\n").filter((e) => e.split("\n").includes("event: line"));
      const end = text.split("\n\n").find((e) => e.includes("event: end"))!;
      expect(end).toContain('"succeeded"');
      const logged = (await new Api(`http://127.0.0.1:${survivor.httpPort}`, platform.adminToken).log(deployment.id)).trimEnd().split("\n");
      expect(followed.length).toBe(logged.length);
      // Complete: every line the release command printed, once, in order (lines reported while the
      // agent's replica was gone were sent again to the other).
      const steps = logged.filter((l) => /release-step-\d/.test(l)).map((l) => /release-step-(\d)/.exec(l)![1]);
      expect(steps).toEqual(["1", "2", "3", "4", "5", "6", "7", "8"]);
      await load.more(300);
    } finally {
      result = await load.stop();
    }
    console.info(`load through the ingress: ${result.ok} requests, ${result.failed} failed`);
    expect(result.failed, result.errors.slice(0, 5).join("; ")).toBe(0);
    const d = await api.call("GET", `/v1/deployments/${deployment!.id}`);
    expect(d.state).toBe("succeeded");

    // Nothing twice: one job for the deployment, run once by the agent; still one scheduled backup
    // after the survivor's scheduler has looked again several times.
    const jobs = await db.query("SELECT id, state FROM jobs WHERE deployment_id = $1", [deployment!.id]);
    expect(jobs.rows.map((j) => j.state)).toEqual(["succeeded"]);
    const agentLog = readFileSync(path.join(platform.dir, "agent-0.log"), "utf8").split("\n").filter((l) => l.includes(jobs.rows[0].id) && l.includes('"step":"release"') && l.includes("step done"));
    expect(agentLog).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await scheduledBackups()).toBe(1);
    const dupes = await db.query("SELECT deployment_id FROM jobs WHERE deployment_id IS NOT NULL GROUP BY deployment_id, kind HAVING count(*) > 1");
    expect(dupes.rows).toEqual([]);
  });
});
