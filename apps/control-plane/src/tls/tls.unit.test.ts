import { generateKeyPairSync } from "node:crypto";
import * as acme from "acme-client";
import { describe, expect, it } from "vitest";
import { jwkThumbprint } from "./account.js";
import { acmeSettingsFromEnv, LETS_ENCRYPT_PRODUCTION } from "./acme-settings.js";
import { describeAcmeError } from "./issuer.js";

describe("ACME account thumbprint (RFC 7638)", () => {
  it("hashes the required members in lexicographic order, whatever the JWK's order or extra members", () => {
    // Expected: base64url(sha256('{"crv":"P-256","kty":"EC","x":"…","y":"…"}')), computed apart.
    const jwk = { y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", kty: "EC", crv: "P-256", kid: "ignored", use: "sig" };
    expect(jwkThumbprint(jwk)).toBe("oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
  });

  it("agrees with the JWK acme-client signs with, for EC and RSA keys", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" });
    const fromAcme = acme.crypto.getJwk(ec) as unknown as Record<string, unknown>;
    expect(jwkThumbprint(fromAcme)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(jwkThumbprint({ ...fromAcme, extra: 1 })).toBe(jwkThumbprint(fromAcme));
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" });
    expect(jwkThumbprint(acme.crypto.getJwk(rsa) as unknown as Record<string, unknown>)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(() => jwkThumbprint({ kty: "oct", k: "x" })).toThrow(/unsupported/);
  });
});

describe("ACME settings", () => {
  it("defaults to Let's Encrypt production, without a contact", () => {
    expect(acmeSettingsFromEnv({})).toEqual({ directoryUrl: LETS_ENCRYPT_PRODUCTION });
    expect(LETS_ENCRYPT_PRODUCTION).toBe("https://acme-v02.api.letsencrypt.org/directory");
  });
  it("takes the directory and the contact, and refuses what a CA would not take", () => {
    expect(acmeSettingsFromEnv({ SLIPWAY_ACME_DIRECTORY: "https://ca.example/dir", SLIPWAY_ACME_EMAIL: "ops@example.com" })).toEqual({ directoryUrl: "https://ca.example/dir", email: "ops@example.com" });
    expect(() => acmeSettingsFromEnv({ SLIPWAY_ACME_DIRECTORY: "http://ca.example/dir" })).toThrow(/https/);
    expect(() => acmeSettingsFromEnv({ SLIPWAY_ACME_DIRECTORY: "not a url" })).toThrow(/not a URL/);
    expect(() => acmeSettingsFromEnv({ SLIPWAY_ACME_EMAIL: "ops" })).toThrow(/e-mail/);
  });
});

describe("CA errors in users' words", () => {
  it("names the unreachable CA, and passes the CA's own problem detail through", () => {
    expect(describeAcmeError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED", config: { url: "https://ca.example:14000/dir" } }))).toBe("it could not be reached at ca.example:14000 (ECONNREFUSED); the next attempt follows the backoff");
    expect(describeAcmeError(new TypeError("Cannot read properties of undefined (reading 'config')"), "https://ca.example/dir")).toBe("it could not be reached at ca.example (no response after retries); the next attempt follows the backoff");
    expect(describeAcmeError(Object.assign(new Error("self-signed"), { code: "SELF_SIGNED_CERT_IN_CHAIN" }))).toBe("its TLS certificate is not trusted (SELF_SIGNED_CERT_IN_CHAIN)");
    expect(describeAcmeError(new Error("Error creating new order :: too many certificates already issued for: example.com"))).toBe("Error creating new order :: too many certificates already issued for: example.com");
  });
});
