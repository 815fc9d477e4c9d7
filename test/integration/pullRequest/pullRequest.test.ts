import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Change } from '../../../src/core/change';
import { hashEvidence } from '../../../src/core/evidence';
import { listReviewDiff } from '../../../src/infra/review/reviewDiff';
import type { LanesApi } from '../../../src/vscode/lanes';
import type { PullRequestCommandResult } from '../../../src/vscode/pullRequest/pullRequestCommands';
import type { RepoContext } from '../../../src/vscode/repositories';
import { bareHead } from '../../fixtures/github-standin/laneRepo';
import { type GitHubStandIn, startGitHubStandIn } from '../../fixtures/github-standin/server';
import { lanesApi, waitFor } from '../util';

const SESSION_TOKEN = 'lanes-session-token-5a1b9c';
const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Lanes Tester',
  GIT_AUTHOR_EMAIL: 'tester@example.com',
  GIT_COMMITTER_NAME: 'Lanes Tester',
  GIT_COMMITTER_EMAIL: 'tester@example.com',
};
const git = (cwd: string, args: string[], input?: string) =>
  execFileSync('git', args, { cwd, encoding: 'utf8', env: gitEnv, ...(input !== undefined ? { input } : {}) }).trim();

/** An org policy served on loopback the way a platform team serves it; each test sets its text. */
class PolicyEndpoint {
  text = '';
  private version = 0;
  private readonly server = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/yaml', etag: `"p${++this.version}"` });
    response.end(this.text);
  });
  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/policy.yaml`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const orgPolicy = (body: string) => `apiVersion: agentlanes.dev/v1\nmetadata:\n  id: acme-platform\n  version: "9"\n${body}`;

async function setSetting(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration('agentLanes').update(key, value, vscode.ConfigurationTarget.Global);
}

describe('Pull request lane in a real VS Code (GitHub stand-in, bare origin)', function () {
  this.timeout(120_000);
  let api: LanesApi;
  let repo: RepoContext;
  let bare: string;
  let standIn: GitHubStandIn;
  let policyEndpoint: PolicyEndpoint;
  let provider: vscode.Disposable;
  const sessionRequests: string[][] = [];

  before(async () => {
    await vscode.commands.executeCommand('workbench.view.extension.agentLanes');
    api = await lanesApi();
    await api.registry.ensureDiscovered();
    repo = api.registry.repositories()[0]!;
    bare = join(mkdtempSync(join(tmpdir(), 'lanes-pr-origin-')), 'origin.git');
    git(tmpdir(), ['init', '-q', '--bare', '--initial-branch=main', bare]);
    git(repo.root, ['push', '-q', bare, 'main']);
    standIn = await startGitHubStandIn({
      bareRepoDir: bare,
      token: SESSION_TOKEN,
      workflows: { 'deploy.yml': ['environment'] },
      environments: ['staging'],
    });
    // origin names octo-org/hello-lanes on the stand-in's host; pushes go to the bare repository.
    git(repo.root, ['remote', 'add', 'origin', standIn.remoteUrl]);
    git(repo.root, ['remote', 'set-url', '--push', 'origin', bare]);

    // The GitHub Enterprise sign-in of this VS Code: a provider the test registers (no real sign-in in tests).
    const session: vscode.AuthenticationSession = {
      id: 'stand-in',
      accessToken: SESSION_TOKEN,
      account: { id: 'lanes-bot', label: 'lanes-bot' },
      scopes: ['repo'],
    };
    const changes = new vscode.EventEmitter<vscode.AuthenticationProviderAuthenticationSessionsChangeEvent>();
    provider = vscode.authentication.registerAuthenticationProvider('github-enterprise', 'GitHub Enterprise (stand-in)', {
      onDidChangeSessions: changes.event,
      getSessions: async (scopes) => {
        sessionRequests.push([...(scopes ?? [])]);
        return [session];
      },
      createSession: async () => session,
      removeSession: async () => undefined,
    });
    await setSetting('github.apiBaseUrl', standIn.url);
    policyEndpoint = await new PolicyEndpoint().start();
    // VS Code asks the person before it lets an extension use an account (a dialog tests cannot answer), so the
    // tests sign in the other documented way: a token kept in SecretStorage. The session path is tested below.
    const signedIn = await vscode.commands.executeCommand<PullRequestCommandResult>('agentLanes.signInWithToken', { token: SESSION_TOKEN });
    assert.ok(signedIn?.ok, signedIn?.message);
    // Shorter waits than in real use: no network retries, quick polls.
    api.pullRequests.tuning = { clientOptions: { retries: 0 }, schedule: { initialMs: 300, maxMs: 1500 } };
  });

  after(async () => {
    await setSetting('github.apiBaseUrl', undefined);
    await setSetting('policy.endpoint', undefined);
    provider?.dispose();
    await standIn?.close();
    await policyEndpoint?.stop();
  });

  afterEach(async () => {
    standIn.clearFaults();
    assert.deepEqual(standIn.state.violations, [], 'every request and response followed GitHub’s description');
    const records = repo.store
      .all()
      .map((change) => readFileSync(repo.storage.changeRecordFile(change.id), 'utf8'))
      .join('\n');
    await repo.lanes.context.audit.flush();
    const audit = readFileSync(repo.storage.auditFile, 'utf8');
    for (const text of [
      records,
      audit,
      JSON.stringify(vscode.workspace.getConfiguration('agentLanes')),
      JSON.stringify(api.pullRequests.shown),
    ]) {
      assert.ok(!text.includes(SESSION_TOKEN), 'the token is in no record, audit, setting or message');
    }
  });

  const run = (command: string, ...args: unknown[]) => vscode.commands.executeCommand<PullRequestCommandResult>(command, ...args);
  const open = (change: Change) => run('agentLanes.openPullRequest', { changeId: change.id });
  const current = (change: Change) => repo.store.get(change.id)!;
  const description = (change: Change) => String(api.tree.getTreeItem({ kind: 'change', repo, change: current(change) }).description ?? '');
  const shownSince = (count: number) => api.pullRequests.shown.slice(count).map((m) => m.message);

  async function usePolicy(text: string | undefined): Promise<void> {
    if (text === undefined) {
      await setSetting('policy.endpoint', undefined);
      await waitFor(() => api.policy.service.state.kind === 'local', 'the local policy');
      return;
    }
    policyEndpoint.text = text;
    if (vscode.workspace.getConfiguration('agentLanes').get('policy.endpoint') !== policyEndpoint.url)
      await setSetting('policy.endpoint', policyEndpoint.url);
    await api.policy.refresh();
    await waitFor(() => api.policy.service.state.kind === 'org', 'the org policy');
  }

  /** A real draft by the scripted agent, moved to Review (sandbox passed) and approved for its real diff and evidence. */
  async function approvedChange(): Promise<Change> {
    const created = await vscode.commands.executeCommand<Change | undefined>('agentLanes.newDraft', {
      task: 'Add a greeting function and a test',
      agentId: 'scripted',
    });
    assert.ok(
      created,
      `New Draft refused (the agents setting: ${JSON.stringify(vscode.workspace.getConfiguration('agentLanes').inspect('agents'))})`,
    );
    const drafted = await waitFor(
      () => {
        const found = repo.store.get(created.id);
        return found?.agentRun && found.agentRun.state !== 'running' ? found : undefined;
      },
      'the scripted agent',
      45_000,
    );
    assert.equal(drafted.agentRun?.state, 'succeeded', drafted.agentRun?.message);
    const actor = { type: 'user' as const, id: 'tester@example.com' };
    assert.ok((await repo.store.transition(created.id, 'promote', actor)).ok);
    await repo.store.update(created.id, (c) => ({
      ...c,
      sandbox: { verdict: 'passed', at: new Date().toISOString(), headSha: drafted.headSha, failedTasks: [] },
    }));
    assert.ok((await repo.store.transition(created.id, 'promote', actor)).ok);
    const listing = await listReviewDiff(repo.root, drafted.baseSha, drafted.headSha!);
    const evidence = await repo.evidence.read(created.id);
    assert.equal(evidence.kind, 'ok');
    const evidenceHash = evidence.kind === 'ok' ? hashEvidence(evidence.evidence) : '';
    return repo.store.update(created.id, (c) => ({
      ...c,
      approval: { by: 'reviewer@example.com', at: new Date().toISOString(), diffHash: listing.hash, evidenceHash },
    }));
  }

  it('opens a draft pull request with labels and provenance, moves the change to Pull request and follows it', async () => {
    const change = await approvedChange();
    assert.equal(
      api.tree.getTreeItem({ kind: 'change', repo, change }).contextValue,
      'change.review.approved',
      'the tree offers Open Pull Request inline',
    );
    const result = await open(change);
    assert.ok(result?.ok, result?.message);
    assert.equal(result.action, 'created');
    assert.match(
      result.message,
      new RegExp(
        `Pull request #${result.number} opened as a draft for "${change.title}": http://127\\.0\\.0\\.1:\\d+/octo-org/hello-lanes/pull/${result.number}`,
      ),
    );
    const pr = standIn.pullRequest(result.number!)!;
    assert.equal(pr.draft, true);
    assert.deepEqual(pr.labels, ['agent-generated', 'lane:pull-request', 'risk:low']);
    assert.match(pr.body ?? '', /"_type": "https:\/\/in-toto\.io\/Statement\/v1"/);
    assert.match(pr.body ?? '', /"predicateType": "https:\/\/agentlanes\.dev\/provenance\/v1"/);
    assert.match(pr.body ?? '', new RegExp(`"gitCommit": "${change.headSha}"`));
    assert.match(pr.body ?? '', /"headHash": "[0-9a-f]{64}"/);
    assert.match(pr.body ?? '', /"id": "agent-lanes-local"/);
    assert.equal(bareHead(bare, change.branch), change.headSha);
    const moved = current(change);
    assert.equal(moved.lane, 'pullRequest');
    assert.equal(moved.pullRequest?.number, result.number);
    assert.match(description(change), new RegExp(`^#${result.number} · draft · no checks yet · scripted`));
    await waitFor(() => api.pullRequests.isTracking(change.id), 'the pull request to be followed');
    // After a restart nothing follows it until the view is shown: then every change in the lane is followed again.
    repo.lanes.pullRequest.stopTracking(change.id);
    assert.equal(api.pullRequests.isTracking(change.id), false);
    api.pullRequests.startTracking();
    await waitFor(() => api.pullRequests.isTracking(change.id), 'the pull request to be followed again');
  });

  it('a pull request that already exists is updated, never duplicated', async () => {
    const change = await approvedChange();
    const first = await open(change);
    assert.ok(first?.ok, first?.message);
    const count = standIn.state.pullRequests.length;
    const again = await open(change);
    assert.ok(again?.ok, again?.message);
    assert.equal(again.action, 'updated');
    assert.equal(again.number, first.number);
    assert.match(again.message, /brought up to date/);
    assert.equal(standIn.state.pullRequests.length, count);
  });

  it('422: GitHub’s validation message, and the change stays in Review', async () => {
    const change = await approvedChange();
    standIn.setFault({
      operation: 'pulls/create',
      kind: 'validation',
      errors: [{ resource: 'PullRequest', field: 'base', code: 'invalid' }],
    });
    const result = await open(change);
    assert.equal(result?.ok, false);
    assert.match(
      result!.message,
      /GitHub refused to create the pull request in octo-org\/hello-lanes \(422\): Validation Failed: base invalid \(does the base branch exist on GitHub\?\)\. Already done: push/,
    );
    assert.equal(current(change).lane, 'review');
  });

  it('a secondary rate limit: waits as retry-after asks, says so, then succeeds', async () => {
    const change = await approvedChange();
    const before = api.pullRequests.shown.length;
    standIn.setFault({ operation: 'pulls/create', kind: 'secondaryRateLimit', retryAfterSeconds: 1 });
    const started = Date.now();
    const result = await open(change);
    assert.ok(result?.ok, result?.message);
    assert.ok(Date.now() - started >= 1000, 'it waited');
    assert.ok(
      shownSince(before).some((m) =>
        /GitHub asked Agent Lanes to slow down \(secondary rate limit\): waiting 1 s before retrying POST \/repos\//.test(m),
      ),
      shownSince(before).join('\n'),
    );
    assert.equal(
      standIn.state.requests.filter((r) => r.operationId === 'pulls/create' && r.body && JSON.stringify(r.body).includes(change.branch))
        .length,
      2,
    );
  });

  it('a failure after the push and before the pull request: the retry completes without duplicates', async () => {
    const change = await approvedChange();
    standIn.failAfterPushBeforePullRequest();
    const failed = await open(change);
    assert.equal(failed?.ok, false);
    assert.match(
      failed!.message,
      /Could not reach GitHub at 127\.0\.0\.1:\d+ to create the pull request.*Already done: push; retrying completes the rest without duplicates/,
    );
    assert.equal(bareHead(bare, change.branch), change.headSha, 'the branch was pushed');
    assert.equal(standIn.state.pullRequests.filter((pr) => pr.headRef === change.branch).length, 0);
    const retried = await open(change);
    assert.ok(retried?.ok, retried?.message);
    assert.equal(retried.action, 'created');
    assert.equal(standIn.state.pullRequests.filter((pr) => pr.headRef === change.branch).length, 1);
  });

  it('the kill switch turned on after the approval refuses with its message; a base branch policy forbids is refused', async () => {
    const change = await approvedChange();
    try {
      await usePolicy(orgPolicy('killSwitch:\n  disablePullRequests: true\n  message: "Incident 4711: no agent pull requests"\n'));
      const refused = await open(change);
      assert.equal(refused?.ok, false);
      assert.match(
        refused!.message,
        /^Policy blocked this: Blocked: Review → Pull request: the kill switch has stopped pull requests: Incident 4711: no agent pull requests/,
      );
      await usePolicy(orgPolicy('lanes:\n  pullRequests:\n    allowedBaseBranches: [release]\n'));
      const wrongBase = await open(change);
      assert.equal(wrongBase?.ok, false);
      assert.match(wrongBase!.message, /base branch "main" is not allowed \(allowed: release\)/);
    } finally {
      await usePolicy(undefined);
    }
    assert.equal(current(change).lane, 'review');
    assert.equal(bareHead(bare, change.branch), undefined, 'nothing was pushed');
  });

  it('a commit after the approval: refused, the approval no longer matches', async () => {
    const change = await approvedChange();
    // A new commit on the lane branch (its worktree's files stay as they were).
    const index = join(mkdtempSync(join(tmpdir(), 'lanes-index-')), 'index');
    const env = { ...gitEnv, GIT_INDEX_FILE: index };
    const sh = (args: string[], input?: string) =>
      execFileSync('git', args, { cwd: change.worktreePath, encoding: 'utf8', env, ...(input !== undefined ? { input } : {}) }).trim();
    sh(['read-tree', change.branch]);
    const blob = sh(['hash-object', '-w', '--stdin'], 'added after the approval\n');
    sh(['update-index', '--add', '--cacheinfo', `100644,${blob},after-approval.txt`]);
    const commit = sh(['commit-tree', sh(['write-tree']), '-p', change.branch, '-m', 'after the approval']);
    git(change.worktreePath, ['update-ref', `refs/heads/${change.branch}`, commit]);
    rmSync(index, { force: true });

    const result = await open(change);
    assert.equal(result?.ok, false);
    assert.match(
      result!.message,
      /The approval of change [0-9a-f]{8} no longer matches: the diff is now sha256:[0-9a-f]{12} .* was approved\. Nothing was pushed\. Review the change and approve it again\./,
    );
    assert.match(current(change).approval?.invalidated?.reason ?? '', /approval no longer matches/);
    assert.equal(current(change).lane, 'review');
    assert.equal(bareHead(bare, change.branch), undefined);
  });

  it('checks pending → passing, then Mark Ready for Review (policy allows ready pull requests)', async () => {
    const change = await approvedChange();
    const opened = await open(change);
    assert.ok(opened?.ok, opened?.message);
    try {
      // The built-in policy keeps pull requests drafts.
      const blocked = await run('agentLanes.markReadyForReview', { changeId: change.id });
      assert.match(blocked!.message, /Policy blocked this: .*pull requests must be opened as drafts/);
      await usePolicy(orgPolicy('lanes:\n  pullRequests:\n    draftOnly: false\n'));
      const head = current(change).pullRequest!.headSha!;
      standIn.setCheckRun(head, { name: 'ci/test', status: 'in_progress' });
      await waitFor(() => current(change).pullRequest?.checks === 'pending', 'the pending checks to be seen');
      assert.match(description(change), new RegExp(`^#${opened.number} · draft · checks pending`));
      const early = await run('agentLanes.markReadyForReview', { changeId: change.id });
      assert.equal(early?.ok, false);
      assert.match(
        early!.message,
        new RegExp(
          `Pull request #${opened.number} stays a draft: its checks are pending \\(1 pending\\)\\. Mark it ready for review when they pass\\.`,
        ),
      );
      const before = api.pullRequests.shown.length;
      standIn.setCheckRun(head, { name: 'ci/test', status: 'completed', conclusion: 'success' });
      await waitFor(() => current(change).pullRequest?.checks === 'passing', 'the passing checks to be seen');
      await waitFor(
        () => shownSince(before).some((m) => m.startsWith(`Checks pass on pull request #${opened.number}`)),
        'the person to be told',
      );
      const ready = await run('agentLanes.markReadyForReview', { changeId: change.id });
      assert.ok(ready?.ok, ready?.message);
      assert.equal(standIn.pullRequest(opened.number!)?.draft, false);
      assert.match(description(change), new RegExp(`^#${opened.number} · open · checks passing`));
    } finally {
      await usePolicy(undefined);
    }
  });

  it('a merged pull request closes the change and removes its worktree and branch', async () => {
    const change = await approvedChange();
    const opened = await open(change);
    assert.ok(opened?.ok, opened?.message);
    await waitFor(() => api.pullRequests.isTracking(change.id), 'the pull request to be followed');
    standIn.mergePullRequest(opened.number!);
    const closed = await waitFor(() => (current(change).lane === 'closed' ? current(change) : undefined), 'the change to close');
    assert.equal(closed.closedReason, 'merged');
    await waitFor(() => !existsSync(change.worktreePath), 'the worktree to be removed');
    await waitFor(() => git(repo.root, ['branch', '--list', change.branch]) === '', 'the local branch to be deleted');
    assert.equal(bareHead(bare, change.branch), change.headSha, 'the pushed branch stays on the remote');
    const actions = async () => {
      await repo.lanes.context.audit.flush();
      return readFileSync(repo.storage.auditFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((e) => e.changeId === change.id)
        .map((e) => e.action as string);
    };
    await waitFor(async () => (await actions()).includes('cleanup'), 'the cleanup to be audited');
    for (const wanted of ['push', 'pr.create', 'pr.update', 'lane.transition', 'pr.closed', 'cleanup'])
      assert.ok((await actions()).includes(wanted), `audit has ${wanted}: ${(await actions()).join(', ')}`);
    await waitFor(
      () =>
        api.pullRequests.shown.some((m) =>
          m.message.startsWith(`Pull request #${opened.number} of "${change.title}" was merged; the change is closed.`),
        ),
      'the person to be told',
    );
  });

  it('a remote that is not GitHub: a clear message, nothing pushed, and Push Lane Branch pushes the branch alone', async () => {
    const change = await approvedChange();
    // origin now names a GitLab project (pushes still go to the bare repository).
    git(repo.root, ['remote', 'set-url', 'origin', 'https://gitlab.com/group/project.git']);
    git(repo.root, ['remote', 'set-url', '--push', 'origin', bare]);
    const requestsBefore = standIn.state.requests.length;
    try {
      const result = await open(change);
      assert.equal(result?.ok, false);
      assert.equal(result!.kind, 'notGitHub');
      assert.match(
        result!.message,
        /^The remote "origin" \(https:\/\/gitlab\.com\/group\/project\.git\) is on gitlab\.com, not on 127\.0\.0\.1 .*so no pull request can be opened there\. The branch can still be pushed: git push origin lanes\//,
      );
      assert.equal(bareHead(bare, change.branch), undefined);
      // Earlier tests' pull requests are still followed in the background: their polls are not about this change.
      const asked = standIn.state.requests
        .slice(requestsBefore)
        .filter(
          (request) => request.method !== 'GET' || !/\/(pulls\/\d+|commits\/[0-9a-f]+\/(check-runs|status))(\?|$)/.test(request.path),
        );
      assert.deepEqual(asked, [], 'GitHub was not asked anything about this change');
      const pushed = await run('agentLanes.pushLaneBranch', { changeId: change.id });
      assert.ok(pushed?.ok, pushed?.message);
      assert.match(pushed.message, new RegExp(`Pushed ${change.branch} to origin`));
      assert.equal(bareHead(bare, change.branch), change.headSha);
      assert.equal(current(change).lane, 'review');
    } finally {
      git(repo.root, ['remote', 'set-url', 'origin', standIn.remoteUrl]);
      git(repo.root, ['remote', 'set-url', '--push', 'origin', bare]);
    }
  });

  it('401 from a stored token (sign in again), 403, 404 and a network failure each say what to do', async () => {
    const change = await approvedChange();
    // A token stored with "Sign In with a Token" is used first; GitHub refuses this one.
    const stored = await run('agentLanes.signInWithToken', { token: 'not-the-right-token-123' });
    assert.ok(stored?.ok, stored?.message);
    try {
      const unauthorized = await open(change);
      assert.equal(unauthorized?.ok, false);
      assert.equal(unauthorized!.kind, 'unauthorized');
      assert.match(
        unauthorized!.message,
        /GitHub did not accept the sign-in \(401 Bad credentials\) when trying to .*Sign in to GitHub again/,
      );
    } finally {
      const again = await run('agentLanes.signInWithToken', { token: SESSION_TOKEN });
      assert.ok(again?.ok, again?.message);
    }
    standIn.setFault({ operation: 'pulls/list', kind: 'forbidden' });
    const forbidden = await open(change);
    assert.match(
      forbidden!.message,
      /GitHub refused to let the signed-in account .* in octo-org\/hello-lanes \(403: Resource not accessible by personal access token\)\. Ask for write access/,
    );
    standIn.setFault({ operation: 'pulls/list', kind: 'notFound' });
    const notFound = await open(change);
    assert.match(
      notFound!.message,
      /GitHub found nothing to .* in octo-org\/hello-lanes \(404 Not Found\).*Check the remote URL and the base branch/,
    );
    standIn.setFault({ operation: 'pulls/list', kind: 'network' });
    const network = await open(change);
    assert.match(network!.message, /Could not reach GitHub at 127\.0\.0\.1:\d+ to .*Check the network connection/);
    assert.equal(current(change).lane, 'review');
    // With the right token again, it works.
    const ok = await open(change);
    assert.ok(ok?.ok, ok?.message);
  });

  it("without a stored token, VS Code's GitHub Enterprise sign-in is asked for the repo scope; a refused sign-in says what to do", async () => {
    const change = await approvedChange();
    const forgotten = await run('agentLanes.forgetGitHubToken');
    assert.match(forgotten!.message, /The stored GitHub token for 127\.0\.0\.1:\d+ was removed/);
    try {
      const requestsBefore = sessionRequests.length;
      const result = await open(change);
      assert.ok(sessionRequests.length > requestsBefore, 'the github-enterprise provider was asked');
      assert.deepEqual(sessionRequests.at(-1), ['repo']);
      // The consent dialog cannot be answered in tests: VS Code refuses it, and the message offers the token fallback.
      assert.equal(result?.ok, false);
      assert.equal(result!.kind, 'signIn');
      assert.match(
        result!.message,
        /^Agent Lanes could not sign in to GitHub Enterprise \(127\.0\.0\.1:\d+\): .*use "Agent Lanes: Sign In to GitHub with a Token"/,
      );
      assert.equal(current(change).lane, 'review');
    } finally {
      const again = await run('agentLanes.signInWithToken', { token: SESSION_TOKEN });
      assert.ok(again?.ok, again?.message);
    }
  });

  it('Open Pull Request in Browser gives the pull request’s address', async () => {
    const change = await approvedChange();
    const opened = await open(change);
    assert.ok(opened?.ok, opened?.message);
    const result = await run('agentLanes.openPullRequestInBrowser', { changeId: change.id });
    assert.ok(result?.ok, result?.message);
    assert.equal(result.url, opened.url);
  });

  const RELEASE_POLICY = `actions:
  - id: deploy-staging
    kind: workflowDispatch
    workflow: deploy.yml
    inputs: { environment: { fixed: staging } }
    repositories: [octo-org/hello-lanes]
    branches: [main]
    authorizers: [lanes-bot]
`;

  /** An approved change, its pull request opened and merged on the stand-in, followed into Release. */
  async function releasedChange(): Promise<{ change: Change; sha: string }> {
    const change = await approvedChange();
    const opened = await open(change);
    assert.ok(opened?.ok, opened?.message);
    const merged = standIn.mergePullRequest(opened.number!);
    const sha = merged.mergeCommitSha!;
    // GitHub's merge moves main to the merge commit (the stand-in merges fast-forward), and CI passes on it.
    git(bare, ['update-ref', 'refs/heads/main', sha]);
    standIn.setCheckRun(sha, { name: 'ci/test', status: 'completed', conclusion: 'success' });
    await waitFor(() => api.pullRequests.isTracking(change.id), 'the pull request to be followed');
    const released = await waitFor(() => (current(change).lane === 'release' ? current(change) : undefined), 'the change to enter Release');
    assert.equal(released.release?.mergedSha, sha);
    await waitFor(
      () => api.pullRequests.shown.some((m) => m.message.includes('was merged; the change is in Release: run its production actions')),
      'the person to be told where the change went',
    );
    const lanes = (await api.tree.getChildren()).map((node) => {
      const item = api.tree.getTreeItem(node);
      return `${String(item.label)} (${String(item.description)})`;
    });
    assert.ok(lanes.includes('Release (1)'), lanes.join(', '));
    assert.match(description(change), /no action yet/);
    assert.match(String(api.tree.getTreeItem({ kind: 'change', repo, change: released }).contextValue), /^change\.release/);
    return { change, sha };
  }

  /** Run Production Action for deploy-staging, confirmed as the modal would be. */
  async function runStaging(change: Change): Promise<{ ok: boolean; message: string }> {
    const started = await vscode.commands.executeCommand<{ ok: boolean; message: string }>(
      'agentLanes.runProductionAction',
      { changeId: change.id },
      { actionId: 'deploy-staging', confirmed: true },
    );
    assert.ok(started?.ok, started?.message);
    return started;
  }

  it('a merged change enters Release where policy lists actions; Run Production Action runs it for the merged commit', async () => {
    await usePolicy(orgPolicy(RELEASE_POLICY));
    try {
      const { change, sha } = await releasedChange();
      const started = await runStaging(change);
      assert.match(started.message, new RegExp(`"deploy-staging" started for ${sha.slice(0, 12)}`));
      const dispatched = standIn.state.workflowRuns.at(-1)!;
      assert.deepEqual({ sha: dispatched.headSha, inputs: dispatched.inputs }, { sha, inputs: { environment: 'staging' } });
      assert.match(description(change), /deploy-staging running/);

      const early = await vscode.commands.executeCommand<{ ok: boolean; message: string }>('agentLanes.closeRelease', {
        changeId: change.id,
      });
      assert.equal(early?.ok, false);
      assert.match(early!.message, /still running/);
      standIn.setWorkflowRun(dispatched.id, 'completed', 'success');
      const access = await api.pullRequests.accessFor(repo);
      assert.ok(access);
      await repo.lanes.release.refresh(change.id, access);
      assert.match(description(change), /deploy-staging succeeded/);
      const closed = await vscode.commands.executeCommand<{ ok: boolean; message: string }>('agentLanes.closeRelease', {
        changeId: change.id,
      });
      assert.ok(closed?.ok, closed?.message);
      assert.deepEqual({ lane: current(change).lane, reason: current(change).closedReason }, { lane: 'closed', reason: 'merged' });
    } finally {
      await usePolicy(undefined);
    }
  });

  it('a failed run needs a rollback; Roll Back opens a revert draft of the merged commit, in Draft like any change', async () => {
    await usePolicy(orgPolicy(RELEASE_POLICY));
    try {
      const { change, sha } = await releasedChange();
      await runStaging(change);
      standIn.setWorkflowRun(standIn.state.workflowRuns.at(-1)!.id, 'completed', 'failure');
      const access = await api.pullRequests.accessFor(repo);
      assert.ok(access);
      await repo.lanes.release.refresh(change.id, access);
      assert.match(description(change), /needs rollback/);

      const rolled = await vscode.commands.executeCommand<{ ok: boolean; message: string }>(
        'agentLanes.rollBack',
        { changeId: change.id },
        { confirmed: true },
      );
      assert.ok(rolled?.ok, rolled?.message);
      const revertId = current(change).release?.revert?.changeId;
      assert.ok(revertId);
      assert.match(rolled.message, new RegExp(`Revert draft ${revertId} of ${sha.slice(0, 12)} is in Draft`));
      const revert = repo.store.get(revertId)!;
      assert.deepEqual({ lane: revert.lane, base: revert.baseSha, baseRef: revert.baseRef }, { lane: 'draft', base: sha, baseRef: 'main' });
      assert.equal(git(repo.root, ['diff', '--stat', change.baseSha, revert.headSha!]).trim(), '', 'the revert undoes the change');
      const draftLane = (await api.tree.getChildren()).map((node) => api.tree.getTreeItem(node)).find((item) => item.label === 'Draft');
      assert.equal(String(draftLane?.description), '1');
    } finally {
      await usePolicy(undefined);
    }
  });
});
