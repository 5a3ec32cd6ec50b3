import http from "node:http";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BrowserUnderTest } from "./support/browser.js";
import { expectAccessible, shot, signIn, textMatches } from "./support/dashboard.js";
import { TestRepo, nodeServerApp } from "./support/git-repo.js";
import { getVia } from "./support/load.js";
import { Platform, type AgentHandle } from "./support/platform.js";
import { waitFor } from "./support/processes.js";

// The Logs and Terminal pages (issue 14) in Debian's chromium against the real platform: an app
// whose server logs a line per request, deployed to test. The runtime log followed live (a
// request made after the page opened shows up without a reload, the filter narrows the lines,
// a broken stream resumes with every line once); the terminal runs a command in the container
// and shows the session's end; another site's WebSocket handshake is refused.
const APP = "logterm";
const SERVER = [
  'const http = require("http");',
  'http.createServer((req, res) => { console.log(`request ${req.method} ${req.url}`); res.end("ok"); }).listen(3000, () => console.log("listening on 3000"));',
  "",
].join("\n");

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Reads a text/event-stream with the admin token until `until` says enough (or the time is up). */
async function readEvents(url: string, headers: Record<string, string>, until: (events: SseEvent[]) => boolean, timeoutMs = 20_000): Promise<SseEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(url, { headers, signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let at: number;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const e: SseEvent = { event: "message", data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("id: ")) e.id = line.slice(4);
          else if (line.startsWith("event: ")) e.event = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length === 0) continue;
        e.data = data.join("\n");
        events.push(e);
      }
      if (until(events)) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return events;
}
const textOf = (e: SseEvent) => (JSON.parse(e.data) as { text: string }).text;

