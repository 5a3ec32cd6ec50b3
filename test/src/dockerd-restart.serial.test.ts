import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { sleep, waitFor } from "./support/processes.js";

// Restarting dockerd stops every container on this machine, other suites'
// included: scripts/test runs this file alone, after the main suite.

const PID_FILE = "/var/run/docker.pid";
/** Where scripts/setup sends dockerd's output. */
const DOCKERD_LOG = "/var/log/slipway-dockerd.log";

function dockerAnswers(): boolean {
  try {
    execFileSync("docker", ["info"], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function dockerdPid(): number | undefined {
  if (!existsSync(PID_FILE)) return undefined;
  const pid = Number(readFileSync(PID_FILE, "utf8").trim());
  return pid > 0 && alive(pid) ? pid : undefined;
}

/** Stops dockerd by the PID it wrote, as its init script would, and waits until it is gone. */
async function stopDockerd(): Promise<void> {
  const pid = dockerdPid();
  if (pid === undefined) throw new Error(`no running dockerd in ${PID_FILE}`);
  process.kill(pid, "SIGTERM");
  await waitFor(`dockerd ${pid} to exit`, async () => !alive(pid), 60_000, 200);
}

/**
 * Starts dockerd the way scripts/setup does (detached, output appended to its log) and waits until it answers.
 * It outlives the run, so it gets the machine's temporary directory, not the run's (scripts/test): runc keeps
 * each exec's process file there, and the run's is removed at its end.
 */
async function startDockerd(): Promise<void> {
  const dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"].find((p) => existsSync(p)) ?? "dockerd";
  const env = { ...process.env, TMPDIR: process.env.SLIPWAY_OUTER_TMPDIR ?? process.env.TMPDIR };
  execFileSync("sh", ["-c", 'nohup setsid "$1" >>"$2" 2>&1 </dev/null &', "sh", dockerd, DOCKERD_LOG], { env });
  await waitFor("dockerd to answer", async () => dockerAnswers(), 60_000, 500);
}

/** Leaves dockerd running whatever happened: waits for one that is starting, starts one when none runs. */
async function ensureDockerd(): Promise<void> {
  if (dockerAnswers()) return;
  if (dockerdPid() !== undefined) {
    await waitFor("the running dockerd to answer", async () => dockerAnswers(), 60_000, 500).catch(() => undefined);
    if (dockerAnswers()) return;
  }
  await startDockerd();
}

describe("dockerd restarted while environments serve", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const envs = ["test", "live"];
  const hostOf = (env: string) => `dockerd-${env}.localhost`;
  /** id → network address of this platform's web containers. */
  const addresses = () =>
    Object.fromEntries(
      platform.containers().map((id) => [id, execFileSync("docker", ["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id], { encoding: "utf8" }).trim()]),
    );
  /** id → published host port of this platform's web containers. */
  const ports = () =>
    Object.fromEntries(
      platform.containers().map((id) => [id, execFileSync("docker", ["port", id, "8080/tcp"], { encoding: "utf8" }).trim()]),
    );

  beforeAll(async () => {
    await ensureDockerd();
    await platform.start();
    agent = await platform.addAgent();
    repo.commit(helloApp("v1"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "dockerd", repository: repo.url });
    for (const env of envs) {
      const d = await platform.api.deploy("dockerd", env);
      expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    }
  });
  afterAll(async () => {
    await ensureDockerd();
    await platform.stop();
  });

  it("re-points HAProxy at the containers' new ports within 30 s of dockerd being back", async () => {
    const before = ports();
    const addressesBefore = addresses();
    expect(Object.keys(before)).toHaveLength(2);
    let upAt = 0;
    try {
      await stopDockerd();
      await startDockerd();
      upAt = Date.now();
    } finally {
      await ensureDockerd();
    }
    const servedAfterMs = await waitFor(
      "both environments to serve again",
      async () => {
        const replies = await Promise.all(envs.map((env) => getVia(agent.ingressPort, hostOf(env)).catch(() => undefined)));
        return replies.every((r) => r?.status === 200 && r.body === "v1") ? Date.now() - upAt : undefined;
      },
      30_000,
      200,
    );
    const after = ports();
    const addressesAfter = addresses();
    console.log(`[dockerd] serving again ${servedAfterMs} ms after dockerd answered; ports ${JSON.stringify(Object.values(before))} -> ${JSON.stringify(Object.values(after))}`);
    // The same containers came back (restart policy), on new ports; no container was added or lost.
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    expect(Object.keys(after).some((id) => after[id] !== before[id])).toBe(true);
    // HAProxy routes to the containers' network addresses: re-pointed when an address changed, untouched otherwise.
    const addressChanged = Object.keys(after).some((id) => addressesAfter[id] !== addressesBefore[id]);
    console.log(`[dockerd] addresses ${JSON.stringify(Object.values(addressesBefore))} -> ${JSON.stringify(Object.values(addressesAfter))}`);
    if (addressChanged) expect(readFileSync(path.join(platform.dir, "agent-0.log"), "utf8")).toContain("routed the environment to its containers' current ports");
    // The agent itself came through: the next deployment runs as usual.
    await sleep(500);
    const d = await platform.api.deploy("dockerd", "test", { build: "reuse" });
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    expect(platform.containers()).toHaveLength(2);
  }, 240_000);
});
