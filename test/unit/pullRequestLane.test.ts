import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Change } from '../../src/core/change';
import { hashEvidence } from '../../src/core/evidence';
import { consoleLogger } from './support/consoleLogger';
import { IN_TOTO_STATEMENT_TYPE } from '../../src/core/pullRequest/body';
import { verifyAuditFile } from '../../src/infra/audit/log';
import { GitHubError } from '../../src/infra/github/client';
import { PullRequestError } from '../../src/infra/github/pullRequests';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { type GitHubAccess, PullRequestLane, PullRequestLaneError } from '../../src/infra/lanes/pullRequest/pullRequestLane';
import { PolicyDeniedError } from '../../src/infra/policy/policyService';
import { listReviewDiff } from '../../src/infra/review/reviewDiff';
import { bareHead } from '../fixtures/github-standin/laneRepo';
import { type GitHubStandIn, startGitHubStandIn } from '../fixtures/github-standin/server';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { createLaneContext } from './support/laneContext';
import { PolicyServer } from './support/policyServer';

const scriptedAgent = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const user = { type: 'user' as const, id: 'dev@example.com' };
const reviewer = 'alice';
const agent = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, scriptedAgent, '{promptFile}'] };
const token = 'lane-test-token-never-written-7f3a';
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'T',
      GIT_AUTHOR_EMAIL: 't@example.invalid',
      GIT_COMMITTER_NAME: 'T',
      GIT_COMMITTER_EMAIL: 't@example.invalid',
    },
  }).trim();

const orgPolicy = (extra: string) => `apiVersion: agentlanes.dev/v1
metadata:
  id: acme
  version: "7"
${extra}`;

interface Fixture {
  ctx: LaneContext;
  drafts: DraftLane;
  lane: PullRequestLane;
  repo: string;
  bare: string;
  standIn: GitHubStandIn;
  closed: Change[];
  access: GitHubAccess;
}

