import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pebble } from "@slipway/control-plane/testing/pebble";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, nodeServerApp } from "./support/git-repo.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "./support/processes.js";
import { httpsGet, sClient, startAcme } from "./support/https.js";

const DOMAIN = "shop.example.test";
const VALIDITY_SECONDS = 120;
const BODY = "served by slipway";
const SERVER = `require("http").createServer((req, res) => res.end(${JSON.stringify(BODY)})).listen(3000);`;

/**
 * Issue 15, must show 3: two hosts serving the same domain get the one certificate the control
 * plane ordered, and its renewal (one order) reaches both. In Slipway a domain is served by two
 * hosts after a drain: the environment runs on the new host and the old one keeps taking the
 * domain's traffic (DNS still points at it) and forwards it, terminating HTTPS itself. Pebble
 * validates HTTP-01 on host A's port only, as a CA reaches one of the hosts behind round-robin DNS.
 */
describe("automatic HTTPS on two hosts: one order, both serve the certificate and its renewal", () => {
  let pebble: Pebble;
  let platform: Platform;
  let a: AgentHandle;
  let b: AgentHandle;
  const repo = new TestRepo();
  const ports: number[] = [];
  let rootFile = "";
  const https = { a: 0, b: 0 };

  const servedSerial = async (port: number) => (await httpsGet(port, DOMAIN, pebble.rootPem)).serial.toUpperCase();
  const certificate = async () => (await platform.api.call("GET", "/v1/apps/shop/environments/test/domains")).domains[0].certificate as { state: string; serial: string | null; notAfter: string };
  /** What the agents report serving for the domain, by host id: serial and whether it is the current certificate. */
  const reportedServing = async () =>
    Object.fromEntries(((await platform.api.call("GET", "/v1/apps/shop/environments/test/domains")).domains[0].servedBy as Array<{ hostId: string; serial: string; current: boolean }>).map((s) => [s.hostId, { serial: s.serial, current: s.current }]));
  /** Waits until both hosts' agents report serving `serial` for the domain, as the current certificate (heartbeats every second here). */
  const bothReport = (serial: string) =>
    waitFor(`both agents to report serving ${serial}`, async () => {
      const r = await reportedServing();
      return r[a.hostId!]?.serial === serial && r[b.hostId!]?.serial === serial && r[a.hostId!]!.current && r[b.hostId!]!.current ? r : undefined;
    }, { timeoutMs: 15_000, intervalMs: 250 });
  /** The certificate activity of the domain, oldest first: one entry per order that completed (or failed). */
  const certificateActivity = async () =>
    ((await platform.api.call("GET", "/v1/activity?app=shop&limit=200")) as Array<{ action: string; details: { hostname?: string; serial?: string } }>)
      .filter((e) => e.action.startsWith("certificate.") && e.details.hostname === DOMAIN)
      .reverse();

  beforeAll(async () => {
    const httpA = await reservePort();
    https.a = await reservePort();
    https.b = await reservePort();
    ports.push(httpA, https.a, https.b);
    const acme = await startAcme({ httpPort: httpA, certificateValiditySeconds: VALIDITY_SECONDS });
    ({ pebble, rootFile } = acme);
    platform = new Platform({ database: "postgres", cpEnv: acme.cpEnv });
    await platform.start();
    a = await platform.addAgent({ SLIPWAY_INGRESS_HTTP_PORT: String(httpA), SLIPWAY_INGRESS_HTTPS_PORT: String(https.a) });
    repo.commit(nodeServerApp(SERVER), "a server");
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
    const d = await platform.api.deploy("shop", "test", {}, 150_000);
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    await platform.api.call("POST", "/v1/apps/shop/environments/test/domains", { hostname: DOMAIN });
    await waitFor(`${DOMAIN} served over HTTPS by host a`, async () => (await sClient(https.a, DOMAIN, rootFile)) === "", { timeoutMs: 30_000, intervalMs: 250 });
    b = await platform.addAgent({ SLIPWAY_INGRESS_HTTPS_PORT: String(https.b) });
  }, 240_000);

  afterAll(async () => {
    await platform?.stop();
    await pebble?.stop();
    for (const p of ports) releasePort(p);
  });

  it("after a drain both hosts serve the domain over HTTPS with the same certificate, through the move", async () => {
    const api = platform.api;
    const issued = await certificate();
    expect(issued.state).toBe("valid");
    const serial = issued.serial!.toUpperCase();
    // HTTPS clients keep using host a throughout the move: it serves, then forwards to b.
    let running = true;
    const counts = { ok: 0, failed: [] as string[] };
    const load = (async () => {
      while (running) {
        await httpsGet(https.a, DOMAIN, pebble.rootPem).then(
          (r) => (r.status === 200 && r.body === BODY ? counts.ok++ : counts.failed.push(`status ${r.status}: ${r.body.slice(0, 80)}`)),
          (err: Error) => counts.failed.push(err.message),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await api.call("POST", `/v1/hosts/${a.hostId}/drain`);
    await waitFor("host a to be empty", async () => (await api.call("GET", `/v1/hosts/${a.hostId}/drain`)).environments === 0, { timeoutMs: 150_000, intervalMs: 500 });
    await waitFor("a's containers to go", async () => platform.containers(a.hostId!).length === 0, { timeoutMs: 30_000, intervalMs: 500 });
    // And on for a while through a's forward, the containers there gone.
    const okAfterMove = counts.ok;
    await waitFor("20 more requests through host a's forward", async () => counts.ok >= okAfterMove + 20 || counts.failed.length > 0, { timeoutMs: 30_000, intervalMs: 100 });
    running = false;
    await load;
    expect(counts.failed).toEqual([]);
    expect(counts.ok).toBeGreaterThan(20);
    expect((await api.call("GET", "/v1/apps/shop/environments/test")).host).toBe(b.hostId);

    // Both hosts verify against pebble's root for the name, with the one certificate ordered.
    expect(await sClient(https.b, DOMAIN, rootFile)).toBe("");
    expect(await sClient(https.a, DOMAIN, rootFile)).toBe("");
    expect(await servedSerial(https.a)).toBe(serial);
    expect(await servedSerial(https.b)).toBe(serial);
    expect((await httpsGet(https.b, DOMAIN, pebble.rootPem)).body).toBe(BODY);
    // And the API says so, from what each host's agent reports serving.
    await bothReport(serial.replace(/^0+/, ""));
    const orders = await certificateActivity();
    expect(orders.map((e) => e.action)).toEqual(["certificate.issued"]);
    console.log(`[https hosts e2e] drained a → b under an HTTPS load through a: ${counts.ok} requests, ${counts.failed.length} failed; both hosts serve serial ${serial}; orders: ${orders.length}`);
  }, 200_000);

  it("the renewal is ordered once and served by both hosts", async () => {
    const first = await certificate();
    const firstSerial = first.serial!.toUpperCase();
    // Due with a third of the lifetime left; both hosts must serve the new serial well before the old one expires.
    const renewed = await waitFor("a new serial served by host b", async () => {
      const s = await servedSerial(https.b);
      return s !== firstSerial ? s : undefined;
    }, { timeoutMs: VALIDITY_SECONDS * 1000, intervalMs: 500 });
    await waitFor("the new serial served by host a (forwarding)", async () => (await servedSerial(https.a)) === renewed, { timeoutMs: 20_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; agent a: ${platform.tail("agent-0.log", 15)}`);
    });
    expect(Date.now()).toBeLessThan(Date.parse(first.notAfter));
    expect(await sClient(https.a, DOMAIN, rootFile)).toBe("");
    expect(await sClient(https.b, DOMAIN, rootFile)).toBe("");
    const now = await certificate();
    expect(now.serial!.toUpperCase()).toBe(renewed);
    await bothReport(renewed.replace(/^0+/, ""));
    const orders = await certificateActivity();
    expect(orders.map((e) => e.action)).toEqual(["certificate.issued", "certificate.renewed"]);
    expect(orders[1]!.details.serial!.toUpperCase()).toBe(renewed);
    console.log(`[https hosts e2e] renewed once (serial ${firstSerial} → ${renewed}), served by both hosts before ${first.notAfter}`);
  }, VALIDITY_SECONDS * 1000 + 60_000);

  it("removing the app takes the certificate off both hosts", async () => {
    await platform.api.call("DELETE", "/v1/apps/shop?confirm=shop");
    for (const [name, port] of [["a", https.a], ["b", https.b]] as const) {
      await waitFor(`host ${name} to stop serving ${DOMAIN}'s certificate`, async () => (await sClient(port, DOMAIN, rootFile)) !== "", { timeoutMs: 30_000, intervalMs: 500 });
    }
  }, 90_000);
});
