import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BrowserUnderTest } from "./support/browser.js";
import { expectAccessible, shot, signIn, textMatches } from "./support/dashboard.js";
import { dataAppFiles, vendorPg } from "./support/data-app.js";
import { TestRepo } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { Platform, type AgentHandle } from "./support/platform.js";
import { waitFor } from "./support/processes.js";

// The Metrics and Data pages of the dashboard (issue 14) in Debian's chromium against the real
// platform: an app with a database and media (support/data-app.ts) deployed to test and live.
// Metrics: requests through the ingress plotted, the deployment marked. Data: a content copy
// test → live followed in bytes and objects to done (live then holds test's rows and objects), a
// backup made and restored into another environment, the schedule refusing bad input with the
// API's message and nothing changed; axe and screenshots; 360 px; a viewer sees no change button.
const APP = "md";
const REQUESTS = 200;
// Enough media that a copy runs for a few of the page's one-second polls (its progress is seen to move).
const OBJECTS = 400;

interface Checksum {
  count: number;
  rows: string;
  objects: Record<string, string>;
}

describe("the Metrics and Data pages in a real browser", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let browser: BrowserUnderTest;
  let agent: AgentHandle;
  let page: Page;
  let testCommit = "";
  const api = () => platform.api;
  const get = async (env: string, path: string) => {
    const r = await getVia(agent.ingressPort, `${APP}-${env}.localhost`, path);
    if (r.status !== 200) throw new Error(`${env} ${path}: ${r.status} ${r.body}`);
    return r.body;
  };
  const checksum = async (env: string) => JSON.parse(await get(env, "/checksum")) as Checksum;
  const envUrl = (env: string, tab: string) => `/apps/${APP}/environments/${env}/${tab}`;

  beforeAll(async () => {
    vendorPg(repo.dir);
    repo.commit(dataAppFiles, "data app");
    await platform.start();
    // Metrics pushed every second, so the requests reach the API within seconds.
    agent = await platform.addAgent({ SLIPWAY_METRICS_INTERVAL_MS: "1000" });
    await api().call("POST", "/v1/apps", { name: APP, repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 30 } } });
    for (const env of ["test", "live"]) {
      const d = await api().deploy(APP, env);
      expect(d.state, await api().log(d.id)).toBe("succeeded");
      if (env === "test") testCommit = d.commit;
    }
    expect(JSON.parse(await get("test", `/write?rows=30&objects=${OBJECTS}&tag=test`))).toEqual({ rows: 30, objects: OBJECTS });
    expect(JSON.parse(await get("live", "/write?rows=5&objects=3&tag=live"))).toEqual({ rows: 5, objects: 3 });
    browser = new BrowserUnderTest({ baseURL: platform.api.baseUrl });
    await browser.start();
    page = await browser.page();
    await signIn(page, platform.adminToken);
  }, 300_000);
  afterEach(() => browser.check());
  afterAll(async () => {
    await browser?.close();
    await platform.stop();
  });

  it("plots the requests sent to test, with its deployment marked on the time axis", async () => {
    const since = new Date(Date.now() - 120_000).toISOString();
    for (let i = 0; i < REQUESTS; i++) expect((await getVia(agent.ingressPort, `${APP}-test.localhost`, "/")).status).toBe(200);
    // The page reads what the API has: wait until the requests are there, as a user would wait for the next refresh.
    await waitFor("the requests in the metrics API", async () => {
      const { series } = await api().call<{ series: { requests: number }[] }>("GET", `/v1/apps/${APP}/environments/test/metrics?since=${encodeURIComponent(since)}`);
      return series.reduce((n, p) => n + p.requests, 0) >= REQUESTS;
    }, { timeoutMs: 60_000, intervalMs: 500 });

    await page.goto(envUrl("test", "metrics"));
    await page.getByRole("heading", { name: `Metrics of ${APP} / test`, level: 1 }).waitFor();
    const requests = page.locator('[data-graph="requests"]');
    await requests.getByRole("heading", { name: "Requests per second by status class" }).waitFor();
    await waitFor("plotted requests", async () => Number(await requests.getAttribute("data-plotted")) > 0, { timeoutMs: 30_000, intervalMs: 250 });
    // The text summary says it in words: a 2xx rate above zero at its peak.
    const summary = await textMatches(requests.locator(".graph-summary"), /2xx: [\d.]+ req\/s now, peak [\d.]+/);
    expect(Number(/2xx: [\d.]+ req\/s now, peak ([\d.]+)/.exec(summary)![1])).toBeGreaterThan(0);
    for (const graph of ["Latency", "CPU", "Memory"]) await page.getByRole("heading", { name: graph, level: 2, exact: true }).waitFor();
    await textMatches(page.locator('[data-graph="latency"] .graph-summary'), /p50: [\d.]+ ms now/);
    // The deployment of test: marked on every graph (D1) and named below them.
    expect(Number(await requests.getAttribute("data-markers"))).toBeGreaterThanOrEqual(1);
    await textMatches(page.getByRole("list", { name: "Deployments marked on the graphs" }), new RegExp(`D1: deployment ${testCommit.slice(0, 7)} succeeded`));
    expect(await requests.locator("canvas").count()).toBeGreaterThan(0);
    await expectAccessible(page, "the metrics page");
    await shot(page, "metrics");

    // Another range: the same points, one query for 15 minutes.
    await page.getByRole("radio", { name: "Last 15 min" }).check();
    await waitFor("plotted requests in 15 min", async () => Number(await requests.getAttribute("data-plotted")) > 0, { timeoutMs: 15_000, intervalMs: 250 });

    // Refreshed while shown (every 12 s); a hidden tab asks nothing, and asks at once when shown again.
    const asked: number[] = [];
    page.on("request", (r) => {
      if (r.url().includes(`/environments/test/metrics?since=`)) asked.push(Date.now());
    });
    await waitFor("a refresh while shown", async () => asked.length > 0, { timeoutMs: 16_000, intervalMs: 200 });
    const setVisibility = (state: "hidden" | "visible") =>
      page.evaluate((v) => {
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => v });
        document.dispatchEvent(new Event("visibilitychange"));
      }, state);
    await setVisibility("hidden");
    const hiddenAt = Date.now();
    await new Promise((r) => setTimeout(r, 14_000)); // longer than the refresh interval: the time is what is under test
    expect(asked.filter((t) => t > hiddenAt + 200)).toEqual([]);
    // The time before showing: the page may ask while the evaluate that shows it has not returned yet.
    const shownAt = Date.now();
    await setVisibility("visible");
    await waitFor("a refresh on showing the tab", async () => asked.some((t) => t >= shownAt), { timeoutMs: 3_000, intervalMs: 100 });
  });

  it("copies test's database and media into live from live's Data page, with progress in bytes and objects to done", async () => {
    const testBefore = await checksum("test");
    await page.goto(envUrl("live", "data"));
    await page.getByRole("heading", { name: `Data of ${APP} / live`, level: 1 }).waitFor();
    await page.getByRole("heading", { name: "Copy content into live" }).waitFor();
    await expectAccessible(page, "the data page");

    // Not confirmed: refused on the page, nothing started.
    await page.getByRole("button", { name: "Copy into live" }).click();
    await textMatches(page.locator("#copy-confirm-error"), new RegExp(`type ${APP}/live to confirm`));
    expect(await page.locator("[data-operation]").count()).toBe(0);
    expect(await checksum("live")).not.toEqual(testBefore);

    // Every figure the page shows, as it changes.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { progressSeen: string[] }).progressSeen = seen;
      new MutationObserver(() => {
        const el = document.querySelector(".operation");
        const text = el ? `${el.getAttribute("data-state")} ${el.querySelector(".progress-counts")?.textContent ?? ""}` : "";
        if (text && seen[seen.length - 1] !== text) seen.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await page.getByLabel("From environment").selectOption("test");
    await page.getByLabel(`Type ${APP}/live to confirm`).fill(`${APP}/live`);
    await page.getByRole("button", { name: "Copy into live" }).click();
    const op = page.locator("[data-operation]");
    await op.getByRole("heading", { name: "Content copy from test into live" }).waitFor();
    await waitFor("the copy to end", async () => {
      const s = await op.getAttribute("data-state");
      return s === "succeeded" || s === "failed" ? s : undefined;
    }, { timeoutMs: 120_000, intervalMs: 250 });
    expect(await op.getAttribute("data-state"), await op.textContent() ?? "").toBe("succeeded");
    const seen = await page.evaluate(() => (window as unknown as { progressSeen: string[] }).progressSeen);
    console.info(`content copy as the page showed it: ${seen.join(" | ")}`);
    // It moved: more than one figure while running, then done with bytes and all of test's objects.
    expect(seen.filter((s) => /^running [1-9][\d.]* [kMG]?B copied/.test(s)).length, seen.join(" | ")).toBeGreaterThanOrEqual(2);
    expect(seen[seen.length - 1], seen.join(" | ")).toMatch(/^succeeded /);
    expect(Number(await op.locator("[data-bytes]").getAttribute("data-bytes"))).toBeGreaterThan(0);
    expect(Number(await op.locator("[data-objects]").getAttribute("data-objects"))).toBeGreaterThanOrEqual(OBJECTS);
    await textMatches(op.locator(".progress-counts"), /\d.* copied, \d+ objects/);
    await expectAccessible(page, "the data page after a copy");
    // live now holds test's rows and objects, exactly.
    expect(await checksum("live")).toEqual(testBefore);
  });

  it("makes a backup of test from the page, lists it done, and restores it into live after typing live's name", async () => {
    const testContent = await checksum("test");
    await get("live", "/write?rows=3&objects=2&tag=extra");
    expect(await checksum("live")).not.toEqual(testContent);

    await page.goto(envUrl("test", "data"));
    await page.getByRole("heading", { name: `Data of ${APP} / test`, level: 1 }).waitFor();
    await page.getByRole("button", { name: "Back up now" }).click();
    const backup = await waitFor("the manual backup in the API", async () => {
      const list = await api().call<{ id: string; kind: string }[]>("GET", `/v1/apps/${APP}/environments/test/backups`);
      return list.find((b) => b.kind === "manual");
    }, { timeoutMs: 10_000, intervalMs: 200 });
    const row = page.locator(`[data-backup="${backup.id}"]`);
    await textMatches(row, /^succeeded\s*manual/, 90_000);
    await textMatches(row, new RegExp(`database \\+ media.*\\d.*B, ${OBJECTS} objects`));
    await row.getByRole("link", { name: /Download the database/ }).waitFor();
    await row.getByRole("link", { name: /Download the media/ }).waitFor();

    await row.getByRole("button", { name: /^Restore the backup/ }).click();
    const dialog = page.getByRole("dialog", { name: "Restore a backup of test" });
    await dialog.waitFor();
    await dialog.getByLabel("Into environment").selectOption("live");
    await expectAccessible(page, "the restore dialog");
    // The confirmation names the target: test's name does not do for live.
    await dialog.getByLabel(`Type ${APP}/live to confirm`).fill(`${APP}/test`);
    await dialog.getByRole("button", { name: "Restore into live" }).click();
    await textMatches(dialog.locator("#restore-confirm-error"), new RegExp(`type ${APP}/live to confirm`));
    await dialog.getByLabel(`Type ${APP}/live to confirm`).fill(`${APP}/live`);
    await dialog.getByRole("button", { name: "Restore into live" }).click();
    const op = page.locator("[data-operation]");
    await op.getByRole("heading", { name: "Restore into live" }).waitFor();
    await waitFor("the restore to end", async () => {
      const s = await op.getAttribute("data-state");
      return s === "succeeded" || s === "failed" ? s : undefined;
    }, { timeoutMs: 120_000, intervalMs: 250 });
    expect(await op.getAttribute("data-state"), (await op.textContent()) ?? "").toBe("succeeded");
    expect(await checksum("live")).toEqual(testContent);
    await expectAccessible(page, "the data page after a restore");
    await shot(page, "data");
  });

  it("refuses a bad retention with the API's message next to the field, and changes nothing", async () => {
    const before = await api().call("GET", `/v1/apps/${APP}/environments/live/backup-schedule`);
    await page.goto(envUrl("live", "data"));
    await page.getByRole("heading", { name: "Backup schedule" }).waitFor();
    const daily = page.getByLabel("Daily backups kept");
    await waitFor("the schedule in the form", async () => (await daily.inputValue()) === String(before.retention.daily));
    browser.expectConsoleError(/status of 400/);
    await daily.fill("366");
    await page.getByRole("button", { name: "Save schedule" }).click();
    await textMatches(page.locator("#retention-daily-error"), /retention\.daily must be <= 365/);
    expect(await daily.getAttribute("aria-invalid")).toBe("true");
    await daily.fill(String(before.retention.daily));
    await page.getByLabel("Weekly backups kept").fill("two");
    await page.getByRole("button", { name: "Save schedule" }).click();
    await textMatches(page.locator("#retention-weekly-error"), /retention\.weekly must be integer/);
    expect(await page.locator("#retention-daily-error").count()).toBe(0);
    await expectAccessible(page, "the schedule form with an error");
    expect(await api().call("GET", `/v1/apps/${APP}/environments/live/backup-schedule`)).toEqual(before);
  });

  it("fits both pages in 360 px, and shows a viewer no backup, restore, copy or save button", async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    try {
      for (const [url, heading] of [
        [envUrl("test", "metrics"), `Metrics of ${APP} / test`],
        [envUrl("live", "data"), `Data of ${APP} / live`],
      ] as const) {
        await page.goto(url);
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
        await page.locator(url.endsWith("metrics") ? '[data-graph="requests"] canvas' : '[data-backup]').first().waitFor();
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(width, `${url} is ${width} px wide at 360`).toBeLessThanOrEqual(360);
        await expectAccessible(page, `${url} at 360 px`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }

    const { token } = await api().call("POST", "/v1/tokens", { name: "md-viewer", role: "viewer", apps: [APP] });
    // Signed out as admin, signed in as the viewer (one session cookie per browser).
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    await waitFor("the session cookie to be cleared", async () => !(await browser.browserContext.cookies()).some((c) => c.name === "slipway_session" && c.value), { timeoutMs: 5_000, intervalMs: 50 });
    await signIn(page, token);
    await page.goto(envUrl("live", "data"));
    await page.getByRole("heading", { name: `Data of ${APP} / live`, level: 1 }).waitFor();
    await textMatches(page.getByRole("list", { name: "Backups of live" }), /succeeded/);
    await page.getByRole("heading", { name: "Backup schedule" }).waitFor();
    expect(await page.getByRole("button").filter({ hasText: /Back up|Restore|Copy|Save/ }).count()).toBe(0);
    expect(await page.getByRole("link", { name: /Download/ }).count()).toBe(0);
    expect(await page.getByRole("heading", { name: "Copy content into live" }).count()).toBe(0);
    expect(await page.getByLabel("Daily backups kept").isDisabled()).toBe(true);
    await expectAccessible(page, "the data page as a viewer");
    await page.goto(envUrl("test", "metrics"));
    await page.locator('[data-graph="requests"] canvas').waitFor();
    expect(Number(await page.locator('[data-graph="requests"]').getAttribute("data-plotted"))).toBeGreaterThan(0);
  });
});
