import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { domainCertificate, fixedAddress } from "./certificate.service.js";

describe("certificate state in the API's words", () => {
  it("says none without a row, and the row's state, serial, dates and error otherwise", () => {
    expect(domainCertificate(undefined)).toEqual({ state: "none", serial: null, notAfter: null, lastError: null, nextAttemptAt: null });
    const next = new Date("2026-12-07T00:05:00Z");
    expect(domainCertificate({ status: "failed", serial: null, not_after: null, last_error: "shop.example.com has no DNS record (ENOTFOUND)", next_attempt_at: next })).toEqual({
      state: "failed",
      serial: null,
      notAfter: null,
      lastError: "shop.example.com has no DNS record (ENOTFOUND)",
      nextAttemptAt: "2026-12-07T00:05:00.000Z",
    });
    expect(domainCertificate({ status: "valid", serial: "0A1B", not_after: new Date("2027-03-01T00:00:00Z"), last_error: null, next_attempt_at: next })).toMatchObject({ state: "valid", serial: "0A1B", notAfter: "2027-03-01T00:00:00.000Z" });
  });
});

describe("the pre-check's fixed address", () => {
  it("connects to the given address for a name that does not resolve, keeping the name in Host", async () => {
    let host = "";
    const server = http.createServer((req, res) => {
      host = req.headers.host ?? "";
      res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get({ host: "shop.example.invalid", port, path: "/", agent: false, lookup: fixedAddress("127.0.0.1") }, (res) => {
            let b = "";
            res.on("data", (c: Buffer) => (b += c.toString()));
            res.on("end", () => resolve(b));
          })
          .on("error", reject);
      });
      expect(body).toBe("ok");
      expect(host).toBe(`shop.example.invalid:${port}`);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
