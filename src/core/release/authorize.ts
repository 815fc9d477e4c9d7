import canonicalize from 'canonicalize';
import { createHash } from 'node:crypto';
import type { ProductionAction, ResolvedPolicy } from '../policy/schema';
import type { EffectivePolicy } from '../policy/merge';
import { autonomyLimit, classifyChange, rolloutLimit, rolloutRefusal, stricterLimit } from '../policy/rollout';
import type { ChangeOutcome } from '../metrics/trackRecord';

// The Release lane's decisions (docs/actions.md): whether a person may run a production action for a merged change,
// bound to (action, commit, inputs) the way an approval is bound to the diff. Pure: the caller gathers the facts
// (the merged commit, its checks, the person's teams, earlier runs) and asks again right before the call.

/** One run of an action for a change, as the lane records it. */
export interface ActionRun {
  /** actionKey(actionId, sha, inputs): the same action for the same commit and inputs is the same run. */
  key: string;
  actionId: string;
  sha: string;
  inputs: Record<string, string>;
  authorizedBy: string;
  authorizedAt: string;
  /** The effective policy's hash the authorization was checked against. */
  policyHash: string;
  state: 'requested' | 'running' | 'succeeded' | 'failed' | 'timedOut';
  startedAt?: string;
  endedAt?: string;
  /** The workflow run or deployment, once GitHub named it. */
  runId?: number;
  deploymentId?: number;
  url?: string;
  conclusion?: string;
  /** What happened, in words (GitHub's refusal, or the revert draft a `revert` action opened). */
  message?: string;
}

/** What the caller knows when a person asks to run an action. */
export interface ActionRequest {
  actionId: string;
  /** owner/repo of the change's pull request. */
  repository: string;
  /** The branch the change was merged into. */
  branch: string;
  /** The commit the action is for; must be the change's merged commit. */
  sha: string;
  inputs: Record<string, string>;
  /** The person authorizing, as GitHub knows them (login, and "@org/team" for each team). */
  authorizer: { login: string; teams: readonly string[] };
  change: {
    id: string;
    /** Who asked for the change, and its agent: neither may authorize its production actions. */
    author: string;
    agentId: string;
    /** The merge commit GitHub reported; undefined when the change was not merged. */
    mergedSha?: string | undefined;
    /** For the rollout mode (docs/policy.md): the task, the chosen task class, the changed paths. */
    task?: string;
    taskClass?: string;
    paths?: readonly string[];
    /** Each task class's record (autonomy rules): see trackRecord.ts. */
    track?: Readonly<Record<string, readonly ChangeOutcome[]>>;
  };
  /** The merged commit's checks, as last read from GitHub. */
  checks: 'passing' | 'failing' | 'pending' | 'none';
  /** The change's earlier runs (for "after", and to find the same run again). */
  runs: readonly ActionRun[];
  now: Date;
}

export type ActionDecision =
  | { outcome: 'allowed'; action: ProductionAction; key: string }
  /** The same action, commit and inputs ran (or runs) already: the second request finds the first. */
  | { outcome: 'existing'; action: ProductionAction; run: ActionRun }
  | { outcome: 'refused'; rule: string; reason: string };

/**
 * Names a run: the action, the commit and the inputs (in canonical JSON), hashed.
 * @internal Exported for its unit tests; the product calls it inside this module.
 */
export function actionKey(actionId: string, sha: string, inputs: Record<string, string>): string {
  return createHash('sha256')
    .update(`${actionId}\0${sha}\0${canonicalize(inputs) ?? '{}'}`)
    .digest('hex');
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** The actions policy offers for a repository and branch (the Release lane's menu). */
export function actionsFor(policy: ResolvedPolicy, repository: string, branch: string): ProductionAction[] {
  if (policy.killSwitch.disableActions) return [];
  return policy.actions.filter(
    (action) => action.repositories.some((repo) => sameName(repo, repository)) && action.branches.includes(branch),
  );
}

const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** The inputs an action runs with: its fixed ones, and what the person chose for the rest. */
export function actionInputs(action: ProductionAction, chosen: Record<string, string>): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const [name, input] of Object.entries(action.inputs ?? {})) {
    if ('fixed' in input) inputs[name] = input.fixed;
    else if (chosen[name] !== undefined) inputs[name] = chosen[name];
  }
  return inputs;
}

/**
 * Whether `request` may run now under `policy`. Each refusal names the rule and what to do. Checked when the person
 * authorizes and again right before the call, against the policy then in force.
 */
