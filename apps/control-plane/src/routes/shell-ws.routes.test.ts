import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { ShellFrame, ShellFrameReader, createLogger, encodeShellFrame, type ShellRequest } from "@slipway/core";
import { setEnvironmentRow, testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { buildApp } from "../app.js";
import { getAppByName, getEnvironment } from "../repositories/apps.repository.js";
import type { ShellRelay, ShellSession } from "../bus/shell-relay.js";

/** What the test needs of ws's client socket (injectWS hands one over). */
interface ClientSocket {
  send(data: Buffer): void;
  close(): void;
  on(event: "message", l: (data: Buffer) => void): void;
  on(event: "close", l: (code: number) => void): void;
  once(event: "open", l: () => void): void;
  once(event: "error", l: (err: Error) => void): void;
}
// ws (the server side of @fastify/websocket) as the client: it can send any Origin and Cookie, as an attacker's script cannot but its browser does.
const WebSocket = createRequire(import.meta.url)("ws") as new (url: string, opts: { headers: Record<string, string> }) => ClientSocket;

// The terminal's WebSocket (issue 14): a browser sends the session cookie with a WebSocket
// handshake whatever page opened it, and no CORS check applies; so another site's page could
// open a shell with an admin's session (cross-site WebSocket hijacking) unless the Origin is checked.
describe("GET /v1/apps/{app}/environments/{env}/shell/ws", () => {
  let cp: TestControlPlane;
  let app: FastifyInstance;
  let cookie = "";
  let viewer = "";
  let base = "";
  const opened: Array<Omit<ShellRequest, "inbox" | "issuedAt">> = [];
  const forwarded: Buffer[] = [];

  // The NATS side is not under test: a relay whose command echoes its input's first frame and exits 0 on StdinEnd.
  const relay = {
    open: async (_host: unknown, req: Omit<ShellRequest, "inbox" | "issuedAt">, onFrame: (type: number, payload: Buffer) => void): Promise<ShellSession> => {
      opened.push(req);
      onFrame(ShellFrame.Started, Buffer.from(JSON.stringify({ container: "c1" })));
      let settle!: () => void;
      const done = new Promise<void>((r) => (settle = r));
      const reader = new ShellFrameReader();
      return {
        container: "c1",
        send: (b) => {
          forwarded.push(Buffer.from(b));
          for (const f of reader.push(b)) {
            if (f.type === ShellFrame.Stdin) onFrame(ShellFrame.Stdout, f.payload);
            if (f.type === ShellFrame.StdinEnd) {
              onFrame(ShellFrame.Exit, Buffer.from(JSON.stringify({ code: 0 })));
              settle();
            }
          }
        },
        close: () => settle(),
        done,
      };
    },
  } as unknown as ShellRelay;

  beforeAll(async () => {
    cp = await testControlPlane("pglite");
    const admin = { authorization: `Bearer ${cp.adminToken}` };
    await cp.app.inject({ method: "POST", url: "/v1/apps", headers: admin, payload: { name: "web", repository: "https://x.test/r.git" } });
    const joinToken = (await cp.app.inject({ method: "POST", url: "/v1/join-tokens", headers: admin })).json().token as string;
    const { hostId } = await cp.services.hosts.register({ joinToken, hostname: "h1", labels: {}, capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 }, version: "t" });
    const row = await getAppByName(cp.database.db, "web");
    await setEnvironmentRow(cp.database.db, (await getEnvironment(cp.database.db, row, "test")).id, { state: "running", host_id: hostId });
    viewer = (await cp.app.inject({ method: "POST", url: "/v1/tokens", headers: admin, payload: { name: "v", role: "viewer", apps: ["web"] } })).json().token as string;
    const s = cp.services;
    app = await buildApp({ db: cp.database.db, log: createLogger("t", "silent"), auth: s.auth, apps: s.apps, deployments: s.deployments, environments: s.environments, data: s.data, hosts: s.hosts, shells: relay, joinTokenTtlMs: 60_000, readiness: [] });
    base = (await app.listen({ host: "127.0.0.1", port: 0 })).replace(/^http/, "ws");
    const signIn = await app.inject({ method: "POST", url: "/v1/sessions", headers: { host: "cp.test" }, payload: { token: cp.adminToken } });
    expect(signIn.statusCode).toBe(201);
    cookie = String(signIn.headers["set-cookie"]).split(";")[0]!;
  });
  afterAll(async () => {
    await app?.close();
    await cp?.close();
  });

  // The API's own origin is the Host a request comes to: cp.test here.
  const connect = (path: string, headers: Record<string, string>) =>
    new Promise<ClientSocket>((resolve, reject) => {
      const ws = new WebSocket(base + path, { headers: { host: "cp.test", ...headers } });
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    });

  /** Sends `frames`, collects the server's frames until it closes. */
  const session = async (path: string, frames: Buffer[]) => {
    const ws = await connect(path, { origin: "http://cp.test", cookie });
    const got: Array<{ type: number; payload: string }> = [];
    const reader = new ShellFrameReader();
    const closed = new Promise<number>((resolve) => ws.on("close", resolve));
    ws.on("message", (d) => got.push(...reader.push(d).map((f) => ({ type: f.type, payload: f.payload.toString("utf8") }))));
    for (const f of frames) ws.send(f);
    return { code: await closed, frames: got };
  };

  it("refuses a handshake with another site's Origin, even with a valid session cookie (403 before any upgrade)", async () => {
    await expect(connect("/v1/apps/web/environments/test/shell/ws", { origin: "https://evil.example", cookie })).rejects.toThrow(/Unexpected server response: 403/);
    await expect(connect("/v1/apps/web/environments/test/shell/ws", { origin: "http://cp.test.evil.example", cookie })).rejects.toThrow(/403/);
    // A bearer token does not excuse a foreign Origin (only non-browser clients send no Origin).
    await expect(connect("/v1/apps/web/environments/test/shell/ws", { origin: "https://evil.example", authorization: `Bearer ${cp.adminToken}` })).rejects.toThrow(/403/);
    // A handshake with the cookie and no Origin at all is refused too (browsers always send one).
    await expect(connect("/v1/apps/web/environments/test/shell/ws", { cookie })).rejects.toThrow(/403/);
    expect(opened).toHaveLength(0);
  });

  it("answers a request without Upgrade with 426 and the API's error body", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/apps/web/environments/test/shell/ws", headers: { authorization: `Bearer ${cp.adminToken}` } });
    expect(res.statusCode).toBe(426);
    expect(res.json().error.message).toMatch(/this route is a WebSocket/);
  });

  it("refuses a viewer (a shell changes things) and a request without credentials", async () => {
    await expect(connect("/v1/apps/web/environments/test/shell/ws", { authorization: `Bearer ${viewer}` })).rejects.toThrow(/403/);
    await expect(connect("/v1/apps/web/environments/test/shell/ws", {})).rejects.toThrow(/401/);
    expect(opened).toHaveLength(0);
  });

  it("runs the session from its own origin with the cookie: Open's options reach the agent, input and output both ways, Exit closes with 1000; the activity feed has it", async () => {
    const open = encodeShellFrame(ShellFrame.Open, JSON.stringify({ tty: true, rows: 30, cols: 100 }));
    const r = await session("/v1/apps/web/environments/test/shell/ws", [open, encodeShellFrame(ShellFrame.Stdin, "echo hi\n"), encodeShellFrame(ShellFrame.StdinEnd)]);
    expect(r.frames.map((f) => f.type)).toEqual([ShellFrame.Started, ShellFrame.Stdout, ShellFrame.Exit]);
    expect(r.frames[1]!.payload).toBe("echo hi\n");
    expect(r.code).toBe(1000);
    expect(opened.at(-1)).toEqual({ app: "web", environment: "test", command: [], tty: true, rows: 30, cols: 100 });
    const activity = (await app.inject({ method: "GET", url: "/v1/activity?app=web", headers: { authorization: `Bearer ${cp.adminToken}` } })).json() as Array<{ action: string }>;
    expect(JSON.stringify(activity)).toContain("shell.opened");
  });

  it("says why after the upgrade when the environment is not running or the Open frame is bad (Error frame, close 4000 + status)", async () => {
    const notRunning = await session("/v1/apps/web/environments/live/shell/ws", [encodeShellFrame(ShellFrame.Open, "{}")]);
    expect(notRunning.frames).toEqual([{ type: ShellFrame.Error, payload: "environment web/live is not_deployed: a shell needs a running container" }]);
    expect(notRunning.code).toBe(4409);
    const bad = await session("/v1/apps/web/environments/test/shell/ws", [encodeShellFrame(ShellFrame.Stdin, "ls\n")]);
    expect(bad.frames[0]!.payload).toMatch(/must be an Open frame/);
    expect(bad.code).toBe(4400);
    const badOption = await session("/v1/apps/web/environments/test/shell/ws", [encodeShellFrame(ShellFrame.Open, JSON.stringify({ rows: -1 }))]);
    expect(badOption.frames[0]!.payload).toBe("rows must be an integer from 0 to 1000");
    expect(badOption.code).toBe(4400);
  });
});
