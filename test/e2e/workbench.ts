import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';

// The runners are plain ESM scripts shared with the demo and the benchmark.
import * as runners from '../runners/codeServer.mjs';

export const repoRoot = resolve(__dirname, '..', '..', '..');
export const resultsDir = join(repoRoot, 'test-results');

export type CodeServer = runners.CodeServer;

export async function startWorkbench(
  options: { vsix?: string; settings?: Record<string, unknown> } = {},
): Promise<{ server: CodeServer; browser: Browser }> {
  const server = await runners.startCodeServer({ installVsix: options.vsix, settings: options.settings });
  const browser = await runners.launchBrowser();
  return { server, browser };
}

export async function openFolder(server: CodeServer, browser: Browser, folder: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(runners.workbenchUrl(server, { folder }));
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  return page;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Clicks the Agent Lanes icon in the activity bar and waits for the Lanes view. */
export async function openLanesView(page: Page): Promise<void> {
  await page.locator('.activitybar a.action-label[aria-label^="Agent Lanes"]').click({ timeout: 60_000 });
  await page.locator('.pane-header[aria-label^="Lanes"], .composite.title:has-text("Agent Lanes")').first().waitFor({ timeout: 30_000 });
}

export async function treeLabels(page: Page): Promise<string[]> {
  return page.locator('.pane-body .monaco-list-row .label-name').allInnerTexts();
}
