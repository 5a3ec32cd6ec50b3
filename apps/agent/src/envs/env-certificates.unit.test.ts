import fs from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TlsCertificate } from "@slipway/proto";
import { createLogger, StepFailure } from "@slipway/core";
import { FakeIngress } from "../testing/fakes.js";
import { certDir, testCertificate } from "../testing/certs.js";
import { applyTls, nameCovers, releaseTls, serialOf, type ApplyTlsArgs } from "./env-certificates.js";

const THUMB = "a".repeat(43);
const log = createLogger("unit", "silent");

describe("HTTPS of an environment at the ingress", () => {
  let dir: string;
  let shop1: TlsCertificate;
  let shop2: TlsCertificate;
  let api: TlsCertificate;

  beforeAll(async () => {
    dir = certDir();
    [shop1, shop2, api] = await Promise.all([
      testCertificate(dir, ["shop.example", "www.shop.example"], "0A1"),
      testCertificate(dir, ["shop.example", "www.shop.example"], "A2"),
      testCertificate(dir, ["api.example"], "B1"),
    ]);
  });

  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  function setup(opts: { https?: boolean } = {}) {
    const ingress = new FakeIngress(opts);
    const lines: string[] = [];
    const args = (over: Partial<ApplyTlsArgs> = {}): ApplyTlsArgs => ({
      ingress,
      tls: { certificates: [], acmeThumbprint: "" },
      hostnames: ["shop.example", "www.shop.example", "api.example"],
      owned: [],
      ownedElsewhere: () => false,
      logLine: (l) => lines.push(l),
      log,
      ...over,
    });
    return { ingress, lines, args };
  }

  it("reads the leaf's serial as HAProxy prints it; wildcards cover one label", () => {
    expect(serialOf(shop1.certPem)).toBe("A1");
    expect(serialOf(shop1.certPem + api.certPem)).toBe("A1");
    expect(() => serialOf("nope")).toThrow(/not PEM/);
    expect(nameCovers("*.shop.example", "eu.shop.example")).toBe(true);
    expect(nameCovers("*.shop.example", "a.eu.shop.example")).toBe(false);
    expect(nameCovers("*.shop.example", "shop.example")).toBe(false);
    expect(nameCovers("Shop.Example", "shop.example")).toBe(true);
  });

  it("installs each certificate once, says what it serves (never the key), and records it as the environment's", async () => {
    const { ingress, lines, args } = setup();
    const owned = await applyTls(args({ tls: { certificates: [shop1, api], acmeThumbprint: "" } }));
    expect(owned).toEqual([["shop.example", "www.shop.example"], ["api.example"]]);
    expect(ingress.tls!.callsOf("install")).toHaveLength(2);
    expect([...ingress.tls!.served.values()].map((c) => [c.hostnames, c.serial])).toEqual([
      [["shop.example", "www.shop.example"], "A1"],
      [["api.example"], "B1"],
    ]);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^certificate for shop\.example, www\.shop\.example installed \(serial A1, valid until \d{4}-\d\d-\d\dT/);
    expect(lines.join("\n")).not.toContain("PRIVATE KEY");
    expect(ingress.callsOf("setAcmeThumbprint")).toEqual([]);
  });

  it("skips a certificate served with the same serial and replaces one of another serial", async () => {
    const { ingress, lines, args } = setup();
    await applyTls(args({ tls: { certificates: [shop1], acmeThumbprint: "" } }));
    lines.length = 0;
    const again = await applyTls(args({ tls: { certificates: [shop1], acmeThumbprint: "" }, owned: [["www.shop.example", "shop.example"]] }));
    expect(again).toEqual([["shop.example", "www.shop.example"]]);
    expect(ingress.tls!.callsOf("install")).toHaveLength(1);
    expect(lines).toEqual([expect.stringMatching(/^certificate for shop\.example, www\.shop\.example already served \(serial A1, valid until /)]);
    lines.length = 0;
    await applyTls(args({ tls: { certificates: [shop2], acmeThumbprint: "" }, owned: again }));
    expect(ingress.tls!.callsOf("install")).toHaveLength(2);
    expect([...ingress.tls!.served.values()].map((c) => c.serial)).toEqual(["A2"]);
    expect(lines).toEqual([expect.stringMatching(/^certificate for shop\.example, www\.shop\.example replaced: serial A1 → serial A2, valid until /)]);
  });

  it("a certificate that fails to install is logged and the others still go in", async () => {
    const { ingress, lines, args } = setup();
    ingress.tls!.fail("install", new StepFailure("tls_runtime_refused", "HAProxy refused 'commit ssl cert'", true), { times: 1 });
    const owned = await applyTls(args({ tls: { certificates: [shop1, api, { hostnames: ["bad.example"], certPem: "garbage", keyPem: "" }], acmeThumbprint: "" } }));
    expect(owned).toEqual([["api.example"]]);
    expect(lines).toEqual([
      "certificate for shop.example, www.shop.example not installed: HAProxy refused 'commit ssl cert'; the site stays on HTTP and the previous certificate, if any",
      expect.stringMatching(/^certificate for api\.example installed/),
      "certificate for bad.example not installed: the certificate is not PEM (no BEGIN CERTIFICATE block); the site stays on HTTP and the previous certificate, if any",
    ]);
  });

  it("a failing list of what is served skips the certificates with one line", async () => {
    const { ingress, lines, args } = setup();
    ingress.tls!.fail("list", new Error("admin socket gone"));
    expect(await applyTls(args({ tls: { certificates: [shop1], acmeThumbprint: THUMB } }))).toEqual([]);
    expect(lines).toEqual(["certificates not installed: cannot read what the ingress serves (admin socket gone); the site stays on HTTP and the previous certificate, if any"]);
    expect(ingress.acmeThumbprint).toBe(THUMB);
  });

  it("sets the ACME thumbprint when given (the ingress reloads only when it changes); a refusal is a log line", async () => {
    const { ingress, lines, args } = setup();
    await applyTls(args({ tls: { certificates: [], acmeThumbprint: THUMB } }));
    await applyTls(args({ tls: { certificates: [], acmeThumbprint: THUMB } }));
    await applyTls(args({ tls: { certificates: [], acmeThumbprint: "" } }));
    expect(ingress.callsOf("setAcmeThumbprint")).toEqual([[THUMB], [THUMB]]);
    expect(ingress.thumbprintChanges).toBe(1);
    ingress.fail("setAcmeThumbprint", new StepFailure("ingress_invalid_thumbprint", "an ACME account thumbprint is 43 base64url characters", false));
    await applyTls(args({ tls: { certificates: [], acmeThumbprint: "short" } }));
    expect(lines).toEqual(["ACME challenges not answered on this host: an ACME account thumbprint is 43 base64url characters"]);
  });

  it("with HTTPS off on the host, certificates are skipped with one line (the thumbprint is still set: challenges come over HTTP)", async () => {
    const { ingress, lines, args } = setup({ https: false });
    expect(await applyTls(args({ tls: { certificates: [shop1, api], acmeThumbprint: THUMB } }))).toEqual([]);
    expect(lines).toEqual(["HTTPS is off on this host (SLIPWAY_INGRESS_HTTPS_PORT not set): 2 certificate(s) not installed"]);
    expect(ingress.acmeThumbprint).toBe(THUMB);
  });

  it("removes an owned certificate once none of its names is served by the environment, keeps wildcards that still cover one", async () => {
    const { ingress, lines, args } = setup();
    const wild = await testCertificate(dir, ["*.eu.example"], "C1");
    const owned = await applyTls(args({ tls: { certificates: [shop1, api, wild], acmeThumbprint: "" }, hostnames: ["shop.example", "www.shop.example", "api.example", "de.eu.example"] }));
    expect(owned).toHaveLength(3);
    lines.length = 0;
    const left = await applyTls(args({ tls: { certificates: [api, wild], acmeThumbprint: "" }, owned, hostnames: ["api.example", "fr.eu.example"] }));
    expect(left).toEqual([["api.example"], ["*.eu.example"]]);
    expect([...ingress.tls!.served.keys()]).toEqual(["api.example", "*.eu.example"]);
    expect(lines).toEqual([
      expect.stringMatching(/^certificate for api\.example already served/),
      expect.stringMatching(/^certificate for \*\.eu\.example already served/),
      "certificate for shop.example, www.shop.example removed: this environment no longer serves these host names",
    ]);
  });

  it("removes an owned certificate the spec no longer lists although its names are still served (an uploaded one removed, or replaced by another)", async () => {
    const { ingress, lines, args } = setup();
    const owned = await applyTls(args({ tls: { certificates: [shop1, api], acmeThumbprint: "" } }));
    lines.length = 0;
    const left = await applyTls(args({ tls: { certificates: [api], acmeThumbprint: "" }, owned }));
    expect(left).toEqual([["api.example"]]);
    expect([...ingress.tls!.served.keys()]).toEqual(["api.example"]);
    expect(lines).toContain("certificate for shop.example, www.shop.example removed: the control plane no longer holds it for these host names");
    // A job without an HTTPS part (nothing said about certificates) leaves what the names still use.
    expect(await applyTls(args({ tls: undefined, owned: left }))).toEqual([["api.example"]]);
    expect([...ingress.tls!.served.keys()]).toEqual(["api.example"]);
  });

  it("never removes a certificate it did not install or that another environment recorded", async () => {
    const { ingress, lines, args } = setup();
    await applyTls(args({ tls: { certificates: [shop1, api], acmeThumbprint: "" } }));
    lines.length = 0;
    const left = await releaseTls({ ...args(), owned: [["api.example"]], ownedElsewhere: (k) => k[0] === "api.example" });
    expect(left).toEqual([]);
    expect(ingress.tls!.callsOf("remove")).toEqual([]);
    expect(ingress.tls!.served.size).toBe(2);
    expect(lines).toEqual(["certificate for api.example kept: another environment on this host uses it"]);
  });

  it("a removal that fails stays recorded, so the next job tries again", async () => {
    const { ingress, lines, args } = setup();
    await applyTls(args({ tls: { certificates: [api], acmeThumbprint: "" } }));
    ingress.tls!.fail("remove", new Error("admin socket gone"));
    expect(await releaseTls({ ...args(), owned: [["api.example"]] })).toEqual([["api.example"]]);
    expect(lines.at(-1)).toBe("certificate for api.example not removed: admin socket gone");
    expect(await releaseTls({ ...args(), owned: [["api.example"]] })).toEqual([]);
    expect(ingress.tls!.served.size).toBe(0);
  });
});
