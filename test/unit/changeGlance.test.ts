import * as assert from 'node:assert/strict';
import { changeDescription, changeState, changeWhy, releaseGlance } from '../../src/core/changeGlance';
import { reviewGlance } from '../../src/core/review/reviewModel';
import type { DecisionRecord } from '../../src/core/decision';

const blocked = (reason: string): DecisionRecord =>
  ({
    effect: 'block',
    explanation: 'Blocked by policy.',
    matchedRules: [{ policy: 'acme@1', rule: 'pathRules[0]', effect: 'block', reason }],
  }) as unknown as DecisionRecord;

describe('a change row at a glance: the state word first, short enough for a narrow sidebar', () => {
  it('a blocked draft leads with "blocked:" and the blocking rule\'s reason, cut to fit', () => {
    const state = changeState({
      lane: 'draft',
      lastDecision: blocked('Terraform changes go through the infra pipeline, never an agent lane'),
    });
    assert.match(state!, /^blocked: Terraform changes go through the infra pipeline…$/);
    assert.ok(state!.length <= 'blocked: '.length + 48);
    assert.equal(changeDescription({ state, agentId: 'codex', age: '2m ago' }).split(' · ')[0], state);
  });

  it('a running or failed agent, a touched checkout, and nothing to say for an ordinary draft', () => {
    assert.equal(changeState({ lane: 'draft', agentRun: { state: 'running', startedAt: 'x' } as never }), 'agent running');
    assert.equal(changeState({ lane: 'draft', agentRun: { state: 'timedOut', startedAt: 'x' } as never }), 'agent timed out');
    assert.equal(changeState({ lane: 'draft', alerts: ['The checkout changed'] }), '⚠ checkout changed');
    assert.equal(changeState({ lane: 'draft' }), undefined);
    assert.equal(changeDescription({ agentId: 'codex', age: 'just now' }), 'codex · just now');
    assert.equal(
      changeDescription({ glance: '#12 · open · checks passing', agentId: 'codex', age: '1h ago' }),
      '#12 · open · checks passing · codex · 1h ago',
    );
  });

  it("a block in Review or Pull request is not the draft gate's: the review says why", () => {
    assert.equal(changeState({ lane: 'review', lastDecision: blocked('x') }), undefined);
  });

  it('the row under a held change says why in full: the blocking rule, the failed sandbox run, the Review gate', () => {
    const reason = 'Terraform changes go through the infra pipeline, never an agent lane';
    assert.deepEqual(changeWhy({ lane: 'sandbox', lastDecision: blocked(reason) }), { kind: 'blocked', text: `Blocked: ${reason}` });
    const failed = { verdict: 'failed', failedTasks: ['unit'], message: 'unit failed: 2 tests' } as never;
    assert.deepEqual(changeWhy({ lane: 'sandbox', sandbox: failed }), { kind: 'failed', text: 'unit failed: 2 tests' });
    const quiet = { verdict: 'error', failedTasks: [] } as never;
    assert.deepEqual(changeWhy({ lane: 'sandbox', sandbox: quiet }, { sandboxVerdict: 'sandbox error' }), {
      kind: 'failed',
      text: 'sandbox error',
    });
    const gate = reviewGlance({ lane: 'review' }, { ready: false, reasons: ['2 approvals needed; 1 given: blocked: really'] });
    assert.deepEqual(changeWhy({ lane: 'review' }, { reviewGlance: gate }), {
      kind: 'review',
      text: 'Blocked: 2 approvals needed; 1 given: blocked: really',
    });
    assert.equal(
      changeWhy({ lane: 'review' }, { reviewGlance: reviewGlance({ lane: 'review' }, { ready: true, reasons: [] }) }),
      undefined,
    );
    assert.equal(changeWhy({ lane: 'draft' }), undefined);
    // A Review block is the gate's, not an old draft decision's.
    assert.equal(changeWhy({ lane: 'review', lastDecision: blocked(reason) }), undefined);
  });

  it('a change in Release shows the newest run of each action, and leads with "needs rollback" when one failed', () => {
    const run = (actionId: string, state: 'running' | 'succeeded' | 'failed' | 'timedOut') =>
      ({
        key: actionId + state,
        actionId,
        sha: 'a'.repeat(40),
        inputs: {},
        authorizedBy: 'rel-eng',
        authorizedAt: 'x',
        policyHash: 'h',
        state,
      }) as const;
    const release = { repository: 'o/r', branch: 'main', mergedSha: 'abcdef0123456789', runs: [] as ReturnType<typeof run>[] };
    assert.equal(releaseGlance({ release }), 'merged abcdef0 · no action yet');
    release.runs.push(run('deploy-staging', 'failed'), run('deploy-staging', 'succeeded'), run('deploy-production', 'timedOut'));
    assert.equal(releaseGlance({ release }), 'deploy-staging succeeded · deploy-production timed out');
    assert.equal(
      releaseGlance({ release: { ...release, revert: { changeId: '0badc0de', at: 'z' } } }),
      'deploy-staging succeeded · deploy-production timed out · reverting in 0badc0de',
    );
    assert.equal(changeState({ lane: 'release', release: { ...release, needsRollback: { reason: 'x', at: 'y' } } }), '⚠ needs rollback');
    assert.equal(changeState({ lane: 'release', release }), undefined);
  });
});
