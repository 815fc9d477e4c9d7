import * as assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Actor } from '../../src/core/change';
import { hashEvidence } from '../../src/core/evidence';
import type { PolicySettings } from '../../src/infra/policy/policyService';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { ReviewLane, ReviewRefusal } from '../../src/infra/lanes/review/reviewLane';
import { LaneError } from '../../src/core/errors';
import { type SeedOptions, type Seeded, git, seedChange } from '../integration/review/seed';
import { cleanupTemp, makeRepo, tempDir } from './support/draftRepo';
import { createLaneContext } from './support/laneContext';

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const reviewer: Actor = { type: 'user', id: 'reviewer@example.invalid' };

interface Fixture {
  ctx: LaneContext;
  lane: ReviewLane;
  seeded: Seeded;
}

const contexts: LaneContext[] = [];

/** A real repository with a change in Review: a worktree with a commit, its evidence and its record. */
async function changeInReview(options: Partial<SeedOptions> = {}, policySettings: PolicySettings = {}): Promise<Fixture> {
  const repo = makeRepo();
  const ctx = await createLaneContext(tempDir('lanes-review-'), repo, { logger: quiet, policySettings });
  contexts.push(ctx);
  const seeded = await seedChange({ root: repo, storage: ctx.storage, store: ctx.store }, { id: 'a11ce001', ...options });
  return { ctx, lane: new ReviewLane(ctx, new DraftLane(ctx)), seeded };
}

function shown({ seeded }: Fixture) {
  return { shownDiffHash: seeded.listing.hash, shownEvidenceHash: hashEvidence(seeded.evidence!) };
}

async function auditOf(ctx: LaneContext, changeId: string) {
  const { events } = await ctx.audit.readAll();
  return events.filter((event) => event.changeId === changeId);
}

