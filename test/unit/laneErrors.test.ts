import * as assert from 'node:assert/strict';
import { ChangeStoreError } from '../../src/core/changeStore';
import { LaneError } from '../../src/core/errors';
import { DiffParseError } from '../../src/core/draft/diffAnalysis';
import { DraftInputError } from '../../src/core/draft/draft';
import { WorktreePathError } from '../../src/core/draft/worktreePaths';
import { LanesConfigError } from '../../src/core/sandbox/lanesConfig';
import { AgentRunError } from '../../src/infra/draft/agentRunner';
import { GitHubError } from '../../src/infra/github/client';
import { PullRequestError } from '../../src/infra/github/pullRequests';
import { PullRequestLaneError } from '../../src/infra/lanes/pullRequest/pullRequestLane';
import { PolicyDeniedError } from '../../src/infra/policy/policyService';
import type { DecisionRecord } from '../../src/core/decision';

describe('the errors the lanes throw on purpose are LaneErrors', () => {
  const decision = { decisionId: 'd1', explanation: 'forbidden path secrets/key.pem' } as DecisionRecord;
  const github = new GitHubError('unauthorized', 'GitHub did not accept the sign-in.', { status: 401 });
  const cases: [LaneError, string, string][] = [
    [new DraftInputError('no task'), 'DraftInputError', 'draftInput'],
    [new WorktreePathError('outside'), 'WorktreePathError', 'worktreePath'],
    [new DiffParseError('ended early'), 'DiffParseError', 'diffParse'],
    [new ChangeStoreError('exists'), 'ChangeStoreError', 'changeStore'],
    [new PolicyDeniedError(decision), 'PolicyDeniedError', 'policyDenied'],
    [new PullRequestLaneError('notApproved', 'approve first'), 'PullRequestLaneError', 'notApproved'],
    [new PullRequestError('pushFailed', 'push failed', { stepsDone: [] }, github), 'PullRequestError', 'pushFailed'],
    [github, 'GitHubError', 'unauthorized'],
    [new AgentRunError('not absolute'), 'AgentRunError', 'agentRun'],
    [new LanesConfigError('bad yaml', '.lanes/lanes.yaml', 2, 3), 'LanesConfigError', 'lanesConfig'],
  ];
  for (const [error, name, kind] of cases) {
    it(`${name} keeps its name and says its kind (${kind})`, () => {
      assert.ok(error instanceof LaneError);
      assert.equal(error.name, name);
      assert.equal(error.kind, kind);
    });
  }

  it('keeps the fields the callers read', () => {
    assert.equal(new PolicyDeniedError(decision).decision.decisionId, 'd1');
    assert.equal(new PolicyDeniedError(decision).message, decision.explanation);
    assert.equal(github.details.status, 401);
    const failed = new PullRequestError('pushFailed', 'push failed', { stepsDone: [] }, github);
    assert.equal(failed.github, github);
    assert.equal(new LanesConfigError('bad yaml', '.lanes/lanes.yaml', 2, 3).line, 2);
  });
});
