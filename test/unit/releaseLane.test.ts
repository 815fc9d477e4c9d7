import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Change } from '../../src/core/change';
import { hashEvidence } from '../../src/core/evidence';
import { verifyAuditFile } from '../../src/infra/audit/log';
import { DraftLane } from '../../src/infra/lanes/draft/draftLane';
import type { LaneContext } from '../../src/infra/lanes/laneContext';
import { type GitHubAccess, PullRequestLane } from '../../src/infra/lanes/pullRequest/pullRequestLane';
import { ReleaseLane, ReleaseLaneError } from '../../src/infra/lanes/release/releaseLane';
import { listReviewDiff } from '../../src/infra/review/reviewDiff';
import { type GitHubStandIn, startGitHubStandIn } from '../fixtures/github-standin/server';
import { createSampleRepository } from '../runners/fixtures.mjs';
import { consoleLogger } from './support/consoleLogger';
import { createLaneContext } from './support/laneContext';
import { PolicyServer } from './support/policyServer';

// The Release lane end to end on one machine: a real draft, approved, its pull request opened on the GitHub stand-in
// (checked against GitHub's description), merged there, then production actions authorized and run (docs/actions.md).

const scriptedAgent = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'agents', 'scripted-agent.mjs');
const author = { type: 'user' as const, id: 'dev' };
const releaser = { type: 'user' as const, id: 'rel-eng' };
const agent = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, scriptedAgent, '{promptFile}'] };
const token = 'release-test-token-never-written-5e2b';
const PEOPLE = ['rel-eng', 'ops', 'dev', 'mallory'];
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

const POLICY = (killed = false) => `apiVersion: agentlanes.dev/v1
metadata: { id: acme, version: "1" }
killSwitch: { disableActions: ${killed} }
actions:
  - id: deploy-staging
    kind: workflowDispatch
    workflow: deploy.yml
    inputs:
      environment: { fixed: staging }
      replicas: { oneOf: ["1", "2"] }
    repositories: [octo-org/hello-lanes]
    branches: [main]
    authorizers: [rel-eng]
    escalation: { timeLimitMinutes: 30, notify: [ops, "@octo-org/release"] }
  - id: deploy-production
    kind: deployment
    environment: production
    repositories: [octo-org/hello-lanes]
    branches: [main]
    authorizers: ["@octo-org/release"]
    requires: { after: [deploy-staging] }
`;

