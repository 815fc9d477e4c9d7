import assert from 'node:assert/strict';
import { createGitHubClient, type GitHubClient, type RateLimitNotice } from '../../src/infra/github/client';
import {
  getPullRequestStatus,
  markReadyForReview,
  openPullRequest,
  pollPullRequest,
  PullRequestError,
  type OpenPullRequestInput,
  type PullRequestStatus,
} from '../../src/infra/github/pullRequests';
import { bareHead, createLaneRepo, type LaneRepo } from '../fixtures/github-standin/laneRepo';
import { startGitHubStandIn, type GitHubStandIn } from '../fixtures/github-standin/server';
import { capturingLogger } from '../fixtures/github-standin/capturingLogger';

async function rejection(promise: Promise<unknown>): Promise<PullRequestError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PullRequestError) return error;
    throw error;
  }
  assert.fail('expected a PullRequestError');
}

describe('pull requests through the GitHub stand-in', function () {
  this.timeout(60_000);
  const token = 'pr-test-token-never-in-logs-5be1';
  let repo: LaneRepo;
  let standIn: GitHubStandIn;
  let logger: ReturnType<typeof capturingLogger>;
  let notices: RateLimitNotice[];
  let client: GitHubClient;
  const thrown: unknown[] = [];

  beforeEach(async () => {
    repo = createLaneRepo();
    standIn = await startGitHubStandIn({ bareRepoDir: repo.bareDir, token, collaborators: ['alice', 'bob'] });
    repo.useRemote(standIn.remoteUrl);
    logger = capturingLogger();
    notices = [];
    // Unthrottled: the plugin's pacing (1 to 3 s between writes) would only slow the tests down; the rate-limit tests turn it on.
    client = createGitHubClient({
      token,
      apiBaseUrl: standIn.url,
      logger,
      onRateLimit: (notice) => notices.push(notice),
      retries: 1,
      retryBaseMs: 20,
      throttle: false,
    });
  });
  const throttledClient = () =>
    createGitHubClient({
      token,
      apiBaseUrl: standIn.url,
      logger,
      onRateLimit: (notice) => notices.push(notice),
      retries: 1,
      retryBaseMs: 20,
    });
  afterEach(async () => {
    await standIn.close();
    repo.cleanup();
    assert.deepEqual(standIn.state.violations, [], 'every request and response followed GitHub’s description');
    for (const line of logger.lines) assert.ok(!line.includes(token), `a log line holds the token: ${line}`);
  });
  after(() => {
    for (const error of thrown)
      assert.ok(!`${String(error)} ${(error as Error).stack} ${JSON.stringify(error)}`.includes(token), 'an error holds the token');
  });

  const input = (overrides: Partial<OpenPullRequestInput> = {}): OpenPullRequestInput => ({
    client,
    repoRoot: repo.workDir,
    branch: repo.branch,
    base: 'main',
    title: '[agent] Add the feature',
    body: 'Evidence body v1',
    draft: true,
    labels: ['agent-generated', 'lane:pull-request', 'risk:low'],
    reviewers: ['alice'],
    expectedHeadSha: repo.headSha,
    ...overrides,
  });
  const failing = async (promise: Promise<unknown>) => {
    const error = await rejection(promise);
    thrown.push(error);
    return error;
  };

  it('pushes the branch and opens a draft pull request with labels and reviewers', async () => {
    const seen: string[] = [];
    const result = await openPullRequest(input({ onStep: (step) => seen.push(`${step.name}:${step.outcome}`) }));
    assert.equal(result.action, 'created');
    assert.equal(result.number, 1);
    assert.equal(result.draft, true);
    assert.equal(result.headSha, repo.headSha);
    assert.equal(result.url, `${standIn.webUrl}/${standIn.owner}/${standIn.repo}/pull/1`);
    assert.deepEqual(result.repository, { owner: standIn.owner, repo: standIn.repo });
    assert.deepEqual(seen, ['push:done', 'pr.create:done', 'labels:done', 'reviewers:done']);
    assert.deepEqual(
      result.steps.map((step) => step.name),
      ['push', 'pr.create', 'labels', 'reviewers'],
    );
    assert.equal(bareHead(repo.bareDir, repo.branch), repo.headSha);
    const pr = standIn.pullRequest(1);
    assert.equal(pr?.body, 'Evidence body v1');
    assert.deepEqual(pr?.labels, ['agent-generated', 'lane:pull-request', 'risk:low']);
    assert.deepEqual(pr?.requestedReviewers, ['alice']);
    assert.deepEqual(result.labels, pr?.labels);
  });

  it('updates the existing pull request for the branch instead of opening a second one', async () => {
    await openPullRequest(input());
    // Changes requested, a new revision approved: the branch moves on and the body changes.
    const newHead = repo.commitOnLane('feature.txt', 'revised\n');
    const second = await openPullRequest(input({ body: 'Evidence body v2', expectedHeadSha: newHead, reviewers: ['alice', 'bob'] }));
    assert.equal(second.action, 'updated');
    assert.equal(second.number, 1);
    assert.deepEqual(
      second.steps.map((step) => `${step.name}:${step.outcome}`),
      ['push:done', 'pr.update:done', 'labels:skipped', 'reviewers:done'],
    );
    assert.equal(standIn.state.pullRequests.length, 1);
    assert.equal(standIn.pullRequest(1)?.body, 'Evidence body v2');
    assert.equal(standIn.pullRequest(1)?.headSha, newHead);
    assert.equal(bareHead(repo.bareDir, repo.branch), newHead);
    // Nothing left to do: every step is skipped and nothing is written.
    const writesBefore = standIn.state.requests.filter((request) => request.method !== 'GET').length;
    const third = await openPullRequest(input({ body: 'Evidence body v2', expectedHeadSha: newHead, reviewers: ['alice', 'bob'] }));
    assert.deepEqual(
      third.steps.map((step) => step.outcome),
      ['skipped', 'skipped', 'skipped', 'skipped'],
    );
    assert.equal(standIn.state.requests.filter((request) => request.method !== 'GET').length, writesBefore);
  });

  it('422: reports GitHub’s validation message and what was already done', async () => {
    const error = await failing(openPullRequest(input({ base: 'release' })));
    assert.equal(error.kind, 'validation');
    assert.equal(error.progress.failedStep, 'pr.create');
    assert.match(
      error.message,
      /GitHub refused to create the pull request in octo-org\/hello-lanes \(422\): Validation Failed: base invalid \(does the base branch exist on GitHub\?\)/,
    );
    assert.match(error.message, /Already done: push; retrying completes the rest/);
    assert.deepEqual(
      error.progress.stepsDone.map((step) => step.name),
      ['push'],
    );
    assert.equal(error.github?.status, 422);
  });

  it('secondary rate limit: waits as GitHub asks, says so, and completes', async () => {
    standIn.setFault({ operation: 'pulls/create', kind: 'secondaryRateLimit', retryAfterSeconds: 1 });
    const result = await openPullRequest(input({ client: throttledClient() }));
    assert.equal(result.action, 'created');
    assert.equal(notices.length, 1);
    assert.equal(notices[0]?.kind, 'secondary');
    assert.equal(notices[0]?.waitSeconds, 1);
    assert.equal(notices[0]?.method, 'POST');
    assert.equal(standIn.state.requests.filter((request) => request.operationId === 'pulls/create').length, 2);
    assert.equal(standIn.state.pullRequests.length, 1);
  });

  it('failure after the push and before the pull request, then a retry without duplicates', async () => {
    const noRetries = createGitHubClient({ token, apiBaseUrl: standIn.url, logger, retries: 0, throttle: false });
    standIn.failAfterPushBeforePullRequest();
    const error = await failing(openPullRequest(input({ client: noRetries })));
    assert.equal(error.kind, 'network');
    assert.equal(error.progress.failedStep, 'pr.create');
    assert.equal(bareHead(repo.bareDir, repo.branch), repo.headSha, 'the branch was pushed');
    assert.equal(standIn.state.pullRequests.length, 0, 'no pull request yet');

    const retried = await openPullRequest(input());
    assert.deepEqual(
      retried.steps.map((step) => `${step.name}:${step.outcome}`),
      ['push:skipped', 'pr.create:done', 'labels:done', 'reviewers:done'],
    );
    assert.equal(standIn.state.pullRequests.length, 1);
  });

  it('a lost answer to "create" and a retried request: the existing pull request is updated, not duplicated', async () => {
    standIn.setFault({ operation: 'pulls/create', kind: 'dropResponse' });
    const result = await openPullRequest(input());
    assert.equal(standIn.state.pullRequests.length, 1);
    assert.equal(result.action, 'updated');
    assert.equal(result.number, 1);
    assert.deepEqual(standIn.pullRequest(1)?.labels, ['agent-generated', 'lane:pull-request', 'risk:low']);
  });

  it('a pull request without labels after a failure: the retry adds what is missing', async () => {
    standIn.setFault({ operation: 'issues/add-labels', kind: 'serverError', times: 2 });
    const error = await failing(openPullRequest(input()));
    assert.equal(error.kind, 'server');
    assert.equal(error.progress.failedStep, 'labels');
    assert.deepEqual(error.progress.pullRequest, { number: 1, url: `${standIn.webUrl}/${standIn.owner}/${standIn.repo}/pull/1` });
    assert.match(error.message, /Already done: push, pr\.create \(#1\); retrying completes the rest without duplicates/);
    assert.deepEqual(standIn.pullRequest(1)?.labels, []);

    const retried = await openPullRequest(input());
    assert.deepEqual(
      retried.steps.map((step) => `${step.name}:${step.outcome}`),
      ['push:skipped', 'pr.update:skipped', 'labels:done', 'reviewers:done'],
    );
    assert.equal(standIn.state.pullRequests.length, 1);
    assert.deepEqual(standIn.pullRequest(1)?.labels, ['agent-generated', 'lane:pull-request', 'risk:low']);
  });

  it('kill switch between approval and pull request: refused before the side effect, with the policy’s message', async () => {
    const killSwitch = (at: string) => (step: string) => {
      if (step === at) throw new Error('Pull request creation is turned off by the organisation: incident 42.');
    };
    const beforePush = await failing(openPullRequest(input({ beforeSideEffect: killSwitch('push') })));
    assert.equal(beforePush.kind, 'refused');
    assert.equal(beforePush.message, 'Pull request creation is turned off by the organisation: incident 42.');
    assert.equal(bareHead(repo.bareDir, repo.branch), undefined, 'nothing pushed');

    const beforeCreate = await failing(openPullRequest(input({ beforeSideEffect: killSwitch('pr.create') })));
    assert.equal(beforeCreate.progress.failedStep, 'pr.create');
    assert.match(beforeCreate.message, /turned off by the organisation: incident 42\. Already done: push/);
    assert.equal(standIn.state.pullRequests.length, 0);
  });

  it('a branch that moved after approval is not pushed', async () => {
    const approved = repo.headSha;
    repo.commitOnLane('sneaky.txt', 'added after approval\n');
    const error = await failing(openPullRequest(input({ expectedHeadSha: approved })));
    assert.equal(error.kind, 'branchMoved');
    assert.match(error.message, /not at the approved commit .*nothing was pushed\. Review and approve the change again/);
    assert.equal(bareHead(repo.bareDir, repo.branch), undefined);
  });

  it('a remote that is not GitHub: nothing is pushed and the message says the branch can still be pushed', async () => {
    repo.git('remote', 'set-url', 'origin', 'https://gitlab.com/group/project.git');
    const error = await failing(openPullRequest(input()));
    assert.equal(error.kind, 'notGitHub');
    assert.match(error.message, /The branch can still be pushed: git push origin lanes\/abcd1234/);
    assert.equal(standIn.state.requests.length, 0);
  });

  it('a missing remote and empty inputs get messages that say what to do', async () => {
    assert.match(
      (await failing(openPullRequest(input({ remote: 'upstream' })))).message,
      /no remote named "upstream".*agentLanes\.pullRequest\.remote/,
    );
    assert.match((await failing(openPullRequest(input({ title: ' ' })))).message, /needs a title/);
    assert.match((await failing(openPullRequest(input({ base: repo.branch })))).message, /both "lanes\/abcd1234"/);
  });

  it('401, 403 and 404 from GitHub become clear messages', async () => {
    standIn.setFault({ operation: 'pulls/list', kind: 'unauthorized' });
    const unauthorized = await failing(openPullRequest(input()));
    assert.equal(unauthorized.kind, 'unauthorized');
    assert.match(unauthorized.message, /Sign in to GitHub again/);

    standIn.setFault({ operation: 'pulls/create', kind: 'forbidden' });
    const forbidden = await failing(openPullRequest(input()));
    assert.equal(forbidden.kind, 'forbidden');
    assert.match(forbidden.message, /refused to let the signed-in account create the pull request in octo-org\/hello-lanes \(403/);

    const notFound = await failing(openPullRequest(input({ repository: { owner: standIn.owner, repo: 'renamed' } })));
    assert.equal(notFound.kind, 'notFound');
    assert.match(notFound.message, /the repository, or the base branch "main", does not exist/);
  });

  it('checks going pending → passing, then ready for review (GraphQL, since REST cannot un-draft)', async () => {
    const opened = await openPullRequest(input());
    const sha = opened.headSha;
    const status = () => getPullRequestStatus({ client, repository: opened.repository, number: opened.number });
    const ready = () => markReadyForReview({ client, repository: opened.repository, number: opened.number });

    assert.equal((await status()).checks.state, 'none');
    assert.match((await failing(ready())).message, /stays a draft: its checks are not reported yet/);

    standIn.setCommitStatus(sha, { context: 'ci/lint', state: 'success' });
    standIn.setCheckRun(sha, { name: 'test', status: 'in_progress' });
    const pending = await status();
    assert.equal(pending.state, 'draft');
    assert.equal(pending.checks.state, 'pending');
    assert.equal(pending.checks.description, '1 pending, 1 passing');
    const refused = await failing(ready());
    assert.equal(refused.kind, 'checksNotPassing');
    assert.match(refused.message, /checks are pending \(1 pending, 1 passing\)/);

    standIn.setCheckRun(sha, { name: 'test', status: 'completed', conclusion: 'success' });
    assert.equal((await status()).checks.state, 'passing');
    const done = await ready();
    assert.equal(done.alreadyReady, false);
    assert.equal(standIn.pullRequest(opened.number)?.draft, false);
    assert.equal((await status()).state, 'open');
    assert.equal((await ready()).alreadyReady, true);
    assert.ok(standIn.state.requests.some((request) => request.operationId === 'graphql' && request.status === 200));
  });

  it('a failing check is reported as failing', async () => {
    const opened = await openPullRequest(input());
    standIn.setCheckRun(opened.headSha, { name: 'test', status: 'completed', conclusion: 'timed_out' });
    const status = await getPullRequestStatus({ client, repository: opened.repository, number: opened.number });
    assert.equal(status.checks.state, 'failing');
    assert.equal(status.checks.items[0]?.detail, 'timed_out');
  });

  it('polls until the pull request is merged, reporting each change', async () => {
    const opened = await openPullRequest(input());
    const updates: string[] = [];
    const delays: number[] = [];
    const script = [
      () => standIn.setCheckRun(opened.headSha, { name: 'test', status: 'in_progress' }),
      () => undefined,
      () => standIn.setCheckRun(opened.headSha, { name: 'test', status: 'completed', conclusion: 'success' }),
      () => standIn.mergePullRequest(opened.number),
    ];
    const outcome = await pollPullRequest({
      client,
      repository: opened.repository,
      number: opened.number,
      onUpdate: (status: PullRequestStatus) => updates.push(`${status.state}/${status.checks.state}`),
      sleep: async (ms) => {
        delays.push(ms);
        script.shift()?.();
      },
    });
    assert.equal(outcome.reason, 'merged');
    assert.equal(outcome.polls, 5);
    assert.deepEqual(updates, ['draft/none', 'draft/pending', 'draft/passing', 'merged/passing']);
    assert.deepEqual(delays, [15_000, 15_000, 30_000, 15_000], 'backs off while nothing changes, starts over after a change');
    assert.equal((await getPullRequestStatus({ client, repository: opened.repository, number: opened.number })).state, 'merged');
  });

  it('polling spreads requests within the hourly budget and rides out a network failure', async () => {
    const opened = await openPullRequest(input());
    standIn.state.rateLimit = { limit: 5000, remaining: 1010, reset: Math.floor(Date.now() / 1000) + 3600 };
    standIn.setFault({ operation: 'pulls/get', kind: 'network', times: 2 });
    const delays: number[] = [];
    const errors: string[] = [];
    const controller = new AbortController();
    const outcome = await pollPullRequest({
      client,
      repository: opened.repository,
      number: opened.number,
      signal: controller.signal,
      onUpdate: () => undefined,
      onError: (error) => errors.push(error.kind),
      sleep: async (ms) => {
        delays.push(ms);
        if (delays.length === 2) controller.abort();
      },
    });
    assert.equal(outcome.reason, 'aborted');
    assert.deepEqual(errors, ['network']);
    // 1000 requests are kept in reserve: about 9 usable, 3 polls left in the hour → about 20 minutes apart.
    assert.ok((delays[1] ?? 0) > 15 * 60_000, `delay ${delays[1]} should stretch toward the reset`);
  });
});
