import { createPrivateKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidRequestError } from "@slipway/core";
import { checkUpload, chooseCertificates, nameCovers, servedOnce, type Candidate } from "./uploaded.js";
import { createTestCa, type TestCa } from "./test-ca.testing.js";

/** The error checkUpload throws, or a failure when it accepts. */
function refusal(cert: string, key: string, now: Date): InvalidRequestError {
  try {
    checkUpload(cert, key, now);
  } catch (err) {
    if (err instanceof InvalidRequestError) return err;
    throw err;
  }
  throw new Error("accepted, but should have been refused");
}

describe("an uploaded certificate is checked before anything is stored", () => {
  let ca: TestCa;
  // A minute after the CA was made: its leaves' notBefore is the second they were issued in.
  let now: Date;
  beforeAll(() => {
    ca = createTestCa();
    now = new Date(Date.now() + 60_000);
  });
  afterAll(() => ca?.remove());

  it("accepts an ECDSA and an RSA certificate with their chain: names from the subjectAltName (lower-case, sorted, wildcards kept), serial, validity", () => {
    const ec = ca.issue({ dns: ["*.Apps.Example.test", "apps.example.test"], key: "ec", serial: "0ABC01" });
    const checked = checkUpload(ec.chainPem, ec.keyPem, now);
    expect(checked.hostnames).toEqual(["*.apps.example.test", "apps.example.test"]);
    expect(checked.keyType).toBe("ec");
    expect(checked.serial).toBe(new X509Certificate(ec.certPem).serialNumber);
    expect(checked.notAfter.getTime()).toBeGreaterThan(now.getTime() + 86_400_000);
    // The chain as stored: leaf then intermediate, re-encoded; the key as PKCS#8 for the same public key.
    const blocks = checked.chainPem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
    expect(blocks).toHaveLength(2);
    expect(new X509Certificate(checked.chainPem).serialNumber).toBe(checked.serial);
    expect(checked.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(new X509Certificate(ec.certPem).checkPrivateKey(createPrivateKey(checked.keyPem))).toBe(true);

    const rsa = ca.issue({ dns: ["shop.example.com"], key: "rsa" });
    // Text around the blocks (as `openssl pkcs12` writes it) is dropped.
    const rsaChecked = checkUpload(`Bag Attributes\n    friendlyName: shop\n${rsa.chainPem}`, rsa.keyPem, now);
    expect(rsaChecked).toMatchObject({ hostnames: ["shop.example.com"], keyType: "rsa" });
    expect(rsaChecked.chainPem).not.toContain("Bag Attributes");
  });

  it("refuses with a 400 naming the field: not PEM, unreadable, encrypted or Ed25519 key, key of another certificate, chain out of order, expired, not yet valid, no DNS name, a name that is none", () => {
    const good = ca.issue({ dns: ["shop.example.com"] });
    const other = ca.issue({ dns: ["other.example.com"] });
    const noNames = ca.issue({ cn: "shop.example.com" });
    const badName = ca.issue({ dns: ["under_score.example.com"] });
    const encrypted = createPrivateKey(good.keyPem).export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" }).toString();
    const ed25519 = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const leaf = new X509Certificate(good.certPem);
    const cases: Array<[string, string, string, Date, "certificate" | "privateKey", RegExp]> = [
      ["not PEM", "hello", good.keyPem, now, "certificate", /not a PEM certificate/],
      ["a block that is no certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", good.keyPem, now, "certificate", /block 1 of 1 is not a valid X\.509 certificate/],
      ["a key that is not PEM", good.chainPem, "nope", now, "privateKey", /not a PEM private key/],
      ["a PEM block that is no key", good.chainPem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", now, "privateKey", /not a private key that can be read/],
      ["an encrypted key", good.chainPem, encrypted, now, "privateKey", /encrypted: upload it without a passphrase/],
      ["an Ed25519 key", good.chainPem, ed25519, now, "privateKey", /ed25519 key: only RSA and ECDSA/],
      ["the key of another certificate", good.chainPem, other.keyPem, now, "privateKey", /does not match the certificate/],
      ["the intermediate first", ca.intermediatePem + good.certPem, good.keyPem, now, "privateKey", /belongs to certificate 2 of the chain, not the first: put the leaf/],
      ["a root that did not issue the leaf", good.certPem + ca.rootPem, good.keyPem, now, "certificate", /chain is out of order: certificate 2 did not issue certificate 1/],
      ["expired", good.chainPem, good.keyPem, new Date(new Date(leaf.validTo).getTime() + 1000), "certificate", /^expired on \d{4}-/],
      ["not valid yet", good.chainPem, good.keyPem, new Date(new Date(leaf.validFrom).getTime() - 3_600_000), "certificate", /not valid yet: valid from/],
      ["no DNS name", noNames.chainPem, noNames.keyPem, now, "certificate", /no DNS name in its subjectAltName/],
      ["a name that is not a host name", badName.chainPem, badName.keyPem, now, "certificate", /'under_score\.example\.com' in its subjectAltName is not a host name/],
    ];
    for (const [what, cert, key, at, field, message] of cases) {
      const err = refusal(cert, key, at);
      expect(err.httpStatus, what).toBe(400);
      expect(Object.keys(err.details as object), what).toEqual([field]);
      expect((err.details as Record<string, string>)[field], what).toMatch(message);
      expect(err.message, what).toMatch(new RegExp(`^${field}: `));
    }
  });
});

describe("which stored certificate serves each host name", () => {
  const now = new Date("2026-12-07T00:00:00Z");
  const later = new Date("2027-01-01T00:00:00Z");
  const c = (id: string, source: "acme" | "uploaded", hostnames: string[], notAfter: Date | null = later, status: Candidate["status"] = "valid"): Candidate => ({ id, source, hostnames, status, hasChain: notAfter !== null, notAfter });

  it("a wildcard covers exactly one label", () => {
    expect(nameCovers("*.example.test", "shop-test.example.test")).toBe(true);
    expect(nameCovers("*.example.test", "a.b.example.test")).toBe(false);
    expect(nameCovers("*.example.test", "example.test")).toBe(false);
    expect(nameCovers("Shop.Example.com", "shop.example.com")).toBe(true);
  });

  it("a valid uploaded certificate wins over the ACME one of a name; an expired, pending or failed one serves nothing; one certificate per name", () => {
    const acme = c("acme-shop", "acme", ["shop.example.com"]);
    const wildcard = c("up-wild", "uploaded", ["*.example.com", "example.com"]);
    const chosen = chooseCertificates(["shop.example.com", "Example.com.", "blog.example.org"], [acme, wildcard], now);
    expect(Object.fromEntries([...chosen].map(([n, x]) => [n, x.id]))).toEqual({ "shop.example.com": "up-wild", "example.com": "up-wild" });

    const expired = c("up-old", "uploaded", ["*.example.com"], new Date("2026-12-01T00:00:00Z"));
    const failed = c("acme-failed", "acme", ["blog.example.org"], null, "failed");
    expect(Object.fromEntries([...chooseCertificates(["shop.example.com", "blog.example.org"], [expired, acme, failed], now)].map(([n, x]) => [n, x.id]))).toEqual({ "shop.example.com": "acme-shop" });

    // Two uploads overlap: the one covering more of the names serves them all, then the one valid longest.
    const single = c("up-single", "uploaded", ["shop.example.com"], new Date("2028-01-01T00:00:00Z"));
    const both = chooseCertificates(["shop.example.com", "example.com"], [single, wildcard], now);
    expect(new Set([...both.values()].map((x) => x.id))).toEqual(new Set(["up-wild"]));
    expect(chooseCertificates(["shop.example.com"], [wildcard, single], now).get("shop.example.com")!.id).toBe("up-single");
  });

  it("among ACME certificates, the name's own first, then a wildcard (DNS-01) covering it; an upload still wins", () => {
    const own = c("acme-own", "acme", ["shop.apps.example.test"], new Date("2026-12-20T00:00:00Z"));
    const wild = c("acme-wild", "acme", ["*.apps.example.test"]);
    const ids = (m: Map<string, Candidate>) => Object.fromEntries([...m].map(([n, x]) => [n, x.id]));
    expect(ids(chooseCertificates(["shop.apps.example.test", "blog.apps.example.test", "a.b.apps.example.test"], [wild, own], now))).toEqual({ "shop.apps.example.test": "acme-own", "blog.apps.example.test": "acme-wild" });
    const upload = c("up", "uploaded", ["blog.apps.example.test"]);
    expect(ids(chooseCertificates(["shop.apps.example.test", "blog.apps.example.test"], [wild, own, upload], now))).toEqual({ "shop.apps.example.test": "acme-own", "blog.apps.example.test": "up" });
  });

  it("reports each name's expiry once, for the certificate served", () => {
    const rows = [
      { hostnames: ["shop.example.com"], not_after: later, source: "acme" as const },
      { hostnames: ["shop.example.com", "example.com"], not_after: new Date("2026-12-20T00:00:00Z"), source: "uploaded" as const },
      { hostnames: ["blog.example.org"], not_after: later, source: "acme" as const },
    ];
    expect(servedOnce(rows, now)).toEqual([
      { hostnames: ["shop.example.com", "example.com"], not_after: new Date("2026-12-20T00:00:00Z"), source: "uploaded" },
      { hostnames: ["blog.example.org"], not_after: later, source: "acme" },
    ]);
  });
});