describe('Release lane: production actions for a merged change (real git, the GitHub stand-in, real policy and audit)', function () {
  this.timeout(120_000);
  let ctx: LaneContext;
  let standIn: GitHubStandIn;
  let policyServer: PolicyServer;
  let policyText: string;
  let access: GitHubAccess;
  let pullRequests: PullRequestLane;
  let release: ReleaseLane;
  let drafts: DraftLane;
  let bare: string;

  beforeEach(async () => {
    const base = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-release-')));
    const repo = createSampleRepository(join(base, 'app'));
    bare = join(base, 'origin.git');
    git(base, 'init', '-q', '--bare', '--initial-branch=main', bare);
    git(repo, 'push', '-q', bare, 'main');
    standIn = await startGitHubStandIn({
      bareRepoDir: bare,
      token,
      workflows: { 'deploy.yml': ['environment', 'replicas'] },
      environments: ['staging', 'production'],
      teams: { release: ['ops'] },
      // Each person signs in with a token of their own; GitHub (GET /user) says who authorizes.
      people: Object.fromEntries(PEOPLE.map((login) => [`${token}-${login}`, login])),
    });
    git(repo, 'remote', 'add', 'origin', standIn.remoteUrl);
    git(repo, 'remote', 'set-url', '--push', 'origin', bare);
    ctx = await createLaneContext(base, repo, { logger: consoleLogger(false) });
    policyText = POLICY();
    let version = 0;
    policyServer = await new PolicyServer().start();
    policyServer.handler = (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/yaml', etag: `"v${++version}"` });
      response.end(policyText);
    };
    await ctx.policy.updateSettings({ endpoint: policyServer.url() });
    access = { token, apiBaseUrl: standIn.url, clientOptions: { throttle: false, retries: 0 } };
    drafts = new DraftLane(ctx);
    pullRequests = new PullRequestLane(ctx);
    release = new ReleaseLane(ctx, undefined, drafts);
  });

  /** GitHub access with the token of one person. */
  const as = (login: string): GitHubAccess => ({ ...access, token: `${token}-${login}` });

  afterEach(async () => {
    pullRequests.stopAll();
    await standIn.close();
    await policyServer.stop();
    ctx.policy.dispose();
    assert.deepEqual(standIn.state.violations, [], 'every request and response followed GitHub’s description');
    await ctx.audit.flush();
    assert.ok(!readFileSync(ctx.storage.auditFile, 'utf8').includes(token), 'the token is not in the audit log');
    assert.equal((await verifyAuditFile(ctx.storage.auditFile)).ok, true);
  });

  /** Sandbox passed and approved by alice, as the Sandbox and Review lanes record it (those lanes have tests of their own). */
  async function approveInTest(changeId: string): Promise<void> {
    const change = ctx.store.get(changeId)!;
    const head = change.headSha!;
    assert.ok((await ctx.store.transition(changeId, 'promote', author)).ok);
    await ctx.store.update(changeId, (c) => ({
      ...c,
      sandbox: { verdict: 'passed', at: new Date().toISOString(), headSha: head, failedTasks: [] },
    }));
    assert.ok((await ctx.store.transition(changeId, 'promote', author)).ok);
    const listing = await listReviewDiff(ctx.repoRoot, change.baseSha, head);
    const evidence = await ctx.evidence.read(changeId);
    assert.ok(evidence.kind === 'ok');
    await ctx.store.update(changeId, (c) => ({
      ...c,
      approval: { by: 'alice', at: new Date().toISOString(), diffHash: listing.hash, evidenceHash: hashEvidence(evidence.evidence) },
    }));
  }

  /** A real draft, approved, its pull request opened and merged on GitHub: the change is in Release. */
  async function mergedChange(): Promise<Change> {
    const { change } = await drafts.start({
      task: 'Add a greeting function and a test',
      agent: { kind: 'cli', config: agent },
      actor: author,
      createdBy: author.id,
    });
    const ran = await drafts.runAgent(change.id, agent, author);
    assert.equal(ran.outcome, 'committed', ran.message);
    await approveInTest(change.id);
    const { result } = await pullRequests.open(change.id, author, access);
    const merged = standIn.mergePullRequest(result.number);
    // GitHub's merge moves the base branch to the merge commit (the stand-in merges fast-forward).
    git(bare, 'update-ref', 'refs/heads/main', merged.mergeCommitSha!);
    standIn.setCheckRun(merged.mergeCommitSha!, { name: 'ci/test', status: 'completed', conclusion: 'success' });
    const { getPullRequestStatus } = await import('../../src/infra/github/pullRequests');
    const { createGitHubClient } = await import('../../src/infra/github/client');
    const client = createGitHubClient({ token, apiBaseUrl: standIn.url, logger: ctx.logger, throttle: false, retries: 0 });
    const moved = await pullRequests.applyStatus(
      change.id,
      await getPullRequestStatus({ client, repository: { owner: 'octo-org', repo: 'hello-lanes' }, number: result.number }),
    );
    assert.equal(moved.lane, 'release', 'merged where policy lists actions: the change enters Release');
    assert.equal(moved.release?.mergedSha, merged.mergeCommitSha);
    return moved;
  }

  it('runs staging, then production, each authorized by a listed person for the merged commit; a second request finds the first', async () => {
    const change = await mergedChange();
    assert.deepEqual(
      (await release.actions(change.id)).map((action) => action.id),
      ['deploy-staging', 'deploy-production'],
    );

    // Production before staging: refused, nothing reached GitHub.
    await assert.rejects(
      release.run(change.id, { ...as('ops'), actionId: 'deploy-production' }, { type: 'user', id: 'ops' }),
      (error: Error) => error instanceof ReleaseLaneError && error.rule === 'actions["deploy-production"].requires.after',
    );
    assert.equal(standIn.state.deployments.length, 0);

    const staging = await release.run(change.id, { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '2' } }, releaser);
    assert.equal(staging.existing, false);
    assert.equal(staging.run.state, 'running');
    const dispatched = standIn.state.workflowRuns[0]!;
    assert.deepEqual(
      dispatched.inputs,
      { environment: 'staging', replicas: '2' },
      'the fixed input from policy, the chosen one within its bounds',
    );
    assert.equal(dispatched.headSha, change.release!.mergedSha);

    const again = await release.run(change.id, { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '2' } }, releaser);
    assert.equal(again.existing, true, 'idempotent: the second request finds the first run');
    assert.equal(standIn.state.workflowRuns.length, 1);

    standIn.setWorkflowRun(dispatched.id, 'completed', 'success');
    const refreshed = await release.refresh(change.id, access);
    assert.equal(refreshed.release!.runs[0]!.state, 'succeeded');

    const production = await release.run(change.id, { ...as('ops'), actionId: 'deploy-production' }, { type: 'user', id: 'ops' });
    assert.equal(production.run.state, 'running');
    assert.equal(standIn.state.deployments[0]!.sha, change.release!.mergedSha);
    assert.equal(standIn.state.deployments[0]!.environment, 'production');

    await assert.rejects(release.close(change.id, releaser), /still running/);
    await standInDeploymentStatus(standIn, 'success');
    assert.equal((await release.refresh(change.id, access)).release!.runs[1]!.state, 'succeeded');
    const closed = await release.close(change.id, releaser);
    assert.deepEqual({ lane: closed.lane, reason: closed.closedReason }, { lane: 'closed', reason: 'merged' });

    await ctx.audit.flush();
    const actions = readFileSync(ctx.storage.auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { action: string; details?: { action?: string; effect?: string; rules?: { rule: string }[] } })
      .filter((event) => event.action.startsWith('action.') || event.details?.action === 'runAction')
      .map((event) =>
        event.action === 'policy.decision'
          ? `decision:${event.details!.effect}${event.details!.rules?.length ? ` ${event.details!.rules.map((r) => r.rule).join(',')}` : ''}`
          : event.action,
      );
    assert.deepEqual(actions, [
      'decision:block actions["deploy-production"].requires.after',
      'decision:allow',
      'action.authorize',
      'action.status',
      'decision:allow',
      'action.status',
      'decision:allow',
      'action.authorize',
      'action.status',
      'action.status',
    ]);
  });

  it('refuses the author, a person policy does not list, inputs out of bounds, and anything while the kill switch is on', async () => {
    const change = await mergedChange();
    const cases: [string, Parameters<ReleaseLane['run']>[1], string][] = [
      ['the author', { ...as(author.id), actionId: 'deploy-staging', inputs: { replicas: '1' } }, 'authorizer.notAuthor'],
      ['not listed', { ...as('mallory'), actionId: 'deploy-staging', inputs: { replicas: '1' } }, 'actions["deploy-staging"].authorizers'],
      [
        'out of bounds',
        { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '9' } },
        'actions["deploy-staging"].inputs.replicas',
      ],
      ['not in policy', { ...as('rel-eng'), actionId: 'drop-database' }, 'actions'],
    ];
    for (const [what, request, rule] of cases) {
      await assert.rejects(
        release.run(change.id, request, releaser),
        (error: Error) => error instanceof ReleaseLaneError && error.rule === rule,
        what,
      );
      assert.equal(ctx.store.get(change.id)!.lastDecision?.effect, 'block', what);
    }
    assert.equal(standIn.state.workflowRuns.length, 0, 'nothing was started');

    policyText = POLICY(true);
    await ctx.policy.refresh();
    await assert.rejects(
      release.run(change.id, { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '1' } }, releaser),
      (error: Error) => error instanceof ReleaseLaneError && error.rule === 'killSwitch.disableActions',
    );
    assert.deepEqual(await release.actions(change.id), []);
  });

  it('a failed run marks the change "needs rollback", audited; a GitHub failure mid-call leaves the run failed, not half-started', async () => {
    const change = await mergedChange();
    const started = await release.run(change.id, { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '1' } }, releaser);
    standIn.setWorkflowRun(started.run.runId!, 'completed', 'failure');
    const failed = await release.refresh(change.id, access);
    assert.equal(failed.release!.runs[0]!.state, 'failed');
    assert.match(failed.release!.needsRollback!.reason, /"deploy-staging" failed \(failure\)/);
    // The people policy names are told where they read GitHub: a comment on the merged pull request.
    assert.equal(standIn.state.comments.length, 1);
    const comment = standIn.state.comments[0]!;
    assert.equal(comment.issueNumber, failed.pullRequest!.number);
    assert.match(comment.body, /"deploy-staging" needs a rollback\*\* for [0-9a-f]{40}/);
    assert.match(comment.body, /@ops @octo-org\/release: roll back/);
    await ctx.audit.flush();
    const escalation = readFileSync(ctx.storage.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { action: string; details: Record<string, unknown> })
      .find((event) => event.action === 'action.escalate')!;
    assert.deepEqual(escalation.details.notify, ['ops', '@octo-org/release']);
    assert.match(String(escalation.details.notifiedIn), /\/pull\/\d+#issuecomment-\d+$/);

    standIn.setFault({ operation: 'actions/create-workflow-dispatch', kind: 'serverError' });
    await assert.rejects(release.run(change.id, { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '2' } }, releaser));
    const after = ctx.store.get(change.id)!.release!.runs;
    assert.equal(after.length, 2);
    assert.equal(after[1]!.state, 'failed', 'the run GitHub never started is recorded as failed, with why');
    assert.match(after[1]!.message ?? '', /server error|500/i);

    // The network down mid-call: the run is recorded failed with why, and nothing more started on GitHub.
    standIn.setFault({ operation: 'actions/create-workflow-dispatch', kind: 'network' });
    await assert.rejects(release.run(change.id, { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '2' } }, releaser));
    const last = ctx.store.get(change.id)!.release!.runs.at(-1)!;
    assert.equal(last.state, 'failed');
    assert.match(last.message ?? '', /network|reach|connect|socket/i, last.message);
    assert.equal(standIn.state.workflowRuns.length, 1, 'only the first run ever started');
  });

  it('rolls back a failed run through a revert pull request: a revert draft of the merged commit, through the lanes', async () => {
    const change = await mergedChange();
    const mergedSha = change.release!.mergedSha;
    await assert.rejects(release.rollBack(change.id, releaser), /does not need a rollback/);
    const started = await release.run(change.id, { ...as('rel-eng'), actionId: 'deploy-staging', inputs: { replicas: '1' } }, releaser);
    standIn.setWorkflowRun(started.run.runId!, 'completed', 'failure');
    // GitHub down for the comment: the change still shows "needs rollback"; the audit says the notice failed.
    standIn.setFault({ operation: 'issues/create-comment', kind: 'serverError' });
    assert.ok((await release.refresh(change.id, access)).release!.needsRollback);
    assert.equal(standIn.state.comments.length, 0);

    const { revert } = await release.rollBack(change.id, releaser);
    assert.ok(revert);
    assert.equal(revert.lane, 'draft');
    assert.equal(revert.agentId, 'agent-lanes-revert');
    assert.equal(revert.baseSha, mergedSha, 'the revert starts from the merged commit');
    assert.equal(revert.baseRef, 'main', 'and its pull request goes to the branch the change was merged into');
    assert.match(revert.task, /^Revert "Add a greeting function and a test" \([0-9a-f]{12}\): "deploy-staging" failed/);
    // Its commit undoes exactly what the merged change did.
    const changed = git(ctx.repoRoot, 'diff', '--name-status', change.baseSha, mergedSha).split('\n').sort();
    assert.ok(changed.length > 0);
    assert.equal(
      git(ctx.repoRoot, 'diff', '--stat', change.baseSha, revert.headSha!),
      '',
      "the revert's tree is the tree before the change",
    );
    assert.equal(git(ctx.repoRoot, 'rev-list', '--count', `${mergedSha}..${revert.headSha!}`), '1');
    // In git's own words, so the intact rate finds it in the base branch's history like a `git revert`.
    assert.match(git(ctx.repoRoot, 'log', '-1', '--format=%B', revert.headSha!), new RegExp(`This reverts commit ${mergedSha}\\.`));
    // Asking again finds the same revert draft.
    assert.equal((await release.rollBack(change.id, releaser)).revert?.id, revert.id);
    assert.equal(ctx.store.get(change.id)!.release!.revert?.changeId, revert.id);

    // Through the lanes like any change: sandbox, review, then a pull request on GitHub.
    await approveInTest(revert.id);
    const { result } = await pullRequests.open(revert.id, releaser, access);
    const pr = standIn.state.pullRequests.find((candidate) => candidate.number === result.number)!;
    assert.equal(pr.baseRef, 'main');
    assert.equal(pr.headRef, revert.branch);
    assert.equal(pr.headSha, revert.headSha);
    assert.match(pr.title, /Revert/);
    assert.equal(pr.draft, true, 'draft by default, like every lanes pull request');

    await ctx.audit.flush();
    const events = readFileSync(ctx.storage.auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { action: string; changeId?: string; details: Record<string, unknown> });
    assert.match(String(events.find((event) => event.action === 'action.escalate')?.details.notifyError), /server error|500/i);
    const rollback = events.filter((event) => event.action === 'action.rollback');
    assert.equal(rollback.length, 1, 'one revert draft, audited once');
    assert.deepEqual(
      { change: rollback[0]!.changeId, revert: rollback[0]!.details.revertChangeId, sha: rollback[0]!.details.mergedSha },
      { change: change.id, revert: revert.id, sha: mergedSha },
    );
    assert.ok(events.some((event) => event.action === 'change.create' && event.changeId === revert.id));
  });

  it('a revert action in policy opens the revert draft when a listed person runs it', async () => {
    policyText = POLICY().replace(
      'actions:\n',
      'actions:\n  - { id: revert-it, kind: revert, repositories: [octo-org/hello-lanes], branches: [main], authorizers: [rel-eng] }\n',
    );
    await ctx.policy.refresh();
    const change = await mergedChange();
    await assert.rejects(
      release.run(change.id, { ...as('mallory'), actionId: 'revert-it' }, releaser),
      (error: Error) => error instanceof ReleaseLaneError && error.rule === 'actions["revert-it"].authorizers',
    );
    assert.equal(ctx.store.all().length, 1, 'a refused revert opens nothing');
    const outcome = await release.run(change.id, { ...as('rel-eng'), actionId: 'revert-it' }, releaser);
    assert.equal(outcome.run.state, 'succeeded');
    const revertId = ctx.store.get(change.id)!.release!.revert!.changeId;
    assert.equal(outcome.run.message, `revert draft ${revertId} opened`);
    assert.equal(ctx.store.get(revertId)!.lane, 'draft');
  });
});

/** The deployment's status, as the deploying system would post it. */
async function standInDeploymentStatus(standIn: GitHubStandIn, state: string): Promise<void> {
  const deployment = standIn.state.deployments[0]!;
  const response = await fetch(`${standIn.url}/repos/octo-org/hello-lanes/deployments/${deployment.id}/statuses`, {
    method: 'POST',
    headers: { authorization: `token ${token}`, 'content-type': 'application/json', accept: 'application/vnd.github+json' },
    body: JSON.stringify({ state }),
  });
  assert.equal(response.status, 201);
}
