import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { credentials, Metadata, type Server } from "@grpc/grpc-js";
import { AgentServiceClient, type GetJobSpecResponse } from "@slipway/proto";
import { createLogger } from "@slipway/core";
import { testControlPlane, type TestControlPlane } from "./testing/harness.js";
import { agentServiceImpl, startGrpcServer } from "./grpc/agent.grpc.js";
import type { JobBus } from "./bus/job-bus.js";
import { recordHeartbeat } from "./repositories/hosts.repository.js";

const noBus: JobBus = { ensureStream: async () => {}, ensureConsumer: async () => {}, deleteConsumer: async () => {}, publish: async () => {}, close: async () => {} };

const TOKEN = "glpat-Zq8sEcReT0kEn";
const URL_WITH_TOKEN = `https://deploy-bot:${TOKEN}@git.example.test/team/shop.git`;

// Issue 11, finding 7: a token embedded in a repository URL was stored in plain text and shown by
// GET /v1/apps and the activity feed. It is split out, encrypted, shown nowhere, and handed only
// to the agent that builds the app, inside its job spec.
describe("repository credentials", () => {
  let cp: TestControlPlane;
  let server: Server;
  let client: AgentServiceClient;
  const admin = () => ({ authorization: `Bearer ${cp.adminToken}` });
  /** Every row of a table as text: what a database dump or a read-only SQL user sees. */
  const tableText = async (table: string) => JSON.stringify((await sql`SELECT * FROM ${sql.table(table)}`.execute(cp.database.db)).rows);

  beforeAll(async () => {
    cp = await testControlPlane("pglite");
    const started = await startGrpcServer(
      agentServiceImpl({ hosts: cp.services.hosts, reports: cp.services.reports, bus: noBus, log: createLogger("t", "silent"), natsPublicUrl: () => "nats://127.0.0.1:4222", heartbeatIntervalMs: 5000, unseal: (v) => cp.services.environments.unseal(v), repositoryAccess: async (_app, r, c) => ({ url: cp.services.apps.repositoryUrlForGit(r, c) }), dataSpec: (s) => cp.services.data.dataSpec(s) }),
      { host: "127.0.0.1", port: 0 },
    );
    server = started.server;
    client = new AgentServiceClient(`127.0.0.1:${started.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    server?.forceShutdown();
    await cp?.close();
  });

  it("never shows or stores the token in plain text; only the app's agent gets it, in GetJobSpec", async () => {
    const created = await cp.app.inject({ method: "POST", url: "/v1/apps", headers: admin(), payload: { name: "shop", repository: URL_WITH_TOKEN } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ repository: "https://git.example.test/team/shop.git", repositoryCredentials: true });

    const shown = [
      created.body,
      (await cp.app.inject({ method: "GET", url: "/v1/apps", headers: admin() })).body,
      (await cp.app.inject({ method: "GET", url: "/v1/apps/shop", headers: admin() })).body,
      (await cp.app.inject({ method: "GET", url: "/v1/activity", headers: admin() })).body,
      (await cp.app.inject({ method: "GET", url: "/v1/activity?app=shop", headers: admin() })).body,
    ];
    for (const body of shown) {
      expect(body).toContain("git.example.test/team/shop.git");
      expect(body).not.toContain(TOKEN);
      expect(body).not.toContain("deploy-bot");
    }

    const row = await cp.database.db.selectFrom("apps").selectAll().where("name", "=", "shop").executeTakeFirstOrThrow();
    expect(row.repository).toBe("https://git.example.test/team/shop.git");
    expect(row.repository_credential_encrypted).toMatch(/^v1:/);
    for (const table of ["apps", "activity"]) expect(await tableText(table)).not.toContain(TOKEN);

    // A deployment: its job spec in the jobs table holds the credential sealed; GetJobSpec opens it for the job's host only.
    const token = (await cp.app.inject({ method: "POST", url: "/v1/join-tokens", headers: admin() })).json().token as string;
    const host = await cp.services.hosts.register({ joinToken: token, hostname: "builder", labels: {}, capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 }, version: "t" });
    await cp.database.db.updateTable("hosts").set({ last_heartbeat_at: new Date(0) }).where("id", "!=", host.hostId).execute();
    await recordHeartbeat(cp.database.db, host.hostId, { at: new Date(), version: "t", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 }, load: { cpu: 0, memoryUsedBytes: 0, diskUsedBytes: 0, containers: 0 } });
    const d = (await cp.app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/deployments", headers: admin(), payload: {} })).json();
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("deployment_id", "=", d.id).executeTakeFirstOrThrow();
    expect(job.host_id).toBe(host.hostId);
    expect(await tableText("jobs")).not.toContain(TOKEN);
    expect((await cp.app.inject({ method: "GET", url: `/v1/deployments/${d.id}`, headers: admin() })).body).not.toContain(TOKEN);

    const md = new Metadata();
    md.set("authorization", `Bearer ${host.credential}`);
    const spec = await new Promise<GetJobSpecResponse>((resolve, reject) => client.getJobSpec({ jobId: job.id }, md, (err, res) => (err ? reject(err) : resolve(res!))));
    expect(spec.spec?.$case).toBe("deploy");
    expect(spec.spec?.$case === "deploy" && spec.spec.value.repository).toBe(URL_WITH_TOKEN);
  });

  it("an invalid URL is refused without repeating its credential", async () => {
    const res = await cp.app.inject({ method: "POST", url: "/v1/apps", headers: admin(), payload: { name: "broken", repository: `https://u:${TOKEN}@` } });
    expect(res.statusCode).toBe(400);
    expect(res.body).not.toContain(TOKEN);
  });

  it("a URL without a credential is kept as it is", async () => {
    const res = await cp.app.inject({ method: "POST", url: "/v1/apps", headers: admin(), payload: { name: "public", repository: "ssh://git@git.example.test/team/public.git" } });
    expect(res.json()).toMatchObject({ repository: "ssh://git@git.example.test/team/public.git", repositoryCredentials: false });
    const row = await cp.database.db.selectFrom("apps").selectAll().where("name", "=", "public").executeTakeFirstOrThrow();
    expect(row.repository_credential_encrypted).toBeNull();
  });

  it("credentials stored in plain text before (apps made by an older version) are sealed at start, activity included", async () => {
    const created = await cp.app.inject({ method: "POST", url: "/v1/apps", headers: admin(), payload: { name: "legacy", repository: "https://git.example.test/team/legacy.git" } });
    expect(created.statusCode).toBe(201);
    // As an older version wrote them.
    const legacyUrl = `https://ci:${TOKEN}-legacy@git.example.test/team/legacy.git`;
    await cp.database.db.updateTable("apps").set({ repository: legacyUrl }).where("name", "=", "legacy").execute();
    await sql`UPDATE activity SET details = jsonb_build_object('repository', ${legacyUrl}::text) WHERE app = 'legacy' AND action = 'app.created'`.execute(cp.database.db);
    expect(await tableText("apps")).toContain(`${TOKEN}-legacy`);

    expect(await cp.services.apps.sealStoredRepositoryCredentials()).toBe(1);
    expect(await cp.services.apps.sealStoredRepositoryCredentials()).toBe(0);
    for (const table of ["apps", "activity"]) expect(await tableText(table)).not.toContain(TOKEN);
    const row = await cp.database.db.selectFrom("apps").selectAll().where("name", "=", "legacy").executeTakeFirstOrThrow();
    expect(row.repository).toBe("https://git.example.test/team/legacy.git");
    expect(cp.services.apps.repositoryUrlForGit(row.repository, row.repository_credential_encrypted)).toBe(legacyUrl);
  });

  // Issue 13: the token can also be given (and replaced, and removed) on its own, after creation.
  it("sets, replaces and removes an app's access token on its own; never shown, admins only", async () => {
    await cp.app.inject({ method: "POST", url: "/v1/apps", headers: admin(), payload: { name: "tokened", repository: "https://git.example.test/team/tokened.git" } });
    const set = await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: admin(), payload: { url: "https://git.example.test/team/tokened.git", token: "ghp_S3paratelyGiven" } });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ repository: "https://git.example.test/team/tokened.git", repositoryCredentials: true });
    for (const body of [set.body, (await cp.app.inject({ method: "GET", url: "/v1/activity?app=tokened", headers: admin() })).body, await tableText("apps"), await tableText("activity")]) {
      expect(body).not.toContain("ghp_S3paratelyGiven");
    }
    const row = await cp.database.db.selectFrom("apps").selectAll().where("name", "=", "tokened").executeTakeFirstOrThrow();
    expect(cp.services.apps.repositoryUrlForGit(row.repository, row.repository_credential_encrypted)).toBe("https://x-access-token:ghp_S3paratelyGiven@git.example.test/team/tokened.git");
    // A token for an ssh URL makes no sense (the deploy key is used): refused, nothing changed.
    const ssh = await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: admin(), payload: { url: "ssh://git@git.example.test/team/tokened.git", token: "x" } });
    expect(ssh.statusCode).toBe(400);
    expect((await cp.app.inject({ method: "GET", url: "/v1/apps/tokened", headers: admin() })).json().repository).toBe("https://git.example.test/team/tokened.git");
    // A deployer token of the app may not change where its code comes from.
    const deployer = await cp.app.inject({ method: "POST", url: "/v1/tokens", headers: admin(), payload: { name: "ci", role: "deployer", apps: ["tokened"] } });
    const refused = await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: { authorization: `Bearer ${deployer.json().token}` }, payload: { url: "https://evil.example/x.git", token: null } });
    expect(refused.statusCode).toBe(403);
    // Another path on the same host keeps the token; another host drops it (it is never sent elsewhere).
    const moved = await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: admin(), payload: { url: "https://git.example.test/team/renamed.git" } });
    expect(moved.json()).toMatchObject({ repository: "https://git.example.test/team/renamed.git", repositoryCredentials: true });
    const elsewhere = await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: admin(), payload: { url: "https://mirror.example.test/team/renamed.git" } });
    expect(elsewhere.json()).toMatchObject({ repositoryCredentials: false });
    await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: admin(), payload: { url: "https://git.example.test/team/tokened.git", token: "again" } });
    const removed = await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: admin(), payload: { url: "https://git.example.test/team/tokened.git", token: null } });
    expect(removed.json()).toMatchObject({ repositoryCredentials: false });
    // An SSH URL the platform could not pin is refused.
    const unpinnable = await cp.app.inject({ method: "PUT", url: "/v1/apps/tokened/repository", headers: admin(), payload: { url: "git@git_host:team/tokened.git" } });
    expect(unpinnable.statusCode).toBe(400);
  });
});
