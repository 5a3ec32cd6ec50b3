import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { run, type Io } from "../cli.js";
import { certificateText } from "./domains.js";

const NOW = Date.parse("2026-12-06T12:00:00Z");

describe("slipway domains <app> <env>", () => {
  it("says each certificate's state in words: none, pending, valid until, failed with the reason and the next attempt", () => {
    const base = { serial: null, notAfter: null, lastError: null, nextAttemptAt: null };
    expect(certificateText({ ...base, state: "none" }, NOW)).toBe("none (not requested yet)");
    expect(certificateText({ ...base, state: "pending", nextAttemptAt: "2026-12-06T12:00:00Z" }, NOW)).toBe("pending");
    expect(certificateText({ ...base, state: "valid", serial: "ab", notAfter: "2027-03-06T12:00:00.123Z", nextAttemptAt: "2027-02-04T12:00:00Z" }, NOW)).toBe("valid until 2027-03-06T12:00:00Z");
    expect(certificateText({ ...base, state: "failed", lastError: "shop.example has no DNS record (ENOTFOUND): point it at a host of this installation", nextAttemptAt: "2026-12-06T12:04:10Z" }, NOW)).toBe(
      "failed: shop.example has no DNS record (ENOTFOUND): point it at a host of this installation (next attempt in 4 m 10 s)",
    );
    expect(certificateText({ ...base, state: "failed", lastError: "the CA said no", nextAttemptAt: "2026-12-06T11:59:00Z" }, NOW)).toBe("failed: the CA said no (next attempt due now)");
    expect(certificateText({ ...base, state: "valid", notAfter: "2026-12-20T00:00:00Z", lastError: "the CA said no", nextAttemptAt: "2026-12-06T12:00:05Z" }, NOW)).toBe(
      "valid until 2026-12-20T00:00:00Z; renewal failed: the CA said no (next attempt in 5 s)",
    );
  });

  it("prints a table from GET …/domains, or the API's JSON with --json", async () => {
    const domains = [
      {
        hostname: "shop.example.com",
        certificate: { state: "valid", serial: "01", notAfter: "2099-01-01T00:00:00Z", lastError: null, nextAttemptAt: "2098-11-01T00:00:00Z" },
        servedBy: [
          { hostId: "h1", host: "web-1", serial: "1", notAfter: "2099-01-01T00:00:00Z", current: true },
          { hostId: "h2", host: "web-2", serial: "1F", notAfter: "2098-01-01T00:00:00Z", current: false },
        ],
      },
      { hostname: "old.example.com", certificate: { state: "failed", serial: null, notAfter: null, lastError: "old.example.com does not answer the challenge path through Slipway's ingress", nextAttemptAt: "2000-01-01T00:00:00Z" }, servedBy: [] },
    ];
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(`${req.method} ${req.url}`);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ domains }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const o = { stdout: "", stderr: "", env: {}, out: (t: string) => void (o.stdout += t), err: (t: string) => void (o.stderr += t) } satisfies Io & { stdout: string; stderr: string };
      expect(await run(["--url", url, "--token", "t", "domains", "shop", "test"], o), o.stderr).toBe(0);
      expect(o.stdout).toBe(
        [
          "DOMAIN            CERTIFICATE                                                                                                  SERVED BY",
          "shop.example.com  valid until 2099-01-01T00:00:00Z                                                                             web-1 ✓, web-2 old serial 1F",
          "old.example.com   failed: old.example.com does not answer the challenge path through Slipway's ingress (next attempt due now)  -",
          "",
        ].join("\n"),
      );
      expect(paths).toEqual(["GET /v1/apps/shop/environments/test/domains"]);
      const j = { stdout: "", stderr: "", env: {}, out: (t: string) => void (j.stdout += t), err: (t: string) => void (j.stderr += t) } satisfies Io & { stdout: string; stderr: string };
      expect(await run(["--url", url, "--token", "t", "domains", "shop", "test", "--json"], j)).toBe(0);
      expect(JSON.parse(j.stdout)).toEqual(domains);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
