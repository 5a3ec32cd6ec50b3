import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo } from "./support/git-repo.js";
import { dataAppFiles, vendorPg } from "./support/data-app.js";
import { getVia } from "./support/load.js";
import { waitFor } from "./support/processes.js";

interface Checksum {
  count: number;
  rows: string;
  objects: Record<string, string>;
}

// Each environment's own database and media, content copies, backups and restores (issue 5),
// with the real PostgreSQL cluster, the embedded S3 server, dockerd and the agent.
describe("data services end to end", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const api = () => platform.api;
  const get = async (env: string, path: string) => {
    const r = await getVia(agent.ingressPort, `data-${env}.localhost`, path);
    if (r.status !== 200) throw new Error(`${env} ${path}: ${r.status} ${r.body}`);
    return r.body;
  };
  const checksum = async (env: string) => JSON.parse(await get(env, "/checksum")) as Checksum;
  const waitCopy = (id: string) =>
    waitFor(`content copy ${id}`, async () => {
      const c = await api().call("GET", `/v1/content-copies/${id}`);
      return ["succeeded", "failed", "cancelled"].includes(c.state) ? c : undefined;
    }, 120_000, 300);

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    vendorPg(repo.dir);
    repo.commit(dataAppFiles, "data app");
    await api().call("POST", "/v1/apps", { name: "data", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
    for (const env of ["test", "live"]) {
      const d = await api().deploy("data", env);
      expect(d.state, await api().log(d.id)).toBe("succeeded");
    }
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("gives each environment its own database and media, written by the app through DATABASE_URL and DEFAULT_STORAGE_DSN", async () => {
    expect(JSON.parse(await get("test", "/write?rows=40&objects=25&tag=test"))).toEqual({ rows: 40, objects: 25 });
    expect(JSON.parse(await get("live", "/write?rows=7&objects=4&tag=live"))).toEqual({ rows: 7, objects: 4 });
    const t = await checksum("test");
    const l = await checksum("live");
    expect(t.count).toBe(40);
    expect(Object.keys(t.objects)).toHaveLength(25);
    expect(l.count).toBe(7);
    expect(Object.keys(l.objects).sort()).toEqual(["media/live-0.bin", "media/live-1.bin", "media/live-2.bin", "media/live-3.bin"]);
  });

  it("copies test's content to live exactly, after a backup of live that restores live's former state exactly", async () => {
    const testBefore = await checksum("test");
    const liveBefore = await checksum("live");
    const copy = await api().call("POST", "/v1/apps/data/environments/live/content-copies", { from: "test", confirm: true });
    const done = await waitCopy(copy.id);
    expect(done.state, JSON.stringify(done.error)).toBe("succeeded");
    expect(done.progress.objects).toBeGreaterThanOrEqual(25);
    expect(done.progress.bytes).toBeGreaterThan(0);
    const liveAfter = await checksum("live");
    expect(liveAfter).toEqual(testBefore);
    expect(await checksum("test")).toEqual(testBefore);

    const backups = await api().call("GET", "/v1/apps/data/environments/live/backups");
    const safety = backups.find((b: { id: string }) => b.id === done.safetyBackupId);
    expect(safety).toMatchObject({ kind: "safety", state: "succeeded", database: true, media: true, mediaObjects: 4 });
    expect(safety.databaseBytes).toBeGreaterThan(0);
    // Recorded apart from the archive: the restore below checks the archive against it first.
    expect(safety.databaseSha256).toMatch(/^[0-9a-f]{64}$/);
    const restore = await api().call("POST", `/v1/backups/${safety.id}/restore`, { confirm: true });
    expect((await waitCopy(restore.id)).state).toBe("succeeded");
    expect(await checksum("live")).toEqual(liveBefore);
  });

  it("restores a manual backup into another environment, and deploys with content", async () => {
    const b = await api().call("POST", "/v1/apps/data/environments/test/backups", { database: true, media: true });
    const backup = await waitFor("backup", async () => {
      const list = await api().call("GET", "/v1/apps/data/environments/test/backups");
      const x = list.find((y: { id: string }) => y.id === b.id);
      return x && x.state !== "queued" && x.state !== "running" ? x : undefined;
    }, 60_000, 300);
    expect(backup).toMatchObject({ state: "succeeded", kind: "manual", mediaObjects: 25 });
    expect(backup.sizeBytes).toBe(backup.databaseBytes + backup.mediaBytes);
    expect(backup.databaseSha256).toMatch(/^[0-9a-f]{64}$/);
    const qa = await api().call("POST", "/v1/apps/data/environments", { name: "qa", basedOn: "test" });
    expect(qa.name).toBe("qa");
    const d = await api().deploy("data", "qa", { content: { from: "live", confirm: true } });
    const log = await api().log(d.id);
    expect(d.state, log).toBe("succeeded");
    expect(log).toContain("===== content copy =====");
    expect(log.indexOf("===== content copy =====")).toBeLessThan(log.indexOf("===== docker start ====="));
    expect(await checksum("qa")).toEqual(await checksum("live"));
    const r = await api().call("POST", `/v1/backups/${backup.id}/restore`, { into: "qa", confirm: true });
    expect((await waitCopy(r.id)).state).toBe("succeeded");
    expect(await checksum("qa")).toEqual(await checksum("test"));
  });

  it("one environment's database credentials cannot open another environment's database", async () => {
    const testEnv = JSON.parse(await get("test", "/checksum"));
    expect(testEnv.count).toBeGreaterThan(0);
    const url = await platformDatabaseUrl(platform, "test");
    const liveDb = new URL(await platformDatabaseUrl(platform, "live")).pathname.slice(1);
    const own = new pg.Client({ connectionString: url });
    await own.connect();
    await own.end();
    const other = new URL(url);
    other.pathname = `/${liveDb}`;
    const c = new pg.Client({ connectionString: other.toString() });
    await expect(c.connect()).rejects.toThrow(/permission denied for database/);
    await c.end().catch(() => undefined);
  });

  it("removing an environment drops its database and its media", async () => {
    const qaDb = new URL(await platformDatabaseUrl(platform, "qa")).pathname.slice(1);
    await api().call("DELETE", "/v1/apps/data/environments/qa?confirm=qa");
    const admin = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/postgres" });
    await admin.connect();
    try {
      await waitFor("qa's database to be dropped", async () => (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [qaDb])).rowCount === 0, 30_000);
      expect((await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [qaDb])).rowCount).toBe(0);
    } finally {
      await admin.end();
    }
  });
});

/** The DATABASE_URL an environment's containers get, pointed at loopback (the host's view). */
async function platformDatabaseUrl(platform: Platform, env: string): Promise<string> {
  const { execFileSync } = await import("node:child_process");
  const id = execFileSync("docker", ["ps", "-q", "--filter", `label=io.slipway.environment=${env}`, "--filter", "label=io.slipway.app=data", "--filter", "label=io.slipway.role=web"], { encoding: "utf8" }).trim().split("\n")[0]!;
  const envs = JSON.parse(execFileSync("docker", ["inspect", "-f", "{{json .Config.Env}}", id], { encoding: "utf8" })) as string[];
  const u = new URL(envs.find((e) => e.startsWith("DATABASE_URL="))!.slice("DATABASE_URL=".length));
  u.hostname = "127.0.0.1";
  return u.toString();
}
