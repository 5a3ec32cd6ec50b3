import { readdirSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pebble } from "@slipway/control-plane/testing/pebble";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, nodeServerApp } from "./support/git-repo.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "./support/processes.js";
import { httpsGet, sClient, startAcme } from "./support/https.js";

const DOMAIN = "shop.example.test";
const VALIDITY_SECONDS = 60;
const BODY = "hello over https";
const CLIENTS = 10;
const LONG_SECONDS = 20;

/** "/" answers BODY; "/slow?n=N" holds the response open for N seconds, writing one byte a second. */
const SERVER = String.raw`
const http = require("http");
http.createServer((req, res) => {
  const url = new URL(req.url, "http://app");
  if (url.pathname === "/slow") {
    const n = Number(url.searchParams.get("n") || 15);
    res.writeHead(200, { "content-type": "application/octet-stream" });
    let i = 0;
    const t = setInterval(() => { res.write("x"); if (++i >= n) { clearInterval(t); res.end(); } }, 1000);
    res.on("close", () => clearInterval(t));
    return;
  }
  res.end(${JSON.stringify(BODY)});
}).listen(3000);
`;



/** CLIENTS keep-alive HTTPS clients, each looping GET / with SNI, until stop(); counts answers and failures. */
function keepAliveLoad(port: number, ca: string) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: CLIENTS, ca });
  const counts = { ok: 0, connections: 0, failures: [] as string[] };
  // Counts the TLS connections the clients open (a keep-alive connection the server closed is replaced by a new one).
  const withCreate = agent as unknown as { createConnection: (...args: unknown[]) => unknown };
  const create = withCreate.createConnection.bind(agent);
  withCreate.createConnection = (...args: unknown[]) => {
    counts.connections++;
    return create(...args);
  };
  let running = true;
  const clients = Array.from({ length: CLIENTS }, async () => {
    while (running) {
      await httpsGet(port, DOMAIN, ca, agent).then(
        (r) => (r.status === 200 && r.body === BODY ? counts.ok++ : counts.failures.push(`status ${r.status}: ${r.body.slice(0, 80)}`)),
        (err: Error) => counts.failures.push(err.message),
      );
      await new Promise((r) => setTimeout(r, 10));
    }
  });
  return {
    counts,
    async stop() {
      running = false;
      await Promise.all(clients);
      agent.destroy();
      return counts;
    },
  };
}

function findFile(dir: string, name: string): string | undefined {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.name === name) return p;
    if (e.isDirectory()) {
      const found = findFile(p, name);
      if (found) return found;
    }
  }
  return undefined;
}

/** One command to HAProxy's master CLI, which answers only once the client has finished sending; a reset after a `reload` counts as done. */
function masterCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socket);
    let out = "";
    const timer = setTimeout(() => conn.destroy(new Error(`no answer to '${command}' on ${socket} within 5000 ms`)), 5_000);
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.end(`${command}\n`));
    conn.on("data", (d: string) => (out += d));
    conn.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (command === "reload" && (err.code === "ECONNRESET" || err.code === "EPIPE")) resolve(out);
      else reject(err);
    });
    conn.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** The master's reload counter from `show proc` (`<pid> master <reloads> …`). */
async function masterReloads(masterSocket: string): Promise<number> {
  const out = await masterCommand(masterSocket, "show proc");
  const m = /^\d+\s+master\s+(\d+)/m.exec(out);
  if (!m) throw new Error(`unexpected 'show proc' answer: ${out.slice(0, 200)}`);
  return Number(m[1]);
}

/**
 * Issue 15, must show 2 and 5, end to end: a renewal under a keep-alive load of 10 clients and an
 * open long response, then an agent restart and an HAProxy reload under load, the certificate
 * served every time.
 */
