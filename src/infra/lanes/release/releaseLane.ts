import { randomUUID } from 'node:crypto';
import type { Actor, Change } from '../../../core/change';
import { EXTENSION_ACTOR } from '../../../core/constants';
import type { DecisionRecord } from '../../../core/decision';
import { LaneError } from '../../../core/errors';
import type { EffectivePolicy } from '../../../core/policy/merge';
import { recordedRules } from '../../../core/policy/replay';
import type { ProductionAction } from '../../../core/policy/schema';
import { type ActionDecision, type ActionRun, actionInputs, actionsFor, authorizeAction, runHealth } from '../../../core/release/authorize';
import { type GitHubClient, GitHubError } from '../../github/client';
import { readCommitChecks } from '../../github/pullRequests';
import {
  authenticatedLogin,
  commentOnPullRequest,
  createDeployment,
  deploymentState,
  dispatchWorkflow,
  isTeamMember,
  workflowRunState,
} from '../../github/releaseActions';
import { type LaneContext, moveChange, trackFacts } from '../laneContext';
import { type GitHubAccess, githubClientFor } from '../pullRequest/pullRequestLane';
import type { DraftLane } from '../draft/draftLane';

/**
 * A refusal of the Release lane, naming the rule (a policy field, or `lane`) and what to do.
 * @internal Exported for its unit tests; the editor shows any LaneError the one way (showError).
 */
export class ReleaseLaneError extends LaneError {
  override readonly name = 'ReleaseLaneError';
  constructor(
    readonly rule: string,
    message: string,
  ) {
    super('releaseRefused', message);
  }
}

export interface RunActionRequest extends GitHubAccess {
  actionId: string;
  /** What the person chose for the action's bounded inputs; fixed ones come from policy. */
  inputs?: Record<string, string>;
}

export interface RunActionOutcome {
  change: Change;
  run: ActionRun;
  /** The same action for the same commit and inputs had run already: nothing new started. */
  existing: boolean;
}

type Release = NonNullable<Change['release']>;
type RecordedRun = Release['runs'][number];

const repositoryOf = (release: Release) => {
  const [owner = '', repo = ''] = release.repository.split('/');
  return { owner, repo };
};

/**
 * The Release lane for one repository (docs/actions.md): a merged change whose repository and branch policy lists
 * production actions for. A person runs one action at a time, authorized for the exact merged commit and inputs and
 * checked again against the policy in force right before GitHub is called; runs are followed, and one that fails or
 * runs past its limit marks the change "needs rollback". Every step is a decision record and an audit event.
 */
export class ReleaseLane {
  constructor(
    private readonly ctx: LaneContext,
    private readonly now: () => Date = () => new Date(),
    /** Opens revert drafts (a `revert` action, or Roll Back without a rollback action). */
    private readonly drafts?: DraftLane,
  ) {}

  /** The actions policy offers for a change in Release (empty when the kill switch is on). */
  async actions(changeId: string): Promise<ProductionAction[]> {
    const { change, release } = this.requireRelease(changeId);
    return actionsFor((await this.policyFor(change)).policy, release.repository, release.branch);
  }

