import { chmodSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pebble } from "@slipway/control-plane/testing/pebble";
import { Platform } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "./support/processes.js";
import { httpsGet, sClient, startAcme } from "./support/https.js";

const BASE = "apps.example.test";

/**
 * Issue 15: "DNS-01 as an option for a wildcard default domain". The control plane holds
 * `*.<base domain>` from a real ACME server (pebble) over DNS-01, the record published by the
 * operator's hook (here into pebble-challtestsrv, the DNS pebble validates against), and every
 * environment's default host name is served over HTTPS with it, with no custom domain at all.
 */
describe("automatic HTTPS for default host names: a wildcard certificate over DNS-01", () => {
  let pebble: Pebble;
  let platform: Platform;
  const repo = new TestRepo();
  const ports: number[] = [];
  let httpsPort = 0;
  let rootFile = "";

  beforeAll(async () => {
    const httpPort = await reservePort();
    httpsPort = await reservePort();
    ports.push(httpPort, httpsPort);
    const acme = await startAcme({ httpPort });
    ({ pebble, rootFile } = acme);
    // The operator's hook: publishes and withdraws the TXT record at "their DNS provider".
    const hook = path.join(pebble.dir, "dns-hook.mjs");
    writeFileSync(
      hook,
      `#!${process.execPath}
const [action, record, value] = process.argv.slice(2);
const res = await fetch(${JSON.stringify(pebble.challengeServerUrl)} + (action === "present" ? "/set-txt" : "/clear-txt"), { method: "POST", body: JSON.stringify({ host: record + ".", value }) });
process.exit(res.ok ? 0 : 1);
`,
    );
    chmodSync(hook, 0o755);
    platform = new Platform({
      database: "postgres",
      cpEnv: {
        ...acme.cpEnv,
        SLIPWAY_BASE_DOMAIN: BASE,
        SLIPWAY_ACME_DNS_HOOK: hook,
        SLIPWAY_ACME_DNS_PROPAGATION_SECONDS: "0",
        SLIPWAY_ACME_WILDCARD: "1",
      },
    });
    await platform.start();
    await platform.addAgent({ SLIPWAY_INGRESS_HTTP_PORT: String(httpPort), SLIPWAY_INGRESS_HTTPS_PORT: String(httpsPort) });
    repo.commit(helloApp("hello from a default host name"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: repo.url });
  }, 120_000);

  afterAll(async () => {
    await platform?.stop();
    await pebble?.stop();
    for (const p of ports) releasePort(p);
  });

  it("issues *.<base domain> once and serves it for every environment's default host name, verified with openssl against pebble's root", async () => {
    const api = platform.api;
    const issued = await waitFor("the wildcard to be issued", async () => {
      const entries = (await api.call("GET", "/v1/activity?limit=100")) as Array<{ action: string; app: string | null; details: { hostname?: string; serial?: string } }>;
      return entries.find((e) => e.action === "certificate.issued" && e.details.hostname === `*.${BASE}`);
    }, { timeoutMs: 30_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; control plane: ${platform.tail("control-plane.log", 15)}`);
    });
    expect(issued.app).toBeNull();
    for (const env of ["test", "live"]) {
      const d = await api.deploy("shop", env, {}, 150_000);
      expect(d.state, await api.log(d.id)).toBe("succeeded");
      const host = `shop-${env}.${BASE}`;
      expect((await api.call("GET", `/v1/apps/shop/environments/${env}`)).domains).toEqual([host]);
      let last = "";
      await waitFor(`${host} served over HTTPS`, async () => (last = await sClient(httpsPort, host, rootFile)) === "", { timeoutMs: 20_000, intervalMs: 250 }).catch((err: Error) => {
        throw new Error(`${err.message}; last openssl: ${last}; agent: ${platform.tail("agent-0.log", 15)}`);
      });
      const res = await httpsGet(httpsPort, host, pebble.rootPem);
      expect(res.status).toBe(200);
      expect(res.body).toContain("hello from a default host name");
      expect(res.serial.replace(/^0+/, "").toUpperCase()).toBe(String(issued.details.serial).replace(/^0+/, "").toUpperCase());
    }
    // One certificate for all of them: a single order.
    const orders = ((await api.call("GET", "/v1/activity?limit=200")) as Array<{ action: string }>).filter((e) => e.action === "certificate.issued");
    expect(orders).toHaveLength(1);
    console.log(`[https wildcard e2e] *.${BASE} issued over DNS-01 (serial ${issued.details.serial}), served for shop-test and shop-live`);
  }, 360_000);
});
