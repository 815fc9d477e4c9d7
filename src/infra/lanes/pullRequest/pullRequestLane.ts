import type { Logger } from '../../../core/logger';
import { version as extensionVersion } from '../../../../package.json';
import type { Actor, Change } from '../../../core/change';
import { type DecisionRecord } from '../../../core/decision';
import { type Evidence, hashEvidence } from '../../../core/evidence';
import type { ChangeFacts, PolicyAction } from '../../../core/policy/evaluate';
import type { EffectivePolicy } from '../../../core/policy/merge';
import { buildPullRequestBody } from '../../../core/pullRequest/body';
import type { PollScheduleOptions } from '../../../core/pullRequest/polling';
import { pullRequestLabels, pullRequestTitle } from '../../../core/pullRequest/risk';
import { compileSecretPatterns, redactText } from '../../../core/redaction';
import {
  createGitHubClient,
  type GitHubClient,
  type GitHubClientOptions,
  GitHubError,
  type GitHubRepository,
  normalizeApiBaseUrl,
  parseRemote,
  type RateLimitNotice,
} from '../../github/client';
import {
  getPullRequestStatus,
  markReadyForReview,
  openPullRequest,
  type OpenPullRequestResult,
  pollPullRequest,
  type PullRequestStatus,
  type PullRequestStep,
  pushBranch,
  remoteUrl,
} from '../../github/pullRequests';
import { git } from '../../git/gitProcess';
import { PolicyDeniedError } from '../../policy/policyService';
import { listReviewDiff } from '../../review/reviewDiff';
import { UncommittedWorkError, removeWorktree } from '../../git/worktrees';
import { EXTENSION_ACTOR } from '../../../core/constants';
import { type LaneContext, changeFacts, decide, moveChange } from '../laneContext';
import { LaneError } from '../../../core/errors';
import { actionsFor } from '../../../core/release/authorize';

export type PullRequestLaneErrorKind =
  | 'noChange'
  | 'wrongLane'
  | 'notApproved'
  | 'approvalMismatch'
  | 'noEvidence'
  | 'baseNotBranch'
  | 'branchMissing'
  | 'noPullRequest'
  | 'moveRefused';

/** A refusal of the lane itself (not GitHub's, not policy's), with a message that says what to do. */
export class PullRequestLaneError extends LaneError {
  override readonly name = 'PullRequestLaneError';
  constructor(
    override readonly kind: PullRequestLaneErrorKind,
    message: string,
  ) {
    super(kind, message);
  }
}

/** How to reach GitHub for one call: the token lives only in memory, for the call. */
export interface GitHubAccess {
  /** From VS Code's authentication session (or SecretStorage); never logged or stored. */
  token: string;
  /** `agentLanes.github.apiBaseUrl`; empty: github.com. */
  apiBaseUrl?: string;
  /** Told before every rate-limit wait, so the editor can say how long it waits. */
  onRateLimit?: (notice: RateLimitNotice) => void;
  /** Retries, back-off, throttling: for tests and unusual servers. */
  clientOptions?: Partial<Omit<GitHubClientOptions, 'token' | 'apiBaseUrl' | 'logger' | 'onRateLimit'>>;
}

/** The GitHub client for one call of a lane (the Pull request and Release lanes): the person's token, never stored. */
export function githubClientFor(access: GitHubAccess, logger: Logger): GitHubClient {
  return createGitHubClient({
    ...access.clientOptions,
    token: access.token,
    ...(access.apiBaseUrl !== undefined ? { apiBaseUrl: access.apiBaseUrl } : {}),
    logger,
    ...(access.onRateLimit ? { onRateLimit: access.onRateLimit } : {}),
  });
}

export interface OpenOptions extends GitHubAccess {
  /** `agentLanes.pullRequest.remote`; default origin. */
  remote?: string;
  /** Told after each step (push, pr.create, pr.update, labels, reviewers), after it is audited. */
  onStep?: (step: PullRequestStep) => void;
  /** false asks for a pull request that is ready for review; policy must allow it. Default true (draft). */
  draft?: boolean;
}

export interface OpenOutcome {
  change: Change;
  result: OpenPullRequestResult;
  /** True when the change moved from Review to Pull request with this call. */
  moved: boolean;
}

