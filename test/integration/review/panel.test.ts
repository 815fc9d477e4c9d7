import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { hashEvidence } from '../../../src/core/evidence';
import { MAX_RENDERED_LINES_PER_FILE } from '../../../src/core/review/reviewModel';
import type { ReviewModel } from '../../../src/core/review/reviewProtocol';
import { changeFacts, decide } from '../../../src/infra/lanes/laneContext';
import { REVIEW_VIEW_TYPE } from '../../../src/vscode/constants';
import { lanesApi, waitFor } from '../util';
import { DEFAULT_FILES, seedChange } from './seed';
import { type TestReview, fullyRendered, openAndRender, send, testReview } from './helpers';

describe('the review panel', () => {
  let review: TestReview;

  before(async () => {
    review = await testReview();
  });

  after(() => review?.dispose());

  it('opens from "Agent Lanes: Open Review" with { repoRoot, changeId } and draws the header, evidence and file list', async () => {
    const api = await lanesApi();
    const { change } = await seedChange(review.repo, { id: 'c0ffee01' });
    const opened = await vscode.commands.executeCommand<boolean>('agentLanes.openReview', {
      repoRoot: review.repo.root,
      changeId: change.id,
    });
    assert.equal(opened, true);
    const panel = await waitFor(() => api.review.panelFor(review.repo.root, change.id), 'the review panel');
    const model = await fullyRendered(panel);
    assert.equal(panel.panel.viewType, REVIEW_VIEW_TYPE);
    assert.equal(panel.panel.title, 'Review: Add a greeting function');
    assert.equal(model.lane, 'review');
    assert.equal(model.agentId, 'scripted-agent');
    assert.equal(model.verdict.ready, true, model.verdict.reasons.join('; '));
    assert.equal(model.evidence.state, 'ok');
    for (const [name, field] of Object.entries(model.evidence.fields)) assert.equal(field.state, 'present', `evidence field ${name}`);
    assert.equal(model.diff.state, 'ok');
    if (model.diff.state === 'ok') {
      assert.deepEqual(model.diff.files.map((f) => f.path).sort(), Object.keys(DEFAULT_FILES).sort());
      assert.deepEqual(model.diff.totals, { files: 3, additions: 7, deletions: 0 + 0 });
    }
    // The agent's boundary, as the webview draws it: verified, with the allowlist and the refused connections.
    const isolation = model.evidence.fields.isolation;
    assert.equal(isolation.state === 'present' && isolation.value.state, 'verified');
    if (isolation.state === 'present') {
      assert.equal(
        isolation.value.summary,
        'isolation verified: process (bubblewrap 0.8.0) · egress only to registry.npmjs.org · 2 connections refused: telemetry.example.invalid:443, 169.254.169.254:80',
      );
      assert.deepEqual(
        isolation.value.refused.map((r) => `${r.host}:${r.port}`),
        ['telemetry.example.invalid:443', '169.254.169.254:80'],
      );
      assert.deepEqual(isolation.value.notEnforced, ['cpus']);
    }
    const filesTouched = model.evidence.fields.filesTouched;
    assert.equal(filesTouched.state === 'present' && filesTouched.value.matchesReviewedDiff, true);
    assert.equal(model.actions.approve.enabled, true, model.actions.approve.reason);

    // From the Lanes view: a tree node reveals the same panel.
    const again = await vscode.commands.executeCommand<boolean>('agentLanes.openReview', { kind: 'change', repo: review.repo, change });
    assert.equal(again, true);
    assert.equal(api.review.openPanels.filter((p) => p.changeId === change.id).length, 1);
    panel.dispose();
  });

  it('offers a picker of the changes in Review when run without arguments', async () => {
    const api = await lanesApi();
    for (const panel of api.review.openPanels) panel.dispose();
    const picked = vscode.commands.executeCommand<boolean>('agentLanes.openReview');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    assert.equal(await picked, true);
    assert.equal(api.review.openPanels.length, 1, 'the picked change opened');
    assert.equal(review.repo.store.get(api.review.openPanels[0]!.changeId)?.lane, 'review');
    api.review.openPanels[0]!.dispose();
  });

  it('refuses an argument it does not understand, and opens nothing', async () => {
    const api = await lanesApi();
    const opened = await vscode.commands.executeCommand<boolean>('agentLanes.openReview', { repoRoot: 42, changeId: ['x'] });
    assert.equal(opened, false);
    const unknown = await vscode.commands.executeCommand<boolean>('agentLanes.openReview', {
      repoRoot: '/not/a/repository',
      changeId: 'c0ffee01',
    });
    assert.equal(unknown, false);
    assert.equal(api.review.openPanels.length, 0);
  });

  it('lists binary and enormous files but never renders them; text files load on demand', async () => {
    const big = Array.from({ length: MAX_RENDERED_LINES_PER_FILE + 10 }, (_, i) => `row ${i}`).join('\n') + '\n';
    const { change } = await seedChange(review.repo, {
      id: 'c0ffee02',
      files: {
        'assets/logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]),
        'data/huge.csv': big,
        'src/small.js': 'module.exports = 1;\n',
      },
    });
    const panel = await openAndRender(review, change.id);
    const model = panel.currentModel!;
    assert.equal(model.diff.state, 'ok');
    const files = model.diff.state === 'ok' ? new Map(model.diff.files.map((f) => [f.path, f])) : new Map();
    assert.equal(files.get('assets/logo.png')?.display, 'binary');
    assert.equal(files.get('data/huge.csv')?.display, 'tooLarge');
    assert.equal(files.get('src/small.js')?.display, 'text');
    const response = await send(panel, {
      type: 'loadFiles',
      id: 7,
      changeId: change.id,
      paths: ['assets/logo.png', 'data/huge.csv', 'src/small.js'],
    });
    assert.equal(response?.ok, true);
    const kinds = response?.ok ? response.files?.map((f) => f.kind) : [];
    assert.deepEqual(kinds, ['binary', 'tooLarge', 'text']);
    const small = response?.ok ? response.files?.[2] : undefined;
    assert.deepEqual(small?.kind === 'text' ? small.hunks[0]?.lines : [], ['+module.exports = 1;']);
    panel.dispose();
  });

  it("opens a file in VS Code's diff editor and the whole change in the changes editor", async () => {
    const { change, listing } = await seedChange(review.repo, { id: 'c0ffee03' });
    const panel = await openAndRender(review, change.id);
    const response = await send(panel, { type: 'openFileDiff', id: 1, changeId: change.id, path: 'README.md' });
    assert.equal(response?.ok, true, response && !response.ok ? response.error : '');
    const tab = await waitFor(() => {
      const active = vscode.window.tabGroups.activeTabGroup.activeTab;
      return active?.input instanceof vscode.TabInputTextDiff ? active : undefined;
    }, 'a diff editor');
    const input = tab.input as vscode.TabInputTextDiff;
    assert.equal(input.original.scheme, 'agent-lanes-review');
    const base = await vscode.workspace.openTextDocument(input.original);
    const head = await vscode.workspace.openTextDocument(input.modified);
    assert.equal(base.getText(), '# review-app\n\nA sample repository for Agent Lanes.\n');
    assert.equal(head.getText(), DEFAULT_FILES['README.md']);
    assert.match(tab.label, new RegExp(`README\\.md \\(${listing.baseSha.slice(0, 7)} ↔ ${listing.headSha.slice(0, 7)}\\)`));

    const all = await send(panel, { type: 'openChanges', id: 2, changeId: change.id });
    assert.equal(all?.ok, true, all && !all.ok ? all.error : '');
    await waitFor(
      () => vscode.window.tabGroups.activeTabGroup.activeTab?.label.startsWith('Review: Add a greeting function'),
      'the changes editor',
    );

    const outside = await send(panel, { type: 'openFileDiff', id: 3, changeId: change.id, path: '../../etc/passwd' });
    assert.equal(outside?.ok, false);
    assert.match(outside && !outside.ok ? outside.error : '', /not part of the reviewed diff/);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('shows an evidence file that fails validation, and refuses to approve on it', async () => {
    const { change } = await seedChange(review.repo, { id: 'c0ffee04', evidence: 'invalid' });
    const panel = await openAndRender(review, change.id);
    const model = panel.currentModel!;
    assert.equal(model.evidence.state, 'invalid');
    assert.match(model.evidence.message ?? '', /does not match the evidence format at agent\.id/);
    assert.ok(model.warnings.some((w) => /does not match the evidence format/.test(w)));
    assert.equal(model.actions.approve.enabled, false);
    assert.match(model.actions.approve.reason ?? '', /fails validation/);
    assert.equal(model.diff.state, 'ok', 'the diff is still shown');
    panel.dispose();
  });

  it('marks every missing field, and says which ones policy requires', async () => {
    const { change } = await seedChange(review.repo, { id: 'c0ffee05', evidence: 'missing' });
    const panel = await openAndRender(review, change.id);
    const model = panel.currentModel!;
    assert.equal(model.evidence.state, 'missing');
    const fields = model.evidence.fields;
    assert.deepEqual(fields.tests, { state: 'missing', required: true });
    assert.deepEqual(fields.filesTouched, { state: 'missing', required: true });
    assert.deepEqual(fields.assumptions, { state: 'missing', required: false });
    assert.equal(model.verdict.ready, false);
    assert.equal(model.actions.approve.enabled, false);
    panel.dispose();
  });

  it('sends the header, evidence and file list at once from the stored diff analysis; git, the hashes and Approve follow', async () => {
    const { change, listing, evidence } = await seedChange(review.repo, { id: 'c0ffee0a' });
    const models: ReviewModel[] = [];
    const opened = review.controller.onDidOpenPanel((panel) => panel.onDidPost((m) => m.type === 'model' && models.push(m.model)));
    const panel = await openAndRender(review, change.id);
    opened.dispose();
    const [first] = models;
    assert.ok(first, 'a model was sent');
    assert.equal(first.provisional, true, 'the first model is the one from stored facts');
    assert.equal(first.diff.state === 'ok' && first.diff.hash, evidence!.diff!.hash);
    assert.deepEqual(
      first.diff.state === 'ok' ? first.diff.files : [],
      listing.files.map(({ oldBlob: _old, newBlob: _new, ...entry }) => entry),
      'the stored analysis lists the files as git does',
    );
    assert.equal(first.evidence.hash, null, 'not hashed yet');
    assert.equal(first.evidence.fields.summary.state, 'present', 'the evidence is all there');
    assert.equal(first.verdict.state, 'needsApproval', 'so is the verdict');
    assert.equal(first.actions.approve.enabled, false);
    assert.match(first.actions.approve.reason ?? '', /still being read from git/);
    const full = panel.currentModel!;
    assert.equal(full.provisional, undefined);
    assert.equal(full.evidence.hash, hashEvidence(evidence!));
    assert.equal(full.actions.approve.enabled, true, full.actions.approve.reason);
    panel.dispose();
  });

  it('says in its header what needs a person, with the reason and rule, and claims no approval before one is given', async () => {
    const { change, listing } = await seedChange(review.repo, { id: 'c0ffee07' });
    const panel = await openAndRender(review, change.id);
    const before = panel.currentModel!;
    assert.equal(before.verdict.state, 'needsApproval');
    assert.equal(before.verdict.headline, "Needs a reviewer's approval for: a new dependency: package.json");
    const { rule, ...item } = before.verdict.items[0]!;
    assert.deepEqual(item, {
      kind: 'approval',
      text: 'a new dependency: package.json',
      detail: 'New dependency package.json: adds left-pad@1.3.0 to dependencies',
      target: { tab: 'evidence', id: 'flag-0' },
      targetLabel: 'Flags',
    });
    assert.match(rule ?? '', /^stopConditions\.newDependency \(.+@.+\)$/, 'the rule and the policy it came from');
    assert.equal(before.readOnly, undefined);
    assert.doesNotMatch(JSON.stringify(before.verdict), /approved by/i, 'nobody approved yet');
    const approved = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: before.evidence.hash,
    });
    assert.equal(approved?.ok, true, approved && !approved.ok ? approved.error : '');
    assert.equal(approved?.ok && approved.message, 'Approval recorded.', 'the header says who approved; the answer does not repeat it');
    const after = await waitFor(() => (panel.currentModel?.verdict.state === 'approved' ? panel.currentModel : undefined), 'the approval');
    assert.equal(after.verdict.headline, 'Approved by reviewer@example.invalid for: a new dependency: package.json');
    assert.deepEqual(
      after.verdict.items.map((item) => [item.kind, item.text]),
      [['approved', 'a new dependency: package.json']],
    );
    assert.match(after.verdict.decisions[0]?.explanation ?? '', /approved by reviewer@example\.invalid for: a new dependency/);
    panel.dispose();
  });

  it('opens the review of a blocked draft read-only from the command, with what blocks it and where', async () => {
    const api = await lanesApi();
    const { change, evidence } = await seedChange(review.repo, {
      id: 'c0ffee08',
      lane: 'draft',
      files: { ...DEFAULT_FILES, 'src/auth/session.js': 'exports.session = {};\n' },
    });
    await review.restrictPolicy({ pathRules: [{ glob: 'src/auth/**', effect: 'block', reason: 'the security team owns auth' }] });
    try {
      await assert.rejects(
        decide(review.context, 'gate.draftToSandbox', changeFacts(change, evidence), change),
        (error: Error) => error.name === 'PolicyDeniedError' || /Blocked/.test(error.message),
      );
    } finally {
      await review.resetPolicy();
    }
    assert.equal(review.repo.store.get(change.id)?.lastDecision?.effect, 'block');
    const opened = await vscode.commands.executeCommand<boolean>('agentLanes.openReview', {
      repoRoot: review.repo.root,
      changeId: change.id,
    });
    assert.equal(opened, true, 'a change outside Review opens too');
    const panel = await waitFor(() => api.review.panelFor(review.repo.root, change.id), 'the review panel');
    const model = await fullyRendered(panel);
    assert.equal(model.lane, 'draft');
    assert.match(model.readOnly ?? '', /is in Draft: this review is read-only/);
    assert.equal(model.verdict.state, 'readOnly');
    assert.equal(model.verdict.headline, 'In Draft: blocked at Draft → Sandbox');
    const block = model.verdict.items.find((item) => item.kind === 'block');
    assert.equal(block?.step, 'Draft → Sandbox');
    assert.match(block?.text ?? '', /src\/auth\/session\.js matches "src\/auth\/\*\*": the security team owns auth/);
    const files = model.diff.state === 'ok' ? model.diff.files.map((file) => file.path) : [];
    assert.deepEqual(block?.target, { tab: 'files', file: files.indexOf('src/auth/session.js') });
    assert.equal(model.actions.approve.enabled, false);
    const refused = await send(panel, { type: 'requestChanges', id: 2, changeId: change.id, comment: 'no' });
    assert.equal(refused?.ok, false, 'nothing can be decided outside Review');
    panel.dispose();
  });

  it('shows a change in Pull request with its number, link, state and checks, and opens only an https link outside', async () => {
    const { change } = await seedChange(review.repo, { id: 'c0ffee09', lane: 'pullRequest' });
    const pullRequest = {
      number: 7,
      url: 'https://github.example/acme/review-app/pull/7',
      repository: 'acme/review-app',
      draft: false,
      state: 'open' as const,
      checks: 'passing' as const,
      updatedAt: new Date().toISOString(),
    };
    await review.repo.store.update(change.id, (current) => ({
      ...current,
      pullRequest,
      approval: { by: 'ann@example.invalid', at: new Date().toISOString(), diffHash: 'd'.repeat(64), evidenceHash: 'e'.repeat(64) },
    }));
    const panel = await openAndRender(review, change.id);
    const model = panel.currentModel!;
    assert.equal(model.verdict.state, 'readOnly');
    assert.equal(model.verdict.headline, 'In Pull request #7 · open · checks passing');
    assert.deepEqual(model.pullRequest, {
      number: 7,
      url: pullRequest.url,
      repository: 'acme/review-app',
      state: 'open',
      checks: 'passing',
      checksText: 'checks passing',
      updatedAt: pullRequest.updatedAt,
    });
    assert.equal(model.approval?.by, 'ann@example.invalid');
    assert.ok(!model.warnings.some((warning) => /worktree/.test(warning)), 'a pull request needs no worktree warning');
    const response = await send(panel, { type: 'openPullRequest', id: 3, changeId: change.id });
    assert.equal(response?.ok, true, response && !response.ok ? response.error : '');
    assert.deepEqual(review.opened, [pullRequest.url]);

    await review.repo.store.update(change.id, (current) => ({ ...current, pullRequest: { ...pullRequest, url: 'javascript:alert(1)' } }));
    const refused = await send(panel, { type: 'openPullRequest', id: 4, changeId: change.id });
    assert.equal(refused?.ok, false);
    assert.match(refused && !refused.ok ? refused.error : '', /not https/);
    assert.equal(review.opened.length, 1, 'nothing else was opened');
    panel.dispose();
  });

  it('comes back after a reload through the panel serializer, and refuses state it cannot trust', async () => {
    const { change } = await seedChange(review.repo, { id: 'c0ffee06' });
    const restored = vscode.window.createWebviewPanel(REVIEW_VIEW_TYPE, 'restoring', vscode.ViewColumn.Active, {});
    await review.controller.restore(restored, {
      repoRoot: review.repo.root,
      changeId: change.id,
      toggledFiles: ['README.md'],
      openSections: ['prompt'],
      scrollY: 120,
      commentDraft: 'half a thought',
    });
    const panel = review.controller.panelFor(review.repo.root, change.id);
    assert.ok(panel, 'the restored panel is a review again');
    await fullyRendered(panel);
    assert.equal(panel.panel.title, 'Review: Add a greeting function');
    panel.dispose();

    const forged = vscode.window.createWebviewPanel(REVIEW_VIEW_TYPE, 'forged', vscode.ViewColumn.Active, {});
    await review.controller.restore(forged, { repoRoot: '/etc', changeId: change.id });
    assert.match(forged.webview.html, /no longer a repository of this workspace/);
    assert.doesNotMatch(forged.webview.html, /<script/);
    const garbage = vscode.window.createWebviewPanel(REVIEW_VIEW_TYPE, 'garbage', vscode.ViewColumn.Active, {});
    await review.controller.restore(garbage, { changeId: '"><script>alert(1)</script>' });
    assert.match(garbage.webview.html, /cannot be restored/);
    assert.equal(review.controller.openPanels.length, 0);
    forged.dispose();
    garbage.dispose();
  });
});
