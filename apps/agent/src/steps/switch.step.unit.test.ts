import fs from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TlsCertificate } from "@slipway/proto";
import { StepFailure } from "@slipway/core";
import { certDir, testCertificate } from "../testing/certs.js";
import { FakeIngress } from "../testing/fakes.js";
import { BACKEND_SLOTS } from "../envs/environments.js";
import { switchStep } from "./switch.step.js";
import { fakeDeployment, withCurrentDeployment, type FakeDeployment, type FakeDeploymentOptions } from "../testing/deploy.fixture.js";

const IMAGE = "slipway/shop:new";
const digest = "4576f6431f4b3746cdbcdaa55844ffc7ce88979e2b457b723fabb2389df0d8ea";

/** A deployment whose new containers are started and probed, ready to switch. */
function probed(spec: FakeDeploymentOptions["spec"] = {}, replicas = 2): FakeDeployment {
  const d = fakeDeployment({ spec: { replicas, ...spec } });
  d.ctx.image = IMAGE;
  d.ctx.webPort = 5000;
  for (let i = 0; i < replicas; i++) {
    const c = d.runtime.addContainer({ image: IMAGE, labels: {} });
    d.ctx.started.push({ id: c.id, name: c.name, hostPort: c.hostPort!, address: c.address! });
  }
  return d;
}

describe("switch step", () => {
  it("moves all traffic to the new containers in one switch and returns the replaced targets", async () => {
    const d = probed();
    const old = withCurrentDeployment(d, 2);
    const replaced = await switchStep(d.ctx);
    expect(replaced).toEqual(old.targets);
    const targets = d.ctx.started.map((c) => ({ id: c.id, host: c.address, port: 5000 }));
    expect(d.ingress.callsOf("switchTraffic")).toEqual([[d.slug, targets, undefined]]);
    expect(d.ingress.routed(d.slug)).toEqual(targets);
    expect(d.ctx.switched).toBe(true);
    expect(d.report.lines()).toContain("traffic for shop-test.localhost now goes to 2 new container(s); 2 old one(s) drained");
  });

  it("configures the backend's host names and basic auth with room for old and new servers, then records the environment under its lock", async () => {
    const d = probed({ hostnames: ["shop-test.localhost", "test.shop.example"], basicAuth: { username: "bob", digest }, sleepAfterSeconds: 900 });
    await switchStep(d.ctx);
    expect(d.ingress.methods().slice(0, 2)).toEqual(["ensureBackend", "switchTraffic"]);
    expect(d.slug).toBe("env-5b0e1d2c3a4f4e6d9c8b7a6f5e4d3c2b");
    expect(d.ingress.backends.get(d.slug)!.config).toEqual({
      name: d.slug,
      realm: "shop-test",
      hostnames: ["shop-test.localhost", "test.shop.example"],
      basicAuth: { username: "bob", digest },
      maxServers: BACKEND_SLOTS,
    });
    expect(d.envs.recordedUnderLock).toEqual([true]);
    expect(d.envs.entries.get(d.slug)).toMatchObject({
      state: "running",
      image: IMAGE,
      webPort: 5000,
      deploymentId: "dep-new",
      containerIds: d.ctx.started.map((c) => c.id),
      basicAuth: { username: "bob", digest },
      sleepAfterSeconds: 900,
    });
    expect(d.envs.variables.get(d.slug)).toEqual({ GREETING: "hi" });
    expect(d.report.lines()).toEqual(expect.arrayContaining(["basic auth on (user bob)", "sleeps after 900 s without requests"]));
  });

  it("keeps the backend an older agent recorded for the environment's id (`<app>--<env>`), so an upgrade moves no traffic", async () => {
    const d = probed();
    const old = withCurrentDeployment(d, 1);
    const legacy = d.envs.entries.get(d.slug)!;
    d.envs.entries.delete(d.slug);
    d.envs.entries.set("shop--test", { ...legacy, slug: "shop--test" });
    d.ingress.route("shop--test", old.targets);
    await switchStep(d.ctx);
    expect(d.ingress.callsOf("switchTraffic").map((c) => c[0])).toEqual(["shop--test"]);
    expect(d.envs.entries.get("shop--test")).toMatchObject({ slug: "shop--test", deploymentId: "dep-new" });
    expect(d.envs.entries.has(d.slug)).toBe(false);
  });

  it("leaves routing and the recorded environment as they were when the switch fails", async () => {
    const d = probed();
    const old = withCurrentDeployment(d);
    d.ingress.fail("switchTraffic", new Error("admin socket closed"));
    await expect(switchStep(d.ctx)).rejects.toThrow("admin socket closed");
    expect(d.ctx.switched).toBe(false);
    expect(d.ingress.routed(d.slug)).toEqual(old.targets);
    expect(d.envs.entries.get(d.slug)!.deploymentId).toBe("dep-old");
  });

  it("counts as switched when recording fails after traffic moved, so the serving containers are kept", async () => {
    const d = probed();
    withCurrentDeployment(d);
    d.envs.fail("recordDeployment", new Error("disk full"));
    await expect(switchStep(d.ctx)).rejects.toThrow("disk full");
    expect(d.ctx.switched).toBe(true);
  });

  it("waits for the environment's lock (a sleep or wake in progress) before moving traffic", async () => {
    const d = probed();
    withCurrentDeployment(d);
    let release!: () => void;
    const sleeping = d.envs.exclusive(d.slug, () => new Promise<void>((r) => (release = r)));
    const switching = switchStep(d.ctx);
    await new Promise((r) => setImmediate(r));
    expect(d.ingress.methods()).toEqual([]);
    release();
    await sleeping;
    await switching;
    expect(d.ingress.methods()).toEqual(["ensureBackend", "switchTraffic", "setHttpsHosts"]);
  });
});