export interface TrackOptions extends GitHubAccess {
  schedule?: Partial<PollScheduleOptions>;
  /** After each change of state or checks has been stored. */
  onUpdate?: (change: Change, status: PullRequestStatus) => void;
  /** A transient failure; polling goes on after the delay. */
  onError?: (error: GitHubError, nextDelayMs: number) => void;
  /** Polling ended: merged, closed, stopped, or an error that ends it (401, 403, 404). */
  onEnd?: (outcome: { reason: 'merged' | 'closed' | 'aborted' | 'error'; error?: unknown }) => void;
}

export interface PullRequestLaneOptions {
  /**
   * Called after a change closed with its pull request and its worktree was
   * cleaned up: the place to remove its sandbox container. Failures are logged.
   */
  onClosed?: (change: Change) => void | Promise<void>;
}

/** What a change must satisfy right before anything leaves the machine, evaluated now. */
interface Preflight {
  change: Change;
  approval: NonNullable<Change['approval']>;
  evidence: Evidence;
  headSha: string;
  facts: ChangeFacts;
  effective: EffectivePolicy;
  gate: DecisionRecord;
}

const LANE_DECISION = { evidence: false } as const;

/**
 * The Pull request lane for one repository: re-checks an approved change
 * against the policy in force now and the approved diff, pushes its branch and
 * opens (or brings up to date) its pull request with evidence and provenance,
 * then follows the pull request's state and checks until it is merged or
 * closed, when the change ends and its worktree is cleaned up.
 */
export class PullRequestLane {
  private readonly trackers = new Map<string, AbortController>();
  /** Status updates of one change run one after another. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly ctx: LaneContext,
    private readonly options: PullRequestLaneOptions = {},
  ) {}

  /** The GitHub repository of a remote, or a GitHubError (kind notGitHub) that says the branch can still be pushed. Nothing leaves the machine. */
  async repositoryFor(remote = 'origin', apiBaseUrl?: string, branch?: string): Promise<GitHubRepository> {
    return parseRemote(await remoteUrl(this.ctx.repoRoot, remote), normalizeApiBaseUrl(apiBaseUrl), {
      remoteName: remote,
      ...(branch ? { branch } : {}),
    });
  }

