import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { startLoad } from "./support/load.js";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const INSTALL = path.join(repoRoot, "deploy/install.sh");

/** `KEY=value` lines of an env file (comments and blanks skipped), as systemd's EnvironmentFile reads them. */
function envFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * Issue 16, "what operators install on a server": deploy/install.sh lays out a release, the
 * configuration and a systemd unit per role (systemd-analyze verifies them), and the installed
 * control plane and agent run from that release alone. An upgrade (a new release, `current`
 * switched, the agent restarted as systemd's KillMode=process does: the agent only) keeps its
 * environments serving: 0 failed requests. The root is a directory on the checkout's file system,
 * so the dependencies are hard links (no 800 MB copy per run).
 */
describe("installing on a server: deploy/install.sh and the systemd units", () => {
  // Under .slipway/ (ignored by git, and left out of a release by install.sh).
  mkdirSync(path.join(repoRoot, ".slipway"), { recursive: true });
  const root = mkdtempSync(path.join(repoRoot, ".slipway", "install-"));
  const prefix = path.join(root, "opt/slipway");
  const repo = new TestRepo();
  let platform: Platform;
  let agent: AgentHandle;
  const install = (role: string, ...args: string[]) => run("bash", [INSTALL, role, "--root", root, ...args], { encoding: "utf8" });

  beforeAll(async () => {
    await install("control-plane");
    await install("agent");
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it("lays out a release, the configuration (0600, never overwritten) and units systemd accepts", async () => {
    const current = readlinkSync(path.join(prefix, "current"));
    expect(current).toMatch(/^releases\/0\.1\.0\+[0-9a-f]{12}-\d{8}T\d{6}Z$/);
    const release = path.join(prefix, current);
    for (const f of ["apps/control-plane/dist/main.js", "apps/agent/dist/main.js", "apps/web/dist", "node_modules/kysely", "package.json"]) expect(existsSync(path.join(release, f)), f).toBe(true);
    for (const f of [".git", "test", ".slipway"]) expect(existsSync(path.join(release, f)), f).toBe(false);
    for (const role of ["control-plane", "agent"]) {
      const env = path.join(root, "etc/slipway", `${role}.env`);
      expect(statSync(env).mode & 0o777).toBe(0o600);
      const unit = path.join(root, "etc/systemd/system", `slipway-${role}.service`);
      const text = readFileSync(unit, "utf8");
      expect(text).toContain(`ExecStart=${process.execPath} --enable-source-maps /opt/slipway/current/apps/${role}/dist/main.js`);
      expect(text).toContain("EnvironmentFile=/etc/slipway/" + role + ".env");
      expect(text).not.toMatch(/@[A-Z]+@/);
      // systemd's own check of the unit (syntax, known settings, the executable).
      await run("systemd-analyze", ["verify", unit]).catch((err: { stderr?: string }) => {
        throw new Error(`systemd-analyze verify ${unit}: ${err.stderr}`);
      });
    }
    expect(readFileSync(path.join(root, "etc/systemd/system/slipway-agent.service"), "utf8")).toContain("KillMode=process");
    // The configuration is the operator's: a second install keeps it.
    const cpEnv = path.join(root, "etc/slipway/control-plane.env");
    execFileSync("sh", ["-c", `echo SLIPWAY_BASE_DOMAIN=mine.example >> ${cpEnv}`]);
    const again = await install("control-plane");
    expect(again.stdout).toContain("kept /etc/slipway/control-plane.env");
    expect(envFile(cpEnv)["SLIPWAY_BASE_DOMAIN"]).toBe("mine.example");
    // Refusals: no build, a bad option.
    await expect(run("bash", [INSTALL, "agent", "--root", root, "--from", root])).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("has no apps/agent/dist/main.js: run 'npm ci && npm run build' there first") });
    await expect(run("bash", [INSTALL, "web"])).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("first argument: control-plane or agent") });
  }, 60_000);

  it("runs the installed release, and an agent upgrade keeps the environments serving: 0 failed requests", async () => {
    const installed = (role: string) => path.join(prefix, readlinkSync(path.join(prefix, "current")), "apps", role, "dist/main.js");
    platform = new Platform({ database: "postgres", cpMain: installed("control-plane") });
    await platform.start();
    agent = await platform.addAgent();
    agent.main = installed("agent");
    await agent.stop();
    await agent.start();
    repo.commit(helloApp("served by the installed release"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "web", repository: repo.url });
    const d = await platform.api.deploy("web", "test", {}, 150_000);
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    const load = startLoad({ port: agent.ingressPort, host: "web-test.localhost", concurrency: 4, maxMs: 120_000 });
    await new Promise((r) => setTimeout(r, 1000));

    // The upgrade: a new release, `current` switched, the agent (only) restarted on it.
    const before = readlinkSync(path.join(prefix, "current"));
    await new Promise((r) => setTimeout(r, 1100)); // a release is named to the second
    const upgraded = await install("agent", "--keep", "2");
    expect(upgraded.stdout).toMatch(/installing slipway 0\.1\.0\+[0-9a-f]{12} \(agent\)/);
    const after = readlinkSync(path.join(prefix, "current"));
    expect(after).not.toBe(before);
    const started = Date.now();
    await agent.stop();
    agent.main = installed("agent");
    await agent.start();
    const restartMs = Date.now() - started;
    await new Promise((r) => setTimeout(r, 2000));
    const result = await load.stop();
    expect(result.failed, result.errors.slice(0, 3).join("; ")).toBe(0);
    expect(result.ok).toBeGreaterThan(50);
    expect([...result.bodies.keys()]).toEqual(["served by the installed release"]);
    expect(agent.proc.child.spawnargs).toContain(path.join(prefix, after, "apps/agent/dist/main.js"));
    // --keep 2: the release before stays for a way back; older ones go.
    expect(readdirSync(path.join(prefix, "releases")).length).toBeLessThanOrEqual(2);
    console.log(`[install e2e] agent upgraded ${before} → ${after} in ${restartMs} ms under load: ${result.ok} requests, ${result.failed} failed`);
  }, 240_000);
});