describe('Pull request lane (real git, the GitHub stand-in, real policy and audit)', function () {
  this.timeout(90_000);
  let fx: Fixture;
  let policyServer: PolicyServer | undefined;

  beforeEach(async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-prlane-')));
    const repo = createSampleRepository(join(base, 'app'));
    const bare = join(base, 'origin.git');
    git(base, 'init', '-q', '--bare', '--initial-branch=main', bare);
    git(repo, 'push', '-q', bare, 'main');
    const standIn = await startGitHubStandIn({ bareRepoDir: bare, token });
    git(repo, 'remote', 'add', 'origin', standIn.remoteUrl);
    git(repo, 'remote', 'set-url', '--push', 'origin', bare);
    const ctx = await createLaneContext(base, repo, { logger: consoleLogger(false) });
    const closed: Change[] = [];
    fx = {
      ctx,
      drafts: new DraftLane(ctx),
      lane: new PullRequestLane(ctx, { onClosed: (change) => void closed.push(change) }),
      repo,
      bare,
      standIn,
      closed,
      access: { token, apiBaseUrl: standIn.url, clientOptions: { throttle: false, retries: 0 } },
    };
  });

  afterEach(async () => {
    fx.lane.stopAll();
    await fx.standIn.close();
    await policyServer?.stop();
    policyServer = undefined;
    fx.ctx.policy.dispose();
    assert.deepEqual(fx.standIn.state.violations, [], 'every request and response followed GitHub’s description');
    await fx.ctx.audit.flush();
    const audit = readFileSync(fx.ctx.storage.auditFile, 'utf8');
    assert.ok(!audit.includes(token), 'the token is not in the audit log');
    for (const change of fx.ctx.store.all())
      assert.ok(
        !readFileSync(fx.ctx.storage.changeRecordFile(change.id), 'utf8').includes(token),
        'the token is not in the change records',
      );
  });

  /** A real draft by the scripted agent, moved to Review and approved for its real diff and evidence. */
  async function approvedChange(task = 'Add a greeting function and a test'): Promise<Change> {
    const { ctx, drafts } = fx;
    const { change } = await drafts.start({ task, agent: { kind: 'cli', config: agent }, actor: user, createdBy: user.id });
    const outcome = await drafts.runAgent(change.id, agent, user);
    assert.equal(outcome.outcome, 'committed', outcome.message);
    const head = ctx.store.get(change.id)!.headSha!;
    assert.ok((await ctx.store.transition(change.id, 'promote', user)).ok);
    await ctx.store.update(change.id, (c) => ({
      ...c,
      sandbox: { verdict: 'passed', at: new Date().toISOString(), headSha: head, failedTasks: [] },
    }));
    assert.ok((await ctx.store.transition(change.id, 'promote', user)).ok);
    const listing = await listReviewDiff(ctx.repoRoot, change.baseSha, head);
    const evidence = await ctx.evidence.read(change.id);
    assert.equal(evidence.kind, 'ok');
    const evidenceHash = evidence.kind === 'ok' ? hashEvidence(evidence.evidence) : '';
    return ctx.store.update(change.id, (c) => ({
      ...c,
      approval: { by: reviewer, at: new Date().toISOString(), diffHash: listing.hash, evidenceHash },
    }));
  }

  async function useOrgPolicy(text: string): Promise<void> {
    policyServer ??= await new PolicyServer().start();
    let version = 0;
    policyServer.handler = (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/yaml', etag: `"v${++version}"` });
      response.end(text);
    };
    await fx.ctx.policy.updateSettings({ endpoint: policyServer.url() });
  }

  it('opens a draft pull request with labels, the evidence and an in-toto provenance statement, then moves the change to Pull request', async () => {
    const change = await approvedChange();
    const evidenceBefore = readFileSync(fx.ctx.evidence.fileFor(change.id), 'utf8');
    const steps: string[] = [];
    const { change: moved, result } = await fx.lane.open(change.id, user, {
      ...fx.access,
      onStep: (step) => steps.push(`${step.name}:${step.outcome}`),
    });
    assert.deepEqual(steps, ['push:done', 'pr.create:done', 'labels:done']);
    assert.equal(moved.lane, 'pullRequest');
    assert.equal(result.draft, true);
    assert.deepEqual(moved.pullRequest && { ...moved.pullRequest, updatedAt: 'x' }, {
      number: 1,
      url: `${fx.standIn.webUrl}/octo-org/hello-lanes/pull/1`,
      repository: 'octo-org/hello-lanes',
      draft: true,
      state: 'draft',
      checks: 'none',
      updatedAt: 'x',
      headSha: change.headSha,
    });
    assert.equal(bareHead(fx.bare, change.branch), change.headSha, 'the lane branch was pushed');
    const pr = fx.standIn.pullRequest(1)!;
    assert.equal(pr.draft, true);
    assert.equal(pr.title, change.title);
    assert.deepEqual(pr.labels, ['agent-generated', 'lane:pull-request', 'risk:low']);
    assert.match(pr.body ?? '', /approved by/i);
    const statement = JSON.parse(/```json\n(\{\n {2}"_type"[\s\S]*?)\n```/.exec(pr.body ?? '')?.[1] ?? '{}');
    assert.equal(statement._type, IN_TOTO_STATEMENT_TYPE);
    assert.equal(statement.subject[0].digest.gitCommit, change.headSha);
    assert.equal(statement.predicate.policy.id, 'agent-lanes-local');
    assert.match(statement.predicate.policy.hash, /^[0-9a-f]{64}$/);
    assert.match(statement.predicate.audit.headHash, /^[0-9a-f]{64}$/);
    assert.equal(statement.predicate.approval.by, reviewer);
    assert.equal(
      statement.predicate.evidenceDigest.sha256,
      change.approval!.evidenceHash,
      'the published evidence is the approved evidence',
    );
    assert.equal(readFileSync(fx.ctx.evidence.fileFor(change.id), 'utf8'), evidenceBefore, 'the approved evidence was not rewritten');

    await fx.ctx.audit.flush();
    assert.ok((await verifyAuditFile(fx.ctx.storage.auditFile)).ok);
    const events = readFileSync(fx.ctx.storage.auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .filter((e) => e.changeId === change.id);
    const headIndex = events.findIndex((e) => e.hash === statement.predicate.audit.headHash);
    assert.ok(headIndex >= 0, 'the audit head in the provenance is an event of the log');
    const actions = events.map(
      (e) => `${e.action}${e.details?.action ? `:${e.details.action}` : ''}${e.details?.step ? `:${e.details.step}` : ''}`,
    );
    for (const wanted of [
      'policy.decision:gate.reviewToPullRequest',
      'policy.decision:push',
      'push:push',
      'policy.decision:createPullRequest',
      'pr.create:pr.create',
      'pr.update:labels',
      'lane.transition',
    ]) {
      assert.ok(actions.includes(wanted), `audit has ${wanted}: ${actions.join(', ')}`);
    }
  });

  it('a second run updates the existing pull request instead of opening another', async () => {
    const change = await approvedChange();
    await fx.lane.open(change.id, user, fx.access);
    const again = await fx.lane.open(change.id, user, fx.access);
    assert.equal(again.result.action, 'updated');
    assert.equal(again.moved, false);
    assert.deepEqual(
      again.result.steps.map((s) => `${s.name}:${s.outcome}`),
      ['push:skipped', 'pr.update:done', 'labels:skipped'],
    );
    assert.equal(fx.standIn.state.pullRequests.length, 1);
  });

  it('refuses when the lane branch moved after the approval, invalidates the approval and pushes nothing', async () => {
    const change = await approvedChange();
    writeFileSync(join(change.worktreePath, 'extra.txt'), 'after the approval\n');
    git(change.worktreePath, 'add', 'extra.txt');
    git(change.worktreePath, 'commit', '-q', '-m', 'sneaky');
    await assert.rejects(fx.lane.open(change.id, user, fx.access), (error: unknown) => {
      assert.ok(error instanceof PullRequestLaneError);
      assert.equal(error.kind, 'approvalMismatch');
      assert.match(error.message, /approval of change .* no longer matches: the diff is now/);
      return true;
    });
    const after = fx.ctx.store.get(change.id)!;
    assert.equal(after.lane, 'review');
    assert.match(after.approval?.invalidated?.reason ?? '', /approval no longer matches/);
    assert.equal(bareHead(fx.bare, change.branch), undefined, 'nothing was pushed');
    assert.equal(fx.standIn.state.requests.length, 0, 'GitHub was not asked anything');
  });

  it('the kill switch turned on after the approval refuses with its message', async () => {
    const change = await approvedChange();
    await useOrgPolicy(
      orgPolicy('killSwitch:\n  disablePullRequests: true\n  message: "Incident 4711: no agent PRs until further notice"\n'),
    );
    await assert.rejects(fx.lane.open(change.id, user, fx.access), (error: unknown) => {
      assert.ok(error instanceof PolicyDeniedError);
      assert.match(error.message, /kill switch has stopped pull requests: Incident 4711: no agent PRs until further notice/);
      return true;
    });
    assert.equal(fx.ctx.store.get(change.id)!.lane, 'review');
    assert.equal(bareHead(fx.bare, change.branch), undefined);
  });

  it('a base branch policy does not allow is refused', async () => {
    const change = await approvedChange();
    await useOrgPolicy(orgPolicy('lanes:\n  pullRequests:\n    allowedBaseBranches: [release]\n'));
    await assert.rejects(fx.lane.open(change.id, user, fx.access), /base branch "main" is not allowed \(allowed: release\)/);
  });

  it('policy title prefix, labels and reviewers reach the pull request', async () => {
    const change = await approvedChange();
    await useOrgPolicy(
      orgPolicy('lanes:\n  pullRequests:\n    titlePrefix: "[agent]"\n    labels: [agent-change]\n    reviewers: [bob]\n'),
    );
    const { result } = await fx.lane.open(change.id, user, fx.access);
    const pr = fx.standIn.pullRequest(result.number)!;
    assert.equal(pr.title, `[agent] ${change.title}`);
    assert.deepEqual(pr.labels, ['agent-generated', 'lane:pull-request', 'risk:low', 'agent-change']);
    assert.deepEqual(pr.requestedReviewers, ['bob']);
    assert.match(pr.body ?? '', /"id": "acme"/);
  });

  it('a failure after the push and before the pull request: the retry completes without duplicates', async () => {
    const change = await approvedChange();
    fx.standIn.failAfterPushBeforePullRequest();
    await assert.rejects(fx.lane.open(change.id, user, fx.access), (error: unknown) => {
      assert.ok(error instanceof PullRequestError);
      assert.equal(error.kind, 'network');
      assert.match(error.message, /Already done: push/);
      return true;
    });
    assert.equal(bareHead(fx.bare, change.branch), change.headSha);
    assert.equal(fx.ctx.store.get(change.id)!.lane, 'review');
    const { result } = await fx.lane.open(change.id, user, fx.access);
    assert.deepEqual(
      result.steps.map((s) => `${s.name}:${s.outcome}`),
      ['push:skipped', 'pr.create:done', 'labels:done'],
    );
    assert.equal(fx.standIn.state.pullRequests.length, 1);
  });

  it('follows the checks; Mark Ready needs passing checks and a policy that allows it', async () => {
    const change = await approvedChange();
    const { result } = await fx.lane.open(change.id, user, fx.access);
    // The built-in policy keeps pull requests drafts.
    await assert.rejects(fx.lane.markReady(change.id, user, fx.access), /pull requests must be opened as drafts/);
    await useOrgPolicy(orgPolicy('lanes:\n  pullRequests:\n    draftOnly: false\n'));
    fx.standIn.setCheckRun(result.headSha, { name: 'ci/test', status: 'in_progress' });
    assert.equal((await fx.lane.refresh(change.id, fx.access)).pullRequest?.checks, 'pending');
    await assert.rejects(fx.lane.markReady(change.id, user, fx.access), /stays a draft: its checks are pending/);
    fx.standIn.setCheckRun(result.headSha, { name: 'ci/test', status: 'completed', conclusion: 'success' });
    assert.equal((await fx.lane.refresh(change.id, fx.access)).pullRequest?.checks, 'passing');
    const ready = await fx.lane.markReady(change.id, user, fx.access);
    assert.equal(ready.pullRequest?.state, 'open');
    assert.equal(ready.pullRequest?.draft, false);
    assert.equal(fx.standIn.pullRequest(result.number)?.draft, false);
  });

  it('tracking: a merged pull request closes the change and removes its worktree and branch', async () => {
    const change = await approvedChange();
    const { result } = await fx.lane.open(change.id, user, fx.access);
    const ended = new Promise<string>((done) =>
      fx.lane.track(change.id, { ...fx.access, schedule: { initialMs: 50, maxMs: 100 }, onEnd: (outcome) => done(outcome.reason) }),
    );
    assert.ok(fx.lane.isTracking(change.id));
    fx.standIn.mergePullRequest(result.number);
    assert.equal(await ended, 'merged');
    const closed = fx.ctx.store.get(change.id)!;
    assert.equal(closed.lane, 'closed');
    assert.equal(closed.closedReason, 'merged');
    assert.equal(closed.pullRequest?.state, 'merged');
    assert.equal(existsSync(change.worktreePath), false);
    assert.equal(git(fx.repo, 'branch', '--list', change.branch), '');
    assert.deepEqual(
      fx.closed.map((c) => c.id),
      [change.id],
      'onClosed ran (the sandbox container goes there)',
    );
    assert.equal(fx.lane.isTracking(change.id), false);
    // The intact rate (docs/metrics.md) finds the merge in git by the merge commit and the base branch.
    await fx.ctx.audit.flush();
    const mergedEvent = readFileSync(fx.ctx.storage.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { action: string; changeId?: string; details: Record<string, unknown> })
      .find((event) => event.action === 'pr.closed' && event.changeId === change.id);
    assert.equal(mergedEvent?.details.mergeCommitSha, fx.standIn.pullRequest(result.number)?.mergeCommitSha);
    assert.match(String(mergedEvent?.details.mergeCommitSha), /^[0-9a-f]{40}$/);
    assert.equal(mergedEvent?.details.baseRef, 'main');
  });

  it('a closed pull request keeps a worktree with uncommitted work', async () => {
    const change = await approvedChange();
    const { result } = await fx.lane.open(change.id, user, fx.access);
    writeFileSync(join(change.worktreePath, 'notes.txt'), 'not committed\n');
    fx.standIn.closePullRequest(result.number);
    const closed = await fx.lane.refresh(change.id, fx.access);
    assert.equal(closed.closedReason, 'pullRequestClosed');
    assert.ok(existsSync(join(change.worktreePath, 'notes.txt')), 'uncommitted work is never lost');
    assert.match(closed.alerts?.at(-1) ?? '', /uncommitted work, so it and the branch .* were kept/);
  });

  it('a remote that is not GitHub: a clear message before anything leaves, and the branch can be pushed alone', async () => {
    const change = await approvedChange();
    git(fx.repo, 'remote', 'add', 'gitlab', 'https://gitlab.com/group/project.git');
    git(fx.repo, 'remote', 'set-url', '--push', 'gitlab', fx.bare);
    await assert.rejects(fx.lane.open(change.id, user, { ...fx.access, remote: 'gitlab' }), (error: unknown) => {
      assert.ok(error instanceof GitHubError);
      assert.equal(error.kind, 'notGitHub');
      assert.match(
        error.message,
        /The remote "gitlab" \(https:\/\/gitlab\.com\/group\/project\.git\) is on gitlab\.com, not on 127\.0\.0\.1.*The branch can still be pushed: git push gitlab lanes\//,
      );
      return true;
    });
    assert.equal(bareHead(fx.bare, change.branch), undefined);
    const pushed = await fx.lane.pushOnly(change.id, user, { remote: 'gitlab' });
    assert.equal(pushed.step.outcome, 'done');
    assert.equal(bareHead(fx.bare, change.branch), change.headSha);
    assert.equal(fx.ctx.store.get(change.id)!.lane, 'review', 'no pull request, so the change stays in Review');
  });

  it('refuses a change without an approval', async () => {
    const change = await approvedChange();
    await fx.ctx.store.update(change.id, (c) => ({ ...c, approval: undefined }));
    await assert.rejects(fx.lane.open(change.id, user, fx.access), /has not been approved; open its review and approve the diff first/);
  });
});