  /** "Agent Lanes: Open Pull Request": every gate again, then push, pull request, labels, reviewers; then Review → Pull request. */
  async open(changeId: string, actor: Actor, options: OpenOptions): Promise<OpenOutcome> {
    const { ctx } = this;
    const remote = options.remote?.trim() || 'origin';
    const draft = options.draft ?? true;
    const pre = await this.preflight(changeId, actor);
    const { change, approval, evidence, headSha, facts, effective } = pre;

    const client = this.client(options);
    const repository = await this.repositoryFor(remote, client.apiBaseUrl, change.branch);
    const repositoryName = `${repository.owner}/${repository.repo}`;
    const settings = effective.policy.lanes.pullRequests;
    const patterns = compileSecretPatterns(effective.policy.secretPatterns ?? []).patterns;
    const title = pullRequestTitle(redactText(change.title, patterns).text, settings.titlePrefix);
    const labels = pullRequestLabels(evidence.flags, settings.labels);
    const reviewers = settings.reviewers.filter((name) => !name.includes('/'));
    const teamReviewers = settings.reviewers.filter((name) => name.includes('/')).map((name) => name.slice(name.indexOf('/') + 1));
    const [policyId, policyVersion] = splitPolicyRef(effective.policyRef);

    // The audit head names the point in the log this pull request was opened at (the gate decision included).
    await ctx.audit.flush();
    const body = buildPullRequestBody({
      changeId,
      title,
      branch: change.branch,
      repository: repositoryName,
      headSha,
      evidence,
      policy: { id: policyId, version: policyVersion, hash: effective.policyHash },
      auditHeadHash: ctx.audit.head.hash,
      approval: { by: approval.by, at: approval.at, diffHash: approval.diffHash, evidenceHash: approval.evidenceHash },
      generatedAt: new Date().toISOString(),
      generator: { name: 'agent-lanes', version: extensionVersion },
      secretPatterns: patterns,
    });
    if (body.redaction.total > 0)
      ctx.logger.info(`Pull request body of change ${changeId}: ${body.redaction.total} secret-like value(s) redacted.`);

    const policyFor = async (action: PolicyAction, extra: Partial<ChangeFacts> = {}) => {
      // The policy in force at this moment (the kill switch may have been turned on since the gate).
      const current = this.ctx.store.get(changeId) ?? change;
      const decision = await decide(ctx, action, { ...facts, repository: repositoryName, ...extra }, current, actor, LANE_DECISION);
      if (decision.effect !== 'allow') throw new PolicyDeniedError(decision);
    };
    let result: OpenPullRequestResult;
    try {
      result = await openPullRequest({
        client,
        repoRoot: ctx.repoRoot,
        remote,
        repository,
        branch: change.branch,
        base: change.baseRef,
        title,
        body: body.body,
        draft,
        labels,
        reviewers,
        teamReviewers,
        expectedHeadSha: headSha,
        beforeSideEffect: (step) => (step === 'push' ? policyFor('push') : policyFor('createPullRequest', { pullRequestDraft: draft })),
        onStep: (step) => {
          void this.auditStep(changeId, actor, step, repositoryName);
          options.onStep?.(step);
        },
      });
    } catch (error) {
      const known = (error as { progress?: { pullRequest?: { number: number; url: string } } }).progress?.pullRequest;
      if (known) {
        // A pull request exists though a later step failed: keep it on the record; the retry completes the rest.
        await ctx.store
          .update(changeId, (c) => ({
            ...c,
            pullRequest: {
              number: known.number,
              url: known.url,
              repository: repositoryName,
              draft,
              state: draft ? 'draft' : 'open',
              checks: c.pullRequest?.checks ?? 'none',
              updatedAt: new Date().toISOString(),
              headSha,
            },
          }))
          .catch((storeError: unknown) =>
            ctx.logger.error(`Could not record pull request #${known.number} on change ${changeId}`, storeError),
          );
      }
      throw error;
    }
    await ctx.audit.flush();

    const now = new Date().toISOString();
    let updated = await ctx.store.update(changeId, (c) => ({
      ...c,
      pullRequest: {
        number: result.number,
        url: result.url,
        repository: `${result.repository.owner}/${result.repository.repo}`,
        draft: result.draft,
        state: result.draft ? 'draft' : 'open',
        checks: c.pullRequest?.number === result.number ? c.pullRequest.checks : 'none',
        updatedAt: now,
        headSha: result.headSha,
      },
    }));
    let moved = false;
    if (updated.lane === 'review') {
      const moveResult = await moveChange(ctx, changeId, 'promote', actor, {
        reason: `pull request #${result.number} ${result.action}`,
        details: { pullRequest: result.number, url: result.url },
      });
      if (!moveResult.ok) {
        throw new PullRequestLaneError(
          'moveRefused',
          `Pull request #${result.number} is open (${result.url}), but change ${changeId} could not move to Pull request: ${moveResult.reason}`,
        );
      }
      updated = moveResult.change;
      moved = true;
    }
    ctx.logger.info(
      `Change ${changeId}: pull request #${result.number} ${result.action} (${result.url}); steps ${result.steps.map((s) => `${s.name}:${s.outcome}`).join(', ')}`,
    );
    return { change: updated, result, moved };
  }

  /**
   * Pushes the lane branch only (a remote that is not GitHub): the same
   * checks as a pull request (approval, diff, gate, push policy), no pull request.
   */
  async pushOnly(changeId: string, actor: Actor, options: { remote?: string } = {}): Promise<{ change: Change; step: PullRequestStep }> {
    const remote = options.remote?.trim() || 'origin';
    const { change, headSha, facts } = await this.preflight(changeId, actor);
    const decision = await decide(this.ctx, 'push', facts, change, actor, LANE_DECISION);
    if (decision.effect !== 'allow') throw new PolicyDeniedError(decision);
    const pushed = await pushBranch({ repoRoot: this.ctx.repoRoot, remote, branch: change.branch, expectedHeadSha: headSha });
    await this.auditStep(changeId, actor, pushed.step, `remote ${remote}`);
    return { change: this.ctx.store.get(changeId) ?? change, step: pushed.step };
  }

