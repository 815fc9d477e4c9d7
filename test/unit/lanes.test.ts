import * as assert from 'node:assert/strict';
import { type Change, type ChangeStatus } from '../../src/core/change';
import { LANE_EVENTS, type LaneEvent, targetOf, transition } from '../../src/core/lanes';

const user = { type: 'user' as const, id: 'dev@example.com' };

function change(lane: ChangeStatus, overrides: Partial<Change> = {}): Change {
  return {
    id: 'c0ffee00',
    title: 'Fix the parser',
    task: 'Fix the parser',
    agentId: 'scripted',
    baseRef: 'main',
    baseSha: 'a'.repeat(40),
    headSha: 'b'.repeat(40),
    branch: 'lanes/c0ffee00-fix-the-parser',
    worktreePath: '/tmp/wt',
    lane,
    createdAt: '2026-11-21T10:00:00.000Z',
    updatedAt: '2026-11-21T10:00:00.000Z',
    history: [],
    ...(lane === 'sandbox' || lane === 'review'
      ? { sandbox: { verdict: 'passed' as const, at: '2026-11-21T10:05:00.000Z', failedTasks: [], headSha: 'b'.repeat(40) } }
      : {}),
    ...(lane === 'review'
      ? { approval: { by: 'rev@example.com', at: '2026-11-21T10:10:00.000Z', diffHash: 'd'.repeat(64), evidenceHash: 'e'.repeat(64) } }
      : {}),
    ...(lane === 'closed' ? { closedReason: 'rejected' as const } : {}),
    ...overrides,
  };
}

/** Every legal transition, as the product defines it. */
const LEGAL: Array<[ChangeStatus, LaneEvent, ChangeStatus]> = [
  ['draft', 'promote', 'sandbox'],
  ['draft', 'discard', 'closed'],
  ['sandbox', 'promote', 'review'],
  ['sandbox', 'sendBack', 'draft'],
  ['sandbox', 'discard', 'closed'],
  ['review', 'promote', 'pullRequest'],
  ['review', 'requestChanges', 'draft'],
  ['review', 'reject', 'closed'],
  ['review', 'discard', 'closed'],
  ['pullRequest', 'pullRequestMerged', 'closed'],
  ['pullRequest', 'pullRequestClosed', 'closed'],
  ['pullRequest', 'enterRelease', 'release'],
  ['release', 'closeRelease', 'closed'],
];

const STATUSES: ChangeStatus[] = ['draft', 'sandbox', 'review', 'pullRequest', 'closed'];