describe('Review lane service (real git worktree, real stores, audit and policy)', function () {
  this.timeout(30_000);

  afterEach(async () => {
    for (const ctx of contexts.splice(0)) {
      ctx.policy.dispose();
      await ctx.audit.close();
    }
    cleanupTemp();
  });

  it('approves exactly the shown diff, audits it, and an edit in the worktree afterwards invalidates it on check', async () => {
    const fixture = await changeInReview();
    const { ctx, lane, seeded } = fixture;
    await assert.rejects(
      lane.approve(seeded.change.id, { ...shown(fixture), shownDiffHash: 'f'.repeat(64) }, reviewer),
      (error: Error) => error instanceof ReviewRefusal && /changed while you were reviewing it/.test(error.message),
    );
    assert.equal(ctx.store.get(seeded.change.id)?.approval, undefined, 'a stale shown diff approves nothing');

    const approval = await lane.approve(seeded.change.id, shown(fixture), reviewer);
    assert.equal(approval.by, reviewer.id);
    assert.equal(approval.diffHash, seeded.listing.hash);
    assert.equal(approval.evidenceHash, hashEvidence(seeded.evidence!));
    assert.deepEqual(ctx.store.get(seeded.change.id)?.approval, approval);
    assert.deepEqual(
      (await auditOf(ctx, seeded.change.id)).map((event) => [event.action, event.actor.id, event.details?.diffHash]),
      [['review.approve', reviewer.id, seeded.listing.hash]],
    );
    await assert.rejects(lane.approve(seeded.change.id, shown(fixture), reviewer), /already approved by reviewer@example\.invalid/);

    assert.equal(await lane.checkApproval(seeded.change.id), undefined, 'nothing changed: the approval holds');
    writeFileSync(join(seeded.worktree, 'README.md'), 'edited after the approval\n');
    const invalidation = await lane.checkApproval(seeded.change.id, 'test edit');
    assert.equal(invalidation?.reason, 'the worktree changed after the approval');
    assert.equal(ctx.store.get(seeded.change.id)?.approval?.invalidated?.reason, 'the worktree changed after the approval');
    const audited = (await auditOf(ctx, seeded.change.id)).find((event) => event.action === 'approval.invalidated');
    assert.equal(audited?.details?.reason, 'the worktree changed after the approval');
    assert.equal(audited?.details?.trigger, 'test edit');
    assert.equal(await lane.checkApproval(seeded.change.id), undefined, 'an invalidated approval is not invalidated twice');
  });

  it('binds the approval to the evidence hash: a stale shown evidence is refused, a later evidence change invalidates it', async () => {
    const fixture = await changeInReview();
    const { ctx, lane, seeded } = fixture;
    await assert.rejects(
      lane.approve(seeded.change.id, { ...shown(fixture), shownEvidenceHash: '0'.repeat(64) }, reviewer),
      /changed while you were reviewing it/,
    );
    await lane.approve(seeded.change.id, shown(fixture), reviewer);
    await ctx.evidence.write({
      ...seeded.evidence!,
      agentReport: { ...seeded.evidence!.agentReport, assumptions: ['Edited after the approval.'] },
    });
    const invalidation = await lane.checkApproval(seeded.change.id);
    assert.equal(invalidation?.reason, 'the evidence changed after the approval');
    assert.equal(ctx.store.get(seeded.change.id)?.approval?.invalidated?.reason, 'the evidence changed after the approval');
  });

  it('refuses a worktree with work that is not in the reviewed commits', async () => {
    const fixture = await changeInReview();
    writeFileSync(join(fixture.seeded.worktree, 'src', 'greeting.js'), 'exports.greet = () => "changed after the commit";\n');
    await assert.rejects(
      fixture.lane.approve(fixture.seeded.change.id, shown(fixture), reviewer),
      /worktree has changes that are not in the reviewed commits/,
    );
    assert.equal(fixture.ctx.store.get(fixture.seeded.change.id)?.approval, undefined);
  });

  it('refuses self-approval when policy forbids it, and only then', async () => {
    const author: Actor = { type: 'user', id: 'author@example.invalid' };
    const forbidding = await changeInReview(
      { createdBy: 'Author@Example.invalid' },
      { user: { lanes: { approvals: { forbidSelfApproval: true } } } },
    );
    assert.equal(await forbidding.lane.forbidsSelfApproval(forbidding.seeded.change), true);
    await assert.rejects(
      forbidding.lane.approve(forbidding.seeded.change.id, shown(forbidding), author),
      /Policy forbids self-approval: author@example\.invalid started this change/,
    );
    assert.equal(forbidding.ctx.store.get(forbidding.seeded.change.id)?.approval, undefined);
    assert.deepEqual(await auditOf(forbidding.ctx, forbidding.seeded.change.id), []);

    const allowing = await changeInReview({ createdBy: 'Author@Example.invalid' });
    assert.equal(await allowing.lane.forbidsSelfApproval(allowing.seeded.change), false);
    const approval = await allowing.lane.approve(allowing.seeded.change.id, shown(allowing), author);
    assert.equal(approval.by, author.id);
  });

  it('refuses while the Review → Pull request gate is blocked, and says why', async () => {
    const fixture = await changeInReview(
      {},
      { user: { pathRules: [{ glob: 'src/**', effect: 'block', reason: 'sources change only through the release train' }] } },
    );
    const { ctx, lane, seeded } = fixture;
    const gate = await lane.evaluateGate(seeded.change, seeded.evidence);
    assert.equal(gate.ready, false);
    assert.equal(gate.reasons.length, 1);
    assert.match(gate.reasons[0]!, /src\/greeting\.js .*"src\/\*\*": sources change only through the release train/);
    await assert.rejects(
      lane.approve(seeded.change.id, shown(fixture), reviewer),
      (error: Error) => error.message === `The Review → Pull request gate blocks it: ${gate.reasons[0]}.`,
    );
    assert.equal(ctx.store.get(seeded.change.id)?.approval, undefined);
    assert.equal(ctx.store.get(seeded.change.id)?.lastDecision, undefined, 'asking the gate records nothing');
  });

  it('withdraws the approval when the audit log cannot record it', async () => {
    const fixture = await changeInReview();
    const { ctx, lane, seeded } = fixture;
    await ctx.audit.close();
    await assert.rejects(
      lane.approve(seeded.change.id, shown(fixture), reviewer),
      (error: Error) =>
        error instanceof ReviewRefusal && /could not be recorded in the audit log .*so it was withdrawn/.test(error.message),
    );
    assert.equal(ctx.store.get(seeded.change.id)?.approval, undefined);
  });

  it('requests changes: back to Draft with the comment on the change, the move and the request audited', async () => {
    const { ctx, lane, seeded } = await changeInReview();
    const comment = 'Handle an empty name: greet("") should say "Hello, stranger!".';
    const updated = await lane.requestChanges(seeded.change.id, `  ${comment} `, reviewer);
    assert.equal(updated.lane, 'draft');
    assert.equal(updated.history.at(-1)?.event, 'requestChanges');
    assert.deepEqual(
      updated.requestedChanges?.map((r) => [r.by, r.comment]),
      [[reviewer.id, comment]],
    );
    assert.deepEqual(
      (await auditOf(ctx, seeded.change.id)).map((event) => [event.action, event.details]),
      [
        ['lane.transition', { event: 'requestChanges', from: 'review', to: 'draft', reason: comment }],
        ['review.requestChanges', { comment }],
      ],
    );
    await assert.rejects(lane.requestChanges(seeded.change.id, 'again', reviewer), /is not in Review \(it is draft\)/);
  });

  it('rejects through the Draft lane: closed, worktree removed, branch kept; uncommitted work refuses and rejects nothing', async () => {
    const dirty = await changeInReview();
    writeFileSync(join(dirty.seeded.worktree, 'scratch.txt'), 'not committed\n');
    await assert.rejects(dirty.lane.reject(dirty.seeded.change.id, 'no', reviewer), (error: Error) => {
      assert.ok(error instanceof ReviewRefusal && error instanceof LaneError);
      assert.match(error.message, /Nothing was rejected\.$/);
      return true;
    });
    assert.equal(dirty.ctx.store.get(dirty.seeded.change.id)?.lane, 'review');
    assert.ok(existsSync(dirty.seeded.worktree));

    const { ctx, lane, seeded } = await changeInReview();
    const rejected = await lane.reject(seeded.change.id, ' Out of scope for this release. ', reviewer);
    assert.equal(rejected.lane, 'closed');
    assert.equal(rejected.closedReason, 'rejected');
    assert.equal(rejected.history.at(-1)?.reason, 'Out of scope for this release.');
    assert.equal(existsSync(seeded.worktree), false, 'the worktree is removed');
    assert.match(git(ctx.repoRoot, 'branch', '--list', seeded.change.branch), /a11ce001/, 'the branch stays for the record');
    const actions = (await auditOf(ctx, seeded.change.id)).map((event) => event.action);
    assert.ok(actions.includes('lane.transition'), actions.join(', '));
    assert.equal(actions.at(-1), 'review.reject');
  });
});