  /**
   * "Agent Lanes: Mark Ready for Review": only a draft whose checks pass, and only
   * when policy allows a pull request that is not a draft.
   */
  async markReady(changeId: string, actor: Actor, access: GitHubAccess): Promise<Change> {
    const { ctx } = this;
    const change = this.requirePullRequest(changeId);
    await ctx.policy.refresh();
    const evidence = await this.readEvidence(changeId);
    const facts = changeFacts(change, evidence, { baseBranch: change.baseRef, pullRequestDraft: false });
    const decision = await decide(ctx, 'createPullRequest', facts, change, actor, LANE_DECISION);
    if (decision.effect !== 'allow') throw new PolicyDeniedError(decision);
    const client = this.client(access);
    const ref = { client, repository: splitRepository(change.pullRequest.repository), number: change.pullRequest.number };
    const ready = await markReadyForReview(ref);
    const updated = await ctx.store.update(changeId, (c) => ({
      ...c,
      ...(c.pullRequest
        ? {
            pullRequest: {
              ...c.pullRequest,
              draft: false,
              state: 'open' as const,
              checks: ready.checks.state,
              updatedAt: new Date().toISOString(),
            },
          }
        : {}),
    }));
    await ctx.audit.append({
      actor,
      action: 'pr.ready',
      changeId,
      decisionId: decision.decisionId,
      details: { number: ready.number, url: ready.url, alreadyReady: ready.alreadyReady, checks: ready.checks.state },
    });
    return updated;
  }

  /** Reads the pull request's state and checks once and applies them (a merged or closed one ends the change). */
  async refresh(changeId: string, access: GitHubAccess): Promise<Change> {
    const change = this.requirePullRequest(changeId);
    const client = this.client(access);
    const status = await getPullRequestStatus({
      client,
      repository: splitRepository(change.pullRequest.repository),
      number: change.pullRequest.number,
    });
    return this.applyStatus(changeId, status);
  }

  isTracking(changeId: string): boolean {
    return this.trackers.has(changeId);
  }

  trackedChanges(): string[] {
    return [...this.trackers.keys()];
  }

  /**
   * Follows a change's pull request (polling with back-off within GitHub's
   * rate limits) until it is merged or closed, or stopTracking.
   */
  track(changeId: string, options: TrackOptions): void {
    const change = this.requirePullRequest(changeId);
    if (this.trackers.has(changeId)) return;
    const controller = new AbortController();
    this.trackers.set(changeId, controller);
    const client = this.client(options);
    const pullRequest = change.pullRequest;
    this.ctx.logger.info(`Following pull request #${pullRequest.number} of change ${changeId} (${pullRequest.repository})`);
    void pollPullRequest({
      client,
      repository: splitRepository(pullRequest.repository),
      number: pullRequest.number,
      signal: controller.signal,
      ...(options.schedule ? { schedule: options.schedule } : {}),
      onUpdate: (status) => {
        void this.applyStatus(changeId, status)
          .then((updated) => options.onUpdate?.(updated, status))
          .catch((error: unknown) =>
            this.ctx.logger.error(`Could not record the state of pull request #${status.number} of change ${changeId}`, error),
          );
      },
      onError: (error, delay) => {
        this.ctx.logger.warn(
          `Following pull request #${pullRequest.number}: ${error.message} (next look in ${Math.round(delay / 1000)} s)`,
        );
        options.onError?.(error, delay);
      },
    })
      .then(async (outcome) => {
        // The last update may still be being applied; let it finish before saying we are done.
        await (this.queues.get(changeId) ?? Promise.resolve()).catch(() => undefined);
        options.onEnd?.({ reason: outcome.reason });
      })
      .catch((error: unknown) => {
        this.ctx.logger.warn(`Stopped following pull request #${pullRequest.number} of change ${changeId}: ${(error as Error).message}`);
        options.onEnd?.({ reason: 'error', error });
      })
      .finally(() => {
        if (this.trackers.get(changeId) === controller) this.trackers.delete(changeId);
      });
  }

  stopTracking(changeId: string): void {
    this.trackers.get(changeId)?.abort();
    this.trackers.delete(changeId);
  }

  stopAll(): void {
    for (const controller of this.trackers.values()) controller.abort();
    this.trackers.clear();
  }

  /** Stores a status read from GitHub; a merged or closed pull request ends the change and cleans up. Serialised per change. */
  applyStatus(changeId: string, status: PullRequestStatus): Promise<Change> {
    const previous = this.queues.get(changeId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.applyNow(changeId, status));
    this.queues.set(changeId, next);
    void next
      .finally(() => {
        if (this.queues.get(changeId) === next) this.queues.delete(changeId);
      })
      .catch(() => undefined);
    return next;
  }