describe('lane state machine', () => {
  describe('legal transitions', () => {
    for (const [from, event, to] of LEGAL) {
      it(`${from} --${event}--> ${to}`, () => {
        const result = transition(change(from), event, user, { at: new Date('2026-11-21T12:00:00Z'), reason: 'because' });
        assert.ok(result.ok, !result.ok ? result.reason : '');
        assert.equal(result.change.lane, to);
        assert.deepEqual(result.change.history.at(-1), { at: '2026-11-21T12:00:00.000Z', event, from, to, actor: user, reason: 'because' });
        assert.equal(result.change.updatedAt, '2026-11-21T12:00:00.000Z');
      });
    }
  });

  describe('illegal transitions are refused with a reason a person can read', () => {
    for (const from of STATUSES) {
      for (const event of LANE_EVENTS) {
        if (LEGAL.some(([f, e]) => f === from && e === event)) continue;
        it(`${from} refuses ${event}`, () => {
          const original = change(from);
          const result = transition(original, event, user);
          assert.equal(result.ok, false);
          const reason = !result.ok ? result.reason : '';
          assert.match(reason, /^Change c0ffee00 /);
          assert.ok(reason.length > 30 && reason.endsWith('.'), `a full sentence: ${reason}`);
          assert.equal(original.lane, from, 'the change is not touched');
          assert.equal(targetOf(from, event), undefined, 'the event has no target lane');
        });
      }
    }
    it('names what to do for typical mistakes', () => {
      const reason = (lane: ChangeStatus, event: LaneEvent) => {
        const r = transition(change(lane), event, user);
        return r.ok ? '' : r.reason;
      };
      assert.match(reason('draft', 'reject'), /only a change in Review can be rejected\. Discard it instead/);
      assert.match(reason('closed', 'promote'), /is rejected; a closed change cannot move.*start a new draft/);
      assert.match(reason('pullRequest', 'promote'), /moves on when its pull request is merged|leaves it when its pull request is merged/);
      assert.match(reason('release', 'promote'), /the last lane: run its production actions, or close it/);
      assert.match(reason('release', 'discard'), /it was merged\. Close it when its production actions are done/);
      assert.match(reason('pullRequest', 'discard'), /close the pull request/);
      assert.match(reason('draft', 'requestChanges'), /only while it is in Review/);
      assert.match(reason('review', 'sendBack'), /request changes in its review/);
      assert.match(reason('sandbox', 'pullRequestMerged'), /has no pull request yet/);
    });
  });

  describe("a lane's own invariants", () => {
    it('keeps a draft whose agent is still running', () => {
      const r = transition(change('draft', { agentRun: { state: 'running', startedAt: '2026-11-21T10:00:00Z' } }), 'promote', user);
      assert.equal(r.ok, false);
      assert.match(!r.ok ? r.reason : '', /cannot move to Sandbox: its agent is still running/);
      const d = transition(change('draft', { agentRun: { state: 'running', startedAt: '2026-11-21T10:00:00Z' } }), 'discard', user);
      assert.match(!d.ok ? d.reason : '', /stop it first/);
    });
    it('keeps a draft with no changes', () => {
      for (const overrides of [{ headSha: undefined }, { headSha: 'a'.repeat(40) }]) {
        const r = transition(change('draft', overrides), 'promote', user);
        assert.match(!r.ok ? r.reason : '', /has no changes yet/);
      }
    });
    it('keeps a sandbox change whose tasks failed, are running, or ran on an older head', () => {
      const failed = transition(
        change('sandbox', { sandbox: { verdict: 'failed', at: 'x', failedTasks: ['test', 'lint'] } }),
        'promote',
        user,
      );
      assert.match(!failed.ok ? failed.reason : '', /did not pass \(test, lint\)/);
      const none = transition(change('sandbox', { sandbox: undefined }), 'promote', user);
      assert.match(!none.ok ? none.reason : '', /have not finished/);
      const running = transition(change('sandbox', { sandbox: { verdict: 'running', at: 'x', failedTasks: [] } }), 'promote', user);
      assert.match(!running.ok ? running.reason : '', /have not finished/);
      const stale = transition(
        change('sandbox', { sandbox: { verdict: 'passed', at: 'x', failedTasks: [], headSha: 'c'.repeat(40) } }),
        'promote',
        user,
      );
      assert.match(!stale.ok ? stale.reason : '', /changed after its sandbox run/);
    });
    it('keeps a review change without a holding approval', () => {
      const none = transition(change('review', { approval: undefined }), 'promote', user);
      assert.match(!none.ok ? none.reason : '', /has not been approved/);
      const invalid = transition(
        change('review', {
          approval: { by: 'r', at: 'x', diffHash: 'd', evidenceHash: 'e', invalidated: { at: 'y', reason: 'the worktree changed' } },
        }),
        'promote',
        user,
      );
      assert.match(!invalid.ok ? invalid.reason : '', /approval no longer holds \(the worktree changed\)/);
    });
    it('drops the approval and sandbox verdict when a change goes back to Draft', () => {
      const r = transition(change('review'), 'requestChanges', user, { reason: 'rename the function' });
      assert.ok(r.ok);
      assert.equal(r.change.approval, undefined);
      assert.equal(r.change.sandbox, undefined);
      assert.equal(r.change.history.at(-1)?.reason, 'rename the function');
    });
    it('records why a change closed', () => {
      const cases: Array<[ChangeStatus, LaneEvent, string]> = [
        ['review', 'reject', 'rejected'],
        ['draft', 'discard', 'discarded'],
        ['pullRequest', 'pullRequestMerged', 'merged'],
        ['pullRequest', 'pullRequestClosed', 'pullRequestClosed'],
        ['release', 'closeRelease', 'merged'],
      ];
      for (const [from, event, reason] of cases) {
        const r = transition(change(from), event, user);
        assert.ok(r.ok);
        assert.equal(r.change.closedReason, reason);
      }
    });
  });

  it('targetOf agrees with the table', () => {
    for (const from of STATUSES) {
      for (const event of LANE_EVENTS) {
        const legal = LEGAL.find(([f, e]) => f === from && e === event);
        assert.equal(targetOf(from, event), legal?.[2]);
      }
    }
  });

  it('a change in Release closes only when none of its actions is running', () => {
    const releasing = (state: 'running' | 'succeeded') => ({
      ...change('release'),
      release: {
        repository: 'o/r',
        branch: 'main',
        mergedSha: 'a'.repeat(40),
        runs: [
          { key: 'k', actionId: 'deploy', sha: 'a'.repeat(40), inputs: {}, authorizedBy: 'rel', authorizedAt: 't', policyHash: 'h', state },
        ],
      },
    });
    const refused = transition(releasing('running'), 'closeRelease', user);
    assert.ok(!refused.ok && /a production action is still running/.test(refused.reason));
    assert.ok(transition(releasing('succeeded'), 'closeRelease', user).ok);
  });
});
