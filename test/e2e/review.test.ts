import * as assert from 'node:assert/strict';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Frame, Page } from 'playwright-core';
import { ChangeFileSchema } from '../../src/core/change';
import { ChangeStore } from '../../src/core/changeStore';
import { builtinPolicyDocument } from '../../src/core/policy/defaults';
import { evaluate, factsFromEvidence } from '../../src/core/policy/evaluate';
import { mergePolicies } from '../../src/core/policy/merge';
import { EvidenceStore } from '../../src/infra/storage/evidenceStore';
import { ChangeFolderPersistence } from '../../src/infra/storage/fileStore';
import { RepoStorage } from '../../src/infra/storage/repoStorage';
import { createSampleRepository, tempDir } from '../runners/fixtures.mjs';
import { runCommand } from '../runners/workbenchUi.mjs';
import { type Seeded, seedChange } from '../integration/review/seed';
import { type CodeServer, openFolder, openLanesView, repoRoot, screenshot, startWorkbench } from './workbench';

const EXTENSION_ID = 'agent-lanes.agent-lanes';
const PR_URL = 'https://github.example/acme/review-app/pull/7';

/** The review's own document for a change: a child frame of the webview iframe the workbench made for this extension. */
async function reviewFrame(page: Page, changeId: string, timeoutMs = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const frame of page.frames()) {
      if (!frame.url().includes(`extensionId=${EXTENSION_ID}`)) continue;
      for (const child of frame.childFrames()) {
        if (
          await child
            .locator(`meta[name="agent-lanes-change"][content="${changeId}"]`)
            .count()
            .catch(() => 0)
        )
          return child;
      }
    }
    if (Date.now() > deadline)
      throw new Error(
        `No review webview frame of ${changeId} appeared; frames: ${page
          .frames()
          .map((f) => f.url())
          .join(', ')}`,
      );
    await page.waitForTimeout(250);
  }
}

/** Opens a change's review from the Command Palette's picker, which lists every change. */
async function openFromPalette(page: Page, title: string, changeId: string): Promise<Frame> {
  await runCommand(page, 'Agent Lanes: Open Review');
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 30_000 });
  await page.locator('.quick-input-widget input.input').fill(title);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().click();
  const frame = await reviewFrame(page, changeId);
  await frame.locator('h1', { hasText: title }).waitFor({ timeout: 30_000 });
  // The first model comes from stored facts; the full one (git, the hashes) redraws the header.
  await frame.locator('#app[data-model="full"]').waitFor({ timeout: 30_000 });
  return frame;
}

