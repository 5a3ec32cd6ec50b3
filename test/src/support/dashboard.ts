import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Locator, Page } from "playwright-core";
import { expect } from "vitest";
import { seriousAxeViolations } from "./browser.js";
import { repoRoot } from "./platform.js";
import { waitFor } from "./processes.js";

// What every dashboard test file (test/src/dashboard*.e2e.test.ts) shares: waiting on a text,
// axe, screenshots, the log as a page shows it, signing in.

// The committed screenshots are renewed on demand (SLIPWAY_UPDATE_SCREENSHOTS=1 npx vitest run test/src/dashboard):
// an ordinary run takes them too, into its own directory, so a test run leaves the checkout as it was.
export const SHOTS = process.env.SLIPWAY_UPDATE_SCREENSHOTS === "1" ? path.join(repoRoot, "docs", "screenshots") : mkdtempSync(path.join(tmpdir(), "slipway-screenshots-"));
mkdirSync(SHOTS, { recursive: true });

/** Polls the locator's text until `want` matches it (playwright-core has no expect of its own). */
export async function textMatches(locator: Locator, want: RegExp, timeoutMs = 10_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    last = ((await locator.textContent({ timeout: Math.max(1, end - Date.now()) }).catch(() => null)) ?? "").trim();
    if (want.test(last)) return last;
    if (Date.now() > end) throw new Error(`waited ${timeoutMs} ms for ${want} in ${locator}; last text: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for the focus to reach the element labelled `label` (pages move it one animation frame after a change). */
export async function focusReaches(page: Page, label: string, timeoutMs = 5_000): Promise<void> {
  await waitFor(`the focus on ${label}`, async () => (await page.evaluate(() => document.activeElement?.getAttribute("aria-label"))) === label, { timeoutMs, intervalMs: 50 });
}

export async function expectAccessible(page: Page, what: string): Promise<void> {
  const violations = await seriousAxeViolations(page);
  expect(violations, `axe on ${what}: ${JSON.stringify(violations, null, 2)}`).toEqual([]);
}

export async function shot(page: Page, name: string): Promise<void> {
  // The page as it first shows: no focus ring left on what the test last pressed.
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true, animations: "disabled" });
}

/** The log as the page shows it, heading lines included: the same lines as GET …/log, if none is lost or doubled. */
export function pageLog(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const lines: string[] = [];
    const pre = (el: Element | null) => (el ? (el.textContent ?? "").split("\n") : []);
    for (const el of Array.from(document.querySelectorAll(".log > *"))) {
      if (el.tagName === "PRE") lines.push(...pre(el));
      else {
        lines.push(`===== ${el.getAttribute("data-title")} =====`);
        lines.push(...pre(el.querySelector("pre")));
      }
    }
    return lines;
  });
}


/** Signs in on the sign-in page with an API token (the page then shows the Apps heading). */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.goto("/sign-in");
  const field = page.getByLabel("API token");
  await field.fill(token);
  await field.press("Enter");
  await page.getByRole("heading", { name: "Apps", level: 1 }).waitFor();
}
