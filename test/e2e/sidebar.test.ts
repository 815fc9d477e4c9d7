import * as assert from 'node:assert/strict';
import { mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ChangeStore } from '../../src/core/changeStore';
import { ChangeFolderPersistence } from '../../src/infra/storage/fileStore';
import { RepoStorage } from '../../src/infra/storage/repoStorage';
import { createSampleRepository, tempDir } from '../runners/fixtures.mjs';
import { pickItem, runCommand } from '../runners/workbenchUi.mjs';
import { type CodeServer, openFolder, openLanesView, repoRoot, screenshot, startWorkbench, treeLabels } from './workbench';

describe('the installed VSIX in a real VS Code', function () {
  this.timeout(180_000);
  let server: CodeServer;
  let browser: Browser;
  let page: Page;
  let repo: string;

  before(async () => {
    repo = realpathSync(createSampleRepository(join(tempDir('lanes-e2e-'), 'sample-app')));
    ({ server, browser } = await startWorkbench({ vsix: join(repoRoot, 'dist', 'agent-lanes.vsix') }));
    // A change recorded by an earlier session, where the installed extension keeps its data.
    const storage = RepoStorage.forRepository(
      join(server.userDataDir, 'User', 'globalStorage', 'agent-lanes.agent-lanes'),
      repo,
      join(repo, '.git'),
    );
    mkdirSync(storage.root, { recursive: true });
    const store = new ChangeStore(new ChangeFolderPersistence(storage));
    const now = new Date().toISOString();
    await store.add({
      id: '5eed0001',
      title: 'Add a greeting function',
      task: 'Add a greeting function and a test.',
      agentId: 'scripted-agent',
      baseRef: 'main',
      baseSha: 'a'.repeat(40),
      branch: 'lanes/5eed0001-add-a-greeting-function',
      worktreePath: join(repo, '..', 'wt'),
      lane: 'draft',
      createdAt: now,
      updatedAt: now,
      history: [],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows the four lanes in the Agent Lanes sidebar and the policy state in the status bar', async () => {
    page = await openFolder(server, browser, repo);
    await openLanesView(page);
    await page.locator('.pane-body .monaco-list-row', { hasText: 'Pull request' }).waitFor({ timeout: 30_000 });
    const labels = await treeLabels(page);
    for (const lane of ['Draft', 'Sandbox', 'Review', 'Pull request'])
      assert.ok(labels.includes(lane), `lane ${lane} in ${labels.join(', ')}`);
    assert.ok(labels.includes('Add a greeting function'), 'the seeded change is listed');
    await page.locator('.statusbar-item', { hasText: 'Lanes: local policy' }).waitFor({ timeout: 15_000 });
    await screenshot(page, 'e2e-lanes-sidebar');
  });

  it('offers the Get started walkthrough, whose first step sets up an agent preset', async () => {
    await runCommand(page, 'Welcome: Open Walkthrough...');
    await pickItem(page, 'Get started with Agent Lanes');
    const steps = page.locator('.getting-started-step');
    await steps.filter({ hasText: 'Pick your agent' }).first().waitFor({ timeout: 30_000 });
    for (const title of ["Connect your organisation's policy", 'Say which tasks prove a change', 'Start your first draft'])
      assert.equal(await steps.filter({ hasText: title }).count(), 1, title);
    await page
      .locator('.getting-started-step', { hasText: 'Pick your agent' })
      .locator('a, .button-link', { hasText: 'Set Up an Agent' })
      .first()
      .waitFor({ timeout: 15_000 });
    await page.waitForTimeout(1000);
    await screenshot(page, 'e2e-walkthrough');
  });
});
