import assert from 'node:assert/strict';
import type { AgentTranscript } from '../../src/core/draft/agentTranscript';
import type { TaskEvidence } from '../../src/core/evidence';
import { agentClaims, checkClaims, unbackedClaimFlags } from '../../src/core/sandbox/agentClaims';

function task(id: string, command: string, outcome: TaskEvidence['outcome'], extra: Partial<TaskEvidence> = {}): TaskEvidence {
  return {
    id,
    command,
    required: true,
    isolation: 'container',
    networkMode: 'none',
    outcome,
    exitCode: outcome === 'passed' ? 0 : 1,
    durationMs: 1,
    logDigest: 'sha256:x',
    logTruncated: false,
    redaction: { total: 0, byKind: {} },
    failsOnBase: null,
    startedAt: '2026-12-04T00:00:00.000Z',
    ...extra,
  };
}

const transcript = (finalMessage: string, commands: AgentTranscript['commands'] = []): AgentTranscript => ({
  format: 'claude-stream-json',
  toolCalls: [],
  commands,
  finalMessage,
  unreadLines: 0,
});

describe("the agent's claims against the sandbox's proof", () => {
  it('reads claims that tests pass, and not negated, hedged or unrelated sentences', () => {
    const claims = agentClaims({
      transcript: transcript(
        'I added greet(). All tests pass. The build is fine.\nI did not run the tests. Two tests fail on CI. The test suite is green now!',
        [
          { command: 'npm test', exitCode: 0 },
          { command: 'ls -la', exitCode: 0 },
          { command: 'npx vitest run', exitCode: 1 },
        ],
      ),
      report: { summary: 'Tests passed locally.' },
    });
    assert.deepEqual(
      claims.map((claim) => `${claim.source}: ${claim.text}`),
      [
        'finalMessage: All tests pass.',
        'finalMessage: The test suite is green now!',
        'summary: Tests passed locally.',
        'command: npm test (exit 0)',
      ],
    );
  });

  it('a claim is backed when the test tasks passed, contradicted when one failed, unchecked when none ran', () => {
    const claims = agentClaims({ transcript: transcript('All tests pass.') });
    assert.deepEqual(
      checkClaims(claims, [task('unit', 'npm test', 'passed'), task('lint', 'npm run lint', 'failed')]).map((c) => [c.proof, c.tasks]),
      [['backed', ['unit (npm test): passed']]],
      'only the test tasks are the proof about tests',
    );
    const contradicted = checkClaims(claims, [
      task('unit', 'npm test', 'failed'),
      task('e2e', 'make e2e', 'timedOut', { counts: { passed: 1, failed: 0, skipped: 0, format: 'mocha' } }),
    ]);
    assert.deepEqual(contradicted[0]!.tasks, ['unit (npm test): failed', 'e2e (make e2e): timed out']);
    assert.deepEqual(
      unbackedClaimFlags(contradicted).map((flag) => flag.detail),
      ['The agent says "All tests pass.", but the sandbox\'s unit (npm test): failed; e2e (make e2e): timed out: the claim is not backed.'],
    );
    assert.equal(checkClaims(claims, [task('unit', 'npm test', 'skipped')])[0]!.proof, 'unchecked');
    assert.deepEqual(unbackedClaimFlags(checkClaims(claims, [])), []);
  });

  it('without test runners, the required tasks are the proof', () => {
    const claims = agentClaims({ report: { summary: 'All specs pass.' } });
    const checks = checkClaims(claims, [task('check', './check.sh', 'failed'), task('opt', './opt.sh', 'failed', { required: false })]);
    assert.deepEqual(checks[0]!.tasks, ['check (./check.sh): failed']);
  });
});