  /** Runs one action for the change's merged commit, or finds the run of the same action, commit and inputs. */
  async run(changeId: string, request: RunActionRequest, actor: Actor): Promise<RunActionOutcome> {
    const { ctx } = this;
    const { change, release } = this.requireRelease(changeId);
    const repository = repositoryOf(release);
    const client = this.client(request);
    // The authorizer is whoever the token belongs to, as GitHub says: not a name the caller passes.
    const login = await authenticatedLogin(client);
    const effective = await this.policyFor(change);
    const action = effective.policy.actions.find((candidate) => candidate.id === request.actionId);
    const inputs = action ? actionInputs(action, request.inputs ?? {}) : (request.inputs ?? {});
    // What GitHub says now: the merged commit's checks, and the person's teams among the action's authorizers.
    const facts = async (policyAction: ProductionAction | undefined) => ({
      checks: (await readCommitChecks(client, repository, release.mergedSha)).state,
      teams: await this.teamsOf(client, login, policyAction),
      track: await trackFacts(ctx, change.baseSha),
      // The changed paths decide path-bound task classes; unreadable evidence counts as none (such classes then do not apply).
      paths: await ctx.evidence
        .read(change.id)
        .then((read) => (read.kind === 'ok' && read.evidence.diff ? read.evidence.diff.files.map((file) => file.path) : [])),
    });
    const ask = async (policy: EffectivePolicy, known: Awaited<ReturnType<typeof facts>>, runs: readonly ActionRun[]) =>
      authorizeAction(
        policy.policy,
        {
          actionId: request.actionId,
          repository: release.repository,
          branch: release.branch,
          sha: release.mergedSha,
          inputs,
          authorizer: { login: login, teams: known.teams },
          change: {
            id: change.id,
            author: change.createdBy ?? '',
            agentId: change.agentId,
            mergedSha: release.mergedSha,
            task: change.task,
            ...(change.taskClass ? { taskClass: change.taskClass } : {}),
            paths: known.paths,
          },
          checks: known.checks,
          runs,
          now: this.now(),
        },
        policy.origins,
      );
    const decision = await ask(effective, await facts(action), release.runs as ActionRun[]);
    await this.record(change, decision, effective, actor);
    if (decision.outcome === 'refused') throw new ReleaseLaneError(decision.rule, decision.reason);
    if (decision.outcome === 'existing') return { change: ctx.store.get(changeId)!, run: decision.run, existing: true };

    const at = this.now().toISOString();
    const run: RecordedRun = {
      key: decision.key,
      actionId: decision.action.id,
      sha: release.mergedSha,
      inputs,
      authorizedBy: login,
      authorizedAt: at,
      policyHash: effective.policyHash,
      state: 'requested',
    };
    const earlier = release.runs;
    await this.saveRun(changeId, run);
    await ctx.audit.append({
      actor,
      action: 'action.authorize',
      changeId,
      details: { actionId: run.actionId, sha: run.sha, inputs, key: run.key, authorizedBy: run.authorizedBy, policyHash: run.policyHash },
    });

    // Right before the call: the policy in force now (a refresh may have come), asked again.
    const current = await this.policyFor(change);
    const again = await ask(current, await facts(current.policy.actions.find((a) => a.id === run.actionId)), earlier as ActionRun[]);
    if (again.outcome !== 'allowed') {
      const reason = again.outcome === 'refused' ? again.reason : 'the same run started meanwhile';
      await this.finishRun(changeId, run.key, { state: 'failed', message: `Not started: ${reason}` }, actor);
      if (again.outcome === 'refused') await this.record(change, again, current, actor);
      throw new ReleaseLaneError(again.outcome === 'refused' ? again.rule : 'lane', `Nothing was run: ${reason}`);
    }

    let started: Partial<RecordedRun>;
    try {
      started = await this.start(client, release, again.action, inputs, change, actor);
    } catch (error) {
      const message =
        error instanceof GitHubError || again.action.kind === 'revert'
          ? (error as Error).message
          : `GitHub could not be asked: ${(error as Error).message}`;
      await this.finishRun(changeId, run.key, { state: 'failed', message }, actor);
      throw error;
    }
    const running = await this.finishRun(changeId, run.key, { state: 'running', ...started, startedAt: this.now().toISOString() }, actor);
    return { change: ctx.store.get(changeId)!, run: running as ActionRun, existing: false };
  }