  private async applyNow(changeId: string, status: PullRequestStatus): Promise<Change> {
    const { ctx } = this;
    const before = ctx.store.get(changeId);
    if (!before?.pullRequest || before.pullRequest.number !== status.number) return before ?? this.requirePullRequest(changeId);
    const stateChanged = before.pullRequest.state !== status.state || before.pullRequest.checks !== status.checks.state;
    let change = await ctx.store.update(changeId, (c) => ({
      ...c,
      ...(c.pullRequest
        ? {
            pullRequest: {
              ...c.pullRequest,
              url: status.url,
              draft: status.draft,
              state: status.state,
              checks: status.checks.state,
              updatedAt: status.updatedAt,
            },
          }
        : {}),
    }));
    if (stateChanged)
      ctx.logger.info(
        `Change ${changeId}: pull request #${status.number} is ${status.state}, checks ${status.checks.state} (${status.checks.description})`,
      );
    if ((status.state === 'merged' || status.state === 'closed') && change.lane === 'pullRequest') {
      change = await this.close(change, status);
    }
    return change;
  }

  private async close(change: Change, status: PullRequestStatus): Promise<Change> {
    const { ctx } = this;
    // Merged where policy lists production actions for the repository and branch: the change enters Release.
    const release = status.state === 'merged' ? await this.releaseFor(change, status) : undefined;
    const event = release ? 'enterRelease' : status.state === 'merged' ? 'pullRequestMerged' : 'pullRequestClosed';
    await ctx.audit.append({
      actor: EXTENSION_ACTOR,
      action: 'pr.closed',
      changeId: change.id,
      details: {
        number: status.number,
        url: status.url,
        state: status.state,
        headSha: status.headSha,
        // What the intact rate measures in git (docs/metrics.md): the merge commit on the base branch.
        baseRef: status.baseRef,
        ...(status.state === 'merged' && status.mergeCommitSha ? { mergeCommitSha: status.mergeCommitSha } : {}),
      },
    });
    if (release) await ctx.store.update(change.id, (c) => ({ ...c, release }));
    const moved = await moveChange(ctx, change.id, event, EXTENSION_ACTOR, {
      reason: `pull request #${status.number} ${status.state}`,
      details: { pullRequest: status.number, ...(release ? { mergedSha: release.mergedSha } : {}) },
    });
    if (!moved.ok) {
      ctx.logger.warn(`Change ${change.id}: ${moved.reason}`);
      return ctx.store.get(change.id) ?? change;
    }
    this.stopTracking(change.id);
    return this.cleanUp(moved.change);
  }

  /** Where a merged change's production actions would run, when policy lists any for its repository and branch. */
  private async releaseFor(change: Change, status: PullRequestStatus): Promise<NonNullable<Change['release']> | undefined> {
    const repository = change.pullRequest?.repository;
    if (!repository) return undefined;
    const effective = await this.ctx.policy.effectiveFor({ repoRoot: this.ctx.repoRoot, baseSha: change.baseSha });
    if (!effective.ok || !actionsFor(effective.effective.policy, repository, status.baseRef).length) return undefined;
    return { repository, branch: status.baseRef, mergedSha: status.mergeCommitSha ?? status.headSha, runs: [] };
  }

  /**
   * Removes the worktree and the local branch of a closed change. The branch
   * is on the remote, so removing it here loses nothing, unless it moved on
   * after the push or the worktree holds uncommitted work: then both stay,
   * and the change says why.
   */
  private async cleanUp(change: Change): Promise<Change> {
    const { ctx } = this;
    const pushed = change.pullRequest?.headSha;
    const local = await branchHead(ctx.repoRoot, change.branch);
    let alert: string | undefined;
    let removed = { removedWorktree: false, removedBranch: false };
    if (local && pushed && local !== pushed) {
      alert = `The branch ${change.branch} has commits that were never pushed (${local.slice(0, 12)}, pushed ${pushed.slice(0, 12)}), so its worktree ${change.worktreePath} and branch were kept. Remove them by hand when you no longer need them.`;
    } else {
      try {
        removed = await removeWorktree({ repoRoot: ctx.repoRoot, worktreePath: change.worktreePath, branch: change.branch, force: false });
      } catch (error) {
        alert =
          error instanceof UncommittedWorkError
            ? `The worktree ${change.worktreePath} has uncommitted work, so it and the branch ${change.branch} were kept. Save what you need, then remove it with "Agent Lanes: Clean Up Worktrees".`
            : `The worktree ${change.worktreePath} could not be removed: ${(error as Error).message}`;
      }
    }
    await ctx.audit.append({
      actor: EXTENSION_ACTOR,
      action: 'cleanup',
      changeId: change.id,
      details: { worktree: change.worktreePath, branch: change.branch, ...removed, ...(alert ? { kept: alert } : {}) },
    });
    let updated = change;
    if (alert) {
      ctx.logger.warn(`Change ${change.id}: ${alert}`);
      updated = await ctx.store.update(change.id, (c) => ({ ...c, alerts: [...(c.alerts ?? []), alert] }));
    }
    try {
      await this.options.onClosed?.(updated);
    } catch (error) {
      ctx.logger.error(`Cleaning up after change ${change.id} closed (sandbox)`, error);
    }
    return updated;
  }