/** A WebSocket handshake by hand: the status the server answers (101 = upgraded). */
function handshake(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    // A connection of its own (no keep-alive pool: the refused handshake's connection is closed by the server).
    const req = http.request(url, { agent: false, headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...headers } });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the Logs and Terminal pages in a real browser", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let browser: BrowserUnderTest;
  let agent: AgentHandle;
  let page: Page;
  const logsUrl = `/apps/${APP}/environments/test/logs`;
  const request = async (path: string) => expect((await getVia(agent.ingressPort, `${APP}-test.localhost`, path)).status).toBe(200);
  /** The log lines on the page (their text), as a user reads them. */
  const shownLines = () => page.locator(".runlog-line .runlog-text").allTextContents();

  beforeAll(async () => {
    repo.commit(nodeServerApp(SERVER), "a server that logs each request");
    await platform.start();
    agent = await platform.addAgent();
    await platform.api.call("POST", "/v1/apps", { name: APP, repository: repo.url });
    const d = await platform.api.deploy(APP, "test", {}, 150_000);
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    browser = new BrowserUnderTest({ baseURL: platform.api.baseUrl });
    await browser.start();
    page = await browser.page();
    await signIn(page, platform.adminToken);
  }, 240_000);
  afterEach(() => browser.check());
  afterAll(async () => {
    await browser?.close();
    await platform.stop();
  });

  it("streams the runtime log as events whose ids resume after Last-Event-ID without loss or repeat (API)", async () => {
    for (const i of [1, 2, 3, 4]) await request(`/api-${i}`);
    const url = `${platform.api.baseUrl}/v1/apps/${APP}/environments/test/logs/events`;
    const auth = { authorization: `Bearer ${platform.adminToken}` };
    const lines = (es: SseEvent[]) => es.filter((e) => e.event === "line");
    const first = lines(await readEvents(url, auth, (es) => lines(es).some((e) => textOf(e) === "request GET /api-4")));
    const texts = first.map(textOf);
    expect(texts).toContain("listening on 3000");
    expect(texts.filter((t) => t.startsWith("request GET /api-"))).toEqual(["request GET /api-1", "request GET /api-2", "request GET /api-3", "request GET /api-4"]);
    for (const e of first) expect(e.id).toMatch(/^\d+-\d+$/);
    expect(new Set(first.map((e) => e.id)).size).toBe(first.length);
    // Resumed after /api-2's line: exactly what followed it, with the same ids.
    const cut = first.findIndex((e) => textOf(e) === "request GET /api-2");
    const resumed = lines(await readEvents(url, { ...auth, "last-event-id": first[cut]!.id! }, (es) => lines(es).some((e) => textOf(e) === "request GET /api-4")));
    expect(resumed.map((e) => [e.id, textOf(e)])).toEqual(first.slice(cut + 1).map((e) => [e.id, textOf(e)]));
    // A Last-Event-ID that is not one of this stream's is refused with the API's message.
    const bad = await fetch(`${url}?lastEventId=12`, { headers: auth });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/not an id of this stream/);
  });

  it("shows the log live: a request made after the page opened shows up without a reload; the filter narrows the lines", async () => {
    await page.goto(logsUrl);
    await page.getByRole("heading", { name: "Logs", level: 1 }).waitFor();
    await textMatches(page.locator(".live"), /^Live$/, 15_000);
    const log = page.getByRole("log", { name: `Runtime log of ${APP}/test` });
    await textMatches(log, /listening on 3000/, 15_000);
    await request("/after-open");
    await textMatches(log, /request GET \/after-open/, 15_000);

    const before = (await shownLines()).length;
    await page.getByLabel("Filter").fill("after-open");
    await textMatches(page.locator(".log-count"), new RegExp(`^1 of ${before} lines match`));
    expect(await shownLines()).toEqual(["request GET /after-open"]);
    expect(await page.locator(".runlog mark").allTextContents()).toEqual(["after-open"]);
    await expectAccessible(page, "the logs page, filtered");
    await page.getByLabel("Filter").fill("");
    expect((await shownLines()).length).toBe(before);
    await expectAccessible(page, "the logs page");
    await shot(page, "logs");
  });

  it("follows the newest line until the reader scrolls up; Follow brings it back; Since reopens the stream", async () => {
    await page.goto(logsUrl);
    const log = page.getByRole("log", { name: `Runtime log of ${APP}/test` });
    await textMatches(page.locator(".live"), /^Live$/, 15_000);
    for (let i = 1; i <= 60; i++) await request(`/fill-${i}`);
    await textMatches(log, /request GET \/fill-60\b/, 15_000);
    const atBottom = () => log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 24 && el.scrollHeight > el.clientHeight);
    await waitFor("the log scrolled to its newest line", atBottom, { timeoutMs: 5_000, intervalMs: 100 });
    const follow = page.getByRole("checkbox", { name: "Follow" });
    expect(await follow.isChecked()).toBe(true);
    // The reader scrolls up: following stops, and a new line does not pull the view down.
    await log.evaluate((el) => el.scrollTo({ top: 0 }));
    await waitFor("Follow to be unchecked", async () => !(await follow.isChecked()), { timeoutMs: 5_000, intervalMs: 100 });
    await request("/while-reading");
    await textMatches(log, /request GET \/while-reading/, 15_000);
    expect(await log.evaluate((el) => el.scrollTop)).toBe(0);
    await follow.check();
    await waitFor("the log back at its newest line", atBottom, { timeoutMs: 5_000, intervalMs: 100 });

    // Since: a new stream, from that time.
    const opened: string[] = [];
    const onRequest = (r: { url: () => string }) => void (r.url().includes("/logs/events") && opened.push(r.url()));
    page.on("request", onRequest);
    await page.getByLabel("Since").selectOption({ label: "The last 5 minutes" });
    await waitFor("the stream reopened with since", async () => opened.some((u) => /[?&]since=\d{4}-/.test(u)), { timeoutMs: 5_000, intervalMs: 100 });
    page.off("request", onRequest);
    await textMatches(log, /request GET \/while-reading/, 15_000);
    await textMatches(page.locator(".live"), /^Live$/, 15_000);
  });

  it("resumes a broken stream: lines logged while the control plane was down are shown after it is back, each exactly once", async () => {
    await page.goto(logsUrl);
    const log = page.getByRole("log", { name: `Runtime log of ${APP}/test` });
    await textMatches(page.locator(".live"), /^Live$/, 15_000);
    await request("/before-break");
    await textMatches(log, /request GET \/before-break/, 15_000);
    // The stream breaks (the control plane is killed, as by a crash); the browser's reconnections fail until it is back.
    browser.expectConsoleError(/net::ERR_|status of 50\d/);
    await platform.cp!.kill();
    try {
      await textMatches(page.locator(".live"), /Reconnecting/, 15_000);
      // The app goes on logging: numbered lines the page has not seen.
      for (let i = 1; i <= 12; i++) await request(`/seq-${i}`);
    } finally {
      await platform.startControlPlane();
    }
    await textMatches(log, /request GET \/seq-12\b/, 30_000);
    await textMatches(page.locator(".live"), /^Live$/, 15_000);
    const shown = await shownLines();
    for (let i = 1; i <= 12; i++) expect(shown.filter((t) => t === `request GET /seq-${i}`), `/seq-${i}`).toHaveLength(1);
    expect(shown.filter((t) => t === "request GET /before-break")).toHaveLength(1);
  });

  it("runs a command in the terminal and shows its output, then the session's end with Reconnect", async () => {
    await page.goto(`/apps/${APP}/environments/test/terminal`);
    await page.getByRole("heading", { name: "Terminal", level: 1 }).waitFor();
    await textMatches(page.locator(".term-status"), /^Connected to /, 20_000);
    await page.locator(".term .xterm").click();
    await page.keyboard.type("echo slipway-$((6*7))");
    await page.keyboard.press("Enter");
    // The output, as xterm drew it in its rows (the typed command shows "$((6*7))", only the output has 42).
    await textMatches(page.locator(".term .xterm-rows"), /slipway-42/, 15_000);
    await expectAccessible(page, "the terminal page");
    await shot(page, "terminal");
    // The screenshot took the focus off the terminal: back into it.
    await page.locator(".term .xterm").click();
    await page.keyboard.type("exit");
    await page.keyboard.press("Enter");
    await textMatches(page.locator(".term-status"), /The session ended \(exit 0\)/, 15_000);
    // The activity feed has the session.
    const activity = await platform.api.call<Array<{ action: string; details: { via?: string } }>>("GET", `/v1/activity?app=${APP}`);
    expect(activity.some((a) => a.action === "shell.opened" && a.details.via === "websocket")).toBe(true);
    await page.getByRole("button", { name: "Reconnect" }).click();
    await textMatches(page.locator(".term-status"), /^Connected to /, 20_000);
  });

  it("says why when there is no log or no running container (the API's message)", async () => {
    // live was never deployed: the stream is refused (409), and so is a shell.
    browser.expectConsoleError(/status of 409|text\/event-stream|EventSource/);
    await page.goto(`/apps/${APP}/environments/live/logs`);
    await textMatches(page.getByRole("alert"), /environment 'live' has never been deployed: there is no log yet/, 15_000);
    await expectAccessible(page, "the logs page of an environment never deployed");
    await page.goto(`/apps/${APP}/environments/live/terminal`);
    await textMatches(page.getByRole("alert"), new RegExp(`environment ${APP}/live is not_deployed: a shell needs a running container`), 15_000);
    await page.getByRole("button", { name: "Reconnect" }).waitFor();
    expect((await platform.api.call<Array<{ action: string; environment: string }>>("GET", `/v1/activity?app=${APP}`)).some((a) => a.action === "shell.opened" && a.environment === "live")).toBe(false);
  });

  it("refuses a WebSocket handshake from another site's page, though the browser sends the session cookie", async () => {
    const cookie = (await browser.browserContext.cookies()).find((c) => c.name === "slipway_session")!;
    const url = `${platform.api.baseUrl}/v1/apps/${APP}/environments/test/shell/ws`;
    const own = new URL(platform.api.baseUrl).origin;
    expect(await handshake(url, { origin: "https://evil.example", cookie: `slipway_session=${cookie.value}` })).toBe(403);
    // The same handshake from the dashboard's own origin is taken (the control: the cookie is good).
    expect(await handshake(url, { origin: own, cookie: `slipway_session=${cookie.value}` })).toBe(101);
  });

  it("fits both pages in 360 px; the terminal's size follows the window", async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    try {
      for (const [url, ready] of [[logsUrl, /request GET/], [`/apps/${APP}/environments/test/terminal`, /^Connected to /]] as const) {
        await page.goto(url);
        await textMatches(page.locator(url === logsUrl ? ".runlog" : ".term-status"), ready, 20_000);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        expect(width, `${url} is ${width} px wide at 360`).toBeLessThanOrEqual(360);
        await expectAccessible(page, `${url} at 360 px`);
      }
      // The terminal follows the window: the shell's own terminal size (stty) narrows and widens with it.
      const sttyCols = async (marker: string) => {
        await page.locator(".term .xterm").click();
        await page.keyboard.type(`echo ${marker} $(stty size)`);
        await page.keyboard.press("Enter");
        const text = await textMatches(page.locator(".term .xterm-rows"), new RegExp(`${marker} \\d+ \\d+`), 10_000);
        return Number(new RegExp(`${marker} \\d+ (\\d+)`).exec(text)![1]);
      };
      const narrow = await sttyCols("narrow");
      expect(narrow).toBeGreaterThan(10);
      expect(narrow).toBeLessThan(45);
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.keyboard.type("clear");
      await page.keyboard.press("Enter");
      let attempt = 0;
      await waitFor("the terminal to widen", async () => (await sttyCols(`wide${++attempt}x`)) > 100, { timeoutMs: 10_000, intervalMs: 500 });
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it("shows a viewer the log but no terminal, with the reason", async () => {
    const { token } = await platform.api.call("POST", "/v1/tokens", { name: "logterm-viewer", role: "viewer", apps: [APP] });
    await page.goto("/");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Slipway" }).waitFor();
    await waitFor("the session cookie to be cleared", async () => !(await browser.browserContext.cookies()).some((c) => c.name === "slipway_session" && c.value), { timeoutMs: 5_000, intervalMs: 50 });
    await page.getByLabel("API token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Apps", level: 1 }).waitFor();
    await page.goto(logsUrl);
    await textMatches(page.getByRole("log", { name: `Runtime log of ${APP}/test` }), /request GET/, 15_000);
    await page.goto(`/apps/${APP}/environments/test/terminal`);
    await page.getByRole("heading", { name: "Terminal", level: 1 }).waitFor();
    await textMatches(page.locator("main"), /Your token is a viewer's/);
    expect(await page.locator(".term").count()).toBe(0);
    await expectAccessible(page, "the terminal page for a viewer");
  });
});
