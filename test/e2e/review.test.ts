import * as assert from 'node:assert/strict';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Frame, Page } from 'playwright-core';
import { ChangeFileSchema } from '../../src/core/change';
import { ChangeStore } from '../../src/core/changeStore';
import { JsonFilePersistence } from '../../src/infra/storage/fileStore';
import { RepoStorage } from '../../src/infra/storage/repoStorage';
import { createSampleRepository, tempDir } from '../runners/fixtures.mjs';
import { type Seeded, seedChange } from '../integration/review/seed';
import { type CodeServer, openFolder, repoRoot, screenshot, startWorkbench } from './workbench';

const EXTENSION_ID = 'agent-lanes.agent-lanes';

/** The review's own document: a child frame of the webview iframe the workbench made for this extension. */
async function reviewFrame(page: Page, timeoutMs = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const frame of page.frames()) {
      if (!frame.url().includes(`extensionId=${EXTENSION_ID}`)) continue;
      for (const child of frame.childFrames()) {
        if (
          await child
            .locator('#app')
            .count()
            .catch(() => 0)
        )
          return child;
      }
    }
    if (Date.now() > deadline)
      throw new Error(
        `No review webview frame appeared; frames: ${page
          .frames()
          .map((f) => f.url())
          .join(', ')}`,
      );
    await page.waitForTimeout(250);
  }
}

async function runCommand(page: Page, title: string): Promise<void> {
  // The palette can open before the extensions' commands are registered: try again until it lists the command.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('Escape');
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input.input');
    await input.waitFor({ timeout: 15_000 });
    await input.fill(`>${title}`);
    try {
      await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 5_000 });
      await page.keyboard.press('Enter');
      return;
    } catch (error) {
      if (attempt >= 6) throw error;
    }
  }
}

function storedChange(storage: RepoStorage, id: string) {
  return ChangeFileSchema.parse(JSON.parse(readFileSync(storage.changesFile, 'utf8'))).changes.find((c) => c.id === id);
}

