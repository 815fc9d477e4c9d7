import assert from 'node:assert/strict';
import { checkRunItemState, statusItemState, summariseChecks } from '../../src/core/pullRequest/checks';
import { DEFAULT_POLL_SCHEDULE, nextPollDelay } from '../../src/core/pullRequest/polling';

describe('pull request checks: statuses and check runs combined', () => {
  it('none when nothing reported on the head commit', () => {
    const summary = summariseChecks([], []);
    assert.equal(summary.state, 'none');
    assert.equal(summary.description, 'no checks reported');
  });

  it('passing only when every status and check run passed (neutral and skipped count as passed)', () => {
    const summary = summariseChecks(
      [{ context: 'ci/lint', state: 'success' }],
      [
        { name: 'test', status: 'completed', conclusion: 'success' },
        { name: 'docs', status: 'completed', conclusion: 'skipped' },
        { name: 'style', status: 'completed', conclusion: 'neutral' },
      ],
    );
    assert.equal(summary.state, 'passing');
    assert.equal(summary.description, '4 passing');
    assert.deepEqual(
      summary.items.map((item) => item.name),
      ['ci/lint', 'docs', 'style', 'test'],
    );
  });

  it('pending while a status is pending or a run is not completed', () => {
    assert.equal(
      summariseChecks([{ context: 'ci', state: 'pending' }], [{ name: 't', status: 'completed', conclusion: 'success' }]).state,
      'pending',
    );
    for (const status of ['queued', 'in_progress', 'waiting', 'requested', 'pending'])
      assert.equal(checkRunItemState(status, null), 'pending', status);
  });

  it('failing wins over pending, and unknown outcomes never read as green', () => {
    const summary = summariseChecks([{ context: 'ci', state: 'pending' }], [{ name: 't', status: 'completed', conclusion: 'failure' }]);
    assert.equal(summary.state, 'failing');
    assert.equal(summary.description, '1 failing, 1 pending');
    for (const conclusion of ['failure', 'timed_out', 'cancelled', 'action_required', 'stale', 'startup_failure', null]) {
      assert.equal(checkRunItemState('completed', conclusion), 'failing', String(conclusion));
    }
    assert.equal(statusItemState('error'), 'failing');
    assert.equal(statusItemState('something-new'), 'failing');
  });

  it('the fingerprint changes when any item changes, and only then', () => {
    const a = summariseChecks([], [{ name: 't', status: 'in_progress', conclusion: null }]);
    const b = summariseChecks([], [{ name: 't', status: 'in_progress', conclusion: null }]);
    const c = summariseChecks([], [{ name: 't', status: 'completed', conclusion: 'success' }]);
    assert.equal(a.fingerprint, b.fingerprint);
    assert.notEqual(a.fingerprint, c.fingerprint);
  });
});

describe('poll back-off schedule', () => {
  const now = 1_800_000_000_000;
  const plenty = { limit: 5000, remaining: 4900, resetEpochSeconds: now / 1000 + 3600 };

  it('doubles while nothing changes, up to the maximum', () => {
    const delays = [0, 1, 2, 3, 4, 5, 10].map(
      (unchangedPolls) => nextPollDelay({ unchangedPolls, consecutiveErrors: 0, nowMs: now, rateLimit: plenty }).delayMs,
    );
    assert.deepEqual(delays, [15_000, 30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
    assert.equal(nextPollDelay({ unchangedPolls: 0, consecutiveErrors: 0, nowMs: now }).reason, 'backoff');
  });

  it('backs off after errors and waits at least as long as retry-after asks', () => {
    assert.deepEqual(nextPollDelay({ unchangedPolls: 0, consecutiveErrors: 2, nowMs: now }), { delayMs: 60_000, reason: 'error' });
    assert.deepEqual(nextPollDelay({ unchangedPolls: 0, consecutiveErrors: 1, nowMs: now, retryAfterSeconds: 90 }), {
      delayMs: 90_000,
      reason: 'retryAfter',
    });
  });

  it('spreads polls over what is left of the hourly budget, keeping a reserve', () => {
    // 20% of 5000 kept back: 100 usable → 33 polls of 3 requests in the hour left.
    const delay = nextPollDelay({
      unchangedPolls: 0,
      consecutiveErrors: 0,
      nowMs: now,
      rateLimit: { limit: 5000, remaining: 1100, resetEpochSeconds: now / 1000 + 3600 },
    });
    assert.equal(delay.reason, 'rateLimitBudget');
    assert.equal(delay.delayMs, Math.ceil(3_600_000 / 33));
  });

  it('waits for the reset, plus a second, when the budget is used up', () => {
    const delay = nextPollDelay({
      unchangedPolls: 0,
      consecutiveErrors: 0,
      nowMs: now,
      rateLimit: { limit: 5000, remaining: 1000, resetEpochSeconds: now / 1000 + 1200 },
    });
    assert.deepEqual(delay, { delayMs: 1_201_000, reason: 'rateLimitExhausted' });
  });

  it('takes overrides', () => {
    assert.equal(nextPollDelay({ unchangedPolls: 1, consecutiveErrors: 0, nowMs: now }, { initialMs: 1000, factor: 3 }).delayMs, 3000);
    assert.equal(DEFAULT_POLL_SCHEDULE.requestsPerPoll, 3);
  });
});
