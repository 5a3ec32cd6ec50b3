import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, envApp, helloApp } from "./support/git-repo.js";
import { getVia, startLoad } from "./support/load.js";
import { waitFor } from "./support/processes.js";
import { startGitSshd, type GitSshd } from "./support/sshd.js";

const step = (d: any, name: string) => d.steps.find((s: { name: string }) => s.name === name);
const ms = (d: any) => Date.parse(d.finishedAt) - Date.parse(d.queuedAt);
const docker = (...args: string[]) => execFileSync("docker", args, { encoding: "utf8" }).trim();

// Issue 13: from a git host to production. A private repository over SSH (a real sshd with
// git-shell), rollback and promote without a build, and the images an agent keeps for them.
describe("private repositories, rollback and promote", () => {
  const platform = new Platform({ database: "postgres" });
  let agent: AgentHandle;
  let sshd: GitSshd | undefined;
  const api = () => platform.api;

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    sshd = await startGitSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
    await platform.stop();
  });

  describe("a private repository over SSH", () => {
    it("deploys with the app's deploy key once it is added; the git host's key is pinned on first use", async () => {
      sshd!.createRepo("secret-shop", helloApp("private v1"));
      await api().call("POST", "/v1/apps", { name: "secret", repository: sshd!.repoUrl("secret-shop") });
      const key = await api().call("GET", "/v1/apps/secret/deploy-key");
      expect(key.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ slipway-secret$/);
      expect(key.fingerprint).toMatch(/^SHA256:/);
      expect(key.used).toBe(true);
      // The private key is never shown.
      expect(JSON.stringify(await api().call("GET", "/v1/apps/secret"))).not.toContain("PRIVATE KEY");
      sshd!.authorize(key.publicKey);
      const d = await api().deploy("secret", "test");
      expect(d.state, await api().log(d.id)).toBe("succeeded");
      expect((await getVia(agent.ingressPort, "secret-test.localhost")).body.trim()).toBe("private v1");
      const pinned = await api().call("GET", "/v1/git-host-keys");
      expect(pinned).toContainEqual(expect.objectContaining({ host: `[127.0.0.1]:${sshd!.port}`, source: "first-use", keys: [sshd!.hostKeyLine()] }));
      // The control plane's mirror reads it with the same key: the status knows the commits.
      await waitFor("the mirror to sync over ssh", async () => (await api().call("GET", "/v1/apps/secret/environments/test")).status.syncedAt !== null, { timeoutMs: 30_000 });
      expect((await api().call("GET", "/v1/apps/secret/environments/test")).status).toMatchObject({ undeployedCommits: 0, syncError: null });
    });

    it("a key not added to the repository fails at the source step with the git host's reason", async () => {
      sshd!.createRepo("other-shop", helloApp("other"));
      await api().call("POST", "/v1/apps", { name: "nokey", repository: sshd!.repoUrl("other-shop") });
      const d = await api().deploy("nokey", "test");
      expect(d.state).toBe("failed");
      expect(step(d, "source").state).toBe("failed");
      expect(d.error.type).toBe("git_sync_failed");
      expect(d.error.message).toMatch(/refused the app's deploy key: add the public key/);
      expect(d.error.message).not.toMatch(/\n\s+at /); // no stack trace
      expect(docker("ps", "-aq", "--filter", "label=io.slipway.app=nokey")).toBe("");
    });

    it("a changed host key fails the deployment, and the site serves as before", async () => {
      sshd!.commit("secret-shop", { "index.html": "private v2" });
      await sshd!.rotateHostKey();
      const d = await api().deploy("secret", "test");
      expect(d.state).toBe("failed");
      expect(step(d, "source").state).toBe("failed");
      expect(d.error.message).toMatch(new RegExp(`host key of \\[127\\.0\\.0\\.1\\]:${sshd!.port} has changed since it was pinned`));
      expect((await getVia(agent.ingressPort, "secret-test.localhost")).body.trim()).toBe("private v1");
      // An admin who trusts the new key pins it; the next deployment goes through.
      await api().call("PUT", `/v1/git-host-keys/${encodeURIComponent(`[127.0.0.1]:${sshd!.port}`)}`, { keys: sshd!.hostKeyLine() });
      const again = await api().deploy("secret", "test");
      expect(again.state, await api().log(again.id)).toBe("succeeded");
      expect((await getVia(agent.ingressPort, "secret-test.localhost")).body.trim()).toBe("private v2");
    });

    it("refuses host keys that are not keys, and only admins pin", async () => {
      const bad = await api().raw("PUT", "/v1/git-host-keys/github.com", { keys: "github.com ssh-ed25519 not-base64!" });
      expect(bad.status).toBe(400);
      const wrongHost = await api().raw("PUT", "/v1/git-host-keys/github.com", { keys: sshd!.hostKeyLine() });
      expect(wrongHost.status).toBe(400);
      expect((await api().call("GET", "/v1/git-host-keys")).some((k: any) => k.host === "github.com")).toBe(false);
    });
  });

  describe("rollback and promote", () => {
    const repo = new TestRepo();
    const host = "roll-test.localhost";

    beforeAll(async () => {
      repo.commit({ ...envApp("v1", ["STAGE", "GREETING"]) }, "v1");
      await api().call("POST", "/v1/apps", { name: "roll", repository: repo.url, settings: { releaseCommands: [{ label: "migrate", command: "echo migrating-$STAGE" }] } });
      await api().call("PATCH", "/v1/apps/roll/environments/test/variables", { GREETING: "test-greeting" });
      await api().call("PATCH", "/v1/apps/roll/environments/live/variables", { GREETING: "live-greeting" });
    });

    it("rolls back to the previous version under keep-alive load with 0 failed requests, without a build, as fast as a deployment of a built image", async () => {
      const v1 = await api().deploy("roll", "test");
      expect(v1.state, await api().log(v1.id)).toBe("succeeded");
      repo.commit({ "index.html": "v2" }, "v2");
      const v2 = await api().deploy("roll", "test");
      expect(v2.state, await api().log(v2.id)).toBe("succeeded");
      expect((await getVia(agent.ingressPort, host)).body.trim()).toBe("v2");
      // The yardstick: a deployment of an image that is already built (no build, release commands run).
      const reuse = await api().deploy("roll", "test", { build: "reuse" });
      expect(reuse.state).toBe("succeeded");
      const listed = await api().call("GET", "/v1/apps/roll/environments/test/deployments");
      expect(listed.find((d: any) => d.id === v1.id).rollbackable).toBe(true);
      expect(listed.find((d: any) => d.id === reuse.id).rollbackable).toBe(false); // it serves now

      const load = startLoad({ port: agent.ingressPort, host, concurrency: 8, maxMs: 120_000 });
      await load.more(50);
      const back = await api().deploy("roll", "test", { rollbackTo: v1.id });
      await load.more(50);
      const result = await load.stop();
      expect(result.lastBody).toBe("v1");
      const log = await api().log(back.id);
      expect(back.state, log).toBe("succeeded");
      expect(result.failed, result.errors.slice(0, 5).join("\n")).toBe(0);
      expect(result.ok).toBeGreaterThan(100);
      expect(back).toMatchObject({ kind: "rollback", sourceDeployment: v1.id, image: v1.image, imageDigest: v1.imageDigest, commit: v1.commit });
      expect(v1.imageDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(step(back, "build").state).toBe("skipped");
      expect(log).not.toMatch(/^building /m);
      expect(log).toContain("the database is NOT rolled back");
      // Release commands are not run again unless asked.
      expect(step(back, "release").state).toBe("skipped");
      expect(log).not.toContain("migrating-test");
      expect(ms(back)).toBeLessThanOrEqual(ms(reuse) * 1.25 + 1000);
      expect((await getVia(agent.ingressPort, host)).body.trim()).toBe("v1");
      const env = await api().call("GET", "/v1/apps/roll/environments/test");
      expect(env.deployedCommit).toBe(v1.commit);
      // The commit rolled back from is on the branch, undeployed (once the mirror polled it: every 5 s here).
      await api().call("PATCH", "/v1/apps/roll/hooks", { pollIntervalSeconds: 5 });
      await waitFor("the mirror to count v2 as undeployed", async () => (await api().call("GET", "/v1/apps/roll/environments/test")).status.message === "1 undeployed commit", { timeoutMs: 20_000, intervalMs: 500 });
      // Asked for: the release commands run.
      const withRelease = await api().deploy("roll", "test", { rollbackTo: v2.id, runReleaseCommands: true });
      expect(withRelease.state).toBe("succeeded");
      expect(await api().log(withRelease.id)).toContain("migrating-test");
    });

    it("rolls back with the variables as they were then, and says what changed since as unapplied", async () => {
      const before = (await api().call("GET", "/v1/apps/roll/environments/test/deployments")).find((d: any) => d.state === "succeeded" && d.kind === "deploy");
      await api().call("PATCH", "/v1/apps/roll/environments/test/variables", { GREETING: "changed-later" });
      const back = await api().deploy("roll", "test", { rollbackTo: before.id });
      expect(back.state, await api().log(back.id)).toBe("succeeded");
      expect((await getVia(agent.ingressPort, host, "/cgi-bin/env")).body).toContain("GREETING=test-greeting");
      const env = await api().call("GET", "/v1/apps/roll/environments/test");
      expect(env.status.unappliedChanges).toBe(true);
      const pending = await api().call("GET", "/v1/apps/roll/environments/test/pending");
      expect(pending.changes.variables).toEqual({ added: [], changed: ["GREETING"], removed: [] });
      expect(JSON.stringify(pending)).not.toContain("changed-later");
      await api().call("PATCH", "/v1/apps/roll/environments/test/variables", { GREETING: "test-greeting" });
    });

    it("refuses what cannot be rolled back to, changing nothing", async () => {
      const failedRepo = await api().raw("POST", "/v1/apps/roll/environments/test/deployments", { rollbackTo: "00000000-0000-4000-8000-000000000000" });
      expect(failedRepo.status).toBe(404);
      const liveDeployments = await api().call("GET", "/v1/apps/roll/environments/live/deployments");
      expect(liveDeployments).toEqual([]);
      const testOnes = await api().call("GET", "/v1/apps/roll/environments/test/deployments");
      const other = await api().raw("POST", "/v1/apps/roll/environments/live/deployments", { rollbackTo: testOnes[0].id });
      expect(other.status).toBe(404); // a deployment of another environment
      const both = await api().raw("POST", "/v1/apps/roll/environments/test/deployments", { rollbackTo: testOnes[0].id, promoteFrom: "live" });
      expect(both.status).toBe(400);
      expect(await api().call("GET", "/v1/apps/roll/environments/test/deployments")).toHaveLength(testOnes.length);
    });

    it("promotes exactly test's image to live, with live's own variables", async () => {
      const test = await api().call("GET", "/v1/apps/roll/environments/test");
      const promoted = await api().deploy("roll", "live", { promoteFrom: "test" });
      const log = await api().log(promoted.id);
      expect(promoted.state, log).toBe("succeeded");
      expect(promoted).toMatchObject({ kind: "promote", promotedFrom: "test", image: test.image });
      expect(step(promoted, "build").state).toBe("skipped");
      expect(log).toContain("migrating-live"); // release commands as usual
      const testDigest = (await api().call("GET", "/v1/apps/roll/environments/test/deployments")).find((d: any) => d.image === test.image && d.imageDigest).imageDigest;
      expect(promoted.imageDigest).toBe(testDigest);
      // What runs: the same image id in both environments' containers.
      const imageOf = (env: string) => docker("inspect", "--format", "{{.Image}}", docker("ps", "-q", "--filter", "label=io.slipway.app=roll", "--filter", `label=io.slipway.environment=${env}`, "--filter", "label=io.slipway.role=web").split("\n")[0]!);
      expect(imageOf("live")).toBe(imageOf("test"));
      expect(imageOf("live")).toBe(testDigest);
      const page = (await getVia(agent.ingressPort, "roll-live.localhost", "/cgi-bin/env")).body;
      expect(page).toContain("STAGE=live");
      expect(page).toContain("GREETING=live-greeting");
      expect(page).not.toContain("test-greeting");
    });
  });

  it("after 8 deployments the agent holds only the last 5 images of the environment (plus what runs)", async () => {
    const repo = new TestRepo();
    const app = "keep";
    const shas: string[] = [];
    shas.push(repo.commit(helloApp("k1"), "k1"));
    await api().call("POST", "/v1/apps", { name: app, repository: repo.url });
    const images = () => docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", `label=io.slipway.app=${app}`, "--filter", `label=io.slipway.host=${agent.hostId}`).split("\n").filter(Boolean).sort();
    for (let i = 1; i <= 8; i++) {
      if (i > 1) shas.push(repo.commit({ "index.html": `k${i}` }, `k${i}`));
      const d = await api().deploy(app, "test");
      expect(d.state, await api().log(d.id)).toBe("succeeded");
    }
    const last5 = shas.slice(-5).map((s) => `slipway/${app}:${s}`).sort();
    await waitFor("the janitor to prune the older images", async () => JSON.stringify(images()) === JSON.stringify(last5), { timeoutMs: 60_000, intervalMs: 1000 }).catch(() => undefined);
    expect(images()).toEqual(last5);
    const listed = await api().call("GET", `/v1/apps/${app}/environments/test/deployments`);
    expect(listed.filter((d: any) => d.rollbackable).length).toBe(4); // the 5 kept, less the one serving
    const oldest = listed[listed.length - 1];
    const refused = await api().raw("POST", `/v1/apps/${app}/environments/test/deployments`, { rollbackTo: oldest.id });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/older than the last 5 images kept/);
  });
});