async function waitUntil<T>(probe: () => T | undefined, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('the review webview in a real VS Code', function () {
  this.timeout(240_000);
  let server: CodeServer;
  let browser: Browser;
  let page: Page;
  let repo: string;
  let storage: RepoStorage;
  let seeded: Seeded;

  before(async () => {
    repo = realpathSync(createSampleRepository(join(tempDir('lanes-e2e-review-'), 'review-app'), { name: 'review-app' }));
    ({ server, browser } = await startWorkbench({
      vsix: join(repoRoot, 'dist', 'agent-lanes.vsix'),
      settings: { 'workbench.colorTheme': 'Default Dark Modern' },
    }));
    storage = RepoStorage.forRepository(join(server.userDataDir, 'User', 'globalStorage', EXTENSION_ID), repo, join(repo, '.git'));
    const store = new ChangeStore(new JsonFilePersistence(storage.changesFile));
    seeded = await seedChange({ root: repo, storage, store }, { id: 'e2e0a001', createdBy: 'author@example.invalid' });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('opens the review of a seeded change from the Command Palette, with its evidence and diff', async () => {
    page = await openFolder(server, browser, repo);
    await page.locator('.statusbar-item', { hasText: 'Lanes:' }).first().waitFor({ timeout: 60_000 });
    await runCommand(page, 'Agent Lanes: Open Review');
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Add a greeting function' }).waitFor({ timeout: 30_000 });
    await page.keyboard.press('Enter');
    const frame = await reviewFrame(page);
    await frame.locator('h1', { hasText: 'Add a greeting function' }).waitFor({ timeout: 30_000 });
    await frame.locator('.verdict.ready').waitFor({ timeout: 30_000 });
    for (const title of [
      'Summary',
      'Isolation',
      'Files touched',
      'Tests and tasks',
      "The agent's claims",
      'Fails without the change',
      'Assumptions',
      'Confidence limits',
      'Prompt',
      'Agent',
      'Base and head',
      'Flags',
      'Policy decisions',
    ]) {
      assert.equal(
        await frame.locator('.evidence-section h3', { hasText: new RegExp(`^${title}$`) }).count(),
        1,
        `evidence section ${title}`,
      );
    }
    assert.deepEqual(await frame.locator('.evidence-section h3').allInnerTexts(), [
      'Summary',
      'Isolation',
      'Files touched',
      'Tests and tasks',
      "The agent's claims",
      'Fails without the change',
      'Assumptions',
      'Confidence limits',
      'Prompt',
      'Agent',
      'Base and head',
      'Flags',
      'Policy decisions',
    ]);
    assert.equal(await frame.locator('.file-list .file-link').count(), 3);
    // The file list jumps to a file; its diff arrives on demand, once it is on screen.
    await frame.locator('.file-list .file-link', { hasText: 'greeting.js' }).click();
    await frame.locator('.file .line > .text', { hasText: 'exports.greet' }).first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'e2e-review-diff');
    await frame.locator('h1').scrollIntoViewIfNeeded();
    await screenshot(page, 'e2e-review');
  });

  it('approves from inside the webview: the stored approval holds the diff hash it was given for', async () => {
    const frame = await reviewFrame(page);
    const approve = frame.locator('vscode-button#approve');
    await approve.waitFor();
    await approve.click();
    await frame.locator('#action-status', { hasText: 'Approved by tester@example.com' }).waitFor({ timeout: 30_000 });
    const approval = await waitUntil(() => storedChange(storage, seeded.change.id)?.approval, 'the approval on disk');
    assert.equal(approval.by, 'tester@example.com');
    assert.equal(approval.diffHash, seeded.listing.hash);
    assert.match(approval.evidenceHash, /^[0-9a-f]{64}$/);
    await frame.locator('.verdict.approved').waitFor({ timeout: 15_000 });
  });

  it('is usable with the keyboard alone: the file list moves with arrows, Enter jumps, Space folds', async () => {
    const frame = await reviewFrame(page);
    await frame.locator('.file-list .file-link').first().focus();
    await page.keyboard.press('ArrowDown');
    assert.equal(await frame.evaluate<string | null>("document.activeElement?.getAttribute('data-index')"), '1');
    await page.keyboard.press('Enter');
    assert.equal(
      await frame.evaluate<boolean>(`document.activeElement?.matches('button.toggle[data-index="1"]')`),
      true,
      'Enter jumps to the file header',
    );
    await page.keyboard.press('Space');
    assert.equal(await frame.locator('button.toggle[data-index="1"]').getAttribute('aria-expanded'), 'false');
    await page.keyboard.press('Space');
    assert.equal(await frame.locator('button.toggle[data-index="1"]').getAttribute('aria-expanded'), 'true');
    await page.keyboard.press('ArrowDown');
    assert.equal(
      await frame.evaluate<string | null>("document.activeElement?.getAttribute('data-index')"),
      '2',
      'Down moves to the next file header',
    );
    // Run in the page: the test itself has no DOM types.
    const outline = await frame.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle');
    assert.notEqual(outline, 'none', 'the focus is visible');
  });

  it('invalidates the approval when a file of the worktree changes, and shows it', async () => {
    writeFileSync(join(seeded.worktree, 'src', 'greeting.js'), 'exports.greet = (name) => `Hi, ${name}`;\n');
    const invalidated = await waitUntil(
      () => storedChange(storage, seeded.change.id)?.approval?.invalidated,
      'the approval to be invalidated',
      60_000,
    );
    assert.match(invalidated.reason, /worktree changed after the approval/);
    const frame = await reviewFrame(page);
    await frame.locator('.verdict.invalidated').waitFor({ timeout: 30_000 });
    await screenshot(page, 'e2e-review-invalidated');
  });

  it('comes back after a reload, and reads well in a light theme too', async () => {
    writeFileSync(
      join(server.userDataDir, 'User', 'settings.json'),
      JSON.stringify(
        { 'security.workspace.trust.enabled': false, 'workbench.startupEditor': 'none', 'workbench.colorTheme': 'Default Light Modern' },
        null,
        2,
      ),
    );
    // VS Code's own reload saves the open editors first, as a person's reload would.
    await runCommand(page, 'Developer: Reload Window');
    await page.waitForEvent('load', { timeout: 60_000 });
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    const frame = await reviewFrame(page).catch(async (error: unknown) => {
      await screenshot(page, 'e2e-review-reload-failure');
      throw error;
    });
    await frame
      .locator('h1', { hasText: 'Add a greeting function' })
      .waitFor({ timeout: 60_000 })
      .catch(async (error: unknown) => {
        await screenshot(page, 'e2e-review-reload-failure');
        throw new Error(
          `${(error as Error).message}\nThe review shows: ${await frame
            .locator('body')
            .innerText()
            .catch(() => '?')}`,
        );
      });
    await frame.locator('.verdict.invalidated').waitFor({ timeout: 30_000 });
    await screenshot(page, 'e2e-review-light');
    await frame.locator('.file-list .file-link').first().click();
    await frame.locator('#file-0-body .line > .text').first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'e2e-review-light-diff');
  });
});
