import * as assert from 'node:assert/strict';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashEvidence } from '../../../src/core/evidence';
import { ChangeFileSchema } from '../../../src/core/change';
import { EvidenceStore } from '../../../src/infra/storage/evidenceStore';
import { waitFor } from '../util';
import { DEFAULT_FILES, git, seedChange } from './seed';
import { type TestReview, openAndRender, send, sleep, testReview } from './helpers';

/** The change as it is on disk, not as the store holds it in memory. */
function onDisk(review: TestReview, changeId: string) {
  return ChangeFileSchema.shape.changes.element.parse(JSON.parse(readFileSync(review.repo.storage.changeRecordFile(changeId), 'utf8')));
}

describe('review actions', () => {
  let review: TestReview;

  before(async () => {
    review = await testReview();
  });

  afterEach(async () => {
    review.identity.value = 'reviewer@example.invalid';
    await review.resetPolicy();
    for (const panel of review.controller.openPanels) panel.dispose();
  });

  after(() => review?.dispose());

  it('approves exactly what was shown: who, when, the diff hash and the evidence hash', async () => {
    const { change, listing, evidence } = await seedChange(review.repo, { id: 'a11ce001' });
    const panel = await openAndRender(review, change.id);
    const model = panel.currentModel!;
    assert.equal(model.diff.state === 'ok' && model.diff.hash, listing.hash);
    assert.equal(model.evidence.hash, hashEvidence(evidence!));
    const response = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: model.evidence.hash,
    });
    assert.equal(response?.ok, true, response && !response.ok ? response.error : '');
    const approval = onDisk(review, change.id)?.approval;
    assert.ok(approval, 'the approval is stored');
    assert.equal(approval.by, 'reviewer@example.invalid');
    assert.equal(approval.diffHash, listing.hash);
    assert.equal(approval.evidenceHash, hashEvidence(evidence!));
    assert.ok(Math.abs(Date.parse(approval.at) - Date.now()) < 60_000);
    assert.equal(approval.invalidated, undefined);
    assert.deepEqual(
      (await review.audits(change.id)).map((a) => [a.action, a.actor, a.details.diffHash]),
      [['review.approve', 'reviewer@example.invalid', listing.hash]],
    );
    await waitFor(() => panel.currentModel?.approval?.by === 'reviewer@example.invalid', 'the panel to show the approval');
    assert.equal(panel.currentModel?.actions.approve.enabled, false, 'an approved change cannot be approved twice');
    const twice = await send(panel, {
      type: 'approve',
      id: 2,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: model.evidence.hash,
    });
    assert.equal(twice?.ok, false);
    assert.match(twice && !twice.ok ? twice.error : '', /already approved/);
  });

  it('refuses self-approval when policy forbids it', async () => {
    const { change, listing } = await seedChange(review.repo, { id: 'a11ce002', createdBy: 'Author@Example.invalid' });
    review.identity.value = 'author@example.invalid';
    const panel = await openAndRender(review, change.id);
    const model = panel.currentModel!;
    assert.equal(model.actions.approve.enabled, false);
    assert.match(model.actions.approve.reason ?? '', /forbids self-approval/);
    const response = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: model.evidence.hash,
    });
    assert.equal(response?.ok, false);
    assert.match(
      response && !response.ok ? response.error : '',
      /Policy forbids self-approval: author@example\.invalid started this change/,
    );
    assert.equal(onDisk(review, change.id)?.approval, undefined);
    assert.equal((await review.audits(change.id)).length, 0);
  });

  it('refuses while the gate is blocked, and says why', async () => {
    const { change, listing } = await seedChange(review.repo, {
      id: 'a11ce003',
      files: { ...DEFAULT_FILES, 'src/auth/session.js': 'exports.session = {};\n' },
    });
    await review.restrictPolicy({
      pathRules: [{ glob: 'src/auth/**', effect: 'block', reason: 'needs approval from one of: security-team' }],
    });
    const panel = await openAndRender(review, change.id);
    assert.equal(panel.currentModel?.verdict.ready, false);
    assert.deepEqual(panel.currentModel?.verdict.reasons, [
      'src/auth/session.js matches "src/auth/**": needs approval from one of: security-team',
    ]);
    const response = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: panel.currentModel!.evidence.hash,
    });
    assert.equal(response?.ok, false);
    assert.match(
      response && !response.ok ? response.error : '',
      /gate blocks it: src\/auth\/session\.js matches "src\/auth\/\*\*": needs approval from one of: security-team/,
    );
    assert.equal(onDisk(review, change.id)?.approval, undefined);
  });

  it('refuses an approval for hashes other than the current ones (the change moved while it was read)', async () => {
    const { change } = await seedChange(review.repo, { id: 'a11ce004' });
    const panel = await openAndRender(review, change.id);
    const response = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: 'f'.repeat(64),
      evidenceHash: panel.currentModel!.evidence.hash,
    });
    assert.equal(response?.ok, false);
    assert.match(response && !response.ok ? response.error : '', /changed while you were reviewing it/);
    assert.equal(onDisk(review, change.id)?.approval, undefined);
  });

  it('refuses to approve a worktree with work that is not in the reviewed commits', async () => {
    const { change, listing, worktree } = await seedChange(review.repo, { id: 'a11ce005' });
    writeFileSync(join(worktree, 'src', 'greeting.js'), 'exports.greet = () => "changed after the commit";\n');
    const panel = await openAndRender(review, change.id);
    await waitFor(() => panel.currentModel?.warnings.some((w) => /not in the reviewed commits/.test(w)), 'the uncommitted-work warning');
    const response = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: panel.currentModel!.evidence.hash,
    });
    assert.equal(response?.ok, false);
    assert.match(response && !response.ok ? response.error : '', /worktree has changes that are not in the reviewed commits/);
    assert.equal(onDisk(review, change.id)?.approval, undefined);
  });

  it('keeps the approval through a touch, and invalidates it visibly when the worktree really changes', async () => {
    const { change, listing, worktree } = await seedChange(review.repo, { id: 'a11ce006' });
    const panel = await openAndRender(review, change.id);
    const ok = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: panel.currentModel!.evidence.hash,
    });
    assert.equal(ok?.ok, true, ok && !ok.ok ? ok.error : '');
    await waitFor(() => review.controller.approvals.size > 0, 'the approval to be watched');
    await sleep(1_000);
    const future = new Date(Date.now() + 120_000);
    utimesSync(join(worktree, 'README.md'), future, future);
    writeFileSync(join(worktree, 'README.md'), readFileSync(join(worktree, 'README.md')));
    await sleep(2_500);
    assert.equal(review.repo.store.get(change.id)?.approval?.invalidated, undefined, 'a touch that changes nothing keeps the approval');
    writeFileSync(join(worktree, 'README.md'), 'edited after the approval\n');
    const invalidated = await waitFor(
      () => review.repo.store.get(change.id)?.approval?.invalidated,
      'the approval to be invalidated',
      20_000,
    );
    assert.match(invalidated.reason, /the worktree changed after the approval/);
    const stored = await waitFor(() => onDisk(review, change.id)?.approval?.invalidated, 'the invalidation to be stored');
    assert.equal(stored.reason, invalidated.reason);
    await waitFor(() => panel.currentModel?.approval?.invalidated, 'the panel to show the invalidated approval');
    assert.equal(review.controller.glance(review.repo, review.repo.store.get(change.id)!).state, 'invalidated');
  });

  it('invalidates the approval when the evidence changes after it', async () => {
    const { change, listing, evidence } = await seedChange(review.repo, { id: 'a11ce007' });
    const panel = await openAndRender(review, change.id);
    const ok = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: panel.currentModel!.evidence.hash,
    });
    assert.equal(ok?.ok, true, ok && !ok.ok ? ok.error : '');
    await sleep(1_000);
    await new EvidenceStore(review.repo.storage).write({
      ...evidence!,
      agentReport: { ...evidence!.agentReport, assumptions: ['Edited after the approval.'] },
    });
    const invalidated = await waitFor(
      () => review.repo.store.get(change.id)?.approval?.invalidated,
      'the approval to be invalidated',
      20_000,
    );
    assert.match(invalidated.reason, /the evidence changed after the approval/);
  });

  it('requests changes only with a comment; the change goes back to Draft and keeps the comment for the agent', async () => {
    const { change } = await seedChange(review.repo, { id: 'a11ce008' });
    const panel = await openAndRender(review, change.id);
    const empty = await send(panel, { type: 'requestChanges', id: 1, changeId: change.id, comment: '   ' });
    assert.equal(empty, undefined, 'a request without a comment is not even answered: it does not parse');
    assert.equal(review.repo.store.get(change.id)?.lane, 'review');
    const response = await send(panel, {
      type: 'requestChanges',
      id: 2,
      changeId: change.id,
      comment: 'Handle an empty name: greet("") should say "Hello, stranger!".',
    });
    assert.equal(response?.ok, true, response && !response.ok ? response.error : '');
    const stored = onDisk(review, change.id)!;
    assert.equal(stored.lane, 'draft');
    assert.equal(stored.history.at(-1)?.event, 'requestChanges');
    assert.deepEqual(
      stored.requestedChanges?.map((r) => [r.by, r.comment]),
      [['reviewer@example.invalid', 'Handle an empty name: greet("") should say "Hello, stranger!".']],
    );
    assert.deepEqual(
      (await review.audits(change.id)).map((a) => a.action),
      ['lane.transition', 'review.requestChanges'],
    );
    await waitFor(() => panel.currentModel?.lane === 'draft', 'the panel to show Draft');
    assert.equal(panel.currentModel?.actions.requestChanges.enabled, false);
    assert.equal(panel.currentModel?.requestedChanges.length, 1);
  });

  it('rejects only after confirmation: the change is closed, its worktree removed, its record kept', async () => {
    const { change, worktree } = await seedChange(review.repo, { id: 'a11ce009' });
    const panel = await openAndRender(review, change.id);
    const unconfirmed = await send(panel, { type: 'reject', id: 1, changeId: change.id, confirmed: false });
    assert.equal(unconfirmed, undefined);
    assert.equal(review.repo.store.get(change.id)?.lane, 'review');
    assert.ok(existsSync(worktree));
    const response = await send(panel, {
      type: 'reject',
      id: 2,
      changeId: change.id,
      confirmed: true,
      comment: 'Out of scope for this release.',
    });
    assert.equal(response?.ok, true, response && !response.ok ? response.error : '');
    const stored = onDisk(review, change.id)!;
    assert.equal(stored.lane, 'closed');
    assert.equal(stored.closedReason, 'rejected');
    assert.equal(stored.history.at(-1)?.reason, 'Out of scope for this release.');
    assert.equal(existsSync(worktree), false, 'the worktree is removed');
    assert.match(
      git(review.repo.root, 'branch', '--list', change.branch),
      /a11ce009/,
      'the branch (and so the commits) stay for the record',
    );
    await waitFor(() => panel.currentModel?.lane === 'closed', 'the panel to show the closed change');
    assert.equal(panel.currentModel?.actions.reject.enabled, false);
  });

  it('survives the worktree vanishing while the review is open: warns, keeps the diff, refuses to approve, invalidates an approval', async () => {
    const { change, listing, worktree } = await seedChange(review.repo, { id: 'a11ce00a' });
    const panel = await openAndRender(review, change.id);
    const ok = await send(panel, {
      type: 'approve',
      id: 1,
      changeId: change.id,
      diffHash: listing.hash,
      evidenceHash: panel.currentModel!.evidence.hash,
    });
    assert.equal(ok?.ok, true, ok && !ok.ok ? ok.error : '');
    await sleep(1_000);
    git(review.repo.root, 'worktree', 'remove', '--force', worktree);
    const invalidated = await waitFor(
      () => review.repo.store.get(change.id)?.approval?.invalidated,
      'the approval to be invalidated',
      20_000,
    );
    assert.match(invalidated.reason, /was removed/);
    const refreshed = await send(panel, { type: 'refresh', id: 2, changeId: change.id });
    assert.equal(refreshed?.ok, true);
    const model = panel.currentModel!;
    assert.ok(
      model.warnings.some((w) => /no longer exists/.test(w)),
      model.warnings.join(' | '),
    );
    assert.equal(model.diff.state, 'ok', 'the diff is still shown from the commits');
    assert.equal(model.actions.approve.enabled, false);
    const files = await send(panel, { type: 'loadFiles', id: 3, changeId: change.id, paths: ['README.md'] });
    assert.equal(files?.ok && files.files?.[0]?.kind, 'text');
  });
});
