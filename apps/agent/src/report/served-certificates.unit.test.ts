import fs from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TlsCertificate } from "@slipway/proto";
import { certDir, testCertificate } from "../testing/certs.js";
import { FakeTls } from "../testing/fakes.js";
import { ServedCertificatesReport } from "./served-certificates.js";

describe("the served certificates in heartbeats", () => {
  let dir: string;
  let shop: TlsCertificate;
  let shopRenewed: TlsCertificate;

  beforeAll(async () => {
    dir = certDir();
    [shop, shopRenewed] = await Promise.all([testCertificate(dir, ["shop.example"], "A1"), testCertificate(dir, ["shop.example"], "A2")]);
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("sends the list once it is answered, again when a certificate changes, and after a new stream; never a key", async () => {
    const tls = new FakeTls();
    let now = 0;
    const report = new ServedCertificatesReport(tls, { refreshMs: 60_000, now: () => now });
    // None served yet: an empty list, reported (the control plane learns there is none).
    expect(await report.take()).toEqual({ servedCertificates: [], servedCertificatesReported: true });
    report.answeredBeat();
    expect((await report.take()).servedCertificatesReported).toBe(false);

    await tls.install({ hostnames: ["shop.example"], certPem: shop.certPem, keyPem: shop.keyPem });
    const first = await report.take();
    expect(first.servedCertificatesReported).toBe(true);
    expect(first.servedCertificates).toEqual([{ hostnames: ["shop.example"], serial: "A1", notAfter: expect.any(Date) }]);
    expect(JSON.stringify(first)).not.toContain("PRIVATE KEY");
    // Not answered yet (the beat may be lost): sent again.
    expect((await report.take()).servedCertificatesReported).toBe(true);
    report.answeredBeat();
    expect((await report.take()).servedCertificatesReported).toBe(false);
    expect(tls.callsOf("list")).toHaveLength(2); // listed again only when the store changed

    await tls.install({ hostnames: ["shop.example"], certPem: shopRenewed.certPem, keyPem: shopRenewed.keyPem });
    expect((await report.take()).servedCertificates.map((c) => c.serial)).toEqual(["A2"]);
    report.answeredBeat();
    expect((await report.take()).servedCertificatesReported).toBe(false);

    report.reset();
    expect((await report.take()).servedCertificatesReported).toBe(true);
    report.answeredBeat();

    // Read again after refreshMs even without a change in the store (a restarted proxy); unchanged → not sent.
    const lists = tls.callsOf("list").length;
    now += 60_000;
    expect((await report.take()).servedCertificatesReported).toBe(false);
    expect(tls.callsOf("list")).toHaveLength(lists + 1);
  });

  it("with HTTPS off on the host, nothing is reported", async () => {
    expect(await new ServedCertificatesReport(undefined, { refreshMs: 1 }).take()).toEqual({ servedCertificates: [], servedCertificatesReported: false });
  });
});
