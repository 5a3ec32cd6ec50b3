import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { setEnvironmentRow, testControlPlane, type TestControlPlane } from "./testing/harness.js";
import { insertHost } from "./repositories/hosts.repository.js";
import { getAppByName, getEnvironment } from "./repositories/apps.repository.js";

const IMAGE = "slipway/promo:0123456789abcdef0123456789abcdef01234567";
const DIGEST = `sha256:${"d".repeat(64)}`;

// Issue 13: a promotion deploys the image another environment runs, on the host that has it
// (images are not copied between hosts yet); a rollback, an earlier deployment of the same one.
describe("promote and rollback requests (REST)", () => {
  let cp: TestControlPlane;
  const h = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const call = (method: string, url: string, payload?: unknown) => cp.app.inject({ method: method as "GET", url, headers: h(), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const host = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
  const snapshot = async () =>
    JSON.stringify((await sql`SELECT id, host_id, current_image FROM environments ORDER BY id`.execute(cp.database.db)).rows) + JSON.stringify((await sql`SELECT id, state FROM deployments ORDER BY id`.execute(cp.database.db)).rows);
  let testDeployment = "";

  beforeAll(async () => {
    cp = await testControlPlane("pglite");
    await insertHost(cp.database.db, { id: host(1), name: "h1", labels: { zone: "a" }, credentialHash: "c1", version: "t", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 } });
    await insertHost(cp.database.db, { id: host(2), name: "h2", labels: { zone: "b" }, credentialHash: "c2", version: "t", capacity: { cpus: 8, memoryBytes: 64 * 2 ** 30, diskBytes: 2 ** 40 } });
    await call("POST", "/v1/apps", { name: "promo", repository: "https://x.test/promo.git" });
    // test runs IMAGE on host 1, as if deployed there.
    const db = cp.database.db;
    const app = await getAppByName(db, "promo");
    const test = await getEnvironment(db, app, "test");
    await setEnvironmentRow(db, test.id, { host_id: host(1) });
    testDeployment = (await call("POST", "/v1/apps/promo/environments/test/deployments", {})).json().id;
    await db.updateTable("deployments").set({ state: "succeeded", image: IMAGE, image_digest: DIGEST, commit: IMAGE.split(":")[1]!, finished_at: new Date() }).where("id", "=", testDeployment).execute();
    await db.updateTable("jobs").set({ state: "succeeded" }).where("deployment_id", "=", testDeployment).execute();
    await setEnvironmentRow(db, test.id, { current_image: IMAGE, last_success_at: new Date(), state: "running" });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("places an environment that serves nothing yet where the image is, and freezes the image and its digest into the job", async () => {
    const r = await call("POST", "/v1/apps/promo/environments/live/deployments", { promoteFrom: "test" });
    expect(r.statusCode, r.body).toBe(202);
    expect(r.json()).toMatchObject({ kind: "promote", promotedFrom: "test", sourceDeployment: testDeployment });
    const d = await cp.database.db.selectFrom("deployments").select(["host_id", "build_mode"]).where("id", "=", r.json().id).executeTakeFirstOrThrow();
    // Host 2 has more room, but the image is on host 1.
    expect(d).toEqual({ host_id: host(1), build_mode: "image" });
    expect((await call("GET", "/v1/apps/promo/environments/live")).json().host).toBe(host(1));
    const job = await cp.database.db.selectFrom("jobs").select("spec").where("deployment_id", "=", r.json().id).executeTakeFirstOrThrow();
    expect(job.spec).toMatchObject({ buildMode: "image", image: IMAGE, imageDigest: DIGEST });
    await call("POST", `/v1/deployments/${r.json().id}/cancel`);
  });

  it("refuses to promote across hosts or to a host without the target's labels, changing nothing", async () => {
    const db = cp.database.db;
    const app = await getAppByName(db, "promo");
    await call("POST", "/v1/apps/promo/environments", { name: "qa", hostLabels: { zone: "b" } });
    let before = await snapshot();
    const labels = await call("POST", "/v1/apps/promo/environments/qa/deployments", { promoteFrom: "test" });
    expect(labels.statusCode).toBe(409);
    expect(labels.json().error.message).toMatch(/must run on a host with the labels zone=b, and promo\/test's image is on h1, which lacks them/);
    expect(await snapshot()).toBe(before);
    // live serving on host 2: the image is not there.
    await setEnvironmentRow(db, (await getEnvironment(db, app, "live")).id, { host_id: host(2), current_image: "slipway/promo:other" });
    before = await snapshot();
    const across = await call("POST", "/v1/apps/promo/environments/live/deployments", { promoteFrom: "test" });
    expect(across.statusCode).toBe(409);
    expect(across.json().error.message).toMatch(/run on different hosts, and images are not copied between hosts/);
    expect(await snapshot()).toBe(before);
    expect((await call("POST", "/v1/apps/promo/environments/qa/deployments", { promoteFrom: "qa" })).statusCode).toBe(400);
    expect((await call("POST", "/v1/apps/promo/environments/qa/deployments", { promoteFrom: "nope" })).statusCode).toBe(404);
  });

  it("rolls back only to a successful deployment of the same environment, with its image's digest", async () => {
    const before = await snapshot();
    expect((await call("POST", "/v1/apps/promo/environments/live/deployments", { rollbackTo: testDeployment })).statusCode).toBe(404);
    expect((await call("POST", "/v1/apps/promo/environments/test/deployments", { rollbackTo: testDeployment, build: "force" })).statusCode).toBe(400);
    expect((await call("POST", "/v1/apps/promo/environments/test/deployments", { runReleaseCommands: true })).statusCode).toBe(400);
    expect(await snapshot()).toBe(before);
    const r = await call("POST", "/v1/apps/promo/environments/test/deployments", { rollbackTo: testDeployment, runReleaseCommands: true });
    expect(r.statusCode, r.body).toBe(202);
    const job = await cp.database.db.selectFrom("jobs").select("spec").where("deployment_id", "=", r.json().id).executeTakeFirstOrThrow();
    expect(job.spec).toMatchObject({ buildMode: "image", image: IMAGE, imageDigest: DIGEST, skipRelease: false });
    expect((job.spec as { preamble: string[] }).preamble.join("\n")).toMatch(/the database is NOT rolled back/);
  });
});
