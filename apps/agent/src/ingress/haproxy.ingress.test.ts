// Integration tests against the real /usr/sbin/haproxy and real node:http
// servers, all on 127.0.0.1. Tests run in order and share one proxy.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reservePort } from "../testing/ports.js";
import { HaproxyRuntime } from "./haproxy-runtime.js";
import { HaproxyIngress } from "./haproxy.ingress.js";
import type { BackendTarget } from "./ingress.js";

interface Upstream {
  target: BackendTarget;
  close(): Promise<void>;
}

const upstreams = new Set<Upstream>();
const loads = new Set<{ stop(): Promise<LoadResult> }>();

/** A node:http server answering `body`, standing in for a container. */
async function startUpstream(id: string, body: string): Promise<Upstream> {
  const server = http.createServer((_req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const up: Upstream = {
    target: { id, host: "127.0.0.1", port },
    close: async () => {
      upstreams.delete(up);
      // Abrupt, like stopping a container: idle keep-alive connections are cut too.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
  upstreams.add(up);
  return up;
}

interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function get(port: number, host: string, opts: { agent?: http.Agent; auth?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", agent: opts.agent ?? false, auth: opts.auth, headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on("error", reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
  });
}

interface LoadResult {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  /** The last body each client received. */
  lastBodies: string[];
}

/** `clients` keep-alive clients requesting back to back until stop() or maxMs. */
function startLoad(port: number, host: string, clients = 12, maxMs = 10_000): { stop(): Promise<LoadResult> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const result: LoadResult = { ok: 0, failed: 0, errors: {}, lastBodies: new Array<string>(clients).fill("") };
  const deadline = Date.now() + maxMs;
  let stopped = false;
  const loops = Array.from({ length: clients }, async (_, i) => {
    while (!stopped && Date.now() < deadline) {
      try {
        const r = await get(port, host, { agent });
        if (r.status === 200) {
          result.ok++;
          result.lastBodies[i] = r.body;
        } else {
          result.failed++;
          result.errors[`HTTP ${r.status}`] = (result.errors[`HTTP ${r.status}`] ?? 0) + 1;
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        result.failed++;
        result.errors[code] = (result.errors[code] ?? 0) + 1;
      }
    }
  });
  const load = {
    stop: async () => {
      loads.delete(load);
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
      return result;
    },
  };
  loads.add(load);
  return load;
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
}

const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });

describe("HaproxyIngress against a real haproxy", () => {
  const SHOP = "shop--test";
  const SHOP_HOST = "shop-test.localhost";
  let dir: string;
  let port: number;
  let ingress: HaproxyIngress;
  let adopter: HaproxyIngress | undefined;
  let restarted: HaproxyIngress | undefined;
  let runtime: HaproxyRuntime;
  let live: Upstream | undefined;
  let liveBody = "";
  let blog: Upstream | undefined;
  let recovered = 0;

  // Tests share the proxy and build on each other's routing. Each one that
  // needs a backend re-establishes it first (a no-op when the previous test
  // left it in place), so one failure does not fail every later test.
  async function shopLive(): Promise<Upstream> {
    await ingress.ensureBackend({ name: SHOP, hostnames: [SHOP_HOST], maxServers: 2 });
    const current = await ingress.current(SHOP);
    if (live && current.length === 1 && current[0]!.id === live.target.id) return live;
    const up = await startUpstream(`recovered-${++recovered}`, "recovered");
    await ingress.switchTraffic(SHOP, [up.target]);
    await live?.close();
    live = up;
    liveBody = "recovered";
    return up;
  }

  async function blogLive(hostnames: string[]): Promise<void> {
    await ingress.ensureBackend({ name: "blog--live", hostnames, maxServers: 2 });
    if (blog && (await ingress.current("blog--live")).length === 1) return;
    blog = await startUpstream(`blog-${++recovered}`, "blog");
    await ingress.switchTraffic("blog--live", [blog.target]);
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "slipway-haproxy-"));
    port = await reservePort();
    ingress = new HaproxyIngress({ dir, httpPort: port, logger });
    runtime = new HaproxyRuntime(path.join(dir, "admin.sock"), path.join(dir, "master.sock"));
    await ingress.start();
  });

  afterAll(async () => {
    await Promise.all([...loads].map((l) => l.stop()));
    await restarted?.stop().catch(() => undefined);
    await adopter?.stop().catch(() => undefined);
    await ingress?.stop().catch(() => undefined);
    await Promise.all([...upstreams].map((u) => u.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("routes a host name to its backend and answers 404 for unknown hosts", async () => {
    const v1 = await startUpstream("v1", "v1");
    const v2 = await startUpstream("v2", "v2");
    await ingress.ensureBackend({ name: SHOP, hostnames: [SHOP_HOST], maxServers: 2 });
    expect(await ingress.switchTraffic(SHOP, [v1.target])).toEqual([]);
    live = v1;
    liveBody = "v1";

    expect(await get(port, SHOP_HOST)).toMatchObject({ status: 200, body: "v1" });
    expect(await get(port, "SHOP-TEST.localhost:" + port)).toMatchObject({ status: 200, body: "v1" });
    const unknown = await get(port, "nobody.localhost");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toBe("no environment is served at this host name");
    expect(await ingress.current(SHOP)).toEqual([v1.target]);
    const stats = await ingress.stats(SHOP);
    expect(stats?.requests).toBeGreaterThanOrEqual(2);
    expect(stats?.secondsSinceLastRequest).toBeLessThanOrEqual(1);
    expect(stats?.sessions).toBe(0);
    expect(await ingress.stats("nope--live")).toBeUndefined();
    await v2.close();
  });

  it("switches v1→v2→v1→v2 under keep-alive load without a failed request", async () => {
    await shopLive();
    const load = startLoad(port, SHOP_HOST);
    await sleep(400);
    const versions = ["v2", "v1", "v2"];
    for (const [i, version] of versions.entries()) {
      const next = await startUpstream(`${version}-${i}`, version);
      const replaced = await ingress.switchTraffic(SHOP, [next.target]);
      expect(replaced).toEqual([live!.target]);
      await live!.close();
      live = next;
      liveBody = version;
      await sleep(400);
    }
    await sleep(300);
    const result = await load.stop();
    console.info(`3 switches under load: ${result.ok} ok, ${result.failed} failed`, result.errors);
    expect(result.failed).toBe(0);
    // The load ran across the switches (thousands a second here when the machine is idle; a floor a busy one meets).
    expect(result.ok).toBeGreaterThan(100);
    expect(new Set(result.lastBodies)).toEqual(new Set(["v2"]));
    expect(await ingress.current(SHOP)).toEqual([live!.target]);
  });

  it("adds a second backend with a graceful reload under load without a failed request", async () => {
    const shop = await shopLive();
    const workerBefore = await runtime.workerPid();
    const load = startLoad(port, SHOP_HOST);
    await sleep(400);
    await ingress.ensureBackend({ name: "blog--live", hostnames: ["blog-live.localhost"], maxServers: 2 });
    await sleep(600);
    const result = await load.stop();
    console.info(`reload under load: ${result.ok} ok, ${result.failed} failed`, result.errors);
    expect(await runtime.workerPid()).not.toBe(workerBefore);
    expect(result.failed).toBe(0);
    expect(result.ok).toBeGreaterThan(50);
    expect(new Set(result.lastBodies)).toEqual(new Set([liveBody]));
    expect(await ingress.current(SHOP)).toEqual([shop.target]);

    expect((await get(port, "blog-live.localhost")).status).toBe(503);
    blog = await startUpstream("blog-1", "blog");
    await ingress.switchTraffic("blog--live", [blog.target]);
    expect(await get(port, "blog-live.localhost")).toMatchObject({ status: 200, body: "blog" });
  });

  it("changes host names at runtime without a reload", async () => {
    await blogLive(["blog-live.localhost"]);
    const worker = await runtime.workerPid();
    await ingress.ensureBackend({ name: "blog--live", hostnames: ["blog.localhost", "www.blog.localhost"], maxServers: 2 });
    expect(await runtime.workerPid()).toBe(worker);
    expect(await get(port, "www.blog.localhost")).toMatchObject({ status: 200, body: "blog" });
    expect((await get(port, "blog-live.localhost")).status).toBe(404);
    expect(readFileSync(path.join(dir, "hosts.map"), "utf8")).toContain("www.blog.localhost blog--live\n");
    await expect(ingress.ensureBackend({ name: "other--live", hostnames: ["blog.localhost"], maxServers: 1 })).rejects.toThrow(/already routed/);
  });

  it("keeps replaced targets until a previous worker, which still routes to them, has exited", async () => {
    const shop = await shopLive();
    const held = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await get(port, SHOP_HOST, { agent: held })).body).toBe(liveBody);
      await ingress.ensureBackend({ name: "extra--live", hostnames: ["extra-live.localhost"], maxServers: 1 });
      expect((await runtime.showProc()).oldWorkers).toHaveLength(1);

      const next = await startUpstream("v3-0", "v3");
      let switched = false;
      const switching = ingress.switchTraffic(SHOP, [next.target]).then((r) => ((switched = true), r));
      await sleep(500);
      expect(switched).toBe(false);
      // The idle connection belongs to the old worker: it still routes to the
      // replaced target, answers once more and closes the connection.
      const late = await get(port, SHOP_HOST, { agent: held });
      expect(late).toMatchObject({ status: 200, body: liveBody });
      expect(late.headers.connection).toBe("close");
      expect(await switching).toEqual([shop.target]);
      await shop.close();
      live = next;
      liveBody = "v3";
      expect(await get(port, SHOP_HOST)).toMatchObject({ status: 200, body: "v3" });
    } finally {
      held.destroy();
    }
  });

  it("protects a backend with basic auth by digest: 401 without or with wrong credentials, 200 with the right ones", async () => {
    const digest = (user: string, pw: string) => createHash("sha256").update(`Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`).digest("hex");
    await ingress.ensureBackend({ name: "private--qa", hostnames: ["private-qa.localhost"], maxServers: 2, basicAuth: { username: "qa", digest: digest("qa", "s3cret") } });
    const app = await startUpstream("qa-1", "private");
    await ingress.switchTraffic("private--qa", [app.target]);

    const anonymous = await get(port, "private-qa.localhost");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers["www-authenticate"]).toContain('Basic realm="private-qa"');
    expect((await get(port, "private-qa.localhost", { auth: "qa:wrong" })).status).toBe(401);
    expect((await get(port, "private-qa.localhost", { auth: "other:s3cret" })).status).toBe(401);
    expect(await get(port, "private-qa.localhost", { auth: "qa:s3cret" })).toMatchObject({ status: 200, body: "private" });

    await ingress.ensureBackend({ name: "private--qa", hostnames: ["private-qa.localhost"], maxServers: 2, basicAuth: { username: "qa", digest: digest("qa", "pl ain'pw:x") } });
    expect((await get(port, "private-qa.localhost", { auth: "qa:s3cret" })).status).toBe(401);
    expect(await get(port, "private-qa.localhost", { auth: "qa:pl ain'pw:x" })).toMatchObject({ status: 200, body: "private" });
    expect(await ingress.current("private--qa")).toEqual([app.target]);
  });

  it("is adopted by a new adapter on the same dir, which then really stops it", async () => {
    const shop = await shopLive();
    const master = ingress.pid!;
    const worker = await runtime.workerPid();
    adopter = new HaproxyIngress({ dir, httpPort: port, logger });
    await adopter.start();
    expect(adopter.pid).toBe(master);
    expect(await runtime.workerPid()).toBe(worker);
    expect(await adopter.current(SHOP)).toEqual([shop.target]);
    expect(await get(port, SHOP_HOST)).toMatchObject({ status: 200, body: liveBody });

    await adopter.stop();
    for (let i = 0; i < 40 && !(gone(master) && gone(worker)); i++) await sleep(50);
    expect(gone(master)).toBe(true);
    expect(gone(worker)).toBe(true);
    await expect(get(port, SHOP_HOST)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("restores structure and routing from its state dir when haproxy is gone", async () => {
    restarted = new HaproxyIngress({ dir, httpPort: port, logger });
    await restarted.start();
    expect(restarted.pid).not.toBe(ingress.pid);
    expect(await restarted.current(SHOP)).toEqual([live!.target]);
    expect(await get(port, SHOP_HOST)).toMatchObject({ status: 200, body: liveBody });
    expect((await get(port, "private-qa.localhost")).status).toBe(401);
    await restarted.stop();
  });
});

/** A fresh proxy in its own dir for one test, stopped and removed afterwards also when the test fails. */
async function withIngress(fn: (h: { ingress: HaproxyIngress; port: number; dir: string; runtime: HaproxyRuntime }) => Promise<void>, readyTimeoutMs?: number): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "slipway-haproxy-"));
  const port = await reservePort();
  const ingress = new HaproxyIngress({ dir, httpPort: port, logger, ...(readyTimeoutMs ? { readyTimeoutMs } : {}) });
  try {
    await ingress.start();
    await fn({ ingress, port, dir, runtime: new HaproxyRuntime(path.join(dir, "admin.sock"), path.join(dir, "master.sock")) });
  } finally {
    await ingress.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Puts a proxy in front of the master CLI that reads the first `reload` and
 * closes the connection without passing it on: what a client sees when the
 * master re-executes (the listener it connected to dies with its backlog).
 * Everything else is passed through. HAProxy's next master binds the path
 * again itself, so there is nothing to restore; close() only after the proxy
 * is stopped (closing a unix server unlinks its path).
 */
async function loseFirstReload(masterSocket: string): Promise<{ lost: () => number; close(): Promise<void> }> {
  const real = `${masterSocket}.real`;
  renameSync(masterSocket, real);
  let lost = 0;
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const chunks: Buffer[] = [];
    client.on("error", () => undefined);
    client.on("data", (d: Buffer) => chunks.push(d));
    client.on("end", () => {
      const command = Buffer.concat(chunks).toString("utf8");
      if (command.trim() === "reload" && lost === 0) {
        lost++;
        client.destroy();
        return;
      }
      const upstream = net.createConnection({ path: real }, () => upstream.end(command));
      upstream.on("error", () => client.destroy());
      upstream.pipe(client);
    });
  });
  await new Promise<void>((resolve) => server.listen(masterSocket, resolve));
  return { lost: () => lost, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe("HaproxyIngress reloads against a real haproxy", () => {
  // After a start the master re-executes itself once more (to free its config
  // memory) and only then serves its CLI: a reload sent in between was lost.
  it("answers on the master CLI once start() resolves, so a reload right after start takes effect", async () => {
    for (let i = 0; i < 5; i++) {
      await withIngress(async ({ ingress, runtime }) => {
        const procs = await runtime.showProc();
        expect(procs.master).toBe(ingress.pid);
        expect(procs.workers).toEqual([await runtime.workerPid()]);
        const started = Date.now();
        await ingress.ensureBackend({ name: "shop--test", hostnames: ["shop-test.localhost"], maxServers: 2 });
        const after = await runtime.showProc();
        expect(after.reloads).toBe(1);
        expect(after.workers).not.toEqual(procs.workers);
        console.info(`start ${i}: reload and new backend in ${Date.now() - started} ms`);
      });
    }
  });

  it("issues a reload again when the master did not act on it", async () => {
    await withIngress(async ({ ingress, runtime, dir }) => {
      const worker = await runtime.workerPid();
      const proxy = await loseFirstReload(path.join(dir, "master.sock"));
      try {
        await ingress.ensureBackend({ name: "shop--test", hostnames: ["shop-test.localhost"], maxServers: 2 });
        expect(proxy.lost()).toBe(1);
        expect(await runtime.workerPid()).not.toBe(worker);
        expect((await runtime.showProc()).reloads).toBe(1);
      } finally {
        await ingress.stop();
        await proxy.close();
      }
    }, 4000);
  });

  it("serves a new backend's host name on every connection once it is switched, also on an idle keep-alive connection an older worker holds", async () => {
    await withIngress(async ({ ingress, port, runtime }) => {
      const app = await startUpstream("qa-1", "qa");
      const held = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        // Opened before the backend exists, answered by the worker the reload replaces.
        expect(await get(port, "shop-qa.localhost", { agent: held })).toMatchObject({ status: 404, body: "no environment is served at this host name" });
        const oldWorker = await runtime.workerPid();
        const started = Date.now();
        await ingress.ensureBackend({ name: "shop--qa", hostnames: ["shop-qa.localhost"], maxServers: 2 });
        await ingress.switchTraffic("shop--qa", [app.target]);
        const ms = Date.now() - started;
        // The switch returns once the old worker has closed the idle connection (HAProxy counts it
        // gone); the client, in this same process, learns of the close from its own socket events.
        // Reused within the same event-loop turn, before those ran, the request would be written
        // into a closed connection ("socket hang up", seen once in CI): a real client is another
        // process that sees the close as it happens.
        await new Promise((r) => setTimeout(r, 50));
        const replies = await Promise.all([get(port, "shop-qa.localhost", { agent: held }), ...Array.from({ length: 10 }, () => get(port, "shop-qa.localhost"))]);
        expect(replies.map((r) => `${r.status} ${r.body}`)).toEqual(new Array(11).fill("200 qa"));
        expect(await runtime.workerPid()).not.toBe(oldWorker);
        console.info(`new backend switched in ${ms} ms with an idle keep-alive connection on the previous worker`);
      } finally {
        held.destroy();
        await app.close();
      }
    });
  });
});
