import { execFile } from "node:child_process";
import path from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, repoRoot } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "./support/processes.js";
import { createTestCa, httpsGet, sClient, type TestCa } from "./support/https.js";

const BASE_DOMAIN = "apps.example.test";
const DEFAULT_HOST = `shop-test.${BASE_DOMAIN}`;
const CLI = path.join(repoRoot, "bin/slipway");

/** `slipway <args>` as an admin in CI would run it (SLIPWAY_URL and SLIPWAY_TOKEN, no saved login). */
function slipway(args: string[], url: string, token: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(CLI, args, { env: { PATH: process.env.PATH!, SLIPWAY_URL: url, SLIPWAY_TOKEN: token, SLIPWAY_CONFIG: "/nonexistent/slipway.json" }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The serial of the certificate served for `servername` on 127.0.0.1:port, trusted or not. */
function servedSerial(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false, timeout: 10_000 }, () => {
      const serial = socket.getPeerCertificate().serialNumber ?? "";
      socket.end();
      resolve(serial.toUpperCase());
    });
    socket.on("timeout", () => socket.destroy(new Error("timeout")));
    socket.on("error", reject);
  });
}

/**
 * Issue 15, "the default domain of each environment can use an uploaded wildcard certificate":
 * an admin uploads `*.<base domain>` issued by a CA of the test's own (no ACME at all), the
 * environment's generated host name is served over HTTPS with it (openssl verifies the chain
 * against that CA's root), a replacement uploaded with `slipway certs upload` is served
 * without a redeploy, and `slipway certs remove` takes it off the host.
 */
describe("an uploaded wildcard certificate serves an environment's default domain", () => {
  let platform: Platform;
  let ca: TestCa;
  const repo = new TestRepo();
  let httpPort = 0;
  let httpsPort = 0;

  beforeAll(async () => {
    ca = createTestCa();
    httpPort = await reservePort();
    httpsPort = await reservePort();
    platform = new Platform({ database: "postgres", cpEnv: { SLIPWAY_BASE_DOMAIN: BASE_DOMAIN } });
    await platform.start();
    await platform.addAgent({ SLIPWAY_INGRESS_HTTP_PORT: String(httpPort), SLIPWAY_INGRESS_HTTPS_PORT: String(httpsPort) });
    repo.commit(helloApp("hello over an uploaded certificate"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 10 } } });
  }, 240_000);

  afterAll(async () => {
    await platform?.stop();
    ca?.remove();
    if (httpPort) releasePort(httpPort);
    if (httpsPort) releasePort(httpsPort);
  });

  it("serves the default domain with the uploaded wildcard, verified by openssl against the test CA; a replacement is served and a removal taken off without a redeploy", async () => {
    const api = platform.api;
    const first = ca.issue({ dns: [`*.${BASE_DOMAIN}`], serial: "5A17A001", key: "rsa" });
    const up = await api.call("POST", "/v1/certificates", { certificate: first.chainPem, privateKey: first.keyPem });
    expect(up).toMatchObject({ replaced: false, certificate: { hostnames: [`*.${BASE_DOMAIN}`], source: "uploaded", serial: "5A17A001", status: "valid" } });

    const d = await api.deploy("shop", "test");
    expect(d.state, await api.log(d.id)).toBe("succeeded");
    const env = await api.call("GET", "/v1/apps/shop/environments/test");
    expect(env.domains).toContain(DEFAULT_HOST);

    let lastFailure = "";
    await waitFor(`${DEFAULT_HOST} to be served over HTTPS with the uploaded certificate`, async () => {
      lastFailure = await sClient(httpsPort, DEFAULT_HOST, ca.rootFile);
      return lastFailure === "";
    }, { timeoutMs: 30_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; last openssl: ${lastFailure}; control plane: ${platform.tail("control-plane.log", 15)}; agent: ${platform.tail("agent-0.log", 15)}`);
    });
    const res = await httpsGet(httpsPort, DEFAULT_HOST, ca.rootPem);
    expect(res.status).toBe(200);
    expect(res.body).toContain("hello over an uploaded certificate");
    expect(res.serial.toUpperCase()).toBe("5A17A001");

    // The renewed certificate (new serial, new key) through the command line; no deployment follows.
    const deploymentsBefore = (await api.call("GET", "/v1/apps/shop/environments/test/deployments")).length;
    const renewed = ca.issue({ dns: [`*.${BASE_DOMAIN}`], serial: "5A17A002", key: "ec" });
    const uploadedAt = Date.now();
    const cli = await slipway(["certs", "upload", "--cert", renewed.chainFile, "--key", renewed.keyFile], api.baseUrl, platform.adminToken);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^replaced certificate .* for \*\.apps\.example\.test: serial 5A17A002, valid until .* \(it replaces serial 5A17A001\)\n1 host update\(s\) queued/);
    await waitFor("the replacement's serial served on a new connection", async () => (await httpsGet(httpsPort, DEFAULT_HOST, ca.rootPem)).serial.toUpperCase() === "5A17A002", { timeoutMs: 30_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; agent: ${platform.tail("agent-0.log", 15)}`);
    });
    const replacedMs = Date.now() - uploadedAt;
    expect(await sClient(httpsPort, DEFAULT_HOST, ca.rootFile)).toBe("");
    expect((await httpsGet(httpsPort, DEFAULT_HOST, ca.rootPem)).body).toContain("hello over an uploaded certificate");
    expect((await api.call("GET", "/v1/apps/shop/environments/test/deployments")).length).toBe(deploymentsBefore);

    const listed = await slipway(["certs"], api.baseUrl, platform.adminToken);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/\*\.apps\.example\.test\s+uploaded\s+valid\s+\S+\s+5A17A002/);
    expect(listed.stdout).not.toContain("PRIVATE KEY");
    // Removed: the host stops serving it (the job's spec is authoritative), again without a redeploy.
    const removedAt = Date.now();
    const removed = await slipway(["certs", "remove", up.certificate.id], api.baseUrl, platform.adminToken);
    expect(removed.code, removed.stderr).toBe(0);
    await waitFor("the removed certificate no longer served", async () => (await servedSerial(httpsPort, DEFAULT_HOST)) !== "5A17A002", { timeoutMs: 30_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; agent: ${platform.tail("agent-0.log", 15)}`);
    });
    const removedMs = Date.now() - removedAt;
    expect(await sClient(httpsPort, DEFAULT_HOST, ca.rootFile)).not.toBe("");
    expect((await api.call("GET", "/v1/apps/shop/environments/test/deployments")).length).toBe(deploymentsBefore);
    const activity = JSON.stringify(await api.call("GET", "/v1/activity"));
    expect(activity).toContain("certificate.uploaded");
    expect(activity).toContain("certificate.removed");
    console.log(`[https e2e] uploaded wildcard *.${BASE_DOMAIN}: ${DEFAULT_HOST} verified by openssl against the test CA; replacement served ${replacedMs} ms after \`slipway certs upload\`, taken off ${removedMs} ms after \`slipway certs remove\`, no redeploy`);
  }, 300_000);
});