describe("automatic HTTPS: renewal, agent restart and HAProxy reload keep the certificate served without a failed request", () => {
  let pebble: Pebble;
  let platform: Platform;
  let agent: AgentHandle;
  const repo = new TestRepo();
  let httpPort = 0;
  let httpsPort = 0;
  let rootFile = "";

  const expectServed = async (what: string) => {
    let last = "";
    await waitFor(`${DOMAIN} served over HTTPS (${what})`, async () => (last = await sClient(httpsPort, DOMAIN, rootFile)) === "", { timeoutMs: 30_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; last openssl: ${last}; agent: ${platform.tail("agent-0.log", 15)}`);
    });
  };

  beforeAll(async () => {
    httpPort = await reservePort();
    httpsPort = await reservePort();
    const acme = await startAcme({ httpPort, certificateValiditySeconds: VALIDITY_SECONDS });
    ({ pebble, rootFile } = acme);
    platform = new Platform({ database: "postgres", cpEnv: acme.cpEnv });
    await platform.start();
    agent = await platform.addAgent({ SLIPWAY_INGRESS_HTTP_PORT: String(httpPort), SLIPWAY_INGRESS_HTTPS_PORT: String(httpsPort) });
    repo.commit(nodeServerApp(SERVER), "a server with a long streaming response");
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
    const d = await platform.api.deploy("shop", "test", {}, 150_000);
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    await platform.api.call("POST", "/v1/apps/shop/environments/test/domains", { hostname: DOMAIN });
    await expectServed("first issuance");
  }, 240_000);

  afterAll(async () => {
    await platform?.stop();
    await pebble?.stop();
    if (httpPort) releasePort(httpPort);
    if (httpsPort) releasePort(httpsPort);
  });

  it("must show 2: the renewal is served to new connections while 10 keep-alive clients and an open long response run, with 0 failed requests", async () => {
    const api = platform.api;
    const first = (await api.call("GET", "/v1/apps/shop/environments/test/domains")).domains[0].certificate;
    const firstSerial = String(first.serial).toUpperCase();
    const load = keepAliveLoad(httpsPort, pebble.rootPem);
    // Renewal is due with a third of the lifetime left: open the long response shortly before, so it spans the replacement.
    const renewDueMs = Date.parse(first.notAfter) - (VALIDITY_SECONDS * 1000) / 3;
    await waitFor("shortly before the renewal is due", async () => Date.now() >= renewDueMs - 6_000, { timeoutMs: VALIDITY_SECONDS * 1000, intervalMs: 200 });
    const longStarted = Date.now();
    let longEnded = 0;
    const long = httpsGet(httpsPort, DOMAIN, pebble.rootPem, false, `/slow?n=${LONG_SECONDS}`, 30_000).then((r) => {
      longEnded = Date.now();
      return r;
    });
    let renewedAt = 0;
    const renewed = await waitFor("a new serial served on a new connection", async () => {
      const r = await httpsGet(httpsPort, DOMAIN, pebble.rootPem);
      if (r.serial.toUpperCase() === firstSerial) return undefined;
      renewedAt = Date.now();
      return r;
    }, { timeoutMs: 40_000, intervalMs: 250 }).catch(async (err: Error) => {
      await load.stop();
      throw new Error(`${err.message}; control plane: ${platform.tail("control-plane.log", 15)}`);
    });
    const longRes = await long;
    const { ok, failures } = await load.stop();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    // The long response was open when the new certificate was first served, and it completed with every byte on the old connection.
    expect(renewedAt).toBeGreaterThan(longStarted);
    expect(longEnded).toBeGreaterThan(renewedAt);
    expect(longRes.status).toBe(200);
    expect(longRes.body).toBe("x".repeat(LONG_SECONDS));
    expect(longRes.serial.toUpperCase()).toBe(firstSerial);
    expect(await sClient(httpsPort, DOMAIN, rootFile)).toBe("");
    const now = (await api.call("GET", "/v1/apps/shop/environments/test/domains")).domains[0].certificate;
    expect(now).toMatchObject({ state: "valid", lastError: null });
    expect(now.serial.toUpperCase()).toBe(renewed.serial.toUpperCase());
    console.log(`[https renewal e2e] renewed under load: ${CLIENTS} keep-alive clients, ${ok} requests, ${failures.length} failed; long response ${longRes.body.length}/${LONG_SECONDS} bytes in ${longEnded - longStarted} ms, open across the replacement at +${renewedAt - longStarted} ms; new serial ${renewed.serial} on new connections`);
  }, 90_000);

  it("must show 5: the certificate is served across an agent restart and an HAProxy reload, with 0 failed requests of a keep-alive load across the reload", async () => {
    const serial = String((await platform.api.call("GET", "/v1/apps/shop/environments/test/domains")).domains[0].certificate.serial).toUpperCase();
    const servedSerial = async () => (await httpsGet(httpsPort, DOMAIN, pebble.rootPem)).serial.toUpperCase();

    // The agent restarts: HAProxy outlives it, the next agent adopts it and its certificates.
    await agent.stop();
    await expectServed("agent stopped");
    expect(await servedSerial()).toBe(serial);
    const restartStarted = Date.now();
    await agent.start();
    const restartMs = Date.now() - restartStarted;
    await expectServed("agent restarted");
    expect(await servedSerial()).toBe(serial);

    // HAProxy reloads (its master re-reads the configuration and starts a new worker) under a keep-alive load.
    const masterSocket = findFile(agent.stateDir, "master.sock");
    expect(masterSocket, "the ingress's master socket under the agent's state dir").toBeDefined();
    const before = await masterReloads(masterSocket!);
    const load = keepAliveLoad(httpsPort, pebble.rootPem);
    await waitFor("the load to run", async () => load.counts.ok >= 50, { timeoutMs: 20_000, intervalMs: 50 });
    const okBeforeReload = load.counts.ok;
    const connectionsBeforeReload = load.counts.connections;
    await masterCommand(masterSocket!, "reload"); // the master closes or resets the connection as it re-executes
    await waitFor("the master to have reloaded", async () => (await masterReloads(masterSocket!).catch(() => before)) > before, { timeoutMs: 20_000, intervalMs: 100 });
    // Keep the load running across the new worker taking over and the old one's keep-alive connections closing.
    const reloadedAt = Date.now();
    await waitFor("the load to run on after the reload", async () => load.counts.ok >= okBeforeReload + 500 && Date.now() - reloadedAt >= 3_000, { timeoutMs: 30_000, intervalMs: 50 });
    const { ok, failures, connections } = await load.stop();
    expect(failures).toEqual([]);
    // The old worker closed the clients' keep-alive connections: they crossed the reload onto the new worker.
    expect(connections).toBeGreaterThan(connectionsBeforeReload);
    await expectServed("after the HAProxy reload");
    expect(await servedSerial()).toBe(serial);
    console.log(`[https renewal e2e] agent restarted in ${restartMs} ms, certificate served before, during and after; HAProxy reloaded under ${CLIENTS} keep-alive clients: ${ok} requests (${ok - okBeforeReload} after the reload), ${failures.length} failed; ${connectionsBeforeReload} connections before the reload, ${connections - connectionsBeforeReload} opened after it`);
  }, 120_000);
});