describe("switch step: HTTPS", () => {
  const THUMB = "T".repeat(43);
  let dir: string;
  let shop: TlsCertificate;
  let shopNext: TlsCertificate;
  let other: TlsCertificate;

  beforeAll(async () => {
    dir = certDir();
    [shop, shopNext, other] = await Promise.all([
      testCertificate(dir, ["shop-test.localhost"], "51"),
      testCertificate(dir, ["shop-test.localhost"], "52"),
      testCertificate(dir, ["test.shop.example"], "61"),
    ]);
  });

  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("once traffic moved: sets the ACME thumbprint, installs the certificates and records them as the environment's", async () => {
    const d = probed({ hostnames: ["shop-test.localhost", "test.shop.example"], certificates: [shop, other], acmeThumbprint: THUMB });
    withCurrentDeployment(d);
    await switchStep(d.ctx);
    expect(d.ingress.methods()).toEqual(["ensureBackend", "switchTraffic", "setAcmeThumbprint", "setHttpsHosts"]);
    expect(d.ingress.httpsHosts.get(d.slug)).toBeUndefined(); // no redirect asked for
    expect(d.ingress.acmeThumbprint).toBe(THUMB);
    expect([...d.ingress.tls!.served.values()].map((c) => [c.hostnames, c.serial])).toEqual([[["shop-test.localhost"], "51"], [["test.shop.example"], "61"]]);
    expect(d.envs.entries.get(d.slug)!.tlsCertificates).toEqual([["shop-test.localhost"], ["test.shop.example"]]);
    expect(d.report.lines()).toEqual(expect.arrayContaining([expect.stringMatching(/^certificate for shop-test\.localhost installed \(serial 51, valid until /)]));
  });

  it("with the HTTPS redirect on, HTTP → HTTPS (and HSTS) for the host names whose certificate is served, not the others", async () => {
    const d = probed({ hostnames: ["shop-test.localhost", "www.shop.example"], certificates: [shop], httpsRedirect: true, hstsMaxAgeSeconds: 600 });
    withCurrentDeployment(d);
    await switchStep(d.ctx);
    expect(d.ingress.httpsHosts.get(d.slug)).toEqual({ "shop-test.localhost": 600 });
    expect(d.report.lines()).toEqual(expect.arrayContaining(["HTTP → HTTPS (308) for shop-test.localhost; HSTS max-age 600 s", "no HTTPS redirect yet for www.shop.example: no certificate served for it"]));
    // Turned off at the next deployment: every host name is served over HTTP again.
    const off = probed({ hostnames: ["shop-test.localhost", "www.shop.example"], certificates: [shop] });
    Object.assign(off.ctx, { ingress: d.ingress, envs: d.envs });
    await switchStep(off.ctx);
    expect(d.ingress.httpsHosts.get(d.slug)).toBeUndefined();
  });

  it("a redeploy skips a certificate served with the same serial, replaces a renewed one and removes the one of a host name it dropped", async () => {
    const first = probed({ hostnames: ["shop-test.localhost", "test.shop.example"], certificates: [shop, other] });
    withCurrentDeployment(first);
    await switchStep(first.ctx);
    const d = probed({ hostnames: ["shop-test.localhost"], certificates: [shopNext] });
    Object.assign(d.ctx, { ingress: first.ingress, envs: first.envs });
    const ingress = first.ingress;
    await switchStep(d.ctx);
    expect([...ingress.tls!.served.values()].map((c) => [c.hostnames, c.serial])).toEqual([[["shop-test.localhost"], "52"]]);
    expect(first.envs.entries.get(d.slug)!.tlsCertificates).toEqual([["shop-test.localhost"]]);
    expect(d.report.lines()).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^certificate for shop-test\.localhost replaced: serial 51 → serial 52, valid until /),
        "certificate for test.shop.example removed: this environment no longer serves these host names",
      ]),
    );
    const again = probed({ hostnames: ["shop-test.localhost"], certificates: [shopNext] });
    Object.assign(again.ctx, { ingress, envs: first.envs });
    await switchStep(again.ctx);
    expect(ingress.tls!.callsOf("install")).toHaveLength(3);
    expect(again.report.lines()).toEqual(expect.arrayContaining([expect.stringMatching(/^certificate for shop-test\.localhost already served \(serial 52/)]));
  });

  it("a certificate that cannot be installed does not fail the deployment: the traffic moved and the log says why", async () => {
    const d = probed({ certificates: [shop] });
    withCurrentDeployment(d);
    d.ingress.tls!.fail("install", new StepFailure("tls_runtime_refused", "HAProxy refused 'set ssl cert'", true));
    await expect(switchStep(d.ctx)).resolves.toHaveLength(1);
    expect(d.ctx.switched).toBe(true);
    expect(d.envs.entries.get(d.slug)).toMatchObject({ deploymentId: "dep-new", tlsCertificates: [] });
    expect(d.report.lines()).toContain("certificate for shop-test.localhost not installed: HAProxy refused 'set ssl cert'; the site stays on HTTP and the previous certificate, if any");
  });

  it("with HTTPS off on the host, the certificates are skipped with one line", async () => {
    const d = probed({ certificates: [shop] });
    d.ctx.ingress = new FakeIngress({ https: false });
    await switchStep(d.ctx);
    expect(d.report.lines()).toContain("HTTPS is off on this host (SLIPWAY_INGRESS_HTTPS_PORT not set): 1 certificate(s) not installed");
  });
});
