import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, type Server } from "@grpc/grpc-js";
import { AgentServiceClient, type RegisterResponse } from "@slipway/proto";
import { createLogger } from "@slipway/core";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { agentServiceImpl, startGrpcServer } from "./agent.grpc.js";
import type { JobBus } from "../bus/job-bus.js";

const noBus: JobBus = { ensureStream: async () => {}, ensureConsumer: async () => {}, deleteConsumer: async () => {}, publish: async () => {}, close: async () => {} };

/** A CA, a server certificate for "localhost" and a client certificate, made with openssl. */
function makePki(dir: string, name: string): void {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${name}-ca`, "-keyout", `${name}-ca.key`, "-out", `${name}-ca.crt`);
  for (const [who, cn, ext] of [["server", "localhost", "subjectAltName=DNS:localhost"], ["client", "agent-1", "extendedKeyUsage=clientAuth"]] as const) {
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${cn}`, "-keyout", `${name}-${who}.key`, "-out", `${name}-${who}.csr`);
    execFileSync("sh", ["-c", `printf '%s\\n' '${ext}' > ${name}-${who}.ext && openssl x509 -req -in ${name}-${who}.csr -CA ${name}-ca.crt -CAkey ${name}-ca.key -CAcreateserial -days 2 -extfile ${name}-${who}.ext -out ${name}-${who}.crt`], { cwd: dir, stdio: "ignore" });
  }
}

// gRPC with mutual TLS, the documented option: agents must present a certificate signed by the configured CA.
describe("gRPC with mTLS", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-mtls-"));
  let cp: TestControlPlane;
  let server: Server;
  let port = 0;
  const read = (f: string) => readFileSync(path.join(dir, f));
  const register = (client: AgentServiceClient, joinToken: string) =>
    new Promise<RegisterResponse>((resolve, reject) => client.register({ joinToken, hostname: "tls-host", labels: {}, version: "t" }, { deadline: new Date(Date.now() + 5000) }, (err, res) => (err ? reject(err) : resolve(res!))));
  const joinToken = async () => (await cp.app.inject({ method: "POST", url: "/v1/join-tokens", headers: { authorization: `Bearer ${cp.adminToken}` } })).json().token as string;

  beforeAll(async () => {
    makePki(dir, "main");
    makePki(dir, "other");
    cp = await testControlPlane("pglite");
    const started = await startGrpcServer(
      agentServiceImpl({ hosts: cp.services.hosts, reports: cp.services.reports, bus: noBus, log: createLogger("t", "silent"), natsPublicUrl: () => "nats://127.0.0.1:4222", heartbeatIntervalMs: 5000, unseal: (v) => cp.services.environments.unseal(v), repositoryUrl: (r, c) => cp.services.apps.repositoryUrlForGit(r, c), dataSpec: (s) => cp.services.data.dataSpec(s) }),
      { host: "127.0.0.1", port: 0, tls: { cert: read("main-server.crt"), key: read("main-server.key"), ca: read("main-ca.crt") } },
    );
    server = started.server;
    port = started.port;
  }, 60_000);
  afterAll(async () => {
    server?.forceShutdown();
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts an agent with a certificate from the configured CA", async () => {
    const client = new AgentServiceClient(`localhost:${port}`, credentials.createSsl(read("main-ca.crt"), read("main-client.key"), read("main-client.crt")));
    const res = await register(client, await joinToken());
    expect(res.hostId).toMatch(/[0-9a-f-]{36}/);
    client.close();
  });

  it("refuses an agent without a client certificate, or with one from another CA, before any call is served", async () => {
    const token = await joinToken();
    const none = new AgentServiceClient(`localhost:${port}`, credentials.createSsl(read("main-ca.crt")));
    await expect(register(none, token)).rejects.toThrow();
    const foreign = new AgentServiceClient(`localhost:${port}`, credentials.createSsl(read("main-ca.crt"), read("other-client.key"), read("other-client.crt")));
    await expect(register(foreign, token)).rejects.toThrow();
    const plain = new AgentServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    await expect(register(plain, token)).rejects.toThrow();
    for (const c of [none, foreign, plain]) c.close();
    // The join token was not consumed by any refused attempt.
    const ok = new AgentServiceClient(`localhost:${port}`, credentials.createSsl(read("main-ca.crt"), read("main-client.key"), read("main-client.crt")));
    expect((await register(ok, token)).hostId).toBeTruthy();
    ok.close();
  });
});