  /** Reads each running run's state from GitHub once; a failure or a run past its limit marks the change "needs rollback". */
  async refresh(changeId: string, access: GitHubAccess): Promise<Change> {
    const { change, release } = this.requireRelease(changeId);
    const client = this.client(access);
    const repository = repositoryOf(release);
    const policy = (await this.policyFor(change)).policy;
    for (const run of release.runs) {
      if (run.state !== 'running') continue;
      let update: Partial<RecordedRun> | undefined;
      if (run.runId !== undefined) {
        const state = await workflowRunState(client, repository, run.runId);
        if (state.status === 'completed')
          update = { state: state.conclusion === 'success' ? 'succeeded' : 'failed', conclusion: state.conclusion ?? 'unknown' };
      } else if (run.deploymentId !== undefined) {
        const state = await deploymentState(client, repository, run.deploymentId);
        if (state === 'success') update = { state: 'succeeded', conclusion: state };
        else if (state === 'failure' || state === 'error') update = { state: 'failed', conclusion: state };
      }
      const action = policy.actions.find((candidate) => candidate.id === run.actionId);
      if (!update && runHealth(run as ActionRun, action, this.now()).needsRollback) update = { state: 'timedOut' };
      if (update) await this.finishRun(changeId, run.key, { ...update, endedAt: this.now().toISOString() }, EXTENSION_ACTOR);
    }
    return this.escalate(changeId, policy.actions, client);
  }

  /**
   * Tells the people policy names: a comment on the merged pull request that @-mentions them (GitHub notifies them
   * where they read GitHub). A failure to comment is recorded, never thrown: the change shows "needs rollback" anyway.
   */
  private async notify(
    change: Change,
    release: Release,
    actionId: string,
    reason: string,
    notify: readonly string[],
    client: GitHubClient,
  ): Promise<{ notifiedIn?: string; notifyError?: string }> {
    const number = change.pullRequest?.number;
    if (!number) return { notifyError: 'the change has no pull request to comment on' };
    const mentions = notify.map((name) => (name.startsWith('@') ? name : `@${name}`)).join(' ');
    const body = [
      `**Agent Lanes: "${actionId}" needs a rollback** for ${release.mergedSha} (${reason}).`,
      '',
      `${mentions}: roll back with "Agent Lanes: Roll Back…" on change ${change.id}, or close its release once it is fine.`,
    ].join('\n');
    try {
      return { notifiedIn: await commentOnPullRequest(client, repositoryOf(release), number, body) };
    } catch (error) {
      this.ctx.logger.warn(`Notifying ${mentions} about change ${change.id}: ${(error as Error).message}`);
      return { notifyError: (error as Error).message };
    }
  }

  /** Closes a change in Release: its actions are done (none may be running). */
  async close(changeId: string, actor: Actor): Promise<Change> {
    this.requireRelease(changeId);
    const moved = await moveChange(this.ctx, changeId, 'closeRelease', actor, { reason: 'release closed' });
    if (!moved.ok) throw new ReleaseLaneError('lane', moved.reason);
    return moved.change;
  }

  private async start(
    client: GitHubClient,
    release: Release,
    action: ProductionAction,
    inputs: Record<string, string>,
    change: Change,
    actor: Actor,
  ): Promise<Partial<RecordedRun>> {
    const repository = repositoryOf(release);
    switch (action.kind) {
      case 'workflowDispatch': {
        const started = await dispatchWorkflow(client, repository, {
          workflow: action.workflow!,
          branch: release.branch,
          sha: release.mergedSha,
          inputs,
        });
        return { runId: started.runId, url: started.url };
      }
      case 'deployment': {
        const made = await createDeployment(client, repository, {
          sha: release.mergedSha,
          environment: action.environment!,
          description: `Agent Lanes: ${action.id} for change ${change.id}`,
          payload: { change: change.id, action: action.id },
        });
        return { deploymentId: made.deploymentId, url: made.url };
      }
      case 'revert': {
        // Done when the revert draft exists: from there it is a change like any other, through every lane.
        const revert = await this.openRevert(change.id, `action "${action.id}"`, actor);
        return { state: 'succeeded', endedAt: this.now().toISOString(), message: `revert draft ${revert.id} opened` };
      }
    }
  }

