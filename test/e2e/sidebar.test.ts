import * as assert from 'node:assert/strict';
import { mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ChangeStore } from '../../src/core/changeStore';
import { JsonFilePersistence } from '../../src/infra/storage/fileStore';
import { RepoStorage } from '../../src/infra/storage/repoStorage';
import { createSampleRepository, tempDir } from '../runners/fixtures.mjs';
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
    const store = new ChangeStore(new JsonFilePersistence(storage.changesFile));
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
});
