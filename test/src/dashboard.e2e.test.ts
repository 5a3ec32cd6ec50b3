import { gzipSync } from "node:zlib";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BrowserUnderTest } from "./support/browser.js";
import { expectAccessible, pageLog, shot, textMatches } from "./support/dashboard.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { Platform, type AgentHandle } from "./support/platform.js";
import { waitFor } from "./support/processes.js";

// The web dashboard (issue 14) in Debian's chromium against the real platform: signed in with
// the admin token, an app created from a test repository with the form, test deployed with its
// Deploy button, the log followed to `succeeded`, the environment card updated live in another
// tab, the environment's URL opened, signed out. Every page: axe (no serious or critical
// violation), no console error; screenshots into docs/screenshots/ (README).
const FIRST_PAGE_JS_LIMIT = 150 * 1024;
const APP = "dash";
const BODY = "Hello from the dashboard test";

describe("the web dashboard in a real browser", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let browser: BrowserUnderTest;
  let agent: AgentHandle;
  let page: Page;
  let deploymentId = "";
  let secondDeploymentId = "";

  beforeAll(async () => {
    repo.commit(helloApp(BODY), "hello");
    await platform.start();
    agent = await platform.addAgent();
    browser = new BrowserUnderTest({ baseURL: platform.api.baseUrl });
    await browser.start();
    page = await browser.page();
  }, 180_000);
  afterEach(() => browser.check());
  afterAll(async () => {
    await browser?.close();
    await platform.stop();
  });

  it("serves the first page under its CSP with less than 150 KB of gzipped JavaScript, and signs in with a pasted token by keyboard", async () => {
    const scripts: Promise<Buffer>[] = [];
    page.on("response", (res) => {
      if (res.request().resourceType() === "script") scripts.push(res.body());
    });
    const doc = await page.goto("/");
    expect(doc?.status()).toBe(200);
    const csp = doc?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(doc?.headers()["x-content-type-options"]).toBe("nosniff");
    expect(doc?.headers()["referrer-policy"]).toBe("same-origin");
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    await page.waitForLoadState("networkidle");
    expect(new URL(page.url()).pathname).toBe("/sign-in");
    const bodies = await Promise.all(scripts);
    expect(bodies.length).toBeGreaterThan(0);
    const gzipped = bodies.reduce((n, b) => n + gzipSync(b).length, 0);
    console.info(`first page: ${bodies.length} script(s), ${(bodies.reduce((n, b) => n + b.length, 0) / 1024).toFixed(1)} KB, ${(gzipped / 1024).toFixed(1)} KB gzipped`);
    expect(gzipped).toBeLessThan(FIRST_PAGE_JS_LIMIT);
    await expectAccessible(page, "the sign-in page");
    await shot(page, "sign-in");

    // A token the API refuses: its message, and nothing signed in (the browser logs the 401).
    browser.expectConsoleError(/status of 401/);
    const token = page.getByLabel("API token");
    await token.fill("slw_not_a_token");
    await token.press("Enter");
    await textMatches(page.getByRole("alert"), /\S/);
    expect(new URL(page.url()).pathname).toBe("/sign-in");

    await token.fill(platform.adminToken);
    await token.press("Enter");
    await page.getByRole("heading", { name: "Apps", level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/");
    const cookie = (await browser.browserContext.cookies()).find((c) => c.name === "slipway_session");
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe("Strict");
  });

  it("creates an app from a repository with the form; a bad name gets the API's message next to the field", async () => {
    browser.expectConsoleError(/status of 400/);
    await page.getByLabel("Name").fill("Not A Name");
    await page.getByLabel("Repository").fill(repo.url);
    await page.getByRole("button", { name: "Create app" }).click();
    const nameError = await textMatches(page.locator("#app-name-error"), /\S/);
    expect(await page.getByLabel("Name").getAttribute("aria-invalid")).toBe("true");
    expect((await platform.api.call("GET", "/v1/apps")).map((a: { name: string }) => a.name)).not.toContain("Not A Name");
    expect(nameError).toMatch(/name/i);
    await expectAccessible(page, "the apps page with a refused form");

    await page.getByLabel("Name").fill(APP);
    await page.getByRole("button", { name: "Create app" }).click();
    await page.getByRole("heading", { name: APP, level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/apps/${APP}`);
    const app = await platform.api.call("GET", `/v1/apps/${APP}`);
    expect(app.repository).toBe(repo.url);
  });

  it("shows a card per environment; Deploy test opens the deployment, whose live log reaches succeeded while another tab's card follows", async () => {
    const test = page.getByRole("article", { name: "test", exact: true });
    const live = page.getByRole("article", { name: "live", exact: true });
    await textMatches(test.getByRole("list", { name: "Status" }), /Server not deployed yet/);
    await textMatches(live.locator(".badge"), /not deployed/);
    const env = await platform.api.call("GET", `/v1/apps/${APP}/environments/test`);
    expect(await test.getByRole("link", { name: env.url }).getAttribute("href")).toBe(env.url);
    await textMatches(test.locator("dd").nth(3), /none yet/);
    await expectAccessible(page, "the app page");

    // A second tab on the app page, never reloaded: its card must follow the deployment by itself.
    const watcher = await browser.page();
    await watcher.goto(`/apps/${APP}`);
    const watched = watcher.getByRole("article", { name: "test", exact: true });
    await textMatches(watched.locator(".badge"), /not deployed/);
    await textMatches(watcher.locator(".live"), /^Live$/);
    // Every state the card shows, as it shows it (a short state could pass between two polls of the test).
    await watcher.evaluate(() => {
      const w = window as unknown as { notReloaded: boolean; seenStates: string[] };
      w.notReloaded = true;
      w.seenStates = [];
      const card = document.querySelector('article[data-environment="test"]')!;
      const record = () => {
        const text = card.querySelector(".card-head .badge")?.textContent ?? "";
        if (w.seenStates[w.seenStates.length - 1] !== text) w.seenStates.push(text);
      };
      record();
      new MutationObserver(record).observe(card, { subtree: true, childList: true, characterData: true });
    });

    // A release command, so the timeline has one to show.
    await platform.api.call("PATCH", `/v1/apps/${APP}/settings`, { releaseCommands: [{ label: "migrate", command: "echo migrating" }] });
    await test.getByRole("button", { name: "Deploy test" }).click();
    await page.waitForURL(/\/deployments\/[^/]+$/);
    deploymentId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
    await page.getByRole("heading", { name: `Deployment of ${APP} / test` }).waitFor();

    await textMatches(page.locator(".deployment-state .badge"), /^succeeded$/, 150_000);
    // The stream ends with the deployment (its cleanup's lines included): then the page holds the whole log.
    await page.locator(".title-row .live").waitFor({ state: "detached", timeout: 60_000 });
    const d = await platform.api.call("GET", `/v1/deployments/${deploymentId}`);
    expect(d.state).toBe("succeeded");
    const apiLog = (await platform.api.log(deploymentId)).replace(/\n$/, "").split("\n");
    expect(await pageLog(page)).toEqual(apiLog);
    for (const step of d.steps as Array<{ name: string }>) await page.locator(".step-name", { hasText: step.name }).first().waitFor();
    await textMatches(page.locator(".step").first(), /\d+(\.\d)? s|min/);
    // The finer timeline: each release command with its time, each container's probe attempts, the switch moment.
    await textMatches(page.getByRole("list", { name: "Release commands" }), /^migrate: \d+(\.\d)? s, exit 0$/);
    await textMatches(page.getByRole("list", { name: "Probe attempts" }), /^slipway-dash-test-\S+: \d{3} after \d+ attempts? in \d+(\.\d+)? s$/);
    await textMatches(page.locator('.step[data-step="switch"] .step-detail'), /^traffic switched at \d{2}:\d{2}:\d{2}\.\d{3}/);

    // Sections fold by keyboard.
    const build = page.locator('details[data-title="docker build"]');
    expect(await build.evaluate((el) => (el as HTMLDetailsElement).open)).toBe(true);
    await build.locator("summary").focus();
    await page.keyboard.press("Enter");
    expect(await build.evaluate((el) => (el as HTMLDetailsElement).open)).toBe(false);
    await page.keyboard.press("Enter");
    await expectAccessible(page, "the deployment page");
    await shot(page, "deployment");

    await textMatches(watched.locator(".card-head .badge"), /^running$/, 30_000);
    await textMatches(watched.getByRole("list", { name: "Status" }), /Last deployment succeeded at/, 30_000);
    await textMatches(watched.locator("dd").nth(3), /succeeded at/, 30_000);
    const seen = await watcher.evaluate(() => {
      const w = window as unknown as { notReloaded?: boolean; seenStates: string[] };
      return { notReloaded: w.notReloaded, states: w.seenStates };
    });
    expect(seen.notReloaded).toBe(true);
    expect(seen.states[0]).toBe("not deployed");
    expect(seen.states).toContain("deploying");
    expect(seen.states[seen.states.length - 1]).toBe("running");
    await expectAccessible(watcher, "the app page after the deployment");
    await shot(watcher, "app");
    await watcher.close();
  }, 240_000);

  it("links the environment's URL, which serves the app through the agent's ingress", async () => {
    await page.getByRole("link", { name: APP, exact: true }).click();
    const test = page.getByRole("article", { name: "test", exact: true });
    await textMatches(test.locator(".card-head .badge"), /^running$/);
    const href = await test.getByRole("link", { name: /^http/ }).getAttribute("href");
    expect(href).toBe(`http://${APP}-test.localhost/`);
    // The platform under test publishes no ingress port in URLs: the same host name on the agent's port.
    await browser.forward(agent.ingressPort);
    const site = await browser.plainPage();
    await site.goto(`http://${APP}-test.localhost:${agent.ingressPort}/`);
    expect((await site.textContent("body"))?.trim()).toBe(BODY);
    await site.close();
    expect(await getVia(agent.ingressPort, `${APP}-test.localhost`)).toEqual({ status: 200, body: BODY });
  });

  it("deploys with options in a dialog: a refused promotion shows the API's message there", async () => {
    browser.expectConsoleError(/status of 409/);
    await page.goto(`/apps/${APP}`);
    const test = page.getByRole("article", { name: "test", exact: true });
    await textMatches(test.locator(".card-head .badge"), /^running$/);
    await test.getByRole("button", { name: "Deploy with options…" }).click();
    const dialog = page.getByRole("dialog", { name: `Deploy ${APP}/test with options` });
    await dialog.waitFor();
    expect(await dialog.getByLabel("Build").inputValue()).toBe("auto");
    await expectAccessible(page, "the deploy dialog");
    await shot(page, "deploy-dialog");
    // live runs nothing: promoting its image is refused (409), the message stays in the dialog.
    await dialog.getByLabel("The image another environment runs").check();
    expect(await dialog.getByLabel("Promote from").inputValue()).toBe("live");
    await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
    await textMatches(dialog.getByRole("alert"), /live runs no image yet/);
    expect(new URL(page.url()).pathname).toBe(`/apps/${APP}`);
    // Content needs the typed confirmation before anything is sent.
    await dialog.getByLabel(`Replace the content of ${APP}/test with another environment's`).check();
    await dialog.getByRole("button", { name: "Deploy", exact: true }).click();
    await textMatches(dialog.getByRole("alert"), new RegExp(`type ${APP}/test to confirm`));
    await expectAccessible(page, "the deploy dialog with a refusal");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    expect((await platform.api.call("GET", `/v1/apps/${APP}/environments/test/deployments`)).length).toBe(1);
  });

  it("shows a changed variable's name (never its value) on the Pending page, and deploys it from there", async () => {
    const secret = "not-for-the-page-4711";
    // A new commit too: the deployment builds another image, so the first one can be rolled back to.
    const v2 = repo.commit(helloApp(`${BODY}, v2`), "v2");
    await platform.api.call("PATCH", `/v1/apps/${APP}/environments/test/variables`, { DASH_GREETING: secret });
    await page.goto(`/apps/${APP}`);
    const test = page.getByRole("article", { name: "test", exact: true });
    await test.getByRole("link", { name: "See what is pending in test" }).click();
    await page.getByRole("heading", { name: `Pending in ${APP} / test`, level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/apps/${APP}/environments/test/pending`);
    await textMatches(page.getByRole("list", { name: "Changes" }), /Variables added: DASH_GREETING/);
    expect(await page.locator("main").textContent()).not.toContain(secret);
    // The new commit, once the control plane's mirror has fetched it (every 5 s for this app),
    // is listed like git log --oneline; the page follows without a reload.
    await platform.api.call("PATCH", `/v1/apps/${APP}/hooks`, { pollIntervalSeconds: 5 });
    await textMatches(page.getByRole("list", { name: "Commits" }), new RegExp(`${v2.slice(0, 7)}.*v2`), 30_000);
    await expectAccessible(page, "the pending page");
    await shot(page, "pending");

    await page.getByRole("button", { name: "Deploy test" }).click();
    await page.waitForURL(/\/deployments\/[^/]+$/);
    secondDeploymentId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
    expect(secondDeploymentId).not.toBe(deploymentId);
    await textMatches(page.locator(".deployment-state .badge"), /^succeeded$/, 150_000);
    await page.getByRole("link", { name: APP, exact: true }).click();
    await textMatches(page.getByRole("article", { name: "test", exact: true }).getByRole("list", { name: "Status" }), /Last deployment succeeded/, 30_000);
    expect(await page.getByRole("article", { name: "test", exact: true }).getByRole("link", { name: /pending/ }).count()).toBe(0);
  }, 200_000);

  it("rolls back from the deployment history to the first deployment, after a confirmation that the database stays", async () => {
    await page.goto(`/apps/${APP}`);
    await page.getByRole("article", { name: "test", exact: true }).getByRole("link", { name: "Deployments of test" }).click();
    await page.getByRole("heading", { name: `Deployments of ${APP} / test`, level: 1 }).waitFor();
    const rows = page.getByRole("list", { name: "Deployments" }).locator("li");
    await textMatches(rows.first(), /succeeded/);
    expect(await rows.count()).toBe(2);
    expect(await rows.first().getAttribute("data-deployment")).toBe(secondDeploymentId);
    const first = page.locator(`li[data-deployment="${deploymentId}"]`);
    await expectAccessible(page, "the deployment history");
    await shot(page, "deployments");

    await first.getByRole("button", { name: /^Roll back/ }).click();
    const dialog = page.getByRole("dialog", { name: `Roll back ${APP}/test?` });
    await textMatches(dialog, /The database is not rolled back/);
    await expectAccessible(page, "the rollback confirmation");
    await dialog.getByRole("button", { name: /^Roll back to/ }).click();
    await page.waitForURL(/\/deployments\/[^/]+$/);
    const rollbackId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
    await textMatches(page.locator(".deployment-state .badge"), /^succeeded$/, 150_000);
    const d = await platform.api.call("GET", `/v1/deployments/${rollbackId}`);
    expect(d.state).toBe("succeeded");
    expect(d.kind).toBe("rollback");
    const list = await platform.api.call("GET", `/v1/apps/${APP}/environments/test/deployments`);
    expect(list[0].id).toBe(rollbackId);
    expect(await getVia(agent.ingressPort, `${APP}-test.localhost`)).toEqual({ status: 200, body: BODY });

    // Deploy with options, build "reuse": the image test runs now again (the first one), nothing built.
    await page.goto(`/apps/${APP}`);
    await page.getByRole("article", { name: "test", exact: true }).getByRole("button", { name: "Deploy with options…" }).click();
    const options = page.getByRole("dialog", { name: `Deploy ${APP}/test with options` });
    await options.getByLabel("Build").selectOption("reuse");
    await options.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL(/\/deployments\/[^/]+$/);
    await textMatches(page.locator(".deployment-state .badge"), /^succeeded$/, 150_000);
    const reused = await platform.api.call("GET", `/v1/deployments/${decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!)}`);
    expect(reused.build).toBe("reuse");
    expect(await getVia(agent.ingressPort, `${APP}-test.localhost`)).toEqual({ status: 200, body: BODY });
  }, 200_000);

  it("lists the app with its environments' states, and every page fits 360 px", async () => {
    await page.getByRole("link", { name: "Apps", exact: true }).first().click();
    await page.getByRole("heading", { name: "Apps", level: 1 }).waitFor();
    const states = page.getByRole("list", { name: `Environments of ${APP}` });
    await textMatches(states, /test\s*running/);
    await textMatches(states, /live\s*not deployed/);
    await expectAccessible(page, "the apps page");
    await shot(page, "apps");

    await page.setViewportSize({ width: 360, height: 740 });
    try {
      for (const [url, heading] of [["/", "Apps"], [`/apps/${APP}`, APP], [`/deployments/${deploymentId}`, `Deployment of ${APP} / test`], [`/apps/${APP}/environments/test/pending`, `Pending in ${APP} / test`], [`/apps/${APP}/environments/test/deployments`, `Deployments of ${APP} / test`]] as const) {
        await page.goto(url);
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
        await page.waitForLoadState("networkidle").catch(() => undefined);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(width, `${url} is ${width} px wide at 360`).toBeLessThanOrEqual(360);
        await expectAccessible(page, `${url} at 360 px`);
        if (url === `/apps/${APP}`) await shot(page, "app-360");
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it("shows a viewer no change buttons, and signing out ends the session", async () => {
    const { token: viewerToken } = await platform.api.call("POST", "/v1/tokens", { name: "dash-viewer", role: "viewer", apps: [APP] });
    await page.goto(`/apps/${APP}`);
    await page.getByRole("heading", { name: APP, level: 1 }).waitFor();
    const cookie = (await browser.browserContext.cookies()).find((c) => c.name === "slipway_session")!;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    // The sign-in page shows at once (the pages close their streams first); the cookie goes with the DELETE's answer.
    await waitFor("the session cookie to be cleared", async () => !(await browser.browserContext.cookies()).some((c) => c.name === "slipway_session" && c.value), { timeoutMs: 5_000, intervalMs: 50 });
    // The old cookie is worth nothing now.
    const old = await fetch(`${platform.api.baseUrl}/v1/apps`, { headers: { cookie: `slipway_session=${cookie.value}` } });
    expect(old.status).toBe(401);

    await page.getByLabel("API token").fill(viewerToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Apps", level: 1 }).waitFor();
    expect(await page.getByRole("button", { name: "Create app" }).count()).toBe(0);
    await page.getByRole("link", { name: APP, exact: true }).click();
    await textMatches(page.getByRole("article", { name: "test", exact: true }).locator(".card-head .badge"), /^running$/);
    expect(await page.getByRole("button", { name: /^Deploy/ }).count()).toBe(0);
    await page.goto(`/deployments/${deploymentId}`);
    await textMatches(page.locator(".deployment-state .badge"), /^succeeded$/);
    expect(await page.getByRole("button", { name: /Cancel/ }).count()).toBe(0);
    await page.goto(`/apps/${APP}/environments/test/pending`);
    await page.getByRole("heading", { name: "Unapplied changes" }).waitFor();
    expect(await page.getByRole("button", { name: /^Deploy/ }).count()).toBe(0);
    await page.goto(`/apps/${APP}/environments/test/deployments`);
    await textMatches(page.getByRole("list", { name: "Deployments" }), /succeeded/);
    expect(await page.getByRole("button", { name: /Roll back/ }).count()).toBe(0);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
  });
});