  /**
   * "Agent Lanes: Roll Back…": runs the rollback action policy names for the failed run; without one (or when it is
   * a `revert`), opens a revert draft of the merged commit, which goes through the lanes to a revert pull request.
   */
  async rollBack(changeId: string, actor: Actor, access?: GitHubAccess): Promise<{ change: Change; run?: ActionRun; revert?: Change }> {
    const { change, release } = this.requireRelease(changeId);
    const needs = release.needsRollback;
    if (!needs) throw new ReleaseLaneError('lane', `Change ${changeId} does not need a rollback: no run failed or ran past its limit.`);
    const rollback = needs.rollback ? (await this.policyFor(change)).policy.actions.find((a) => a.id === needs.rollback) : undefined;
    if (rollback && !access)
      throw new ReleaseLaneError('lane', `The rollback action "${rollback.id}" needs your GitHub sign-in; sign in and roll back again.`);
    if (rollback && access && rollback.kind !== 'revert') {
      const outcome = await this.run(changeId, { ...access, actionId: rollback.id }, actor);
      return { change: outcome.change, run: outcome.run };
    }
    if (rollback && access) {
      const outcome = await this.run(changeId, { ...access, actionId: rollback.id }, actor);
      const revertId = this.ctx.store.get(changeId)?.release?.revert?.changeId;
      return { change: outcome.change, run: outcome.run, ...(revertId ? { revert: this.ctx.store.get(revertId)! } : {}) };
    }
    const revert = await this.openRevert(changeId, needs.reason, actor);
    return { change: this.ctx.store.get(changeId)!, revert };
  }

  /** The change's revert draft: the open one when there is one (a second request finds it), else a new one. */
  private async openRevert(changeId: string, reason: string, actor: Actor): Promise<Change> {
    const { ctx } = this;
    const { change, release } = this.requireRelease(changeId);
    const existing = release.revert ? ctx.store.get(release.revert.changeId) : undefined;
    if (existing && existing.lane !== 'closed') return existing;
    if (!this.drafts) throw new ReleaseLaneError('lane', 'Revert drafts are not available here.');
    const outcome = await this.drafts.startRevert({
      sha: release.mergedSha,
      branch: release.branch,
      title: change.title,
      reason,
      actor,
      createdBy: actor.id,
    });
    const revert = { changeId: outcome.change.id, at: this.now().toISOString() };
    await ctx.store.update(changeId, (c) => ({ ...c, release: { ...c.release!, revert } }));
    await ctx.audit.append({
      actor,
      action: 'action.rollback',
      changeId,
      details: { revertChangeId: revert.changeId, mergedSha: release.mergedSha, reason, branch: outcome.change.branch },
    });
    return ctx.store.get(revert.changeId) ?? outcome.change;
  }

  /** Marks the change "needs rollback" when a run failed or ran past its limit (once per cause), and audits it. */
  private async escalate(changeId: string, actions: readonly ProductionAction[], client: GitHubClient): Promise<Change> {
    const change = this.ctx.store.get(changeId)!;
    const release = change.release!;
    if (release.needsRollback) return change;
    for (const run of release.runs) {
      const action = actions.find((candidate) => candidate.id === run.actionId);
      const health = runHealth(run as ActionRun, action, this.now());
      if (!health.needsRollback) continue;
      const needsRollback = {
        reason: health.reason,
        at: this.now().toISOString(),
        ...(health.rollback ? { rollback: health.rollback } : {}),
      };
      const updated = await this.ctx.store.update(changeId, (c) => ({ ...c, release: { ...c.release!, needsRollback } }));
      const notify = action?.escalation?.notify ?? [];
      const notified = notify.length ? await this.notify(change, release, run.actionId, needsRollback.reason, notify, client) : {};
      await this.ctx.audit.append({
        actor: EXTENSION_ACTOR,
        action: 'action.escalate',
        changeId,
        details: { ...needsRollback, actionId: run.actionId, key: run.key, notify, ...notified },
      });
      return updated;
    }
    return change;
  }

