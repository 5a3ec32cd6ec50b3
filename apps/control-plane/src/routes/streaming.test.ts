import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";

// A followed stream answers its status and headers at once, before its first line:
// clients (the CLI, browsers) wait for them before doing what produces that line.
describe("followed streams", () => {
  let cp: TestControlPlane;
  let base: string;

  beforeAll(async () => {
    cp = await testControlPlane("pglite");
    await cp.app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(cp.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("sends the headers of a followed deployment log that has no line yet", async () => {
    const auth = { authorization: `Bearer ${cp.adminToken}` };
    expect((await cp.app.inject({ method: "POST", url: "/v1/apps", headers: auth, payload: { name: "quiet", repository: "https://x.test/quiet.git" } })).statusCode).toBe(201);
    // No agent: the deployment stays queued and its log empty.
    const d = (await cp.app.inject({ method: "POST", url: "/v1/apps/quiet/environments/test/deployments", headers: auth, payload: {} })).json();
    expect(d.state).toBe("queued");
    const started = Date.now();
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get(`${base}/v1/deployments/${d.id}/log?follow=true`, { headers: auth }, resolve);
      req.on("error", reject);
      req.setTimeout(5_000, () => req.destroy(new Error("no headers within 5 s")));
    });
    const waited = Date.now() - started;
    res.destroy();
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(waited).toBeLessThan(2_000);
  }, 20_000);
});
