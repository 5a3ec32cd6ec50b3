import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from "playwright-core";
import { BrowserNetns } from "./browser-netns.js";

/** Debian's chromium (scripts/setup installs it); playwright-core never downloads a browser here. */
export const CHROMIUM = "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"];

export interface BrowserOptions {
  /** The dashboard's origin, e.g. http://127.0.0.1:7700: page.goto("/…") is relative to it. */
  baseURL: string;
  viewport?: { width: number; height: number };
}

/**
 * A browser for one test file. Every page it opens with `page()` records console errors and
 * uncaught page errors; `check()` (call it in afterEach) fails the test that caused one, and
 * `close()` (in afterAll) closes the browser, also after a failure. Messages a test provokes on
 * purpose (a form refused with a 400 logs "Failed to load resource") are let through by
 * `expectConsoleError(pattern)` for the rest of the test.
 */
export class BrowserUnderTest {
  private browser?: Browser;
  private context?: BrowserContext;
  private readonly problems: string[] = [];
  private expected: RegExp[] = [];
  private netns?: BrowserNetns;

  constructor(private readonly opts: BrowserOptions) {}

  /**
   * Starts chromium in a network namespace of its own (browser-netns.ts: the host's Docker
   * networks coming and going would fail its requests with ERR_NETWORK_CHANGED), reaching the
   * baseURL's port, and more with `forward(port)`.
   */
  async start(): Promise<void> {
    this.netns = new BrowserNetns();
    const executablePath = await this.netns.start(CHROMIUM);
    await this.netns.forward(Number(new URL(this.opts.baseURL).port));
    this.browser = await chromium.launch({ executablePath, args: FLAGS, headless: true });
    this.context = await this.browser.newContext({ baseURL: this.opts.baseURL, viewport: this.opts.viewport ?? { width: 1280, height: 800 } });
  }

  /** A page of the dashboard, watched for console errors and page errors. */
  async page(): Promise<Page> {
    if (!this.context) throw new Error("BrowserUnderTest.start() first");
    const page = await this.context.newPage();
    page.on("console", (msg: ConsoleMessage) => {
      if (msg.type() !== "error") return;
      const text = `${msg.text()} (${msg.location().url || page.url()})`;
      if (!this.expected.some((p) => p.test(text))) this.problems.push(`console error: ${text}`);
    });
    page.on("pageerror", (err) => this.problems.push(`page error: ${err.stack ?? err.message}`));
    return page;
  }

  /** A page that is not watched (another site, e.g. an environment's own pages through the ingress). */
  async plainPage(): Promise<Page> {
    if (!this.context) throw new Error("BrowserUnderTest.start() first");
    return this.context.newPage();
  }

  /** Lets the browser reach 127.0.0.1:<port> of the host too (an environment's ingress, say). */
  async forward(port: number): Promise<void> {
    if (!this.netns) throw new Error("BrowserUnderTest.start() first");
    await this.netns.forward(port);
  }

  get browserContext(): BrowserContext {
    if (!this.context) throw new Error("BrowserUnderTest.start() first");
    return this.context;
  }

  expectConsoleError(pattern: RegExp): void {
    this.expected.push(pattern);
  }

  /** Throws with every console or page error since the last check, and forgets them. */
  check(): void {
    this.expected = [];
    const found = this.problems.splice(0);
    if (found.length) throw new Error(`the browser reported ${found.length} error(s):\n${found.join("\n")}`);
  }

  async close(): Promise<void> {
    await this.context?.close().catch(() => undefined);
    await this.browser?.close().catch(() => undefined);
    this.context = undefined;
    this.browser = undefined;
    await this.netns?.close().catch(() => undefined);
    this.netns = undefined;
  }
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/**
 * axe-core on the page as it is now: its violations of impact serious or critical. axe is
 * evaluated through the DevTools protocol, which the page's Content-Security-Policy (no inline
 * scripts) does not apply to; a page that forbids inline scripts is checked as users get it.
 */
export async function seriousAxeViolations(page: Page): Promise<AxeViolation[]> {
  const loaded = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe !== "undefined");
  if (!loaded) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: unknown) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown[] }> }> }> } }).axe;
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => JSON.stringify(n.target)) }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}