  private async teamsOf(client: GitHubClient, login: string, action: ProductionAction | undefined): Promise<string[]> {
    const teams = (action?.authorizers ?? []).filter((name) => name.startsWith('@'));
    const member = await Promise.all(teams.map((team) => isTeamMember(client, team, login)));
    return teams.filter((_team, index) => member[index]);
  }

  /** The decision as every gate leaves it: on the change, and in the audit log. */
  private async record(change: Change, decision: ActionDecision, effective: EffectivePolicy, actor: Actor): Promise<void> {
    const refused = decision.outcome === 'refused';
    const record: DecisionRecord = {
      decisionId: randomUUID(),
      at: this.now().toISOString(),
      action: 'runAction',
      subject: `${decision.outcome === 'refused' ? 'action' : decision.action.id} for ${change.release?.mergedSha.slice(0, 12) ?? change.id}`,
      effect: refused ? 'block' : 'allow',
      matchedRules: refused ? [{ policy: effective.policyRef, rule: decision.rule, effect: 'block', reason: decision.reason }] : [],
      explanation: refused
        ? `Blocked: ${decision.reason}`
        : decision.outcome === 'existing'
          ? 'Allowed: this run exists already.'
          : 'Allowed.',
      policyHash: effective.policyHash,
    };
    await this.ctx.store.update(change.id, (c) => ({ ...c, lastDecision: record }));
    await this.ctx.audit.append({
      actor,
      action: 'policy.decision',
      changeId: change.id,
      decisionId: record.decisionId,
      policy: effective.policyRef,
      details: {
        action: 'runAction',
        effect: record.effect,
        subject: record.subject,
        explanation: record.explanation,
        rules: recordedRules(record),
      },
    });
  }

  private async saveRun(changeId: string, run: RecordedRun): Promise<void> {
    await this.ctx.store.update(changeId, (c) => ({ ...c, release: { ...c.release!, runs: [...c.release!.runs, run] } }));
  }

  private async finishRun(changeId: string, key: string, update: Partial<RecordedRun>, actor: Actor): Promise<RecordedRun> {
    let saved: RecordedRun | undefined;
    await this.ctx.store.update(changeId, (c) => {
      const runs = c.release!.runs.map((run) => {
        // The newest run with this key: a failed one stays as it was, the retry is its own entry.
        if (run.key !== key || (run.state !== 'requested' && run.state !== 'running')) return run;
        saved = { ...run, ...update };
        return saved;
      });
      return { ...c, release: { ...c.release!, runs } };
    });
    await this.ctx.audit.append({
      actor,
      action: 'action.status',
      changeId,
      details: { key, actionId: saved?.actionId, ...update },
    });
    return saved!;
  }

  private requireRelease(changeId: string): { change: Change; release: Release } {
    const change = this.ctx.store.get(changeId);
    if (!change) throw new ReleaseLaneError('lane', `There is no change ${changeId} in this repository.`);
    if (change.lane !== 'release' || !change.release)
      throw new ReleaseLaneError(
        'lane',
        `Change ${changeId} is not in Release: production actions run only for a merged change whose repository and branch policy lists actions for.`,
      );
    return { change, release: change.release };
  }

  private async policyFor(change: Change): Promise<EffectivePolicy> {
    const effective = await this.ctx.policy.effectiveFor({ repoRoot: this.ctx.repoRoot, baseSha: change.baseSha });
    if (!effective.ok) throw new ReleaseLaneError('policy', `No production action runs while ${effective.reason}.`);
    return effective.effective;
  }

  private client(access: GitHubAccess): GitHubClient {
    return githubClientFor(access, this.ctx.logger);
  }
}
