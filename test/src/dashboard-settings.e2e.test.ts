import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BrowserUnderTest } from "./support/browser.js";
import { expectAccessible, focusReaches, shot, signIn, textMatches } from "./support/dashboard.js";
import { TestRepo, envApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { Platform, type AgentHandle } from "./support/platform.js";
import { waitFor } from "./support/processes.js";

// The settings pages and the App page's environment actions (issue 14) in Debian's chromium against
// the real platform: a variable changed in the browser, seen by name on the Pending page, deployed
// from there and printed by the app; qa added based on test; bad input refused with the API's
// message next to its field and nothing changed; Stop/Start and Remove from the cards; reveal for
// admins, masks and no buttons for viewers; app settings. axe on every page and dialog, 360 px.
const APP = "sets";
const BODY = "settings test app";

describe("the dashboard's settings pages in a real browser", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let browser: BrowserUnderTest;
  let agent: AgentHandle;
  let page: Page;
  const envUrl = (env: string, tab = "settings") => `/apps/${APP}/environments/${env}/${tab}`;
  const api = <T = any>(method: string, p: string, body?: unknown) => platform.api.call<T>(method, p, body);
  const card = (env: string) => page.getByRole("article", { name: env, exact: true });

  beforeAll(async () => {
    repo.commit(envApp(BODY, ["GREETING"]), "prints GREETING");
    await platform.start();
    agent = await platform.addAgent();
    browser = new BrowserUnderTest({ baseURL: platform.api.baseUrl });
    await browser.start();
    page = await browser.page();
    await api("POST", "/v1/apps", { name: APP, repository: repo.url });
    const d = await platform.api.deploy(APP, "test");
    expect(d.state).toBe("succeeded");
    await signIn(page, platform.adminToken);
  }, 240_000);
  afterEach(() => browser.check());
  afterAll(async () => {
    await browser?.close();
    await platform.stop();
  });

  it("changes a variable in the browser, shows its name (not its value) under Pending, deploys it from there, and the app prints it", async () => {
    await page.goto(envUrl("test"));
    await page.getByRole("heading", { name: `Settings of ${APP} / test`, level: 1 }).waitFor();
    await page.getByText("No variables of its own yet.").waitFor();
    const add = page.getByRole("form", { name: "Add a variable" });
    await add.getByLabel("Name").fill("GREETING");
    await add.getByLabel("Value").fill("Bonjour from the browser");
    await add.getByRole("button", { name: "Add variable" }).click();
    const vars = page.getByRole("list", { name: "Variables" });
    await textMatches(vars, /GREETING/);
    expect(await vars.textContent()).not.toContain("Bonjour");
    const note = page.locator(".settings-section .saved").first();
    await textMatches(note, /Saved GREETING\. It applies at the next deployment/);
    expect(await api("GET", `/v1/apps/${APP}/environments/test/variables?reveal=true`)).toEqual({ GREETING: "Bonjour from the browser" });
    await expectAccessible(page, "the environment settings page");
    await shot(page, "env-settings");

    await note.getByRole("link", { name: "see what is pending in test" }).click();
    await page.getByRole("heading", { name: `Pending in ${APP} / test`, level: 1 }).waitFor();
    const changes = await textMatches(page.getByRole("list", { name: "Changes" }), /Variables added: GREETING/);
    expect(changes).not.toContain("Bonjour");
    await page.getByRole("button", { name: "Deploy test" }).click();
    await page.waitForURL(/\/deployments\/[^/]+$/);
    await textMatches(page.locator(".deployment-state .badge"), /^succeeded$/, 150_000);
    const printed = await getVia(agent.ingressPort, `${APP}-test.localhost`, "/cgi-bin/env");
    expect(printed.status).toBe(200);
    expect(printed.body).toContain("GREETING=Bonjour from the browser");
  }, 200_000);

  it("refuses bad input with the API's message next to the field, and changes nothing", async () => {
    browser.expectConsoleError(/status of 400/);
    await page.goto(envUrl("test"));
    await page.getByRole("heading", { name: `Settings of ${APP} / test`, level: 1 }).waitFor();
    const before = { vars: await api("GET", `/v1/apps/${APP}/environments/test/variables?reveal=true`), env: await api("GET", `/v1/apps/${APP}/environments/test`) };

    // A variable name with a space: the API's message under the Name field.
    const add = page.getByRole("form", { name: "Add a variable" });
    await add.getByLabel("Name").fill("BAD KEY");
    await add.getByLabel("Value").fill("x");
    await add.getByRole("button", { name: "Add variable" }).click();
    expect(await textMatches(page.locator("#var-new-name-error"), /invalid variable names: BAD KEY/)).toMatch(/letters, digits and _/);
    expect(await add.getByLabel("Name").getAttribute("aria-invalid")).toBe("true");

    // A paste with a bad line names it by number and sends nothing (not even the good lines).
    const paste = page.getByRole("form", { name: "Paste variables" });
    await paste.getByLabel("Paste KEY=value lines").fill(["# from .env", "export NEW_ONE=1", "", "not a variable", 'QUOTED="ok"'].join("\n"));
    await paste.getByRole("button", { name: "Save pasted variables" }).click();
    expect(await textMatches(page.locator("#var-bulk-error"), /line 4: no '='/)).toMatch(/Nothing was saved/);

    // An invalid domain.
    const domain = page.getByRole("form", { name: "Add a domain" });
    await domain.getByLabel("Add a domain").fill("not a domain!");
    await domain.getByRole("button", { name: "Add domain" }).click();
    await textMatches(page.locator("#domain-new-error"), /invalid host name 'not a domain!'/);

    // Replicas 0, then 1000: the schema's message, next to Replicas.
    const deployment = page.getByRole("form", { name: "Deployment and resources" });
    for (const [value, message] of [["0", /replicas must be >= 1/], ["1000", /replicas must be <= 10/]] as const) {
      await deployment.getByLabel("Replicas").fill(value);
      await deployment.getByRole("button", { name: "Save deployment settings" }).click();
      await textMatches(page.locator("#set-replicas-error"), message);
      expect(await deployment.getByLabel("Replicas").getAttribute("aria-invalid")).toBe("true");
    }
    // Memory below its bound, sent together with a good branch: one request, refused whole.
    await deployment.getByLabel("Replicas").fill("1");
    await deployment.getByLabel("Branch", { exact: true }).fill("other");
    await deployment.getByLabel("Memory (MiB)").fill("1");
    await deployment.getByRole("button", { name: "Save deployment settings" }).click();
    await textMatches(page.locator("#set-memory-error"), /memoryMb must be >= 16/);
    await expectAccessible(page, "the environment settings page with refused fields");

    const after = { vars: await api("GET", `/v1/apps/${APP}/environments/test/variables?reveal=true`), env: await api("GET", `/v1/apps/${APP}/environments/test`) };
    expect(after.vars).toEqual(before.vars);
    expect({ branch: after.env.branch, replicas: after.env.replicas, domains: after.env.domains, limits: after.env.limits }).toEqual({ branch: before.env.branch, replicas: before.env.replicas, domains: before.env.domains, limits: before.env.limits });

    // A good paste then saves every line in one PATCH.
    await paste.getByLabel("Paste KEY=value lines").fill(["# from .env", "export FEATURE_X=on", "", "QUOTED=\"a b\""].join("\n"));
    await paste.getByRole("button", { name: "Save pasted variables" }).click();
    await textMatches(page.locator(".settings-section .saved").first(), /Saved 2 variables \(FEATURE_X, QUOTED\)/);
    expect(await api("GET", `/v1/apps/${APP}/environments/test/variables?reveal=true`)).toEqual({ ...before.vars, FEATURE_X: "on", QUOTED: "a b" });

    // Edit one (the focus goes to its new value, and back to Edit afterwards), then remove it.
    await page.getByRole("button", { name: "Edit QUOTED" }).click();
    const newValue = page.getByLabel("New value of QUOTED");
    await waitFor("the new value's field to take the focus", () => newValue.evaluate((el) => el === document.activeElement), { timeoutMs: 5_000, intervalMs: 50 });
    await expectAccessible(page, "the environment settings page editing a variable");
    await page.keyboard.type("c d");
    await page.keyboard.press("Enter");
    await textMatches(page.locator(".settings-section .saved").first(), /Saved QUOTED\./);
    // The page moves the focus one animation frame after the saved note shows.
    await focusReaches(page, "Edit QUOTED");
    expect((await api("GET", `/v1/apps/${APP}/environments/test/variables?reveal=true`)).QUOTED).toBe("c d");
    await page.getByRole("button", { name: "Remove QUOTED" }).click();
    await textMatches(page.locator(".settings-section .saved").first(), /Removed QUOTED\./);
    expect(await api("GET", `/v1/apps/${APP}/environments/test/variables?reveal=true`)).toEqual({ ...before.vars, FEATURE_X: "on" });

    // A domain of its own, added and removed; basic auth on, then off.
    await domain.getByLabel("Add a domain").fill("www.sets.example");
    await domain.getByRole("button", { name: "Add domain" }).click();
    await textMatches(page.getByRole("list", { name: "Custom domains" }), /www\.sets\.example/);
    expect((await api("GET", `/v1/apps/${APP}/environments/test`)).domains).toEqual([`${APP}-test.localhost`, "www.sets.example"]);
    await page.getByRole("button", { name: "Remove www.sets.example" }).click();
    await page.getByText("No domain of its own.").waitFor();
    expect((await api("GET", `/v1/apps/${APP}/environments/test`)).domains).toEqual([`${APP}-test.localhost`]);
    const auth = page.getByRole("form", { name: "Basic auth" });
    await auth.getByLabel("User name").fill("ann");
    await auth.getByLabel("Password").fill("short");
    await auth.getByRole("button", { name: "Turn basic auth on" }).click();
    await textMatches(page.locator("#auth-password-error"), /password/);
    expect((await api("GET", `/v1/apps/${APP}/environments/test`)).basicAuth).toBeNull();
    await auth.getByLabel("Password").fill("long enough secret");
    await auth.getByRole("button", { name: "Turn basic auth on" }).click();
    await textMatches(page.locator("#auth-title").locator("xpath=.."), /On: visitors sign in as ann\./);
    expect((await api("GET", `/v1/apps/${APP}/environments/test`)).basicAuth).toEqual({ username: "ann" });
    await auth.getByRole("button", { name: "Turn basic auth off" }).click();
    await textMatches(page.locator("#auth-title").locator("xpath=.."), /Off: anyone with the URL/);
    expect((await api("GET", `/v1/apps/${APP}/environments/test`)).basicAuth).toBeNull();

    // Sleep after 600 s and a label, in one request: saved and said so; sleep applies at once.
    await page.reload();
    await page.getByRole("heading", { name: `Settings of ${APP} / test`, level: 1 }).waitFor();
    const form = page.getByRole("form", { name: "Deployment and resources" });
    await form.getByLabel("Sleep after (seconds without a request)").fill("600");
    await form.getByRole("button", { name: "Save deployment settings" }).click();
    await textMatches(form.locator("xpath=..").locator(".saved"), /Saved sleepAfterSeconds\. It applies now/);
    expect((await api("GET", `/v1/apps/${APP}/environments/test`)).sleepAfterSeconds).toBe(600);
  });

  it("adds qa based on test from the App page; its card appears and the API shows test's variables", async () => {
    browser.expectConsoleError(/status of 400/);
    await page.goto(`/apps/${APP}`);
    await page.getByRole("heading", { name: APP, level: 1 }).waitFor();
    await page.getByRole("button", { name: "Add environment" }).click();
    const dialog = page.getByRole("dialog", { name: `Add an environment to ${APP}` });
    await dialog.getByLabel("Name").fill("Bad Name");
    await dialog.getByRole("button", { name: "Add environment" }).click();
    await textMatches(dialog.locator("#add-env-name-error"), /name/);
    expect((await api<Array<{ name: string }>>("GET", `/v1/apps/${APP}/environments`)).map((e) => e.name)).toEqual(["test", "live"]);
    await expectAccessible(page, "the add-environment dialog with a refused name");

    await dialog.getByLabel("Name").fill("qa");
    await dialog.getByLabel(/Based on another environment/).check();
    await dialog.getByLabel("Based on", { exact: true }).selectOption("test");
    await expectAccessible(page, "the add-environment dialog");
    await shot(page, "add-environment");
    await dialog.getByRole("button", { name: "Add environment" }).click();
    await dialog.waitFor({ state: "detached" });
    await textMatches(card("qa").locator(".badge"), /not deployed/);
    const testVars = await api("GET", `/v1/apps/${APP}/environments/test/variables?reveal=true`);
    expect(await api("GET", `/v1/apps/${APP}/environments/qa/variables?reveal=true`)).toEqual(testVars);
    expect(testVars.GREETING).toBe("Bonjour from the browser");
    const qa = await api("GET", `/v1/apps/${APP}/environments/qa`);
    expect(qa.sleepAfterSeconds).toBe(600);
    expect(qa.domains).toEqual([`${APP}-qa.localhost`]);
  });

  it("stops and starts test from its card, and removes qa after its name is typed; test and live offer no Remove", async () => {
    await page.goto(`/apps/${APP}`);
    await textMatches(card("test").locator(".card-head .badge"), /^running$/);
    await card("test").getByRole("button", { name: "Stop test" }).click();
    await textMatches(card("test").locator(".card-head .badge"), /^stopped$/, 60_000);
    expect((await api("GET", `/v1/apps/${APP}/environments/test`)).state).toBe("stopped");
    await card("test").getByRole("button", { name: "Start test" }).click();
    await textMatches(card("test").locator(".card-head .badge"), /^running$/, 60_000);
    expect((await getVia(agent.ingressPort, `${APP}-test.localhost`)).body).toBe(BODY);

    for (const kept of ["test", "live"]) {
      await card(kept).getByText(`More for ${kept}`).click();
      await textMatches(card(kept).locator(".menu"), new RegExp(`${kept} cannot be removed: every app keeps test and live`));
      expect(await card(kept).getByRole("button", { name: /Remove/ }).count()).toBe(0);
    }
    await card("qa").getByText("More for qa").click();
    await card("qa").getByRole("button", { name: "Remove qa…" }).click();
    const dialog = page.getByRole("dialog", { name: `Remove ${APP} / qa` });
    await dialog.getByLabel("Type qa to confirm").fill("test");
    await dialog.getByRole("button", { name: "Remove qa" }).click();
    await textMatches(dialog.locator(".field-error"), /type qa to confirm/);
    expect((await api<Array<{ name: string }>>("GET", `/v1/apps/${APP}/environments`)).map((e) => e.name)).toContain("qa");
    await expectAccessible(page, "the remove dialog");
    await dialog.getByLabel("Type qa to confirm").fill("qa");
    await dialog.getByRole("button", { name: "Remove qa" }).click();
    await card("qa").waitFor({ state: "detached" });
    expect((await platform.api.raw("GET", `/v1/apps/${APP}/environments/qa`)).status).toBe(404);
    await expectAccessible(page, "the app page with its menus open");
  }, 150_000);

  it("edits the app's settings: release commands in order (moved by keyboard), web port, probe with its defaults; a bad port is refused", async () => {
    browser.expectConsoleError(/status of 400/);
    await page.goto(`/apps/${APP}`);
    await page.getByRole("link", { name: "App settings" }).click();
    await page.getByRole("heading", { name: `Settings of ${APP}`, level: 1 }).waitFor();
    await page.getByText("Default 200-499").first().waitFor();
    for (const [label, command] of [["Migrate", "./migrate.sh"], ["Warm cache", "./warm.sh"]]) {
      await page.getByRole("button", { name: "Add release command" }).click();
      const n = await page.locator(".release-command").count();
      await page.getByLabel(`Label of command ${n}`).fill(label);
      await page.getByLabel(`Command ${n}`, { exact: true }).fill(command);
    }
    // By keyboard: focus "Move up Warm cache", press Enter; the focus stays with the moved row.
    await page.getByRole("button", { name: "Move up Warm cache" }).focus();
    await page.keyboard.press("Enter");
    await textMatches(page.getByRole("list", { name: "Release commands" }).locator("li").first(), /./);
    expect(await page.getByLabel("Label of command 1").inputValue()).toBe("Warm cache");
    // The page moves the focus one animation frame after the row moved (the pressed button is gone at the top).
    await focusReaches(page, "Move down Warm cache");

    await page.getByLabel("Web port").fill("70000");
    await page.getByRole("button", { name: "Save app settings" }).click();
    await textMatches(page.locator("#web-port-error"), /webPort/);
    expect((await api("GET", `/v1/apps/${APP}`)).settings.releaseCommands).toEqual([]);
    await expectAccessible(page, "the app settings page with a refused port");

    await page.getByLabel("Web port").fill("8080");
    await page.getByLabel("Startup timeout (seconds)").fill("90");
    await page.getByRole("button", { name: "Save app settings" }).click();
    await textMatches(page.locator(".app-settings .saved"), /Saved the app's settings/);
    const settings = (await api("GET", `/v1/apps/${APP}`)).settings;
    expect(settings.releaseCommands).toEqual([
      { label: "Warm cache", command: "./warm.sh" },
      { label: "Migrate", command: "./migrate.sh" },
    ]);
    expect(settings.webPort).toBe(8080);
    expect(settings.startupProbe).toEqual({ path: "/", acceptedStatuses: "200-499", startupTimeoutSeconds: 90, probeTimeoutSeconds: 10, maxRetries: 300 });
    await page.reload();
    await page.getByRole("heading", { name: `Settings of ${APP}`, level: 1 }).waitFor();
    expect(await page.getByLabel("Label of command 1").inputValue()).toBe("Warm cache");
    await expectAccessible(page, "the app settings page");
    await shot(page, "app-settings");
  });

  it("reveals values for an admin; fits 360 px; a viewer sees masked values and no change buttons", async () => {
    await page.goto(envUrl("test"));
    await page.getByRole("heading", { name: `Settings of ${APP} / test`, level: 1 }).waitFor();
    const value = page.locator('[data-value-of="GREETING"]');
    await textMatches(value, /^•+$/);
    await page.getByRole("button", { name: "Reveal GREETING" }).click();
    await textMatches(value, /^Bonjour from the browser$/);
    await textMatches(page.locator('[data-value-of="FEATURE_X"]'), /^•+$/);
    await page.getByRole("button", { name: "Reveal all values" }).click();
    await textMatches(page.locator('[data-value-of="FEATURE_X"]'), /^on$/);
    await expectAccessible(page, "the environment settings page with revealed values");

    await page.setViewportSize({ width: 360, height: 740 });
    try {
      for (const [url, heading] of [[envUrl("test"), `Settings of ${APP} / test`], [envUrl("live"), `Settings of ${APP} / live`], [`/apps/${APP}/settings`, `Settings of ${APP}`], [`/apps/${APP}`, APP]] as const) {
        await page.goto(url);
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
        await page.waitForLoadState("networkidle").catch(() => undefined);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(width, `${url} is ${width} px wide at 360`).toBeLessThanOrEqual(360);
        await expectAccessible(page, `${url} at 360 px`);
      }
      await page.getByRole("button", { name: "Add environment" }).click();
      const dialog = page.getByRole("dialog", { name: `Add an environment to ${APP}` });
      await dialog.getByLabel(/Based on another environment/).check();
      const box = await dialog.boundingBox();
      expect(box!.x + box!.width).toBeLessThanOrEqual(360);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
      await expectAccessible(page, "the add-environment dialog at 360 px");
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }

    const { token: viewerToken } = await api("POST", "/v1/tokens", { name: "settings-viewer", role: "viewer", apps: [APP] });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    await waitFor("the session cookie to be cleared", async () => !(await browser.browserContext.cookies()).some((c) => c.name === "slipway_session" && c.value), { timeoutMs: 5_000, intervalMs: 50 });
    await signIn(page, viewerToken);
    await page.goto(envUrl("test"));
    await page.getByRole("heading", { name: `Settings of ${APP} / test`, level: 1 }).waitFor();
    await textMatches(page.locator('[data-value-of="GREETING"]'), /^•+$/);
    await page.getByRole("form", { name: "Deployment and resources" }).waitFor();
    expect(await page.locator("main button").count()).toBe(0);
    expect(await page.getByRole("form", { name: "Add a variable" }).count()).toBe(0);
    await expectAccessible(page, "the environment settings page as a viewer");
    await page.goto(`/apps/${APP}/settings`);
    await page.getByRole("heading", { name: `Settings of ${APP}`, level: 1 }).waitFor();
    await page.getByLabel("Label of command 1").waitFor();
    expect(await page.locator("main button").count()).toBe(0);
    await page.goto(`/apps/${APP}`);
    await textMatches(card("test").locator(".card-head .badge"), /^running$/);
    expect(await page.locator("main button").count()).toBe(0);
    expect(await page.locator("main details.menu").count()).toBe(0);
  });
});
