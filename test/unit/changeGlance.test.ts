import * as assert from 'node:assert/strict';
import { changeDescription, changeState } from '../../src/core/changeGlance';
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
});