export function authorizeAction(
  policy: ResolvedPolicy,
  request: ActionRequest,
  /** Which level each rollout entry came from (EffectivePolicy.origins). */
  origins: EffectivePolicy['origins'] = {},
): ActionDecision {
  const refuse = (rule: string, reason: string): ActionDecision => ({ outcome: 'refused', rule, reason });
  if (policy.killSwitch.disableActions)
    return refuse(
      'killSwitch.disableActions',
      `The kill switch stops production actions${policy.killSwitch.message ? `: ${policy.killSwitch.message}` : ''}. Nothing was run.`,
    );
  const action = policy.actions.find((candidate) => candidate.id === request.actionId);
  if (!action) {
    const known = policy.actions.map((candidate) => candidate.id);
    return refuse(
      'actions',
      `No action "${request.actionId}" is in policy${known.length ? ` (it lists ${known.join(', ')})` : ' (it lists none)'}; only the actions policy lists can run.`,
    );
  }
  const at = `actions[${JSON.stringify(action.id)}]`;
  if (!action.repositories.some((repo) => sameName(repo, request.repository)))
    return refuse(
      `${at}.repositories`,
      `Action "${action.id}" does not apply to ${request.repository} (only ${action.repositories.join(', ')}).`,
    );
  if (!action.branches.includes(request.branch))
    return refuse(
      `${at}.branches`,
      `Action "${action.id}" does not apply to the branch ${request.branch} (only ${action.branches.join(', ')}).`,
    );
  const { task, taskClass, paths } = request.change;
  const classes = classifyChange(policy, { ...(task ? { task } : {}), ...(taskClass ? { chosen: taskClass } : {}), paths: paths ?? [] });
  const subject = { classes, repository: request.repository, ...(request.change.track ? { track: request.change.track } : {}) };
  const limit = stricterLimit(rolloutLimit({ policy, origins }, subject), autonomyLimit({ policy, origins }, subject));
  const stopped = rolloutRefusal(limit, 'productionAction');
  if (limit && stopped) return refuse(limit.rule, `The ${stopped}. Nothing was run.`);
  if (!request.change.mergedSha)
    return refuse('merged', `Change ${request.change.id} was not merged; production actions run only for a merged commit.`);
  if (request.sha !== request.change.mergedSha)
    return refuse(
      'merged',
      `${request.sha.slice(0, 12)} is not the merged commit of change ${request.change.id} (${request.change.mergedSha.slice(0, 12)}); an action runs only for the commit that was merged.`,
    );
  const who = request.authorizer.login;
  if (sameName(who, request.change.author) || sameName(who, request.change.agentId))
    return refuse(
      'authorizer.notAuthor',
      `${who} asked for change ${request.change.id} (or is its agent) and cannot authorize its production actions; ask one of ${action.authorizers.join(', ')}.`,
    );
  const listed = action.authorizers.some((name) =>
    name.startsWith('@') ? request.authorizer.teams.some((team) => sameName(team, name)) : sameName(name, who),
  );
  if (!listed) return refuse(`${at}.authorizers`, `${who} may not authorize "${action.id}"; ask one of ${action.authorizers.join(', ')}.`);

  const declared = action.inputs ?? {};
  for (const name of Object.keys(request.inputs))
    if (!(name in declared))
      return refuse(
        `${at}.inputs`,
        `"${action.id}" has no input "${name}"${Object.keys(declared).length ? ` (it takes ${Object.keys(declared).join(', ')})` : ''}.`,
      );
  for (const [name, input] of Object.entries(declared)) {
    const value = request.inputs[name];
    if ('fixed' in input && value !== input.fixed)
      return refuse(`${at}.inputs.${name}`, `Input "${name}" of "${action.id}" is fixed to ${JSON.stringify(input.fixed)} by policy.`);
    if ('oneOf' in input && (value === undefined || !input.oneOf.includes(value)))
      return refuse(
        `${at}.inputs.${name}`,
        `Input "${name}" of "${action.id}" must be one of ${input.oneOf.map((option) => JSON.stringify(option)).join(', ')}${value === undefined ? '' : `, not ${JSON.stringify(value)}`}.`,
      );
  }

  const key = actionKey(action.id, request.sha, request.inputs);
  const same = request.runs.find((run) => run.key === key && run.state !== 'failed' && run.state !== 'timedOut');
  if (same) return { outcome: 'existing', action, run: same };

  if ((action.requires?.checksGreen ?? true) && request.checks !== 'passing')
    return refuse(
      `${at}.requires.checksGreen`,
      `The checks on ${request.sha.slice(0, 12)} are ${request.checks === 'none' ? 'not reported' : request.checks}; "${action.id}" needs them all passing.`,
    );
  for (const before of action.requires?.after ?? []) {
    const done = request.runs.some((run) => run.actionId === before && run.sha === request.sha && run.state === 'succeeded');
    if (!done)
      return refuse(
        `${at}.requires.after`,
        `"${action.id}" runs only after "${before}" succeeded for ${request.sha.slice(0, 12)}; run that first.`,
      );
  }
  const window = action.requires?.window;
  if (window) {
    const day = DAYS[request.now.getUTCDay()]!;
    if (window.days && !window.days.includes(day))
      return refuse(`${at}.requires.window`, `"${action.id}" may run only on ${window.days.join(', ')} (UTC); today is ${day}.`);
    if (window.hours) {
      const [from = '', to = ''] = window.hours.split('-');
      const now = `${String(request.now.getUTCHours()).padStart(2, '0')}:${String(request.now.getUTCMinutes()).padStart(2, '0')}`;
      const inside = from <= to ? now >= from && now < to : now >= from || now < to;
      if (!inside) return refuse(`${at}.requires.window`, `"${action.id}" may run only between ${window.hours} UTC; it is ${now} UTC.`);
    }
  }
  return { outcome: 'allowed', action, key };
}

/** What a run needs from a person: nothing, or a rollback (it failed, or ran past its time limit). */
export function runHealth(
  run: ActionRun,
  action: ProductionAction | undefined,
  now: Date,
): { needsRollback: false } | { needsRollback: true; reason: string; rollback?: string } {
  const rollback = action?.escalation?.rollback;
  const withRollback = (reason: string) => ({ needsRollback: true as const, reason, ...(rollback ? { rollback } : {}) });
  if (run.state === 'failed') return withRollback(`"${run.actionId}" failed${run.conclusion ? ` (${run.conclusion})` : ''}`);
  if (run.state === 'timedOut') return withRollback(`"${run.actionId}" ran past its time limit`);
  const limit = action?.escalation?.timeLimitMinutes;
  if ((run.state === 'running' || run.state === 'requested') && limit && run.startedAt) {
    const minutes = (now.getTime() - Date.parse(run.startedAt)) / 60_000;
    if (minutes > limit) return withRollback(`"${run.actionId}" is still running after ${Math.floor(minutes)} minutes (limit ${limit})`);
  }
  return { needsRollback: false };
}
