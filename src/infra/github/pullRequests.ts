// Opens, tracks and un-drafts the pull request of a lane branch. Idempotent:
// every call looks at what already exists (the branch on the remote, an open
// pull request for the branch, its labels and reviewers) and does only what
// is missing, so a retry after a failure half-way completes the job without
// duplicates. Each side effect is reported as a step the caller audits, and
// `beforeSideEffect` runs before each one (the kill switch lives there).
import { nextPollDelay, type PollScheduleOptions } from '../../core/pullRequest/polling';
import { summariseChecks, type CheckRunInput, type CheckSummary, type CommitStatusInput } from '../../core/pullRequest/checks';
import {
  displayRemote,
  GitHubError,
  parseRemote,
  toGitHubError,
  type GitHubClient,
  type GitHubErrorKind,
  type GitHubRepository,
} from './client';
import { LaneError } from '../../core/errors';
import { userConfigValue } from '../git/configGuard';
import { GitCommandError, git } from '../git/gitProcess';

export type PullRequestStepName = 'push' | 'pr.create' | 'pr.update' | 'labels' | 'reviewers';

export interface PullRequestStep {
  name: PullRequestStepName;
  /** skipped: nothing was missing (already pushed, labels already there...). */
  outcome: 'done' | 'skipped';
  detail: string;
  at: string;
}

export type PullRequestErrorKind =
  | GitHubErrorKind
  | 'badInput'
  | 'noRemote'
  | 'branchMissing'
  | 'branchMoved'
  | 'pushFailed'
  | 'refused'
  | 'pullRequestClosed'
  | 'checksNotPassing';

/** A failure with what was already done, so the caller can audit it and the user can retry. */
export class PullRequestError extends LaneError {
  override readonly name = 'PullRequestError';
  constructor(
    override readonly kind: PullRequestErrorKind,
    message: string,
    readonly progress: {
      failedStep?: PullRequestStepName | undefined;
      stepsDone: PullRequestStep[];
      pullRequest?: { number: number; url: string } | undefined;
    } = {
      stepsDone: [],
    },
    readonly github?: GitHubError,
  ) {
    super(kind, message, github ? { cause: github } : {});
  }
}

export interface OpenPullRequestInput {
  client: GitHubClient;
  /** The repository or the change's worktree; the branch must exist there. */
  repoRoot: string;
  /** `agentLanes.pullRequest.remote`; default origin. */
  remote?: string;
  /** owner/repo; by default parsed from the remote's fetch URL. */
  repository?: Pick<GitHubRepository, 'owner' | 'repo'>;
  branch: string;
  base: string;
  title: string;
  body: string;
  draft: boolean;
  labels?: string[];
  reviewers?: string[];
  teamReviewers?: string[];
  /** The approved head; the push is refused if the branch points elsewhere. */
  expectedHeadSha?: string;
  /** Runs before every side effect; throw to refuse (kill switch, policy changed). */
  beforeSideEffect?: (step: PullRequestStepName) => void | Promise<void>;
  /** Called after each step, in order. */
  onStep?: (step: PullRequestStep) => void;
  pushTimeoutMs?: number;
}

export interface OpenPullRequestResult {
  number: number;
  url: string;
  /** GraphQL id, needed to mark the pull request ready for review. */
  nodeId: string;
  action: 'created' | 'updated';
  draft: boolean;
  headSha: string;
  repository: Pick<GitHubRepository, 'owner' | 'repo'>;
  labels: string[];
  requestedReviewers: string[];
  steps: PullRequestStep[];
}

function nowIso(): string {
  return new Date().toISOString();
}

function gitMessage(error: unknown): string {
  const text =
    error instanceof GitCommandError && error.stderr.trim() ? error.stderr : error instanceof Error ? error.message : String(error);
  return text.trim().split('\n').filter(Boolean).slice(-3).join(' ');
}