  /** Everything that must hold right now, in the order a person would want to hear about it. */
  private async preflight(changeId: string, actor: Actor): Promise<Preflight> {
    const { ctx } = this;
    const change = ctx.store.get(changeId);
    if (!change) throw new PullRequestLaneError('noChange', `There is no change ${changeId} in this repository.`);
    if (change.lane !== 'review' && change.lane !== 'pullRequest') {
      const where = change.lane === 'closed' ? 'closed' : `in ${change.lane === 'draft' ? 'Draft' : 'Sandbox'}`;
      throw new PullRequestLaneError(
        'wrongLane',
        `Change ${changeId} is ${where}; only an approved change in Review can become a pull request.`,
      );
    }
    const approval = change.approval;
    if (!approval)
      throw new PullRequestLaneError(
        'notApproved',
        `Change ${changeId} has not been approved; open its review and approve the diff first.`,
      );
    if (approval.invalidated)
      throw new PullRequestLaneError(
        'notApproved',
        `The approval of change ${changeId} no longer holds (${approval.invalidated.reason}); review it and approve it again.`,
      );

    // The policy in force now, not the one of the approval: fetch it again (the kill switch may be on).
    await ctx.policy.refresh();
    const evidence = await this.readEvidence(changeId);
    const headSha = await branchHead(ctx.repoRoot, change.branch);
    if (!headSha)
      throw new PullRequestLaneError(
        'branchMissing',
        `The lane branch ${change.branch} of change ${changeId} no longer exists, so there is nothing to push. Discard the change and draft it again.`,
      );

    const listing = await listReviewDiff(ctx.repoRoot, change.baseSha, headSha);
    const evidenceHash = hashEvidence(evidence);
    let mismatch: string | undefined;
    if (listing.hash !== approval.diffHash)
      mismatch = `the diff is now sha256:${listing.hash.slice(0, 12)} (branch at ${headSha.slice(0, 12)}), but sha256:${approval.diffHash.slice(0, 12)} was approved`;
    else if (change.headSha && change.headSha !== headSha)
      mismatch = `the lane branch moved to ${headSha.slice(0, 12)} after the approval of ${change.headSha.slice(0, 12)}`;
    else if (evidenceHash !== approval.evidenceHash)
      mismatch = `the evidence changed after the approval (sha256:${evidenceHash.slice(0, 12)}, approved sha256:${approval.evidenceHash.slice(0, 12)})`;
    if (mismatch) {
      await this.invalidateApproval(change, approval, mismatch, { currentDiffHash: listing.hash, headSha });
      throw new PullRequestLaneError(
        'approvalMismatch',
        `The approval of change ${changeId} no longer matches: ${mismatch}. Nothing was pushed. Review the change and approve it again.`,
      );
    }

    const baseIsBranch = await isBranch(ctx.repoRoot, change.baseRef);
    if (!baseIsBranch) {
      throw new PullRequestLaneError(
        'baseNotBranch',
        `Change ${changeId} was drafted from "${change.baseRef}", which is not a branch of this repository; a pull request needs a base branch. Draft the change again from a branch.`,
      );
    }
    const facts = changeFacts(change, evidence, { baseBranch: change.baseRef });
    const gate = await decide(ctx, 'gate.reviewToPullRequest', facts, change, actor, LANE_DECISION);
    if (gate.effect !== 'allow') throw new PolicyDeniedError(gate);
    const effective = await ctx.policy.effectiveFor({ repoRoot: ctx.repoRoot, baseSha: change.baseSha });
    if (!effective.ok)
      throw new PullRequestLaneError('moveRefused', `The policy for change ${changeId} cannot be read: ${effective.reason}.`);
    return { change: ctx.store.get(changeId) ?? change, approval, evidence, headSha, facts, effective: effective.effective, gate };
  }

