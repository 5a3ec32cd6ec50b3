import { execFile, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRadosGw, type RadosGw } from "@slipway/control-plane/testing/radosgw";
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

interface Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The media keys, bucket and prefix an environment's running web container got (DEFAULT_STORAGE_DSN). */
function containerStorage(app: string, env: string): Keys & { bucket: string; prefix: string } {
  const id = execFileSync("docker", ["ps", "-q", "--filter", `label=io.slipway.app=${app}`, "--filter", `label=io.slipway.environment=${env}`, "--filter", "label=io.slipway.role=web"], { encoding: "utf8" }).trim().split("\n")[0]!;
  const vars = JSON.parse(execFileSync("docker", ["inspect", "-f", "{{json .Config.Env}}", id], { encoding: "utf8" })) as string[];
  const dsn = new URL(vars.find((v) => v.startsWith("DEFAULT_STORAGE_DSN="))!.slice("DEFAULT_STORAGE_DSN=".length));
  return { accessKeyId: decodeURIComponent(dsn.username), secretAccessKey: decodeURIComponent(dsn.password), bucket: dsn.hostname, prefix: dsn.pathname.slice(1) };
}

// Issue 11, must show 2: each environment's containers get S3 keys that reach their own media and
// nothing else. A real multi-user S3 server (a single-node Ceph Object Gateway started here, the
// platform on SLIPWAY_S3_PROVIDER=radosgw), the built control plane and agent, dockerd, and Debian's
// `aws` CLI (/usr/bin/aws) as the independent client an attacker inside a container would use.
describe("per-environment storage credentials (radosgw)", () => {
  let rgw: RadosGw;
  let platform: Platform;
  const repo = new TestRepo();
  let agent: AgentHandle;
  const api = () => platform.api;
  const get = async (env: string, p: string) => {
    const r = await getVia(agent.ingressPort, `iso-${env}.localhost`, p);
    if (r.status !== 200) throw new Error(`${env} ${p}: ${r.status} ${r.body}`);
    return r.body;
  };
  const checksum = async (env: string) => JSON.parse(await get(env, "/checksum")) as Checksum;
  const waitCopy = (id: string) =>
    waitFor(`content copy ${id}`, async () => {
      const c = await api().call("GET", `/v1/content-copies/${id}`);
      return ["succeeded", "failed", "cancelled"].includes(c.state) ? c : undefined;
    }, 120_000, 300);
  /** `/usr/bin/aws s3api <args>` with these keys: exit code 0, or the error it printed. */
  const aws = (keys: Keys, args: string[]) =>
    new Promise<{ ok: boolean; out: string }>((resolve) => {
      execFile(
        "/usr/bin/aws",
        ["--endpoint-url", rgw.endpoint, "--region", "us-east-1", "--debug", "s3api", ...args],
        { env: { PATH: process.env.PATH!, HOME: platform.dir, AWS_ACCESS_KEY_ID: keys.accessKeyId, AWS_SECRET_ACCESS_KEY: keys.secretAccessKey, AWS_EC2_METADATA_DISABLED: "true" }, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
        // Debian's aws 2.9 prints "argument of type 'NoneType' is not iterable" on every radosgw error: --debug shows the code.
        (err, stdout, stderr) => resolve({ ok: !err, out: err ? (/<Code>([A-Za-z]+)<\/Code>/.exec(stderr)?.[1] ?? stderr.slice(-300)) : stdout }),
      );
    });

  beforeAll(async () => {
    // Containers reach the gateway through the host gateway, like the embedded S3 server.
    rgw = await startRadosGw({ bind: "0.0.0.0" });
    platform = new Platform({
      database: "postgres",
      cpEnv: {
        SLIPWAY_S3_PROVIDER: "radosgw",
        SLIPWAY_S3_ENDPOINT: rgw.endpoint,
        SLIPWAY_S3_ENDPOINT_FOR_CONTAINERS: `http://host.docker.internal:${rgw.port}`,
        SLIPWAY_S3_ACCESS_KEY_ID: rgw.admin.accessKeyId,
        SLIPWAY_S3_SECRET_ACCESS_KEY: rgw.admin.secretAccessKey,
      },
    });
    await platform.start();
    agent = await platform.addAgent();
    vendorPg(repo.dir);
    repo.commit(dataAppFiles, "data app");
    await api().call("POST", "/v1/apps", { name: "iso", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
    for (const env of ["test", "live"]) {
      const d = await api().deploy("iso", env);
      expect(d.state, await api().log(d.id)).toBe("succeeded");
    }
    expect(JSON.parse(await get("test", "/write?rows=30&objects=12&tag=test"))).toEqual({ rows: 30, objects: 12 });
    expect(JSON.parse(await get("live", "/write?rows=5&objects=3&tag=live"))).toEqual({ rows: 5, objects: 3 });
  }, 240_000);
  afterAll(async () => {
    await platform?.stop();
    await rgw?.stop();
  });

  it("gives each environment its own key and bucket, never the platform's", () => {
    const test = containerStorage("iso", "test");
    const live = containerStorage("iso", "live");
    expect(test.bucket).not.toBe(live.bucket);
    expect(new Set([test.accessKeyId, live.accessKeyId, rgw.admin.accessKeyId]).size).toBe(3);
    for (const s of [test, live]) expect(s.secretAccessKey).not.toBe(rgw.admin.secretAccessKey);
  });

  it("backs up, copies and restores between environments' buckets, and the apps read what the platform wrote", async () => {
    const liveBefore = await checksum("live");
    const testBefore = await checksum("test");
    const b = await api().call("POST", "/v1/apps/iso/environments/live/backups", { database: true, media: true });
    const backup = await waitFor("the backup", async () => {
      const x = (await api().call("GET", "/v1/apps/iso/environments/live/backups")).find((y: { id: string }) => y.id === b.id);
      return x && !["queued", "running"].includes(x.state) ? x : undefined;
    }, 120_000, 300);
    expect(backup).toMatchObject({ state: "succeeded", mediaObjects: 3 });
    // The copy writes test's objects into live's bucket with the platform's keys; live's app reads them with its own.
    const copy = await waitCopy((await api().call("POST", "/v1/apps/iso/environments/live/content-copies", { from: "test", confirm: true })).id);
    expect(copy.state, JSON.stringify(copy.error)).toBe("succeeded");
    expect(await checksum("live")).toEqual(testBefore);
    const restore = await waitCopy((await api().call("POST", `/v1/backups/${backup.id}/restore`, { confirm: true })).id);
    expect(restore.state, JSON.stringify(restore.error)).toBe("succeeded");
    expect(await checksum("live")).toEqual(liveBefore);
  });

  it("lets one environment's keys reach its own media only: the aws CLI is denied on another environment's media and on every backup", async () => {
    const test = containerStorage("iso", "test");
    const live = containerStorage("iso", "live");
    const liveKey = Object.keys((await checksum("live")).objects)[0]!;
    const before = await checksum("live");
    // Every object the platform holds in the backup bucket, as the platform lists it.
    const backups = await aws(rgw.admin, ["list-objects-v2", "--bucket", "slipway-backups"]);
    expect(backups.ok, backups.out).toBe(true);
    const backupKeys = (JSON.parse(backups.out) as { Contents: Array<{ Key: string }> }).Contents.map((o) => o.Key);
    expect(backupKeys.filter((k) => k.endsWith("database.dump")).length).toBeGreaterThanOrEqual(2);
    const file = path.join(platform.dir, "forged.bin");
    writeFileSync(file, "forged");

    // Its own media: list, read, write, delete.
    const ownList = await aws(test, ["list-objects-v2", "--bucket", test.bucket, "--prefix", test.prefix]);
    expect(ownList.ok, ownList.out).toBe(true);
    const ownKey = (JSON.parse(ownList.out) as { Contents: Array<{ Key: string }> }).Contents[0]!.Key;
    expect((await aws(test, ["get-object", "--bucket", test.bucket, "--key", ownKey, path.join(platform.dir, "own.bin")])).ok).toBe(true);
    expect((await aws(test, ["put-object", "--bucket", test.bucket, "--key", `${test.prefix}cli.txt`, "--body", file])).ok).toBe(true);
    expect((await aws(test, ["delete-object", "--bucket", test.bucket, "--key", `${test.prefix}cli.txt`])).ok).toBe(true);

    // Live's media and the backups: every call refused.
    const denied: Array<[string, string[]]> = [
      ["list live's media", ["list-objects-v2", "--bucket", live.bucket]],
      ["read live's object", ["get-object", "--bucket", live.bucket, "--key", `${live.prefix}${liveKey}`, path.join(platform.dir, "stolen.bin")]],
      ["overwrite live's object", ["put-object", "--bucket", live.bucket, "--key", `${live.prefix}${liveKey}`, "--body", file]],
      ["delete live's object", ["delete-object", "--bucket", live.bucket, "--key", `${live.prefix}${liveKey}`]],
      ["list the backups", ["list-objects-v2", "--bucket", "slipway-backups"]],
      ["read a backup's dump", ["get-object", "--bucket", "slipway-backups", "--key", backupKeys.find((k) => k.endsWith("database.dump"))!, path.join(platform.dir, "dump.bin")]],
      ["overwrite a backup's dump", ["put-object", "--bucket", "slipway-backups", "--key", backupKeys.find((k) => k.endsWith("database.dump"))!, "--body", file]],
      ["delete a backup's manifest", ["delete-object", "--bucket", "slipway-backups", "--key", backupKeys.find((k) => k.endsWith("manifest.json"))!]],
      ["create a bucket", ["create-bucket", "--bucket", "iso-exfiltration"]],
    ];
    for (const [what, args] of denied) {
      const r = await aws(test, args);
      expect(r.ok, `${what}: ${r.out}`).toBe(false);
      expect(r.out, what).toMatch(/AccessDenied|TooManyBuckets/);
    }
    // Nothing changed: live's media and every backup are as they were.
    expect(await checksum("live")).toEqual(before);
    const after = await aws(rgw.admin, ["list-objects-v2", "--bucket", "slipway-backups"]);
    expect((JSON.parse(after.out) as { Contents: Array<{ Key: string }> }).Contents.map((o) => o.Key)).toEqual(backupKeys);
  });

  it("removing an environment removes its storage identity and bucket", async () => {
    await api().call("POST", "/v1/apps/iso/environments", { name: "qa", basedOn: "test" });
    const d = await api().deploy("iso", "qa");
    expect(d.state, await api().log(d.id)).toBe("succeeded");
    const qa = containerStorage("iso", "qa");
    expect((await aws(qa, ["list-objects-v2", "--bucket", qa.bucket])).ok).toBe(true);
    await api().call("DELETE", "/v1/apps/iso/environments/qa?confirm=qa");
    await waitFor("qa's bucket to go", async () => (await aws(rgw.admin, ["head-bucket", "--bucket", qa.bucket])).ok === false, { timeoutMs: 30_000, intervalMs: 500 });
    const r = await aws(qa, ["list-objects-v2", "--bucket", qa.bucket]);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/InvalidAccessKeyId|NoSuchBucket|AccessDenied/);
  });
});
