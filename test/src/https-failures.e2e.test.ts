import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeTcpPort, startPebble, type Pebble } from "@slipway/control-plane/testing/pebble";
import { Platform } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "./support/processes.js";
import { sClient } from "./support/https.js";

/** A custom domain whose DNS still points at the previous hosting (which answers 404 for everything). */
const STALE = "old-site.example.test";
/** A custom domain added while the CA answers 503 (maintenance). */
const LATER = "later.example.test";
const RETRY_SECONDS = 5;

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/slipway");

/** `slipway <args>` (the built CLI) against the platform: its stdout, or why it failed. */
function slipway(api: { baseUrl: string; token: string }, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(CLI, args, { timeout: 30_000, env: { PATH: process.env.PATH, HOME: "/nonexistent", SLIPWAY_CONFIG: "/nonexistent/slipway.json", SLIPWAY_URL: api.baseUrl, SLIPWAY_TOKEN: api.token } }, (err, stdout, stderr) => (err ? reject(new Error(`slipway ${args.join(" ")}: ${err.message} ${stderr}`)) : resolve(stdout)));
  });
}


/** The identifiers of an ACME new-order request (its JWS payload), or [] for any other request. */
function orderedNames(url: string, body: Buffer): string[] {
  if (!url.startsWith("/order-plz")) return [];
  try {
    const jws = JSON.parse(body.toString("utf8")) as { payload: string };
    const payload = JSON.parse(Buffer.from(jws.payload, "base64url").toString("utf8")) as { identifiers?: Array<{ value: string }> };
    return (payload.identifiers ?? []).map((i) => i.value);
  } catch {
    return [];
  }
}

/**
 * Issue 15, must show 4: what a user sees when a certificate cannot be had.
 * (a) A custom domain whose DNS still points at the previous hosting: the pre-check finds no
 *     ingress of this installation answering its challenge path, so no order is placed at the CA,
 *     and GET …/domains says why. The "DNS" is a front on the challenge port that sends the stale
 *     name to another web server (404) and every other name to the agent's ingress.
 * (b) The CA in maintenance (503 with Retry-After, as Let's Encrypt answers then) after the
 *     account exists: the certificate is failed with the reason, retried with backoff never more
 *     than once per SLIPWAY_ACME_RETRY_SECONDS; with the CA back it is issued and served.
 * The CA is pebble behind a TLS-terminating proxy of the test that counts orders and can answer 503.
 */
