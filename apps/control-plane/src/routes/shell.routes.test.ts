import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { SHELL_MEDIA_TYPE, ShellFrame, ShellFrameReader, createLogger, encodeShellFrame, type ShellRequest } from "@slipway/core";
import { setEnvironmentRow, testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { buildApp } from "../app.js";
import { getAppByName, getEnvironment } from "../repositories/apps.repository.js";
import type { ShellRelay, ShellSession } from "../bus/shell-relay.js";

// Issue 11, finding 7: a shell's command travelled in the query string, and so into the request
// log of the control plane (and of any proxy in front of it). It travels in the body now.
describe("POST /v1/apps/{app}/environments/{env}/shell", () => {
  let cp: TestControlPlane;
  let app: FastifyInstance;
  let base = "";
  const logLines: string[] = [];
  const opened: Array<Omit<ShellRequest, "inbox" | "issuedAt">> = [];
  const forwarded: Buffer[] = [];

  // The NATS side is not under test: a relay that runs every command at once with exit status 0.
  const relay = {
    open: async (_host: unknown, req: Omit<ShellRequest, "inbox" | "issuedAt">, onFrame: (type: number, payload: Buffer) => void): Promise<ShellSession> => {
      opened.push(req);
      onFrame(ShellFrame.Started, Buffer.from(JSON.stringify({ container: "c1" })));
      onFrame(ShellFrame.Exit, Buffer.from(JSON.stringify({ code: 0 })));
      return { container: "c1", send: (b) => void forwarded.push(Buffer.from(b)), close: () => undefined, done: Promise.resolve() };
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
    // The request log as it is written: every line the HTTP server logs.
    const log = createLogger("t", "info", { write: (line: string) => void logLines.push(line) });
    const s = cp.services;
    app = await buildApp({ db: cp.database.db, log, auth: s.auth, apps: s.apps, deployments: s.deployments, environments: s.environments, data: s.data, hosts: s.hosts, shells: relay, joinTokenTtlMs: 60_000, readiness: [] });
    base = await app.listen({ host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await cp?.close();
  });

  const post = (path: string, body: Buffer) =>
    new Promise<{ status: number; frames: Array<{ type: number; payload: string }>; text: string }>((resolve, reject) => {
      const url = new URL(path, base);
      const req = http.request(url, { method: "POST", headers: { authorization: `Bearer ${cp.adminToken}`, "content-type": SHELL_MEDIA_TYPE } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const all = Buffer.concat(chunks);
          const frames = res.statusCode === 200 ? new ShellFrameReader().push(all).map((f) => ({ type: f.type, payload: f.payload.toString("utf8") })) : [];
          resolve({ status: res.statusCode ?? 0, frames, text: all.toString("utf8") });
        });
      });
      req.on("error", reject);
      req.end(body);
    });

  it("takes the command from the body's Open frame; the URL and the request log never hold it", async () => {
    const command = ["psql", "-c", "select card_number from payments"];
    const stdin = encodeShellFrame(ShellFrame.Stdin, "typed ahead\n");
    const res = await post("/v1/apps/web/environments/test/shell", Buffer.concat([encodeShellFrame(ShellFrame.Open, JSON.stringify({ command, tty: true, rows: 30, cols: 100 })), stdin]));
    expect(res.status).toBe(200);
    expect(res.frames.map((f) => f.type)).toEqual([ShellFrame.Started, ShellFrame.Exit]);
    expect(opened.at(-1)).toEqual({ app: "web", environment: "test", command, tty: true, rows: 30, cols: 100 });
    // Input sent along with the Open frame reaches the agent; the Open frame itself does not.
    expect(Buffer.concat(forwarded).equals(stdin)).toBe(true);
    const requestLines = logLines.filter((l) => l.includes("/shell"));
    expect(requestLines.length).toBeGreaterThan(0);
    expect(logLines.join("\n")).not.toContain("card_number");
    // The activity feed keeps who ran what: that is the audit trail, behind authentication.
    const activity = (await cp.app.inject({ method: "GET", url: "/v1/activity?app=web", headers: { authorization: `Bearer ${cp.adminToken}` } })).json();
    expect(JSON.stringify(activity)).toContain("card_number");
  });

  it("opens the default shell with an empty Open frame", async () => {
    const res = await post("/v1/apps/web/environments/test/shell", encodeShellFrame(ShellFrame.Open, "{}"));
    expect(res.status).toBe(200);
    expect(opened.at(-1)).toEqual({ app: "web", environment: "test", command: [], tty: false, rows: 0, cols: 0 });
  });

  it("refuses a command in the query string, a body without an Open frame, and bad options", async () => {
    const open = encodeShellFrame(ShellFrame.Open, "{}");
    const count = opened.length;
    expect((await post(`/v1/apps/web/environments/test/shell?command=${encodeURIComponent('["ls"]')}`, open)).status).toBe(400);
    const noOpen = await post("/v1/apps/web/environments/test/shell", encodeShellFrame(ShellFrame.Stdin, "ls\n"));
    expect(noOpen.status).toBe(400);
    expect(noOpen.text).toContain("Open frame");
    expect((await post("/v1/apps/web/environments/test/shell", Buffer.alloc(0))).status).toBe(400);
    expect((await post("/v1/apps/web/environments/test/shell", encodeShellFrame(ShellFrame.Open, "not json"))).status).toBe(400);
    expect((await post("/v1/apps/web/environments/test/shell", encodeShellFrame(ShellFrame.Open, JSON.stringify({ command: "ls" })))).status).toBe(400);
    expect((await post("/v1/apps/web/environments/test/shell", encodeShellFrame(ShellFrame.Open, JSON.stringify({ command: [] })))).status).toBe(400);
    expect((await post("/v1/apps/web/environments/test/shell", encodeShellFrame(ShellFrame.Open, JSON.stringify({ rows: 5000 })))).status).toBe(400);
    expect(opened.length).toBe(count);
  });
});
