// Environment jobs (routes, start, remove) applying the spec's HTTPS part, on the real
// Environments and registry (in a temporary directory) with a fake engine and ingress.
import fs from "node:fs/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EnvironmentSpec, TlsCertificate } from "@slipway/proto";
import { createLogger, environmentSlug, StepFailure } from "@slipway/core";
import { EnvironmentRegistry, type EnvironmentEntry } from "../envs/environment-registry.js";
import { Environments } from "../envs/environments.js";
import type { JobReporter } from "../report/job-reporter.js";
import { certDir, testCertificate } from "../testing/certs.js";
import { FakeContainerRuntime, FakeIngress, FakeJobReporter } from "../testing/fakes.js";
import { runEnvironmentJob } from "./environment.runner.js";

const log = createLogger("unit", "silent");
const THUMB = "Z".repeat(43);
const ID = { shop: "5b0e1d2c-3a4f-4e6d-9c8b-7a6f5e4d3c2b", blog: "6c1f2e3d-4b5a-4f7e-8d9c-8b7a6f5e4d3c" };

describe("environment jobs: HTTPS", () => {
  let dir: string;
  let shop: TlsCertificate;
  let www: TlsCertificate;
  let wild: TlsCertificate;
  let ingress: FakeIngress;
  let registry: EnvironmentRegistry;
  let envs: Environments;

  beforeAll(async () => {
    dir = certDir();
    [shop, www, wild] = await Promise.all([
      testCertificate(dir, ["shop.example"], "1001"),
      testCertificate(dir, ["www.shop.example"], "1002"),
      testCertificate(dir, ["*.apps.example"], "2001"),
    ]);
  });

  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    const state = await fs.mkdtemp(`${dir}/state-`);
    ingress = new FakeIngress();
    registry = new EnvironmentRegistry(state);
    envs = new Environments({ hostId: "host-1", registry, runtime: new FakeContainerRuntime(), ingress, log });
    for (const [env, id] of Object.entries(ID)) {
      const slug = environmentSlug(id);
      const entry: EnvironmentEntry = {
        app: "shop", environment: env, environmentId: id, slug, image: "shop:1", webPort: 5000, probe: { path: "/", acceptedStatuses: "200-399", startupTimeoutMs: 10_000, probeTimeoutMs: 1_000, maxRetries: 50 },
        containerIds: [], deploymentId: "dep-1", hostnames: [`${env}.apps.example`], basicAuth: null, sleepAfterSeconds: 0, state: "running",
      };
      await registry.put(entry);
      await ingress.ensureBackend({ name: slug, hostnames: entry.hostnames, maxServers: 20 });
    }
  });

  async function job(env: keyof typeof ID, action: string, extra: Partial<EnvironmentSpec> = {}): Promise<{ result: string; lines: string[] }> {
    const report = new FakeJobReporter();
    const spec: EnvironmentSpec = { action, app: "shop", environment: env, environmentId: ID[env], hostnames: [], sleepAfterSeconds: 0, forwardTo: "", certificates: [], acmeThumbprint: "", ...extra };
    const result = await runEnvironmentJob({ spec, envs, report: report as unknown as JobReporter, log });
    return { result, lines: report.lines() };
  }

  const served = () => [...ingress.tls!.served.values()].map((c) => `${c.hostnames.join(",")}#${c.serial}`);

  it("routes: sets the thumbprint, installs the host names' certificates and records them in the environment's entry", async () => {
    const r = await job("shop", "routes", { hostnames: ["shop.example", "www.shop.example"], certificates: [shop, www], acmeThumbprint: THUMB });
    expect(r.result).toBe("succeeded");
    expect(ingress.acmeThumbprint).toBe(THUMB);
    expect(served()).toEqual(["shop.example#1001", "www.shop.example#1002"]);
    expect(registry.get(environmentSlug(ID.shop))!.tlsCertificates).toEqual([["shop.example"], ["www.shop.example"]]);
    expect(r.lines).toEqual(expect.arrayContaining([expect.stringMatching(/^certificate for www\.shop\.example installed \(serial 1002, valid until /)]));
    // The same spec again: nothing installed twice.
    expect((await job("shop", "routes", { hostnames: ["shop.example", "www.shop.example"], certificates: [shop, www], acmeThumbprint: THUMB })).result).toBe("succeeded");
    expect(ingress.tls!.callsOf("install")).toHaveLength(2);
    expect(ingress.thumbprintChanges).toBe(1);
  });

  it("routes: a certificate that fails to install is a log line; the job succeeds and the routes are applied", async () => {
    ingress.tls!.fail("install", new StepFailure("tls_invalid_certificate", "the certificate expired on Jan 1 00:00:00 2020 GMT", false));
    const r = await job("shop", "routes", { hostnames: ["shop.example", "www.shop.example"], certificates: [shop, www] });
    expect(r.result).toBe("succeeded");
    expect(ingress.backends.get(environmentSlug(ID.shop))!.config!.hostnames).toEqual(["shop.example", "www.shop.example"]);
    expect(r.lines).toContain("certificate for shop.example not installed: the certificate expired on Jan 1 00:00:00 2020 GMT; the site stays on HTTP and the previous certificate, if any");
    expect(served()).toEqual(["www.shop.example#1002"]);
  });

  it("routes with fewer host names removes the certificate of the dropped one", async () => {
    await job("shop", "routes", { hostnames: ["shop.example", "www.shop.example"], certificates: [shop, www] });
    const r = await job("shop", "routes", { hostnames: ["shop.example"], certificates: [shop] });
    expect(r.result).toBe("succeeded");
    expect(served()).toEqual(["shop.example#1001"]);
    expect(r.lines).toContain("certificate for www.shop.example removed: this environment no longer serves these host names");
    expect(registry.get(environmentSlug(ID.shop))!.tlsCertificates).toEqual([["shop.example"]]);
  });

  it("remove takes the environment's certificates off the ingress, but not one another environment uses", async () => {
    await job("shop", "routes", { hostnames: ["shop.example", "shop.apps.example"], certificates: [shop, wild] });
    await job("blog", "routes", { hostnames: ["blog.apps.example"], certificates: [wild] });
    expect(served()).toEqual(["shop.example#1001", "*.apps.example#2001"]);
    const r = await job("shop", "remove");
    expect(r.result).toBe("succeeded");
    expect(served()).toEqual(["*.apps.example#2001"]);
    expect(r.lines).toEqual(
      expect.arrayContaining([
        "certificate for shop.example removed: this environment no longer serves these host names",
        "certificate for *.apps.example kept: another environment on this host uses it",
      ]),
    );
    expect((await job("blog", "remove")).result).toBe("succeeded");
    expect(served()).toEqual([]);
  });

  it("start applies the certificates to the environment's recorded host names", async () => {
    const r = await job("blog", "start", { certificates: [wild], acmeThumbprint: THUMB });
    expect(r.result).toBe("succeeded");
    expect(r.lines).toContain("shop/blog is already running");
    expect(served()).toEqual(["*.apps.example#2001"]);
    expect(registry.get(environmentSlug(ID.blog))!.tlsCertificates).toEqual([["*.apps.example"]]);
  });

  it("routes of an environment not deployed here sets the thumbprint only", async () => {
    const r = await job("shop", "routes", { environmentId: "7d2a3b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b", hostnames: ["new.example"], certificates: [shop], acmeThumbprint: THUMB });
    expect(r.result).toBe("succeeded");
    expect(ingress.acmeThumbprint).toBe(THUMB);
    expect(served()).toEqual([]);
  });

  it("with HTTPS off, routes succeeds with one line saying so", async () => {
    ingress = new FakeIngress({ https: false });
    envs = new Environments({ hostId: "host-1", registry, runtime: new FakeContainerRuntime(), ingress, log });
    await ingress.ensureBackend({ name: environmentSlug(ID.shop), hostnames: ["shop.apps.example"], maxServers: 20 });
    const r = await job("shop", "routes", { hostnames: ["shop.example"], certificates: [shop] });
    expect(r.result).toBe("succeeded");
    expect(r.lines).toContain("HTTPS is off on this host (SLIPWAY_INGRESS_HTTPS_PORT not set): 1 certificate(s) not installed");
  });
});
