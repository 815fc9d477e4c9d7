import assert from 'node:assert/strict';
import type { TaskEvidence } from '../../src/core/evidence';
import { sandboxVerdict } from '../../src/core/sandbox/verdict';

function evidence(id: string, outcome: TaskEvidence['outcome'], extra: Partial<TaskEvidence> = {}): TaskEvidence {
  return {
    id,
    command: `run ${id}`,
    required: true,
    isolation: 'container',
    networkMode: 'none',
    outcome,
    exitCode: outcome === 'passed' ? 0 : outcome === 'failed' ? 1 : null,
    durationMs: 5,
    logDigest: 'sha256:00',
    logTruncated: false,
    redaction: { total: 0, byKind: {} },
    failsOnBase: null,
    startedAt: '2026-12-04T10:00:00.000Z',
    ...extra,
  };
}

const planned = (...tasks: TaskEvidence[]) => tasks.map(({ id, required }) => ({ id, required }));

describe('sandbox verdict (pure)', () => {
  it('passes and moves on to Review when every required task passed; an optional failure is named, not blocking', () => {
    const tasks = [
      evidence('unit', 'passed'),
      evidence('style', 'failed', { required: false }),
      evidence('docs', 'skipped', { required: false }),
    ];
    assert.deepEqual(sandboxVerdict({ planned: planned(...tasks), tasks, cancelled: false }), {
      verdict: 'passed',
      failedTasks: [],
      nextLane: 'review',
      message: '1 required task passed. not required and failed: style.',
    });
  });

  it('passes with no task at all, and says why nothing ran', () => {
    const verdict = sandboxVerdict({ planned: [], tasks: [], cancelled: false });
    assert.equal(verdict.verdict, 'passed');
    assert.equal(verdict.nextLane, 'review');
    assert.equal(verdict.message, 'No tasks to run (none required by policy or .lanes/lanes.yaml).');
  });

  it('fails on a required task that failed or timed out, naming each with its exit code; the change stays in Sandbox', () => {
    const tasks = [evidence('unit', 'passed'), evidence('must-pass', 'failed', { exitCode: 3 }), evidence('slow', 'timedOut')];
    const verdict = sandboxVerdict({ planned: planned(...tasks), tasks, cancelled: false });
    assert.equal(verdict.verdict, 'failed');
    assert.equal(verdict.nextLane, 'sandbox');
    assert.deepEqual(verdict.failedTasks, ['must-pass', 'slow']);
    assert.match(
      verdict.message,
      /^Required tasks did not pass: must-pass \(failed, exit 3\), slow \(timed out\); the change stays in Sandbox/,
    );
  });

  it('fails on a required task that has no evidence at all', () => {
    const tasks = [evidence('unit', 'passed')];
    const verdict = sandboxVerdict({ planned: [...planned(...tasks), { id: 'lint', required: true }], tasks, cancelled: false });
    assert.equal(verdict.verdict, 'failed');
    assert.deepEqual(verdict.failedTasks, ['lint']);
    assert.match(verdict.message, /^Required task did not pass: lint \(missing\)/);
  });

  it('is an error, not a verdict on the change, when the set-up failed, policy stopped the run, it was cancelled or the sandbox failed', () => {
    const skipped = [evidence('unit', 'skipped')];
    const setup = sandboxVerdict({
      planned: planned(...skipped),
      tasks: skipped,
      setupError: { kind: 'imageMissing', message: 'No image.' },
      cancelled: false,
    });
    assert.deepEqual([setup.verdict, setup.nextLane, setup.message], ['error', 'sandbox', 'No image.']);
    const cancelledSetup = sandboxVerdict({
      planned: [],
      tasks: [],
      setupError: { kind: 'cancelled', message: 'Stopped.' },
      cancelled: true,
    });
    assert.equal(cancelledSetup.message, 'Cancelled: Stopped.');
    const blocked = sandboxVerdict({ planned: planned(...skipped), tasks: skipped, blockedBy: 'the kill switch is on', cancelled: false });
    assert.deepEqual([blocked.verdict, blocked.message], ['error', 'Policy stopped the sandbox run: the kill switch is on']);
    const partly = [evidence('a', 'passed'), evidence('b', 'cancelled'), evidence('c', 'skipped')];
    const cancelled = sandboxVerdict({ planned: planned(...partly), tasks: partly, cancelled: false });
    assert.deepEqual(
      [cancelled.verdict, cancelled.message],
      ['error', 'Cancelled: 1 of 3 tasks had passed; run the tasks again to get a verdict.'],
    );
    const gone = [evidence('a', 'error', { message: 'The sandbox container was removed.' }), evidence('b', 'skipped')];
    const lost = sandboxVerdict({ planned: planned(...gone), tasks: gone, cancelled: false });
    assert.deepEqual([lost.verdict, lost.message, lost.failedTasks], ['error', 'The sandbox container was removed.', ['a', 'b']]);
  });
});
