import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Page, Request } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BrowserUnderTest } from "./support/browser.js";
import { expectAccessible, shot, signIn, textMatches } from "./support/dashboard.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { Platform } from "./support/platform.js";
import { waitFor } from "./support/processes.js";

// The dashboard's HTTPS parts (issue 15) in Debian's chromium against the real platform (no ACME
// server and no agent: nothing here needs a certificate issued or served): the environment
// settings' redirect and HSTS sent in the form's one PATCH, a refused max-age and HSTS without the
// redirect shown next to the field with nothing changed; a custom domain's certificate state
// (none, then valid until … once an uploaded certificate covers it); the Certificates page: a
// certificate made here with openssl uploaded, a key that does not match refused next to the key
// field, listed, removed after a confirmation. axe on every page and dialog, 360 px, a viewer.
const APP = "tls";
const DOMAIN = "www.tls-dash.example";
const SERIAL = "5A17D001";

interface Pem {
  chainPem: string;
  keyPem: string;
  keyFile: string;
}

/** A self-signed certificate for `dns` (its own CA: one certificate, the leaf) and its P-256 key, made with the openssl command line. */
function selfSigned(dir: string, dns: string, serial: string): Pem {
  const keyFile = path.join(dir, `${serial}.key`);
  const certFile = path.join(dir, `${serial}.pem`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", `/CN=${dns}`, "-addext", `subjectAltName=DNS:${dns}`, "-set_serial", `0x${serial}`], { stdio: ["ignore", "ignore", "pipe"] });
  return { chainPem: readFileSync(certFile, "utf8"), keyPem: readFileSync(keyFile, "utf8"), keyFile };
}

describe("the dashboard's HTTPS settings and Certificates page in a real browser", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  const pemDir = mkdtempSync(path.join(tmpdir(), "slipway-dash-tls-"));
  let browser: BrowserUnderTest;
  let page: Page;
  const settingsUrl = `/apps/${APP}/environments/test/settings`;
  const api = <T = any>(method: string, p: string, body?: unknown) => platform.api.call<T>(method, p, body);
  const httpsOf = async () => (await api("GET", `/v1/apps/${APP}/environments/test`)).https as { redirect: boolean; hstsMaxAgeSeconds: number };
  const openSettings = async () => {
    await page.goto(settingsUrl);
    await page.getByRole("heading", { name: `Settings of ${APP} / test`, level: 1 }).waitFor();
    return page.getByRole("form", { name: "Deployment and resources" });
  };

  beforeAll(async () => {
    repo.commit(helloApp("hello over https"), "hello");
    await platform.start();
    await api("POST", "/v1/apps", { name: APP, repository: repo.url });
    browser = new BrowserUnderTest({ baseURL: platform.api.baseUrl });
    await browser.start();
    page = await browser.page();
    await signIn(page, platform.adminToken);
  }, 120_000);
  afterEach(() => browser.check());
  afterAll(async () => {
    await browser?.close();
    await platform.stop();
    rmSync(pemDir, { recursive: true, force: true });
  });

  it("turns the redirect and HSTS on in the settings form's one PATCH; a refused max-age and HSTS without the redirect are shown next to the field and change nothing", async () => {
    browser.expectConsoleError(/status of 400/);
    expect(await httpsOf()).toEqual({ redirect: false, hstsMaxAgeSeconds: 0 });
    const form = await openSettings();
    const redirect = form.getByLabel("Redirect HTTP to HTTPS");
    const hsts = form.getByLabel("HSTS max-age (seconds)");
    const save = form.getByRole("button", { name: "Save deployment settings" });
    const saved = form.locator("xpath=..").locator(".saved");
    expect(await redirect.isChecked()).toBe(false);
    expect(await hsts.isDisabled()).toBe(true);
    expect(await hsts.inputValue()).toBe("0");
    await form.getByText(/apply only to the host names whose certificate the ingress serves/).waitFor();

    // Redirect and a year of HSTS, with the sleep setting beside them: one PATCH carries all of it.
    const patches: Request[] = [];
    const onRequest = (r: Request) => {
      if (r.method() === "PATCH") patches.push(r);
    };
    page.on("request", onRequest);
    await redirect.check();
    expect(await hsts.isDisabled()).toBe(false);
    await hsts.fill("31536000");
    await form.getByLabel("Sleep after (seconds without a request)").fill("700");
    await save.click();
    await textMatches(saved, /Saved sleepAfterSeconds, HTTPS\. It applies now\./);
    page.off("request", onRequest);
    expect(patches.map((r) => r.postDataJSON())).toEqual([{ sleepAfterSeconds: 700, https: { redirect: true, hstsMaxAgeSeconds: 31536000 } }]);
    expect(await httpsOf()).toEqual({ redirect: true, hstsMaxAgeSeconds: 31536000 });
    await expectAccessible(page, "the environment settings page with the HTTPS redirect on");

    // More than two years: the API's message next to the field, nothing changed.
    await hsts.fill("99999999");
    await save.click();
    await textMatches(page.locator("#set-hsts-error"), /hstsMaxAgeSeconds must be <= 63072000/);
    expect(await hsts.getAttribute("aria-invalid")).toBe("true");
    expect(await httpsOf()).toEqual({ redirect: true, hstsMaxAgeSeconds: 31536000 });
    await expectAccessible(page, "the environment settings page with a refused HSTS max-age");

    // Another admin turns the redirect off meanwhile: this page's HSTS change is refused by the API
    // (HSTS needs the redirect), next to the field, and nothing changes.
    await api("PATCH", `/v1/apps/${APP}/environments/test`, { https: { redirect: false, hstsMaxAgeSeconds: 0 } });
    await hsts.fill("600");
    await save.click();
    await textMatches(page.locator("#set-hsts-error"), /HSTS needs the HTTPS redirect/);
    expect(await httpsOf()).toEqual({ redirect: false, hstsMaxAgeSeconds: 0 });

    // Read again: the redirect is off and HSTS cannot be typed; on, 600 s; off again sets HSTS to 0 (shown, then saved).
    await openSettings();
    expect(await redirect.isChecked()).toBe(false);
    expect(await hsts.isDisabled()).toBe(true);
    await redirect.check();
    await hsts.fill("600");
    await save.click();
    await textMatches(saved, /Saved HTTPS\. It applies now\./);
    expect(await httpsOf()).toEqual({ redirect: true, hstsMaxAgeSeconds: 600 });
    await redirect.uncheck();
    expect(await hsts.isDisabled()).toBe(true);
    expect(await hsts.inputValue()).toBe("0");
    await save.click();
    await waitFor("the redirect and HSTS to be off", async () => JSON.stringify(await httpsOf()) === JSON.stringify({ redirect: false, hstsMaxAgeSeconds: 0 }), { timeoutMs: 10_000, intervalMs: 100 });
    const activity = (await api<Array<{ action: string; details: unknown }>>("GET", `/v1/activity?app=${APP}`)).filter((a) => a.action === "environment.https_changed");
    expect(activity.map((a) => a.details)).toEqual([
      { redirect: false, hstsMaxAgeSeconds: 0 },
      { redirect: true, hstsMaxAgeSeconds: 600 },
      { redirect: false, hstsMaxAgeSeconds: 0 },
      { redirect: true, hstsMaxAgeSeconds: 31536000 },
    ]);
  });

  it("shows a custom domain without a certificate as none right after it is added", async () => {
    await openSettings();
    const add = page.getByRole("form", { name: "Add a domain" });
    await add.getByLabel("Add a domain").fill(DOMAIN);
    await add.getByRole("button", { name: "Add domain" }).click();
    await textMatches(page.locator(`[data-certificate-of="${DOMAIN}"]`), /^HTTPS: none: served over plain HTTP only$/);
    expect((await api("GET", `/v1/apps/${APP}/environments/test/domains`)).domains).toEqual([expect.objectContaining({ hostname: DOMAIN, certificate: expect.objectContaining({ state: "none" }) })]);
    await expectAccessible(page, "the environment settings page with a custom domain");
  });

  it("uploads a certificate on the Certificates page (a mismatched key refused next to the key field), lists it, the domain shows it valid, and removes it after a confirmation", async () => {
    browser.expectConsoleError(/status of 400/);
    const good = selfSigned(pemDir, DOMAIN, SERIAL);
    const other = selfSigned(pemDir, DOMAIN, "5A17D0FF");

    await page.getByRole("link", { name: "Certificates", exact: true }).click();
    await page.getByRole("heading", { name: "Certificates", level: 1 }).waitFor();
    await page.getByText("No certificate stored yet.").waitFor();
    await expectAccessible(page, "the certificates page, empty");

    await page.getByRole("button", { name: "Upload a certificate" }).click();
    const dialog = page.getByRole("dialog", { name: "Upload a certificate" });
    const chain = dialog.getByLabel("Certificate chain (PEM)");
    const key = dialog.getByLabel("Private key (PEM)");
    await expectAccessible(page, "the upload dialog");
    // Not a certificate at all: next to the chain.
    await chain.fill("not a certificate");
    await key.fill(good.keyPem);
    await dialog.getByRole("button", { name: "Upload" }).click();
    await textMatches(dialog.locator("#cert-chain-error"), /not a PEM certificate/);
    expect(await chain.getAttribute("aria-invalid")).toBe("true");
    // The certificate with another certificate's key: next to the key, and the chain's error gone.
    await chain.fill(good.chainPem);
    await key.fill(other.keyPem);
    await dialog.getByRole("button", { name: "Upload" }).click();
    await textMatches(dialog.locator("#cert-key-error"), /the key does not match the certificate/);
    expect(await key.getAttribute("aria-invalid")).toBe("true");
    expect(await dialog.locator("#cert-chain-error").count()).toBe(0);
    expect(await api("GET", "/v1/certificates")).toEqual([]);
    await expectAccessible(page, "the upload dialog with a refused key");

    // The right key, read from its file.
    await dialog.getByLabel("Or read the key from a file").setInputFiles(good.keyFile);
    await waitFor("the key file to be read into the field", async () => (await key.inputValue()) === good.keyPem, { timeoutMs: 5_000, intervalMs: 50 });
    await dialog.getByRole("button", { name: "Upload" }).click();
    await dialog.waitFor({ state: "detached" });
    await textMatches(page.locator("main .saved"), new RegExp(`Uploaded the certificate for ${DOMAIN.replace(/\./g, "\\.")} \\(serial ${SERIAL}\\)\\. No environment serves these names yet`));
    const stored = await api<Array<{ id: string; hostnames: string[]; source: string; serial: string; status: string; notAfter: string }>>("GET", "/v1/certificates");
    expect(stored).toEqual([expect.objectContaining({ hostnames: [DOMAIN], source: "uploaded", serial: SERIAL, status: "valid" })]);
    const row = page.getByRole("list", { name: "Certificates" }).locator(`[data-certificate="${DOMAIN}"]`);
    const text = await textMatches(row, new RegExp(`${SERIAL}`));
    expect(text).toMatch(/uploaded/);
    expect(text).toMatch(/valid/);
    expect(text).toMatch(/Valid until\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/);
    expect(text).not.toContain("PRIVATE KEY");
    await expectAccessible(page, "the certificates page with an uploaded certificate");
    await shot(page, "certificates");

    // The environment's domain is now served with it.
    await openSettings();
    await textMatches(page.locator(`[data-certificate-of="${DOMAIN}"]`), /^HTTPS: valid until \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \(uploaded\)$/);
    expect((await api("GET", `/v1/apps/${APP}/environments/test/domains`)).domains[0].certificate).toMatchObject({ state: "valid", serial: SERIAL, source: "uploaded" });

    // Removed after a confirmation; kept when the dialog is dismissed.
    await page.getByRole("link", { name: "Certificates", exact: true }).click();
    const remove = page.getByRole("button", { name: `Remove the certificate for ${DOMAIN}` });
    await remove.click();
    const confirm = page.getByRole("dialog", { name: `Remove the certificate for ${DOMAIN}?` });
    await expectAccessible(page, "the remove-certificate dialog");
    await confirm.getByRole("button", { name: "Keep it" }).click();
    await confirm.waitFor({ state: "detached" });
    expect(await api("GET", "/v1/certificates")).toHaveLength(1);
    await remove.click();
    await confirm.getByRole("button", { name: "Remove certificate" }).click();
    await page.getByText("No certificate stored yet.").waitFor();
    await textMatches(page.locator("main .saved"), new RegExp(`Removed the certificate for ${DOMAIN.replace(/\./g, "\\.")}`));
    expect(await api("GET", "/v1/certificates")).toEqual([]);
    expect((await api("GET", `/v1/apps/${APP}/environments/test/domains`)).domains[0].certificate.state).toBe("none");
  });

  it("fits 360 px; a viewer sees no Certificates link, the page says so, and the HTTPS fields are read-only", async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    try {
      for (const [url, heading] of [["/certificates", "Certificates"], [settingsUrl, `Settings of ${APP} / test`]] as const) {
        await page.goto(url);
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
        await page.waitForLoadState("networkidle").catch(() => undefined);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(width, `${url} is ${width} px wide at 360`).toBeLessThanOrEqual(360);
        await expectAccessible(page, `${url} at 360 px`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }

    const { token } = await api("POST", "/v1/tokens", { name: "https-viewer", role: "viewer", apps: [APP] });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    await waitFor("the session cookie to be cleared", async () => !(await browser.browserContext.cookies()).some((c) => c.name === "slipway_session" && c.value), { timeoutMs: 5_000, intervalMs: 50 });
    await signIn(page, token);
    expect(await page.getByRole("link", { name: "Certificates", exact: true }).count()).toBe(0);
    await page.goto("/certificates");
    await page.getByRole("heading", { name: "Certificates", level: 1 }).waitFor();
    await page.getByText(/an admin's to see and change/).waitFor();
    expect(await page.locator("main button").count()).toBe(0);
    const form = await openSettings();
    await textMatches(page.locator(`[data-certificate-of="${DOMAIN}"]`), /^HTTPS: none/);
    expect(await form.getByLabel("Redirect HTTP to HTTPS").isDisabled()).toBe(true);
    expect(await form.getByLabel("HSTS max-age (seconds)").isDisabled()).toBe(true);
    await expectAccessible(page, "the environment settings page as a viewer");
  });
});