  private async invalidateApproval(
    change: Change,
    approval: NonNullable<Change['approval']>,
    reason: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    const { ctx } = this;
    const at = new Date().toISOString();
    let changed = false;
    await ctx.store.update(change.id, (current) => {
      if (current.approval && current.approval.at === approval.at && !current.approval.invalidated) {
        changed = true;
        return { ...current, approval: { ...current.approval, invalidated: { at, reason: `approval no longer matches: ${reason}` } } };
      }
      return current;
    });
    if (!changed) return;
    await ctx.audit.append({
      actor: EXTENSION_ACTOR,
      action: 'approval.invalidated',
      changeId: change.id,
      details: {
        reason,
        trigger: 'open pull request',
        approvedBy: approval.by,
        approvedAt: approval.at,
        diffHash: approval.diffHash,
        evidenceHash: approval.evidenceHash,
        ...details,
      },
    });
  }

  private async readEvidence(changeId: string): Promise<Evidence> {
    const read = await this.ctx.evidence.read(changeId);
    if (read.kind === 'ok') return read.evidence;
    throw new PullRequestLaneError(
      'noEvidence',
      read.kind === 'missing'
        ? `Change ${changeId} has no evidence record, so no pull request can carry it. Run its sandbox tasks again.`
        : read.message,
    );
  }

  private requirePullRequest(changeId: string): Change & { pullRequest: NonNullable<Change['pullRequest']> } {
    const change = this.ctx.store.get(changeId);
    if (!change) throw new PullRequestLaneError('noChange', `There is no change ${changeId} in this repository.`);
    if (!change.pullRequest)
      throw new PullRequestLaneError(
        'noPullRequest',
        `Change ${changeId} has no pull request yet; open one with "Agent Lanes: Open Pull Request".`,
      );
    if (change.lane !== 'pullRequest' && change.lane !== 'closed' && change.lane !== 'review') {
      throw new PullRequestLaneError('wrongLane', `Change ${changeId} is in ${change.lane}; its pull request is no longer followed.`);
    }
    return change as Change & { pullRequest: NonNullable<Change['pullRequest']> };
  }

  private client(access: GitHubAccess): GitHubClient {
    return githubClientFor(access, this.ctx.logger);
  }

  private async auditStep(changeId: string, actor: Actor, step: PullRequestStep, where: string): Promise<void> {
    const action = step.name === 'push' ? 'push' : step.name === 'pr.create' ? 'pr.create' : 'pr.update';
    await this.ctx.audit
      .append({
        actor,
        action,
        changeId,
        details: { step: step.name, outcome: step.outcome, detail: step.detail, repository: where, at: step.at },
      })
      .catch((error: unknown) => this.ctx.logger.error(`Could not audit step ${step.name} of change ${changeId}`, error));
  }
}

function splitPolicyRef(ref: string): [string, string] {
  const at = ref.lastIndexOf('@');
  return at > 0 ? [ref.slice(0, at), ref.slice(at + 1) || 'unversioned'] : [ref, 'unversioned'];
}

function splitRepository(name: string): { owner: string; repo: string } {
  const [owner, repo] = name.split('/');
  if (!owner || !repo) throw new GitHubError('badSetting', `The change's pull request names the repository "${name}", not OWNER/REPO.`);
  return { owner, repo };
}

async function branchHead(repoRoot: string, branch: string): Promise<string | undefined> {
  const out = await git(repoRoot, ['rev-parse', '--verify', '--quiet', '--end-of-options', `refs/heads/${branch}^{commit}`], {
    okExitCodes: [1],
  });
  const sha = out.stdout.trim();
  return out.exitCode === 0 && /^[0-9a-f]{40,64}$/.test(sha) ? sha : undefined;
}

async function isBranch(repoRoot: string, ref: string): Promise<boolean> {
  if (!ref || ref.startsWith('-') || /^[0-9a-f]{40,64}$/.test(ref)) return false;
  const out = await git(repoRoot, ['show-ref', '--verify', '--quiet', `refs/heads/${ref}`], { okExitCodes: [1] });
  return out.exitCode === 0;
}
