import { execFileSync } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { createLogger } from "@slipway/core";
import { testControlPlane, type TestControlPlane } from "./testing/harness.js";
import { buildApp } from "./app.js";

/** A CA and a server certificate for "localhost", made with openssl. */
function makePki(dir: string): void {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=api-ca", "-keyout", "ca.key", "-out", "ca.crt");
  run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr");
  execFileSync("sh", ["-c", "printf '%s\\n' 'subjectAltName=DNS:localhost' > server.ext && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt"], { cwd: dir, stdio: "ignore" });
}

// Issue 11, finding 7: the REST API had no TLS option at all. SLIPWAY_HTTP_TLS_CERT/_KEY make it HTTPS.
describe("REST API over TLS", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-http-tls-"));
  const read = (f: string) => readFileSync(path.join(dir, f));
  let cp: TestControlPlane;
  let app: FastifyInstance;
  let address = "";
  let port = 0;

  beforeAll(async () => {
    makePki(dir);
    cp = await testControlPlane("pglite");
    const s = cp.services;
    app = await buildApp({ db: cp.database.db, log: createLogger("t", "silent"), auth: s.auth, apps: s.apps, deployments: s.deployments, environments: s.environments, data: s.data, hosts: s.hosts, joinTokenTtlMs: 60_000, readiness: [], https: { cert: read("server.crt"), key: read("server.key") } });
    address = await app.listen({ host: "127.0.0.1", port: 0 });
    port = Number(new URL(address).port);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (lib: typeof http | typeof https, url: string, opts: https.RequestOptions = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = lib.get(url, { ...opts, headers: { authorization: `Bearer ${cp.adminToken}` }, timeout: 5000 }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", reject);
    });

  it("serves the API over HTTPS with the configured certificate", async () => {
    expect(address).toMatch(/^https:\/\//);
    const res = await get(https, `https://localhost:${port}/v1/apps`, { ca: read("ca.crt") });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual([]);
  });

  it("speaks no plain HTTP, and a client that does not trust the CA is refused by its own TLS", async () => {
    await expect(get(http, `http://127.0.0.1:${port}/v1/apps`)).rejects.toThrow();
    await expect(get(https, `https://localhost:${port}/v1/apps`)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });
});