describe("automatic HTTPS when a certificate cannot be had", () => {
  let pebble: Pebble;
  let platform: Platform;
  const repo = new TestRepo();
  let ingressPort = 0;
  let httpsPort = 0;
  let frontPort = 0;
  let front: http.Server | undefined;
  let caProxy: https.Server | undefined;
  let caDown = false;
  const orders: string[][] = [];
  const staleChallengeRequests: string[] = [];

  beforeAll(async () => {
    ingressPort = await reservePort();
    httpsPort = await reservePort();
    frontPort = await reservePort();
    // The "DNS": the stale name reaches the previous hosting, every other name the agent's ingress.
    front = http.createServer((req, res) => {
      const host = (req.headers.host ?? "").split(":")[0]!.toLowerCase();
      if (host === STALE) {
        staleChallengeRequests.push(req.url ?? "");
        res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1> (the previous hosting)");
        return;
      }
      const upstream = http.request({ host: "127.0.0.1", port: ingressPort, path: req.url, method: req.method, headers: req.headers, agent: false }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on("error", () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => front!.listen(frontPort, "127.0.0.1", resolve));
    pebble = await startPebble({ httpPort: frontPort });
    const pebblePort = Number(new URL(pebble.directoryUrl).port);
    const proxyPort = await freeTcpPort();
    caProxy = https.createServer({ cert: readFileSync(path.join(pebble.dir, "localhost.pem")), key: readFileSync(path.join(pebble.dir, "localhost.key")) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        if (caDown) {
          res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "1" }).end(JSON.stringify({ type: "urn:ietf:params:acme:error:serverInternal", detail: "The service is down for maintenance", status: 503 }));
          return;
        }
        const names = orderedNames(req.url ?? "", body);
        if (names.length) orders.push(names);
        // Host kept: pebble builds its URLs from it, so they point back at this proxy.
        const up = https.request({ host: "127.0.0.1", port: pebblePort, path: req.url, method: req.method, headers: req.headers, ca: pebble.listenerCaPem, servername: "localhost", agent: false }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        });
        up.on("error", () => res.writeHead(502).end());
        up.end(body);
      });
    });
    await new Promise<void>((resolve) => caProxy!.listen(proxyPort, "127.0.0.1", resolve));
    const listenerCa = path.join(pebble.dir, "listener-ca.pem");
    writeFileSync(listenerCa, pebble.listenerCaPem);
    platform = new Platform({
      database: "postgres",
      cpEnv: {
        SLIPWAY_ACME_DIRECTORY: `https://localhost:${proxyPort}/dir`,
        NODE_EXTRA_CA_CERTS: listenerCa,
        SLIPWAY_ACME_CHALLENGE_PORT: String(frontPort),
        SLIPWAY_ACME_CHALLENGE_ADDRESS: "127.0.0.1",
        SLIPWAY_ACME_INTERVAL_MS: "500",
        SLIPWAY_ACME_RETRY_SECONDS: String(RETRY_SECONDS),
      },
    });
    await platform.start();
    await platform.addAgent({ SLIPWAY_INGRESS_HTTP_PORT: String(ingressPort), SLIPWAY_INGRESS_HTTPS_PORT: String(httpsPort) });
    repo.commit(helloApp("hello over https"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 10 } } });
    const d = await platform.api.deploy("shop", "test");
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
  }, 240_000);

  afterAll(async () => {
    await platform?.stop();
    await new Promise((r) => (caProxy ? caProxy.close(r) : r(undefined)));
    await new Promise((r) => (front ? front.close(r) : r(undefined)));
    await pebble?.stop();
    for (const p of [ingressPort, httpsPort, frontPort]) if (p) releasePort(p);
  });

  const certificateOf = async (hostname: string): Promise<{ state: string; lastError: string | null; nextAttemptAt: string | null; serial: string | null; notAfter: string | null }> => {
    const { domains } = await platform.api.call("GET", "/v1/apps/shop/environments/test/domains");
    return (domains as Array<{ hostname: string; certificate: { state: string; lastError: string | null; nextAttemptAt: string | null; serial: string | null; notAfter: string | null } }>).find((d) => d.hostname === hostname)!.certificate;
  };

  it("(a) a domain whose challenge reaches no ingress of this installation: no order at the CA, and the API says why", async () => {
    await platform.api.call("POST", "/v1/apps/shop/environments/test/domains", { hostname: STALE });
    const cert = await waitFor(`${STALE} to be failed`, async () => {
      const c = await certificateOf(STALE);
      return c.state === "failed" ? c : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    expect(cert.lastError).toBe(`${STALE} does not answer the challenge path through Slipway's ingress on port ${frontPort}: check its DNS record points at a host of this installation (got 404 from 127.0.0.1)`);
    expect(cert.serial).toBeNull();
    expect(Date.parse(cert.nextAttemptAt!)).toBeGreaterThan(Date.now());
    // Nothing reached the CA for it: no order, and the only challenge requests seen were the pre-check's probes.
    expect(orders.filter((names) => names.includes(STALE))).toEqual([]);
    expect(staleChallengeRequests.length).toBeGreaterThan(0);
    for (const url of staleChallengeRequests) expect(url).toMatch(/^\/\.well-known\/acme-challenge\/slipway-probe-[0-9a-f]+$/);
    // The CLI says the same, with when the next attempt is.
    const listed = await slipway(platform.api, ["domains", "shop", "test"]);
    expect(listed).toMatch(/^DOMAIN +CERTIFICATE +SERVED BY\n/);
    expect(listed).toContain(`${STALE}  failed: ${cert.lastError} (next attempt `);
    console.log(`[https failures e2e] ${STALE}: orders at the CA for it: 0; slipway domains shop test:\n${listed}`);
  }, 60_000);

  it("(b) the CA in maintenance: failed with the reason, retried at most once per interval, issued and served when the CA is back", async () => {
    caDown = true;
    await platform.api.call("POST", "/v1/apps/shop/environments/test/domains", { hostname: LATER });
    const first = await waitFor(`${LATER} to be failed`, async () => {
      const c = await certificateOf(LATER);
      return c.state === "failed" ? c : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    expect(first.lastError).toMatch(/^the certificate authority did not issue the certificate: .*/);
    const windowStart = Date.now();
    const WINDOW_MS = 20_000;
    await new Promise((r) => setTimeout(r, WINDOW_MS)); // observing a rate over a fixed window is the point here
    const failures = ((await platform.api.call("GET", "/v1/activity?app=shop&limit=500")) as Array<{ at: string; action: string; details: { hostname?: string; reason?: string } }>)
      .filter((e) => e.action === "certificate.failed" && e.details.hostname === LATER)
      .map((e) => Date.parse(e.at))
      .sort((x, y) => x - y);
    const inWindow = failures.filter((t) => t >= windowStart - 1000 && t <= windowStart + WINDOW_MS);
    expect(inWindow.length).toBeLessThanOrEqual(WINDOW_MS / 1000 / RETRY_SECONDS + 1);
    const gaps = failures.slice(1).map((t, i) => t - failures[i]!);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(RETRY_SECONDS * 1000);
    console.log(`[https failures e2e] CA down: ${failures.length} attempts in ${Math.round((Date.now() - windowStart) / 1000) + 1} s, gaps ${gaps.map((g) => `${(g / 1000).toFixed(1)} s`).join(", ")}; reason: ${first.lastError}`);

    caDown = false;
    const rootFile = path.join(pebble.dir, "issuing-root.pem");
    writeFileSync(rootFile, pebble.rootPem);
    let last = "";
    await waitFor(`${LATER} served over HTTPS once the CA is back`, async () => {
      last = await sClient(httpsPort, LATER, rootFile);
      return last === "";
    }, { timeoutMs: 90_000, intervalMs: 500 }).catch((err: Error) => {
      throw new Error(`${err.message}; last openssl: ${last}; control plane: ${platform.tail("control-plane.log", 15)}`);
    });
    const issued = await certificateOf(LATER);
    expect(issued).toMatchObject({ state: "valid", lastError: null });
    const listed = await slipway(platform.api, ["domains", "shop", "test"]);
    expect(listed.split("\n").find((l) => l.startsWith(`${LATER} `))).toMatch(new RegExp(`^${LATER.replace(/\./g, "\\.")} +valid until ${issued.notAfter!.replace(/\.\d+Z$/, "Z")} +(-|\\S+ ✓)$`));
    expect(orders.filter((names) => names.includes(LATER)).length).toBeGreaterThanOrEqual(1);
    expect(orders.filter((names) => names.includes(STALE))).toEqual([]);
  }, 180_000);
});
