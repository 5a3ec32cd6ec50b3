import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "./support/platform.js";
import { StopWaiting, waitFor } from "./support/processes.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { getVia } from "./support/load.js";
import { dropDatabasesWithPrefix } from "./support/postgres.js";
import { randomBytes } from "node:crypto";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// `npm run up` as the README says, headless: start, fetch the printed test URL, Ctrl-C, nothing left running.
describe("npm run up", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-up-"));
  const dbPrefix = `u${randomBytes(4).toString("hex")}`;
  let child: ReturnType<typeof spawn> | undefined;
  const ports: number[] = [];
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    ports.forEach(releasePort);
    await dropDatabasesWithPrefix(dbPrefix);
  });

  it("starts the platform on embedded defaults, deploys hello to test and live, and stops everything on Ctrl-C", async () => {
    // `npm run up` takes fixed ports (it is the user's demo): reserved ones, not probed ones (ports.ts).
    for (let i = 0; i < 6; i++) ports.push(await reservePort());
    const [httpPort, grpcPort, ingressPort, natsPort, s3Port, s3BackupPort] = ports;
    let out = "";
    child = spawn(process.execPath, [path.join(repoRoot, "scripts/up.mjs")], {
      cwd: repoRoot,
      env: {
        ...process.env,
        SLIPWAY_DATA_DIR: path.join(dir, "data"),
        SLIPWAY_AGENT_STATE_DIR: path.join(dir, "agent"),
        SLIPWAY_HTTP_PORT: String(httpPort),
        SLIPWAY_GRPC_PORT: String(grpcPort),
        SLIPWAY_INGRESS_HTTP_PORT: String(ingressPort),
        SLIPWAY_INGRESS_PUBLIC_PORT: String(ingressPort),
        SLIPWAY_EMBEDDED_NATS_PORT: String(natsPort),
        SLIPWAY_EMBEDDED_S3_PORT: String(s3Port),
        SLIPWAY_EMBEDDED_S3_BACKUP_PORT: String(s3BackupPort),
        SLIPWAY_DATABASE_NAME_PREFIX: dbPrefix,
        DATABASE_URL: "",
        NATS_URL: "",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const summary = await waitFor("the up summary", async () => {
      if (child!.exitCode !== null) throw new StopWaiting(`up exited ${child!.exitCode}:\n${out.slice(-3000)}`);
      const line = out.split("\n").find((l) => l.startsWith("SLIPWAY_UP_SUMMARY "));
      return line ? JSON.parse(line.slice("SLIPWAY_UP_SUMMARY ".length)) : undefined;
    }, { timeoutMs: 110_000, intervalMs: 500 }); // inside the test's 120 s, so a hang says what it waited for
    expect(summary.testUrl).toBe(`http://hello-test.localhost:${ingressPort}/`);
    expect(summary.adminToken).toMatch(/^slw_/);
    // Fetch the printed URL: *.localhost resolves to loopback; send the host name explicitly to stay resolver-independent.
    const url = new URL(summary.testUrl);
    const page = await getVia(Number(url.port), url.hostname);
    expect(page.status).toBe(200);
    expect(page.body).toContain("Hello from Slipway");
    const env = await getVia(Number(new URL(summary.liveUrl).port), new URL(summary.liveUrl).hostname, "/cgi-bin/env");
    expect(env.body).toContain("STAGE=live");
    expect(env.body).toContain("DEBUG=False");

    const hostId = JSON.parse(readFileSync(path.join(dir, "agent", "identity.json"), "utf8")).hostId as string;
    const pids = out.match(/pid (\d+)/g)?.map((m) => Number(m.slice(4))) ?? [];
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => child!.once("exit", resolve));
    expect(code, out.slice(-2000)).toBe(0);
    for (const pid of pids) expect(alive(pid), `pid ${pid} still running`).toBe(false);
    const left = execFileSync("docker", ["ps", "-aq", "--filter", `label=io.slipway.host=${hostId}`], { encoding: "utf8" }).trim();
    expect(left).toBe("");
    await expect(getVia(ingressPort, url.hostname)).rejects.toThrow();
    expect(existsSync(path.join(dir, "data", "admin-token"))).toBe(true);
  });
});
