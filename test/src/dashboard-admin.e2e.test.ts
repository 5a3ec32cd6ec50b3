import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BrowserUnderTest } from "./support/browser.js";
import { expectAccessible, shot, signIn, textMatches } from "./support/dashboard.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { Platform, type AgentHandle } from "./support/platform.js";
import { waitFor } from "./support/processes.js";

// The dashboard's admin pages (issue 14) against the real platform with two agents: Fleet (hosts
// with state and heartbeat age, cordon/uncordon, a drain from the page followed to done, join
// tokens), Tokens (create with the secret shown once, refusals next to their fields, revoke) and
// Activity (filtered in the URL, live, older pages); axe, screenshots and 360 px on each; a
// viewer sees neither the admin pages' links nor their buttons.
const APP = "adm";
const BODY = "Hello from the admin pages";

describe("the dashboard's fleet, tokens and activity pages", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let browser: BrowserUnderTest;
  let page: Page;
  let agents: AgentHandle[] = [];
  const api = () => platform.api;
  const hostName = async (id: string) => (await api().call("GET", `/v1/hosts/${id}`)).name as string;
  const actions = (p: Page) => p.locator(".activity-row").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));

  beforeAll(async () => {
    repo.commit(helloApp(BODY), "hello");
    await platform.start();
    agents = [await platform.addAgent(), await platform.addAgent()];
    await api().call("POST", "/v1/apps", { name: APP, repository: repo.url });
    const d = await api().deploy(APP, "test");
    expect(d.state, await api().log(d.id)).toBe("succeeded");
    browser = new BrowserUnderTest({ baseURL: api().baseUrl });
    await browser.start();
    page = await browser.page();
    await signIn(page, platform.adminToken);
  }, 240_000);
  afterEach(() => browser.check());
  afterAll(async () => {
    await browser?.close();
    await platform.stop();
  });

  it("lists both hosts with state and heartbeat age; cordons and uncordons one; drains the app's host from the page to done", async () => {
    const running = (await api().call("GET", `/v1/apps/${APP}/environments/test`)).host as string;
    const from = agents.find((a) => a.hostId === running)!;
    const to = agents.find((a) => a.hostId !== running)!;
    const fromName = await hostName(from.hostId!);
    const toName = await hostName(to.hostId!);

    await page.getByRole("link", { name: "Fleet", exact: true }).click();
    await page.getByRole("heading", { name: "Fleet", level: 1 }).waitFor();
    const card = (name: string) => page.getByRole("article", { name, exact: true });
    for (const name of [fromName, toName]) {
      await textMatches(card(name).locator(".host-states"), /^online$/);
      await textMatches(card(name).locator(".heartbeat"), /^\d+ s ago$/);
    }
    await textMatches(card(fromName).locator(".host-envs"), new RegExp(`${APP} / test`));
    // The age counts on and the list is read again while the page stays open (heartbeats every few seconds).
    const seen = new Set<string>();
    await waitFor("the heartbeat age to change on the page", async () => {
      seen.add((await card(toName).locator(".heartbeat").textContent()) ?? "");
      return seen.size >= 3;
    }, { timeoutMs: 15_000, intervalMs: 300 });
    await expectAccessible(page, "the fleet page");
    await shot(page, "fleet");

    await card(toName).getByRole("button", { name: `Cordon ${toName}` }).click();
    await textMatches(card(toName).locator(".host-states"), /^cordoned$/);
    expect((await api().call("GET", `/v1/hosts/${to.hostId}`)).state).toBe("cordoned");
    await card(toName).getByRole("button", { name: `Uncordon ${toName}` }).click();
    await textMatches(card(toName).locator(".host-states"), /^online$/);
    expect((await api().call("GET", `/v1/hosts/${to.hostId}`)).state).toBe("online");

    // Revoking asks for the host's name typed; kept, nothing changes.
    await card(toName).getByRole("button", { name: `Revoke ${toName}` }).click();
    const revoke = page.getByRole("dialog", { name: `Revoke ${toName}?` });
    const confirm = revoke.getByRole("button", { name: `Revoke ${toName}` });
    expect(await confirm.isDisabled()).toBe(true);
    await revoke.getByLabel(`Type ${toName} to confirm`).fill(fromName);
    expect(await confirm.isDisabled()).toBe(true);
    await expectAccessible(page, "the revoke dialog");
    await page.keyboard.press("Escape");
    await revoke.waitFor({ state: "detached" });
    expect((await api().call("GET", `/v1/hosts/${to.hostId}`)).adminState).toBe("active");

    // Every text the drain's status line shows, as it shows it (a short state could pass between two reads of the test).
    await page.evaluate(() => {
      const w = window as unknown as { drainTexts: string[] };
      w.drainTexts = [];
      new MutationObserver(() => {
        for (const el of Array.from(document.querySelectorAll(".drain-head"))) {
          const text = (el.textContent ?? "").trim();
          if (text && w.drainTexts[w.drainTexts.length - 1] !== text) w.drainTexts.push(text);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await card(fromName).getByRole("button", { name: `Drain ${fromName}` }).click();
    const drain = card(fromName).getByRole("region", { name: `Drain of ${fromName}` });
    await textMatches(drain.locator(".drain-head"), /^Drain done: 1 environment moved, nothing left on this host\.$/, 150_000);
    const texts = await page.evaluate(() => (window as unknown as { drainTexts: string[] }).drainTexts);
    // (A refresh of the list between the drain's start and its answer may show it just before its move is queued: "1 left." alone.)
    expect(texts[0]).toMatch(/^Draining: 0 of 1 moved, 1 left( \(1 moving now\))?\.$/);
    expect(texts).toContainEqual("Draining: 0 of 1 moved, 1 left (1 moving now).");
    await expectAccessible(page, "the fleet page after a drain");
    await textMatches(card(fromName).locator(".host-states"), /^draining$/);
    await textMatches(card(fromName).locator("dd").last(), /^nothing$/);
    await textMatches(card(toName).locator(".host-envs"), new RegExp(`${APP} / test`));
    // Moved: the environment runs on the other host, which serves it.
    const env = await api().call("GET", `/v1/apps/${APP}/environments/test`);
    expect(env.host).toBe(to.hostId);
    expect(env.state).toBe("running");
    expect(await getVia(to.ingressPort, `${APP}-test.localhost`)).toEqual({ status: 200, body: BODY });
    expect((await api().call("GET", `/v1/hosts/${from.hostId}/drain`)).state).toBe("done");

    // A join token, shown once with the command that starts an agent with it.
    await page.getByRole("button", { name: "Create join token" }).click();
    const command = await page.getByLabel("Command to join", { exact: true }).inputValue();
    const token = await page.getByLabel("Join token", { exact: true }).inputValue();
    expect(token).toMatch(/^\S{20,}$/);
    expect(command).toContain(`SLIPWAY_JOIN_TOKEN=${token} slipway-agent`);
    await page.getByRole("status").filter({ hasText: "It is not shown again" }).waitFor();
    await page.getByRole("button", { name: "Copy the command" }).waitFor();
    await expectAccessible(page, "the fleet page with a join token");
  }, 200_000);

  it("creates a viewer token shown once that works, refuses bad input next to the field, and revokes it", async () => {
    const count = async () => (await api().call("GET", "/v1/tokens")).length as number;
    await page.getByRole("link", { name: "Tokens", exact: true }).click();
    await page.getByRole("heading", { name: "Tokens", level: 1 }).waitFor();
    await page.getByRole("listitem").filter({ hasText: "bootstrap" }).waitFor();
    await expectAccessible(page, "the tokens page");
    const before = await count();

    // An empty name: the API's message next to Name, nothing created.
    browser.expectConsoleError(/status of 400/);
    await page.getByLabel("Apps", { exact: true }).fill(APP);
    await page.getByRole("button", { name: "Create token" }).click();
    const nameError = await textMatches(page.locator("#token-name-error"), /\S/);
    expect(nameError).toMatch(/name/);
    expect(await page.getByLabel("Name", { exact: true }).getAttribute("aria-invalid")).toBe("true");
    expect(await count()).toBe(before);
    // A deployer without apps: refused by the API, its message next to Apps.
    await page.getByLabel("Name", { exact: true }).fill("dash-deployer");
    await page.getByLabel(/^deployer/).check();
    await page.getByLabel("Apps", { exact: true }).fill("");
    await page.getByRole("button", { name: "Create token" }).click();
    await textMatches(page.locator("#token-apps-error"), /a deployer token needs at least one app/);
    expect(await page.locator("#token-name-error").count()).toBe(0);
    expect(await count()).toBe(before);
    await expectAccessible(page, "the tokens page with a refused form");

    await page.getByLabel("Name", { exact: true }).fill("dash-viewer");
    await page.getByLabel(/^viewer/).check();
    await page.getByLabel("Apps", { exact: true }).fill(APP);
    await page.getByRole("button", { name: "Create token" }).click();
    const secretField = page.getByLabel("Secret of dash-viewer");
    await secretField.waitFor();
    const secret = await secretField.inputValue();
    await page.getByRole("status").filter({ hasText: "it is not shown again" }).waitFor();
    await page.getByRole("button", { name: "Copy the secret" }).waitFor();
    expect((await api().raw("GET", "/v1/apps", undefined, secret)).status).toBe(200);
    const row = page.locator('.token-row[data-token="dash-viewer"]');
    await textMatches(row, /viewer/);
    await textMatches(row, new RegExp(`Apps${APP}`));
    await shot(page, "tokens");
    // The secret is not on the page once it is left.
    await page.getByRole("link", { name: "Apps", exact: true }).click();
    await page.getByRole("link", { name: "Tokens", exact: true }).click();
    await row.waitFor();
    expect(await page.content()).not.toContain(secret);

    await row.getByRole("button", { name: "Revoke dash-viewer" }).click();
    const dialog = page.getByRole("dialog", { name: "Revoke dash-viewer?" });
    await dialog.waitFor();
    await expectAccessible(page, "the revoke dialog");
    await dialog.getByRole("button", { name: "Revoke dash-viewer" }).click();
    await dialog.waitFor({ state: "detached" });
    await textMatches(row.locator(".token-head"), /revoked/);
    expect(await row.getByRole("button", { name: "Revoke dash-viewer" }).count()).toBe(0);
    expect((await api().raw("GET", "/v1/apps", undefined, secret)).status).toBe(401);
  });

  it("shows the app's activity filtered in the URL, new entries live, and older ones on demand", async () => {
    await page.goto(`/activity?app=${APP}`);
    await page.getByRole("heading", { name: "Activity", level: 1 }).waitFor();
    await textMatches(page.locator(".live"), /^Live$/);
    await waitFor("the deployment and the drain in the app's feed", async () => {
      const a = await actions(page);
      return a.includes("deployment.requested") && a.includes("environment.moved") && a.every((x) => !x?.startsWith("host."));
    }, { timeoutMs: 10_000, intervalMs: 200 });
    expect(await page.getByLabel("App", { exact: true }).inputValue()).toBe(APP);
    await page.getByLabel("Environment", { exact: true }).selectOption("live");
    await waitFor("the URL to name the environment", async () => new URL(page.url()).search === `?app=${APP}&env=live`, { timeoutMs: 5_000, intervalMs: 50 });
    await page.getByText("Nothing happened here yet").waitFor();
    await page.getByLabel("Environment", { exact: true }).selectOption("test");
    await waitFor("test's entries", async () => (await actions(page)).includes("environment.moved"), { timeoutMs: 10_000, intervalMs: 200 });
    expect(new URL(page.url()).search).toBe(`?app=${APP}&env=test`);
    await expectAccessible(page, "the activity page filtered");

    // The whole feed; an entry made through the API arrives without a reload.
    await page.getByLabel("App", { exact: true }).selectOption("");
    await waitFor("the URL without a filter", async () => new URL(page.url()).search === "", { timeoutMs: 5_000, intervalMs: 50 });
    await textMatches(page.locator(".live"), /^Live$/);
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
    const other = agents[0]!.hostId!;
    await api().call("POST", `/v1/hosts/${other}/cordon`);
    await waitFor("the cordon on top of the feed", async () => (await actions(page))[0] === "host.cordoned", { timeoutMs: 10_000, intervalMs: 100 });
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    await shot(page, "activity");

    // More than a page: the oldest entries (the hosts' registrations) come with Older entries.
    const active = async () => (await actions(page)).filter((a) => a === "host.active").length;
    const activeBefore = await active();
    for (let i = 0; i < 30; i++) {
      await api().call("POST", `/v1/hosts/${other}/uncordon`);
      await api().call("POST", `/v1/hosts/${other}/cordon`);
    }
    await api().call("POST", `/v1/hosts/${other}/uncordon`);
    await waitFor("the live entries", async () => (await active()) === activeBefore + 31, { timeoutMs: 15_000, intervalMs: 200 });
    await page.reload();
    await page.getByRole("heading", { name: "Activity", level: 1 }).waitFor();
    await waitFor("the first page", async () => (await actions(page)).length === 50, { timeoutMs: 10_000, intervalMs: 200 });
    expect(await actions(page)).not.toContain("host.registered");
    await page.getByRole("button", { name: "Older entries" }).click();
    await page.getByText("That is the first entry.").waitFor();
    const all = await actions(page);
    expect(all.filter((a) => a === "host.registered")).toHaveLength(2);
    // Both pages together: the whole feed as the API has it, newest first, each entry once.
    const ids = await page.locator(".activity-row").evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-id"))));
    expect(ids).toEqual(((await api().call("GET", "/v1/activity?limit=500")) as Array<{ id: number }>).map((e) => e.id));
    await expectAccessible(page, "the activity page with older entries");
  }, 60_000);

  it("fits 360 px on every page; a viewer sees neither Fleet nor Tokens links nor change buttons, and its app's feed", async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    try {
      for (const [url, heading] of [["/fleet", "Fleet"], ["/tokens", "Tokens"], [`/activity?app=${APP}`, "Activity"], ["/activity", "Activity"]] as const) {
        await page.goto(url);
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
        await page.locator(".host-card, .token-row, .activity-row").first().waitFor();
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(width, `${url} is ${width} px wide at 360`).toBeLessThanOrEqual(360);
        await expectAccessible(page, `${url} at 360 px`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }

    const { token: viewer } = await api().call("POST", "/v1/tokens", { name: "dash-reader", role: "viewer", apps: [APP] });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    // The DELETE's answer clears the cookie (and the page's marker): only then is the next sign-in page a fresh one.
    await waitFor("the session cookie to be cleared", async () => !(await browser.browserContext.cookies()).some((c) => c.name === "slipway_session" && c.value) && (await page.evaluate(() => localStorage.getItem("slipway.signedIn"))) === null, { timeoutMs: 5_000, intervalMs: 50 });
    await signIn(page, viewer);
    const nav = page.getByRole("navigation", { name: "Main" });
    await nav.getByRole("link", { name: "Activity" }).waitFor();
    expect(await nav.getByRole("link", { name: "Fleet" }).count()).toBe(0);
    expect(await nav.getByRole("link", { name: "Tokens" }).count()).toBe(0);

    await nav.getByRole("link", { name: "Activity" }).click();
    await page.getByRole("heading", { name: "Activity", level: 1 }).waitFor();
    await waitFor("the app's feed", async () => (await actions(page)).includes("environment.moved"), { timeoutMs: 10_000, intervalMs: 200 });
    expect((await actions(page)).some((a) => a?.startsWith("host.") || a?.startsWith("token."))).toBe(false);
    expect(await page.getByLabel("App", { exact: true }).locator("option").allTextContents()).toEqual([APP]);
    await expectAccessible(page, "the activity page as a viewer");

    for (const url of ["/fleet", "/tokens"]) {
      await page.goto(url);
      await page.getByText(/an admin's to see and change/).waitFor();
      expect(await page.getByRole("main").getByRole("button").count(), url).toBe(0);
      await expectAccessible(page, `${url} as a viewer`);
    }
  });
});