/** How often a text occurs in what the review shows. */
async function occurrences(frame: Frame, pattern: RegExp): Promise<number> {
  const text = await frame.locator('#app').innerText();
  return text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

function storedChange(storage: RepoStorage, id: string) {
  return ChangeFileSchema.shape.changes.element.parse(JSON.parse(readFileSync(storage.changeRecordFile(id), 'utf8')));
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
  let blocked: Seeded;
  let inPullRequest: Seeded;
  let blockedDraft: Seeded;

  before(async () => {
    repo = realpathSync(createSampleRepository(join(tempDir('lanes-e2e-review-'), 'review-app'), { name: 'review-app' }));
    ({ server, browser } = await startWorkbench({
      vsix: join(repoRoot, 'dist', 'agent-lanes.vsix'),
      settings: { 'workbench.colorTheme': 'Default Dark Modern' },
    }));
    storage = RepoStorage.forRepository(join(server.userDataDir, 'User', 'globalStorage', EXTENSION_ID), repo, join(repo, '.git'));
    const store = new ChangeStore(new ChangeFolderPersistence(storage));
    const target = { root: repo, storage, store };
    seeded = await seedChange(target, { id: 'e2e0a001', createdBy: 'author@example.invalid' });
    // In Review, its required test failed: the gate blocks it.
    blocked = await seedChange(target, { id: 'e2e0a002', title: 'Bump the greeting' });
    const evidenceStore = new EvidenceStore(storage);
    const failed = blocked.evidence!;
    await evidenceStore.write({
      ...failed,
      tasks: failed.tasks.map((task) => (task.id === 'test' ? { ...task, outcome: 'failed', exitCode: 1 } : task)),
    });
    // In Pull request, approved, with the pull request the lane recorded.
    inPullRequest = await seedChange(target, { id: 'e2e0a003', title: 'Greeting in a pull request', lane: 'pullRequest' });
    await store.update(inPullRequest.change.id, (change) => ({
      ...change,
      approval: {
        by: 'ann@example.invalid',
        at: new Date().toISOString(),
        diffHash: inPullRequest.listing.hash,
        evidenceHash: 'e'.repeat(64),
      },
      pullRequest: {
        number: 7,
        url: PR_URL,
        repository: 'acme/review-app',
        draft: false,
        state: 'open',
        checks: 'passing',
        updatedAt: new Date().toISOString(),
      },
    }));
    // A draft the Draft → Sandbox gate blocked: the built-in policy's decision on a secret in it.
    blockedDraft = await seedChange(target, {
      id: 'e2e0a004',
      title: 'Read the session secret',
      lane: 'draft',
      files: { 'config/session.env': 'SESSION=1\n' },
    });
    const secret = {
      ...blockedDraft.evidence!,
      flags: [{ kind: 'secretLike' as const, path: 'config/session.env', detail: 'an AWS access key on line 1' }],
    };
    await evidenceStore.write(secret);
    const decision = evaluate(
      mergePolicies({ level: 'org', document: builtinPolicyDocument() }),
      factsFromEvidence(secret),
      'gate.draftToSandbox',
    );
    assert.equal(decision.effect, 'block', decision.explanation);
    await store.update(blockedDraft.change.id, (change) => ({ ...change, lastDecision: decision }));
    // In Sandbox, its required test failed: the sidebar says which.
    const inSandbox = await seedChange(target, { id: 'e2e0a005', title: 'Trim the greeting', lane: 'sandbox' });
    await store.update(inSandbox.change.id, (change) => ({
      ...change,
      sandbox: { verdict: 'failed', at: new Date().toISOString(), failedTasks: ['test'], message: 'test failed (exit 1)' },
    }));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('opens the review of a seeded change from the Command Palette: the verdict with what needs a person, then the diff, then the evidence', async () => {
    page = await openFolder(server, browser, repo);
    await page.locator('.statusbar-item', { hasText: 'Lanes:' }).first().waitFor({ timeout: 60_000 });
    const frame = await openFromPalette(page, 'Add a greeting function', seeded.change.id);
    await frame.locator('.verdict.needs-approval').waitFor({ timeout: 30_000 });
    assert.equal(
      (await frame.locator('.verdict-title').innerText()).trim(),
      "Needs a reviewer's approval for: a new dependency: package.json",
    );
    const item = frame.locator('.attention-item.approval').first();
    assert.match(await item.innerText(), /Needs approval\s+a new dependency: package\.json/);
    assert.match(await item.innerText(), /Rule stopConditions\.newDependency \(.+\)/);
    assert.equal(await occurrences(frame, /approved by/i), 0, 'nobody approved yet, and nothing says so');
    // The diff comes first: its tab is the one on show.
    assert.deepEqual(await frame.locator('[role="tab"]').allInnerTexts(), ['Files changed (3)', 'Evidence']);
    assert.equal(await frame.locator('#tab-files').getAttribute('aria-selected'), 'true');
    assert.equal(await frame.locator('.file-list .file-link').count(), 3);
    await frame.evaluate('window.scrollTo(0, 0)');
    await screenshot(page, 'e2e-review');
    // The header's link takes the reader to the flag, in the evidence.
    await item.locator('a.jump', { hasText: 'Go to Flags' }).click();
    assert.equal(await frame.locator('#tab-evidence').getAttribute('aria-selected'), 'true');
    assert.equal(await frame.evaluate<string | undefined>('document.activeElement?.id'), 'flag-0');
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
    await screenshot(page, 'e2e-review-evidence-flag');
    // The explanation of the gate speaks of the approval still needed, not of one given.
    assert.match(await frame.locator('#ev-policyDecisions').innerText(), /needs a reviewer's approval for: a new dependency/);
    await frame.locator('#tab-files').click();
    // The file list jumps to a file; its diff arrives on demand, once it is on screen.
    await frame.locator('.file-list .file-link', { hasText: 'greeting.js' }).click();
    await frame.locator('.file .line > .text', { hasText: 'exports.greet' }).first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'e2e-review-diff');
    await frame.evaluate('window.scrollTo(0, 0)');
  });

  it('lists a change in each lane in the sidebar: the state first, the blocked draft with its reason, the pull request by its number', async () => {
    await openLanesView(page);
    const row = (title: string) => page.locator('.pane-body .monaco-list-row', { hasText: title }).first();
    await row('Read the session secret').waitFor({ timeout: 30_000 });
    const description = async (title: string) => (await row(title).locator('.label-description').innerText()).trim();
    assert.match(await description('Read the session secret'), /^blocked: /, 'the reason leads a blocked draft');
    assert.match(await description('Trim the greeting'), /^test failed/);
    assert.match(await description('Greeting in a pull request'), /#7/);
    // Each blocked or failed change has the reason in full in a row under it: the blocked draft, the failed sandbox run, and
    // the change the Review gate blocks (its required test failed).
    const whyRows = page.locator('.pane-body .monaco-list-row').filter({ has: page.locator('.codicon-circle-slash, .codicon-error') });
    await whyRows.nth(2).waitFor({ timeout: 15_000 });
    const why = await whyRows.allInnerTexts();
    assert.equal(why.length, 3, why.join(' | '));
    assert.match(why[0]!, /^Blocked: secret-like content/);
    assert.match(why[1]!, /test failed \(exit 1\)/);
    assert.match(why[2]!, /^Blocked: .*test/);
    // The blocked draft is not offered Promote: its inline actions and its context menu leave it out.
    await row('Read the session secret').click({ button: 'right' });
    const menu = page.locator('.context-view .monaco-menu');
    await menu.waitFor({ timeout: 15_000 });
    const items = await menu.locator('.action-label').allInnerTexts();
    assert.ok(
      items.some((item) => /Open Review/.test(item)),
      items.join(', '),
    );
    assert.ok(!items.some((item) => /^Promote|Run Sandbox Tasks/.test(item)), items.join(', '));
    await page.keyboard.press('Escape');
    await page.mouse.move(900, 700);
    await page.waitForTimeout(500);
    await screenshot(page, 'e2e-sidebar-each-lane');
  });

  it('puts what blocks a change at the top, with its rule and a link to its place', async () => {
    const frame = await openFromPalette(page, 'Bump the greeting', blocked.change.id);
    await frame.locator('.verdict.blocked').waitFor({ timeout: 30_000 });
    const block = frame.locator('.attention-item.block').first();
    assert.match(await block.innerText(), /Blocks\s+required task test failed/);
    assert.match(await block.innerText(), /Rule lanes\.sandbox\.requiredTasks/);
    assert.equal(await frame.locator('vscode-button#approve').isVisible(), true, 'in Review the actions are there');
    assert.match(
      await frame.locator('#approve-reason').innerText(),
      /Approve is unavailable until what the verdict above lists is resolved\./,
    );
    await frame.evaluate('window.scrollTo(0, 0)');
    await screenshot(page, 'e2e-review-blocker');
    await block.locator('a.jump').click();
    assert.equal(await frame.locator('#tab-evidence').getAttribute('aria-selected'), 'true');
    assert.equal(await frame.evaluate<string | undefined>('document.activeElement?.id'), 'ev-tests');
  });

  it('shows a change in Pull request read-only: its number, link, state and checks, and the approval once', async () => {
    const frame = await openFromPalette(page, 'Greeting in a pull request', inPullRequest.change.id);
    await frame.locator('.verdict.read-only').waitFor({ timeout: 30_000 });
    assert.equal((await frame.locator('.verdict-title').innerText()).trim(), 'In Pull request #7 · open · checks passing');
    assert.equal(await frame.locator('#pr-link').innerText(), 'acme/review-app#7');
    assert.equal(await frame.locator('#pr-link').getAttribute('href'), PR_URL);
    assert.match(await frame.locator('.pull-request').innerText(), /open · .*checks passing/);
    assert.equal(await occurrences(frame, /Approved by ann@example\.invalid/), 1, 'the approval is stated once');
    assert.equal(await frame.locator('vscode-button#approve').count(), 1);
    assert.equal(await frame.locator('vscode-button#approve').isVisible(), false, 'no actions outside Review: hidden, not greyed');
    assert.equal(await frame.locator('vscode-button#reject').isVisible(), false);
    await frame.evaluate('window.scrollTo(0, 0)');
    await screenshot(page, 'e2e-review-pull-request');
    // The link opens outside VS Code: the browser gets a new page with the pull request's address.
    // No internet here: the address answers from a stand-in, so the new page keeps it.
    await page
      .context()
      .route('https://github.example/**', (route) =>
        route.fulfill({ status: 200, contentType: 'text/html', body: '<title>acme/review-app#7</title>' }),
      );
    const popup = page.context().waitForEvent('page', { timeout: 30_000 });
    await frame.locator('#pr-link').click();
    const confirm = page.locator('.monaco-dialog-box .monaco-button', { hasText: /^Open$/ });
    if (
      await confirm.waitFor({ timeout: 5_000 }).then(
        () => true,
        () => false,
      )
    )
      await confirm.click();
    const opened = await popup;
    await opened.waitForLoadState();
    assert.equal(opened.url().replace(/\/$/, ''), PR_URL);
    await opened.close();
  });

  it('opens the review of a blocked draft read-only, with what blocks it and where', async () => {
    const frame = await openFromPalette(page, 'Read the session secret', blockedDraft.change.id);
    await frame.locator('.verdict.read-only').waitFor({ timeout: 30_000 });
    assert.equal((await frame.locator('.verdict-title').innerText()).trim(), 'In Draft: blocked at Draft → Sandbox');
    const block = frame.locator('.attention-item.block').first();
    assert.match(await block.innerText(), /Blocks\s+secret-like content: config\/session\.env/);
    assert.match(await block.innerText(), /At Draft → Sandbox · Rule stopConditions\.secretLike/);
    assert.match(await frame.locator('.verdict-detail').innerText(), /Read-only: only a change in Review can be approved/);
    assert.equal(await frame.locator('vscode-button#approve').isVisible(), false);
    await frame.evaluate('window.scrollTo(0, 0)');
    await screenshot(page, 'e2e-review-draft-read-only');
  });

  it('approves from inside the webview: the stored approval holds the diff hash it was given for, and is stated once', async () => {
    // Back to the first change's review (the others stay open in their tabs).
    const frame = await openFromPalette(page, 'Add a greeting function', seeded.change.id);
    const approve = frame.locator('vscode-button#approve');
    await approve.waitFor();
    await approve.click();
    await frame.locator('#action-status', { hasText: 'Approval recorded.' }).waitFor({ timeout: 30_000 });
    const approval = await waitUntil(() => storedChange(storage, seeded.change.id)?.approval, 'the approval on disk');
    assert.equal(approval.by, 'tester@example.com');
    assert.equal(approval.diffHash, seeded.listing.hash);
    assert.match(approval.evidenceHash, /^[0-9a-f]{64}$/);
    await frame.locator('.verdict.approved').waitFor({ timeout: 15_000 });
    assert.equal(
      (await frame.locator('.verdict-title').innerText()).trim(),
      'Approved by tester@example.com for: a new dependency: package.json',
    );
    assert.equal(await occurrences(frame, /Approved by/), 1, 'the approval is stated once');
    assert.equal(await approve.isVisible(), false, 'nothing left to approve');
    await frame.evaluate('window.scrollTo(0, 0)');
    await screenshot(page, 'e2e-review-approved');
  });

  it('is usable with the keyboard alone: the file list moves with arrows, Enter jumps, Space folds', async () => {
    const frame = await reviewFrame(page, seeded.change.id);
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
    const frame = await reviewFrame(page, seeded.change.id);
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
    const frame = await reviewFrame(page, seeded.change.id).catch(async (error: unknown) => {
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
    await frame.locator('#app[data-model="full"]').waitFor({ timeout: 30_000 });
    await screenshot(page, 'e2e-review-light');
    await frame.locator('.file-list .file-link').first().click();
    await frame.locator('#file-0-body .line > .text').first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'e2e-review-light-diff');
  });
});