/** The fetch URL of a remote (where a pull request lives), with a clear message when it is missing. */
export async function remoteUrl(repoRoot: string, remote: string): Promise<string> {
  try {
    const url = (await git(repoRoot, ['remote', 'get-url', '--', remote])).stdout.trim();
    if (url) return url;
  } catch {
    // Reported below with what to do.
  }
  throw new PullRequestError(
    'noRemote',
    `The repository has no remote named "${remote}". Add one (git remote add ${remote} URL) or set agentLanes.pullRequest.remote to the remote that points at GitHub.`,
  );
}

/** owner/repo for a remote, or a notGitHub error that says the branch can still be pushed. */
async function resolveRepository(client: GitHubClient, repoRoot: string, remote: string, branch?: string): Promise<GitHubRepository> {
  return parseRemote(await remoteUrl(repoRoot, remote), client.apiBaseUrl, { remoteName: remote, branch });
}

async function branchHead(repoRoot: string, branch: string): Promise<string | undefined> {
  const found = await git(repoRoot, ['rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`], { okExitCodes: [1, 128] });
  const out = found.stdout.trim();
  return /^[0-9a-f]{40,64}$/.test(out) ? out : undefined;
}

export interface PushResult {
  step: PullRequestStep;
  headSha: string;
}

/**
 * Pushes refs/heads/BRANCH to the remote. With a lease on what the remote had
 * a moment before, so a lane branch that was re-approved after changes can
 * replace its old push, but a branch someone else pushed to meanwhile is not
 * overwritten. Nothing is pushed when the remote already has the commit.
 */
export async function pushBranch(input: {
  repoRoot: string;
  remote?: string | undefined;
  branch: string;
  expectedHeadSha?: string | undefined;
  timeoutMs?: number | undefined;
}): Promise<PushResult> {
  const remote = input.remote ?? 'origin';
  const options = { timeoutMs: input.timeoutMs ?? 120_000 };
  const headSha = await branchHead(input.repoRoot, input.branch);
  if (!headSha)
    throw new PullRequestError(
      'branchMissing',
      `The lane branch "${input.branch}" does not exist in ${input.repoRoot}; the change's worktree may have been removed. Recreate the change or discard it.`,
    );
  if (input.expectedHeadSha && input.expectedHeadSha !== headSha) {
    throw new PullRequestError(
      'branchMoved',
      `The lane branch "${input.branch}" is at ${headSha.slice(0, 12)}, not at the approved commit ${input.expectedHeadSha.slice(0, 12)}; nothing was pushed. Review and approve the change again.`,
    );
  }
  let remoteSha = '';
  try {
    // Ask where the push goes (a remote may fetch from one URL and push to another).
    const pushUrl =
      (await git(input.repoRoot, ['remote', 'get-url', '--push', '--', remote], options).catch(() => ({ stdout: '' }))).stdout.trim() ||
      remote;
    const listed = await git(input.repoRoot, ['ls-remote', '--heads', '--', pushUrl, `refs/heads/${input.branch}`], options);
    remoteSha = listed.stdout.trim().split(/\s+/)[0] ?? '';
  } catch (error) {
    throw new PullRequestError(
      'pushFailed',
      `Could not read the remote "${remote}" before pushing: ${gitMessage(error)}. Check the remote URL and your git credentials, then retry.`,
    );
  }
  if (remoteSha === headSha) {
    return {
      headSha,
      step: { name: 'push', outcome: 'skipped', detail: `${remote} already has ${input.branch} at ${headSha.slice(0, 12)}`, at: nowIso() },
    };
  }
  // git takes remote.<name>.receivepack from the first config file that sets it: the repository's, before any override.
  const receivePack = (await userConfigValue(input.repoRoot, `remote.${remote}.receivepack`)) ?? 'git-receive-pack';
  try {
    await git(
      input.repoRoot,
      [
        'push',
        `--receive-pack=${receivePack}`,
        `--force-with-lease=refs/heads/${input.branch}:${remoteSha}`,
        '--',
        remote,
        `refs/heads/${input.branch}:refs/heads/${input.branch}`,
      ],
      options,
    );
  } catch (error) {
    const detail = gitMessage(error).replace(/[a-z][a-z0-9+.-]*:\/\/[^/@\s]*@/gi, (match) => displayRemote(match));
    const stale = /stale info|rejected|fetch first|non-fast-forward/i.test(detail);
    throw new PullRequestError(
      'pushFailed',
      stale
        ? `The remote "${remote}" changed while pushing ${input.branch} (${detail}); nothing was overwritten. Look at the remote branch, then retry.`
        : `Could not push ${input.branch} to "${remote}": ${detail}. Check your git credentials and network, then retry.`,
    );
  }
  return {
    headSha,
    step: {
      name: 'push',
      outcome: 'done',
      detail: `pushed ${input.branch} at ${headSha.slice(0, 12)} to ${remote}${remoteSha ? ` (was ${remoteSha.slice(0, 12)})` : ''}`,
      at: nowIso(),
    },
  };
}

interface PullSummary {
  number: number;
  html_url: string;
  node_id: string;
  draft?: boolean;
  title: string;
  body: string | null;
  base: { ref: string };
  head: { ref: string; sha: string };
  user: { login: string } | null;
  labels: Array<{ name?: string }>;
  requested_reviewers?: Array<{ login: string }> | null;
  requested_teams?: Array<{ slug: string }> | null;
}

/** Opens the pull request for a lane branch, or brings the existing one up to date. */
export async function openPullRequest(input: OpenPullRequestInput): Promise<OpenPullRequestResult> {
  const { client } = input;
  const remote = input.remote ?? 'origin';
  for (const [name, value] of [
    ['branch', input.branch],
    ['base', input.base],
    ['title', input.title],
  ] as const) {
    if (!value || !value.trim()) throw new PullRequestError('badInput', `A pull request needs a ${name}; got an empty one.`);
  }
  if (input.branch === input.base)
    throw new PullRequestError(
      'badInput',
      `The lane branch and the base branch are both "${input.base}"; a pull request needs two different branches.`,
    );
  const wantedLabels = [...new Set(input.labels ?? [])];
  const wantedReviewers = [...new Set(input.reviewers ?? [])];
  const wantedTeams = [...new Set(input.teamReviewers ?? [])];

  // Before any side effect: a remote that is not GitHub ends here, with the push left to the user.
  let repository: Pick<GitHubRepository, 'owner' | 'repo'>;
  try {
    repository = input.repository ?? (await resolveRepository(client, input.repoRoot, remote, input.branch));
  } catch (error) {
    if (error instanceof GitHubError) throw new PullRequestError(error.kind, error.message, { stepsDone: [] }, error);
    throw error;
  }
  const { owner, repo } = repository;
  const steps: PullRequestStep[] = [];
  let current: { number: number; url: string } | undefined;
  const record = (step: PullRequestStep) => {
    steps.push(step);
    client.logger.info(`pull request ${owner}/${repo} ${input.branch}: ${step.name} ${step.outcome} (${step.detail})`);
    input.onStep?.(step);
  };
  const failure = (
    failedStep: PullRequestStepName,
    error: unknown,
    action: string,
    plainErrorKind: PullRequestErrorKind = 'unexpected',
  ): PullRequestError => {
    if (error instanceof PullRequestError)
      return new PullRequestError(error.kind, error.message, { failedStep, stepsDone: [...steps], pullRequest: current }, error.github);
    const done = steps.filter((step) => step.outcome === 'done').map((step) => step.name);
    const progress = done.length
      ? ` Already done: ${done.join(', ')}${current ? ` (#${current.number})` : ''}; retrying completes the rest without duplicates.`
      : '';
    if (error instanceof GitHubError || (error as { status?: unknown })?.status !== undefined) {
      const github = toGitHubError(error, { action, repository, base: input.base, apiBaseUrl: client.apiBaseUrl }, client.scrub);
      return new PullRequestError(
        github.kind,
        `${github.message}${progress}`,
        { failedStep, stepsDone: [...steps], pullRequest: current },
        github,
      );
    }
    const message = client.scrub(error instanceof Error ? error.message : String(error));
    return new PullRequestError(plainErrorKind, `${message}${progress}`, { failedStep, stepsDone: [...steps], pullRequest: current });
  };
  const guard = async (step: PullRequestStepName) => {
    try {
      await input.beforeSideEffect?.(step);
    } catch (error) {
      throw failure(step, error, step, 'refused');
    }
  };

  const findOpen = async (): Promise<PullSummary | undefined> => {
    try {
      const { data } = await client.octokit.rest.pulls.list({
        owner,
        repo,
        head: `${owner}:${input.branch}`,
        state: 'open',
        per_page: 100,
      });
      return (data as PullSummary[]).find((pull) => pull.head.ref === input.branch);
    } catch (error) {
      throw failure('pr.create', error, 'look for an open pull request for the branch');
    }
  };

  let existing = await findOpen();
  if (existing) current = { number: existing.number, url: existing.html_url };

  await guard('push');
  let headSha: string;
  try {
    const pushed = await pushBranch({
      repoRoot: input.repoRoot,
      remote,
      branch: input.branch,
      expectedHeadSha: input.expectedHeadSha,
      timeoutMs: input.pushTimeoutMs,
    });
    headSha = pushed.headSha;
    record(pushed.step);
  } catch (error) {
    throw failure('push', error, 'push the branch');
  }

  let opened: { pull: PullSummary; action: 'created' | 'updated' } | undefined;
  if (!existing) {
    await guard('pr.create');
    try {
      const { data } = await client.octokit.rest.pulls.create({
        owner,
        repo,
        head: input.branch,
        base: input.base,
        title: input.title,
        body: input.body,
        draft: input.draft,
      });
      opened = { pull: data as PullSummary, action: 'created' };
      current = { number: data.number, url: data.html_url };
      record({
        name: 'pr.create',
        outcome: 'done',
        detail: `#${data.number}${input.draft ? ' (draft)' : ''} ${input.branch} → ${input.base}`,
        at: nowIso(),
      });
    } catch (error) {
      // Someone (or an earlier attempt whose answer was lost) created it meanwhile: update that one instead.
      const github = toGitHubError(
        error,
        { action: 'create the pull request', repository, base: input.base, apiBaseUrl: client.apiBaseUrl },
        client.scrub,
      );
      existing = github.kind === 'validation' && /already exists/i.test(github.details.githubMessage ?? '') ? await findOpen() : undefined;
      if (!existing) throw failure('pr.create', error, 'create the pull request');
    }
  }
  if (!opened && existing) {
    current = { number: existing.number, url: existing.html_url };
    const changes: { title?: string; body?: string; base?: string } = {};
    if (existing.title !== input.title) changes.title = input.title;
    if ((existing.body ?? '') !== input.body) changes.body = input.body;
    if (existing.base.ref !== input.base) changes.base = input.base;
    let pull = existing;
    if (Object.keys(changes).length) {
      await guard('pr.update');
      try {
        pull = (await client.octokit.rest.pulls.update({ owner, repo, pull_number: existing.number, ...changes })).data as PullSummary;
      } catch (error) {
        throw failure('pr.update', error, `update pull request #${existing.number}`);
      }
      record({ name: 'pr.update', outcome: 'done', detail: `#${existing.number}: ${Object.keys(changes).join(', ')}`, at: nowIso() });
    } else {
      record({ name: 'pr.update', outcome: 'skipped', detail: `#${existing.number} already has this title, body and base`, at: nowIso() });
    }
    opened = { pull, action: 'updated' };
  }
  if (!opened)
    throw new PullRequestError(
      'unexpected',
      'GitHub neither created nor listed the pull request; look at the repository on GitHub and retry.',
      { stepsDone: steps },
    );
  const { pull, action } = opened;

  const present = new Set(pull.labels.map((label) => label.name ?? ''));
  const missingLabels = wantedLabels.filter((label) => !present.has(label));
  let labels = [...present].filter(Boolean);
  if (missingLabels.length) {
    await guard('labels');
    try {
      // Adding is additive on GitHub, so a label added by an earlier attempt is harmless.
      const { data } = await client.octokit.rest.issues.addLabels({ owner, repo, issue_number: pull.number, labels: missingLabels });
      labels = data.map((label) => label.name);
    } catch (error) {
      throw failure('labels', error, `add labels to pull request #${pull.number}`);
    }
    record({ name: 'labels', outcome: 'done', detail: `added ${missingLabels.join(', ')}`, at: nowIso() });
  } else if (wantedLabels.length) {
    record({ name: 'labels', outcome: 'skipped', detail: 'all labels already present', at: nowIso() });
  }

  const author = pull.user?.login.toLowerCase();
  const requested = new Set((pull.requested_reviewers ?? []).map((user) => user.login.toLowerCase()));
  // GitHub refuses a review request to the author; policy may name the signed-in user among reviewers.
  const missingReviewers = wantedReviewers.filter((login) => !requested.has(login.toLowerCase()) && login.toLowerCase() !== author);
  let requestedReviewers = (pull.requested_reviewers ?? []).map((user) => user.login);
  const requestedTeams = new Set((pull.requested_teams ?? []).map((team) => team.slug.toLowerCase()));
  const missingTeams = wantedTeams.filter((slug) => !requestedTeams.has(slug.toLowerCase()));
  if (missingReviewers.length || missingTeams.length) {
    await guard('reviewers');
    try {
      const { data } = await client.octokit.rest.pulls.requestReviewers({
        owner,
        repo,
        pull_number: pull.number,
        ...(missingReviewers.length ? { reviewers: missingReviewers } : {}),
        ...(missingTeams.length ? { team_reviewers: missingTeams } : {}),
      });
      requestedReviewers = (data.requested_reviewers ?? []).map((user) => user.login);
    } catch (error) {
      throw failure('reviewers', error, `request reviewers on pull request #${pull.number}`);
    }
    record({
      name: 'reviewers',
      outcome: 'done',
      detail: `requested ${[...missingReviewers, ...missingTeams.map((team) => `team ${team}`)].join(', ')}`,
      at: nowIso(),
    });
  } else if (wantedReviewers.length || wantedTeams.length) {
    record({ name: 'reviewers', outcome: 'skipped', detail: 'reviewers already requested', at: nowIso() });
  }

  return {
    number: pull.number,
    url: pull.html_url,
    nodeId: pull.node_id,
    action,
    draft: pull.draft ?? false,
    headSha,
    repository: { owner, repo },
    labels,
    requestedReviewers,
    steps,
  };
}

type PullRequestState = 'open' | 'draft' | 'merged' | 'closed';

export interface PullRequestStatus {
  number: number;
  url: string;
  nodeId: string;
  state: PullRequestState;
  draft: boolean;
  headSha: string;
  baseRef: string;
  title: string;
  updatedAt: string;
  checks: CheckSummary;
  /** Once merged: the commit the merge made on the base branch. */
  mergeCommitSha?: string;
}

export interface PullRequestRef {
  client: GitHubClient;
  repository: Pick<GitHubRepository, 'owner' | 'repo'>;
  number: number;
}

/** The pull request's state and the combined result of its commit statuses and check runs. */
export async function getPullRequestStatus({ client, repository, number }: PullRequestRef): Promise<PullRequestStatus> {
  const { owner, repo } = repository;
  const context = (action: string) => ({ action, repository, apiBaseUrl: client.apiBaseUrl });
  let pull;
  try {
    pull = (await client.octokit.rest.pulls.get({ owner, repo, pull_number: number })).data;
  } catch (error) {
    throw toGitHubError(error, context(`read pull request #${number}`), client.scrub);
  }
  const sha = pull.head.sha;
  const checks = await readCommitChecks(client, repository, sha, `read the checks of pull request #${number}`);
  const state: PullRequestState =
    pull.merged || pull.merged_at ? 'merged' : pull.state === 'closed' ? 'closed' : pull.draft ? 'draft' : 'open';
  return {
    number: pull.number,
    url: pull.html_url,
    nodeId: pull.node_id,
    state,
    draft: pull.draft ?? false,
    headSha: sha,
    baseRef: pull.base.ref,
    title: pull.title,
    updatedAt: pull.updated_at,
    checks,
    ...(pull.merge_commit_sha && (pull.merged || pull.merged_at) ? { mergeCommitSha: pull.merge_commit_sha } : {}),
  };
}

/** The combined result of a commit's statuses and check runs. */
export async function readCommitChecks(
  client: GitHubClient,
  repository: Pick<GitHubRepository, 'owner' | 'repo'>,
  sha: string,
  action = `read the checks of ${sha.slice(0, 12)}`,
): Promise<CheckSummary> {
  const { owner, repo } = repository;
  try {
    const combined = (await client.octokit.rest.repos.getCombinedStatusForRef({ owner, repo, ref: sha, per_page: 100 })).data;
    const statuses: CommitStatusInput[] = combined.statuses.map((status) => ({
      context: status.context,
      state: status.state,
      targetUrl: status.target_url ?? undefined,
    }));
    const checkRuns = await client.octokit.paginate(client.octokit.rest.checks.listForRef, {
      owner,
      repo,
      ref: sha,
      filter: 'latest',
      per_page: 100,
    });
    const runs: CheckRunInput[] = checkRuns.map((run) => ({
      name: run.name,
      status: run.status,
      conclusion: run.conclusion ?? null,
      url: run.html_url ?? undefined,
    }));
    return summariseChecks(statuses, runs);
  } catch (error) {
    throw toGitHubError(error, { action, repository, apiBaseUrl: client.apiBaseUrl }, client.scrub);
  }
}

const READY_FOR_REVIEW = `mutation MarkReadyForReview($pullRequestId: ID!) {
  markPullRequestReadyForReview(input: { pullRequestId: $pullRequestId }) {
    pullRequest { number isDraft }
  }
}`;

export interface MarkReadyResult {
  number: number;
  url: string;
  alreadyReady: boolean;
  checks: CheckSummary;
}

/**
 * Turns a draft into a pull request ready for review. GitHub's REST API has no
 * way to do it (PATCH /pulls ignores `draft`), so this is the GraphQL mutation
 * markPullRequestReadyForReview; on Enterprise octokit sends it to
 * https://HOST/api/graphql. Refused unless the checks pass (or, with
 * acceptNoChecks, there are none); policy is the caller's to check.
 */
export async function markReadyForReview(
  ref: PullRequestRef & { requirePassingChecks?: boolean; acceptNoChecks?: boolean },
): Promise<MarkReadyResult> {
  const status = await getPullRequestStatus(ref);
  if (status.state === 'merged' || status.state === 'closed') {
    throw new PullRequestError(
      'pullRequestClosed',
      `Pull request #${status.number} is ${status.state}; only an open draft can be marked ready for review.`,
    );
  }
  if (!status.draft) return { number: status.number, url: status.url, alreadyReady: true, checks: status.checks };
  const checksOk = status.checks.state === 'passing' || (ref.acceptNoChecks === true && status.checks.state === 'none');
  if ((ref.requirePassingChecks ?? true) && !checksOk) {
    throw new PullRequestError(
      'checksNotPassing',
      `Pull request #${status.number} stays a draft: its checks are ${status.checks.state === 'none' ? 'not reported yet (no status or check run)' : `${status.checks.state} (${status.checks.description})`}. Mark it ready for review when they pass.`,
    );
  }
  let result: { markPullRequestReadyForReview: { pullRequest: { number: number; isDraft: boolean } } | null };
  try {
    result = await ref.client.octokit.graphql(READY_FOR_REVIEW, { pullRequestId: status.nodeId });
  } catch (error) {
    const errors = (error as { errors?: Array<{ message?: string }> }).errors;
    if (Array.isArray(errors) && errors.length) {
      const message = ref.client.scrub(errors.map((item) => item.message ?? 'unknown error').join('; '));
      throw new GitHubError('validation', `GitHub refused to mark pull request #${status.number} ready for review: ${message}.`, {
        githubMessage: message,
      });
    }
    throw toGitHubError(
      error,
      { action: `mark pull request #${status.number} ready for review`, repository: ref.repository, apiBaseUrl: ref.client.apiBaseUrl },
      ref.client.scrub,
    );
  }
  if (result.markPullRequestReadyForReview?.pullRequest.isDraft !== false) {
    throw new GitHubError(
      'unexpected',
      `GitHub did not confirm that pull request #${status.number} left draft; look at it on GitHub and retry.`,
    );
  }
  return { number: status.number, url: status.url, alreadyReady: false, checks: status.checks };
}

export interface PollInput extends PullRequestRef {
  onUpdate: (status: PullRequestStatus, previous: PullRequestStatus | undefined) => void;
  /** A transient failure (network, 5xx, rate limit); polling goes on after the delay. */
  onError?: (error: GitHubError, nextDelayMs: number) => void;
  signal?: AbortSignal;
  schedule?: Partial<PollScheduleOptions>;
  /** Stops with an error after this many failures in a row. Default 8. */
  maxConsecutiveErrors?: number;
  /** Test seam; default setTimeout. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface PollOutcome {
  reason: 'merged' | 'closed' | 'aborted';
  last?: PullRequestStatus;
  polls: number;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

const TRANSIENT: readonly GitHubErrorKind[] = ['network', 'server', 'rateLimited'];

/**
 * Follows a pull request until it is merged or closed (or the signal aborts),
 * calling onUpdate when its state or checks change. The delay backs off while
 * nothing changes and stretches to stay within GitHub's hourly budget.
 */
export async function pollPullRequest(input: PollInput): Promise<PollOutcome> {
  const sleep = input.sleep ?? defaultSleep;
  const now = input.now ?? Date.now;
  const maxErrors = input.maxConsecutiveErrors ?? 8;
  let previous: PullRequestStatus | undefined;
  let unchangedPolls = 0;
  let consecutiveErrors = 0;
  let polls = 0;
  for (;;) {
    if (input.signal?.aborted) return { reason: 'aborted', ...(previous === undefined ? {} : { last: previous }), polls };
    let retryAfterSeconds: number | undefined;
    try {
      const status = await getPullRequestStatus(input);
      polls++;
      consecutiveErrors = 0;
      const changed =
        !previous ||
        previous.state !== status.state ||
        previous.headSha !== status.headSha ||
        previous.checks.fingerprint !== status.checks.fingerprint;
      unchangedPolls = changed ? 0 : unchangedPolls + 1;
      if (changed) input.onUpdate(status, previous);
      previous = status;
      if (status.state === 'merged' || status.state === 'closed') return { reason: status.state, last: status, polls };
    } catch (error) {
      const github =
        error instanceof GitHubError
          ? error
          : toGitHubError(
              error,
              { action: 'follow the pull request', repository: input.repository, apiBaseUrl: input.client.apiBaseUrl },
              input.client.scrub,
            );
      consecutiveErrors++;
      if (!TRANSIENT.includes(github.kind) || consecutiveErrors >= maxErrors) throw github;
      retryAfterSeconds = github.details.retryAfterSeconds;
      const delay = nextPollDelay(
        { unchangedPolls, consecutiveErrors, rateLimit: input.client.rateLimit(), nowMs: now(), retryAfterSeconds },
        input.schedule,
      ).delayMs;
      input.onError?.(github, delay);
      await sleep(delay, input.signal);
      continue;
    }
    const { delayMs } = nextPollDelay(
      { unchangedPolls, consecutiveErrors, rateLimit: input.client.rateLimit(), nowMs: now() },
      input.schedule,
    );
    await sleep(delayMs, input.signal);
  }
}
