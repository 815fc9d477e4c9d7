import { randomUUID } from 'node:crypto';
import { EFFECTS, type DecisionRecord, type Effect, type MatchedRule } from '../decision';
import type { Evidence, EvidenceField, FileChange, Flag, TaskEvidence } from '../evidence';
import { GlobIndex } from './globs';
import { refForOrigin, type EffectivePolicy, type PolicyOrigin } from './merge';
import { autonomyLimit, classifyChange, rolloutLimit, rolloutRefusal, stricterLimit, type RolloutStep } from './rollout';
import type { ChangeOutcome } from '../metrics/trackRecord';
import { FLAG_CONDITION, type StopCondition } from './schema';

/** Everything policy is asked about: three gates between lanes and each side effect. */
export const POLICY_ACTIONS = [
  'gate.draftToSandbox',
  'gate.sandboxToReview',
  'gate.reviewToPullRequest',
  'createDraft',
  'startAgent',
  'agentCall',
  'runTask',
  'push',
  'createPullRequest',
] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

export const ACTION_LABELS: Readonly<Record<PolicyAction, string>> = Object.freeze({
  'gate.draftToSandbox': 'Draft → Sandbox',
  'gate.sandboxToReview': 'Sandbox → Review',
  'gate.reviewToPullRequest': 'Review → Pull request',
  createDraft: 'create a draft',
  startAgent: 'start an agent',
  agentCall: "an agent's call to the lanes",
  runTask: 'run a sandbox task',
  push: 'push the change',
  createPullRequest: 'create a pull request',
});

/** Only what evaluation reads of a file; a FileChange fits. */
type FileFact = Pick<FileChange, 'path' | 'additions' | 'deletions'> & Partial<Pick<FileChange, 'oldPath' | 'status' | 'binary'>>;
/** Only what evaluation reads of a task run; a TaskEvidence fits. */
type TaskFact = Pick<TaskEvidence, 'id' | 'outcome'> & Partial<Pick<TaskEvidence, 'required' | 'isolation' | 'networkMode' | 'command'>>;
type FlagFact = Pick<Flag, 'kind'> & Partial<Pick<Flag, 'path' | 'detail'>>;

interface ApprovalFact {
  by: string;
  /** The approver is the change's author (counts for nothing when self-approval is forbidden). */
  isAuthor?: boolean;
}

/**
 * What policy knows about a change when it decides. Fields a given action
 * does not need may be left out; a field an action needs and that is missing
 * (the files for a gate, say) blocks, rather than passing unchecked.
 */
export interface ChangeFacts {
  changeId?: string;
  agentId?: string;
  files?: readonly FileFact[];
  flags?: readonly FlagFact[];
  tasks?: readonly TaskFact[];
  /** The evidence fields the change's evidence has. */
  evidence?: readonly EvidenceField[];
  approvals?: readonly ApprovalFact[];
  baseBranch?: string;
  /** Who asked for the change (the person, not the agent). */
  author?: string;
  /** The sandbox the tasks run (or will run) in. */
  isolation?: 'container' | 'process';
  /** For createPullRequest: whether the pull request would be a draft. */
  pullRequestDraft?: boolean;
  /** The checkout's file system ignores case (macOS, Windows): globs then match paths in any case. */
  caseInsensitivePaths?: boolean;
  /** The task class the person chose at New Draft. */
  taskClass?: string;
  /** The task the person wrote (task classes are assigned by its words). */
  task?: string;
  /** owner/repo of the change's GitHub repository, when known (rollout entries name repositories). */
  repository?: string;
  /** Each task class's ended changes, newest first, from the audit log (autonomy rules read them). */
  track?: Readonly<Record<string, readonly ChangeOutcome[]>>;
}

const GATES_AND_PUBLISHING = new Set<PolicyAction>([
  'gate.draftToSandbox',
  'gate.sandboxToReview',
  'gate.reviewToPullRequest',
  'push',
  'createPullRequest',
]);
const AFTER_SANDBOX = new Set<PolicyAction>(['gate.sandboxToReview', 'gate.reviewToPullRequest', 'push', 'createPullRequest']);
const AFTER_REVIEW = new Set<PolicyAction>(['gate.reviewToPullRequest', 'push', 'createPullRequest']);
const DRAFT_ACTIONS = new Set<PolicyAction>(['createDraft', 'startAgent', 'agentCall']);

/** The step of a rollout mode (rollout.ts) each action is. */
const ROLLOUT_STEP: Partial<Record<PolicyAction, RolloutStep>> = {
  'gate.draftToSandbox': 'toSandbox',
  'gate.sandboxToReview': 'toSandbox',
  'gate.reviewToPullRequest': 'approve',
  push: 'publish',
  createPullRequest: 'publish',
};

/** Whether evaluating this action can read the task classes' track records (rollout and autonomy apply to it). */
export function readsTrackRecord(action: PolicyAction): boolean {
  return ROLLOUT_STEP[action] !== undefined;
}

const KILL_SWITCH: Record<PolicyAction, { field: 'disableDrafts' | 'disableSandbox' | 'disablePullRequests'; words: string } | undefined> =
  {
    createDraft: { field: 'disableDrafts', words: 'new drafts' },
    startAgent: { field: 'disableDrafts', words: 'agent runs' },
    agentCall: { field: 'disableDrafts', words: 'agent runs' },
    runTask: { field: 'disableSandbox', words: 'sandbox runs' },
    'gate.draftToSandbox': { field: 'disableSandbox', words: 'sandbox runs' },
    'gate.sandboxToReview': undefined,
    'gate.reviewToPullRequest': { field: 'disablePullRequests', words: 'pull requests' },
    push: { field: 'disablePullRequests', words: 'pushes and pull requests' },
    createPullRequest: { field: 'disablePullRequests', words: 'pull requests' },
  };

const CONDITION_WORDS: Record<StopCondition, string> = {
  failedRequiredTask: 'a required task did not pass',
  missingEvidence: 'required evidence is missing',
  blastRadius: 'the change is larger than the policy allows',
  forbiddenPath: 'a path no agent may write',
  secretLike: 'secret-like content',
  sensitivePath: 'a security-sensitive path',
  newDependency: 'a new dependency',
  gitlink: 'a submodule (gitlink) change',
  oversizedFile: 'an oversized file',
  binaryFile: 'a binary file',
  unusualScope: 'an unusual scope',
  sandboxConfigEdited: 'the sandbox configuration was edited',
  policyFileEdited: 'the policy file was edited',
  agentInstructionsEdited: 'agent instructions were edited',
  executesLater: 'a file that runs code later (editor tasks, hooks, package scripts, an executable bit) was changed',
  checkoutTouched: "the user's own checkout was written",
  testsDoNotExercise: 'the tests do not exercise the change',
  unbackedClaim: "the agent's claim about its tests is contradicted by the sandbox's run",
  unconfined: 'the agent ran without an isolation boundary',
};

const MAX_PATHS_IN_RECORD = 50;

interface PathRulePayload {
  index: number;
  level: PolicyOrigin;
  /** Position in its own level's document, for rule names a policy author recognises. */
  localIndex: number;
}

interface CompiledPolicy {
  pathRules: GlobIndex<PathRulePayload>;
  sensitivePaths: GlobIndex<number>;
  reviewers: GlobIndex<number>;
}

const compiledCache = new WeakMap<EffectivePolicy, CompiledPolicy>();
const compiledIgnoringCase = new WeakMap<EffectivePolicy, CompiledPolicy>();
/** By content (policy hash, the level of each path rule, case rule), for an equal policy merged again. */
const compiledByContent = new Map<string, CompiledPolicy>();
const CONTENT_CACHE_SIZE = 8;

/** Builds (once per effective policy and case rule) the glob indexes evaluation uses. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function compilePolicy(effective: EffectivePolicy, caseInsensitive = false): CompiledPolicy {
  const cache = caseInsensitive ? compiledIgnoringCase : compiledCache;
  const cached = cache.get(effective);
  if (cached) return cached;
  // The same policy merged again (a refresh that changed nothing) is the same content: reuse its indexes.
  const levels = effective.policy.pathRules.map((_, index) => effective.origins[`pathRules[${index}]`] ?? 'default').join(',');
  const contentKey = `${caseInsensitive ? 'i' : 'c'}:${effective.policyHash}:${levels}`;
  const sameContent = compiledByContent.get(contentKey);
  if (sameContent) {
    cache.set(effective, sameContent);
    return sameContent;
  }
  const options = { caseInsensitive };
  const pathRules = new GlobIndex<PathRulePayload>(options);
  const perLevel = new Map<PolicyOrigin, number>();
  effective.policy.pathRules.forEach((rule, index) => {
    const level = effective.origins[`pathRules[${index}]`] ?? 'default';
    const localIndex = perLevel.get(level) ?? 0;
    perLevel.set(level, localIndex + 1);
    pathRules.add(rule.glob, { index, level, localIndex });
  });
  const sensitivePaths = new GlobIndex<number>(options);
  effective.policy.sensitivePaths.forEach((glob, index) => sensitivePaths.add(glob, index));
  const reviewers = new GlobIndex<number>(options);
  effective.policy.lanes.approvals.sensitivePathReviewers.forEach((entry, index) => reviewers.add(entry.glob, index));
  const compiled = { pathRules, sensitivePaths, reviewers };
  cache.set(effective, compiled);
  if (compiledByContent.size >= CONTENT_CACHE_SIZE) compiledByContent.clear();
  compiledByContent.set(contentKey, compiled);
  return compiled;
}

interface Finding extends MatchedRule {
  /** Deferred: needs approval, which is given in review. */
  approvable: boolean;
}

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();
const listPaths = (paths: readonly string[], max = 3): string =>
  paths.length <= max ? paths.join(', ') : `${paths.slice(0, max).join(', ')} and ${paths.length - max} more`;
const sameName = (a: string, b: string): boolean => a.localeCompare(b, undefined, { sensitivity: 'accent' }) === 0;

/**
 * Decides one action for one change against the effective policy. Pure: the
 * same inputs give the same effect, rules and explanation (only the id and
 * time differ). The record says what happens now: `allow` lets the action
 * proceed, `requireApproval` waits for the approvals it names, `block` stops
 * it. Before review, rules that need approval do not stop a change (review is
 * where approval is given); they are listed so the reviewer sees them coming.
 */
export function evaluate(effective: EffectivePolicy, facts: ChangeFacts, action: PolicyAction, now: Date = new Date()): DecisionRecord {
  const policy = effective.policy;
  const findings: Finding[] = [];
  const refOf = (field: string): string => refForOrigin(effective, effective.origins[field]);
  const add: Add = (rule, effect, reason, policyRef, paths, approvable = effect === 'requireApproval') => {
    if (effect === 'allow') return;
    findings.push({
      policy: policyRef,
      rule,
      effect,
      reason: oneLine(reason),
      ...(paths && paths.length ? { paths: paths.slice(0, MAX_PATHS_IN_RECORD) } : {}),
      approvable,
    });
  };
  const condition = (name: StopCondition, rule: string, reason: string, policyRef: string, paths?: readonly string[]): void =>
    add(rule, policy.stopConditions[name], reason, policyRef, paths);

  // Kill switch: before everything, whatever else the change is.
  const kill = KILL_SWITCH[action];
  if (kill && policy.killSwitch[kill.field]) {
    const message = policy.killSwitch.message ? `: ${policy.killSwitch.message}` : '';
    add(`killSwitch.${kill.field}`, 'block', `the kill switch has stopped ${kill.words}${message}`, refOf(`killSwitch.${kill.field}`));
  }

  // An expired policy permits drafts only, as when no policy can be fetched.
  if (!DRAFT_ACTIONS.has(action)) {
    for (const layer of effective.layers) {
      if (layer.expiresAt && Date.parse(layer.expiresAt) <= now.getTime()) {
        add(
          'metadata.expiresAt',
          'block',
          `policy ${layer.policyRef} expired at ${layer.expiresAt}; only drafts are allowed until a current policy is published`,
          layer.policyRef,
        );
      }
    }
  }

  const allowedAgents = policy.lanes.allowedAgents;
  if (allowedAgents) {
    if (!facts.agentId)
      add(
        'lanes.allowedAgents',
        'block',
        `the change's agent is not known, and the policy allows only ${allowedAgents.join(', ') || 'no agent'}`,
        refOf('lanes.allowedAgents'),
      );
    else if (!allowedAgents.includes(facts.agentId)) {
      add(
        'lanes.allowedAgents',
        'block',
        `agent "${facts.agentId}" is not allowed (allowed: ${allowedAgents.join(', ') || 'none'})`,
        refOf('lanes.allowedAgents'),
      );
    }
  }

  if (policy.lanes.sandbox.processSandbox === 'forbidden') {
    const processTasks = AFTER_SANDBOX.has(action)
      ? (facts.tasks ?? []).filter((task) => task.isolation === 'process').map((task) => task.id)
      : [];
    if ((action === 'runTask' || action === 'gate.draftToSandbox') && facts.isolation === 'process') {
      add(
        'lanes.sandbox.processSandbox',
        'block',
        'tasks must run in a dev container; a process sandbox is forbidden',
        refOf('lanes.sandbox.processSandbox'),
      );
    } else if (processTasks.length) {
      add(
        'lanes.sandbox.processSandbox',
        'block',
        `tasks ${processTasks.join(', ')} ran in a process sandbox, which the policy forbids; run them in a dev container`,
        refOf('lanes.sandbox.processSandbox'),
      );
    }
  }

  const step = ROLLOUT_STEP[action];
  if (step && (policy.rollout.length || policy.autonomy.length)) {
    const paths = facts.files?.map((file) => file.path);
    const classes = classifyChange(policy, {
      ...(facts.taskClass ? { chosen: facts.taskClass } : {}),
      ...(facts.task ? { task: facts.task } : {}),
      ...(paths ? { paths } : {}),
      ...(facts.caseInsensitivePaths ? { caseInsensitivePaths: true } : {}),
    });
    const subject = {
      classes,
      ...(facts.repository ? { repository: facts.repository } : {}),
      ...(facts.track ? { track: facts.track } : {}),
    };
    const limit = stricterLimit(rolloutLimit(effective, subject), autonomyLimit(effective, subject));
    const refusal = rolloutRefusal(limit, step === 'publish' && facts.pullRequestDraft === false ? 'readyPullRequest' : step);
    if (limit && refusal) add(limit.rule, 'block', `${refusal}; task class: ${classes.join(', ')}`, refForOrigin(effective, limit.level));
    else if (limit?.autonomy?.earned)
      // Earned: the record says which figures let the change through.
      findings.push({
        policy: refForOrigin(effective, limit.level),
        rule: limit.rule,
        effect: 'allow',
        reason: oneLine(`${limit.scope} earned ${limit.mode}: ${limit.autonomy.figures}`),
        approvable: false,
      });
  }

  if (GATES_AND_PUBLISHING.has(action)) {
    if (!facts.files) {
      add(
        'facts.files',
        'block',
        "the change's files are not known (no diff analysis); analyse the change before this step",
        effective.policyRef,
      );
    } else {
      checkPaths(effective, facts.files, add, condition, facts.caseInsensitivePaths);
      checkBlastRadius(effective, facts.files, condition, refOf);
    }
    checkFlags(facts.flags ?? [], condition, refOf);
  }

  if (AFTER_SANDBOX.has(action)) {
    checkTasks(effective, facts.tasks ?? [], condition, add, refOf);
    const present = new Set(facts.evidence ?? []);
    const required = policy.lanes.evidence.required;
    const missing = required.filter((field) => !present.has(field));
    if (missing.length) {
      const origin = `lanes.evidence.required[${required.indexOf(missing[0]!)}]`;
      condition('missingEvidence', 'lanes.evidence.required', `required evidence is missing: ${missing.join(', ')}`, refOf(origin));
    }
  }

  let approvedBy: string[] = [];
  if (AFTER_REVIEW.has(action)) {
    const branches = policy.lanes.pullRequests.allowedBaseBranches;
    if (branches && (!facts.baseBranch || !branches.includes(facts.baseBranch))) {
      const which = facts.baseBranch ? `base branch "${facts.baseBranch}" is not allowed` : 'the base branch is not known';
      add(
        'lanes.pullRequests.allowedBaseBranches',
        'block',
        `${which} (allowed: ${branches.join(', ') || 'none'})`,
        refOf('lanes.pullRequests.allowedBaseBranches'),
      );
    }
    if (action === 'createPullRequest' && policy.lanes.pullRequests.draftOnly && facts.pullRequestDraft === false) {
      add('lanes.pullRequests.draftOnly', 'block', 'pull requests must be opened as drafts', refOf('lanes.pullRequests.draftOnly'));
    }
    approvedBy = checkApprovals(effective, facts, findings, add, refOf);
  }

  // Strictest first; Array.prototype.sort is stable, so each effect keeps the order found.
  findings.sort((a, b) => EFFECT_RANK(b.effect) - EFFECT_RANK(a.effect));
  const matchedRules: MatchedRule[] = findings.map(({ approvable: _approvable, ...rule }) => rule);
  const blocks = findings.filter((finding) => finding.effect === 'block');
  const pending = findings.filter((finding) => finding.effect === 'requireApproval');
  const label = ACTION_LABELS[action];
  let effect: Effect;
  let explanation: string;
  if (blocks.length) {
    effect = 'block';
    explanation = `Blocked: ${label}: ${blocks[0]!.reason}${more(blocks.length)}`;
  } else if (pending.length && AFTER_REVIEW.has(action) && pending.some((finding) => !finding.approvable)) {
    effect = 'requireApproval';
    const unmet = pending.filter((finding) => !finding.approvable);
    explanation = `Needs approval: ${label}: ${unmet[0]!.reason}${more(unmet.length)}`;
  } else if (pending.length && AFTER_REVIEW.has(action)) {
    effect = 'allow';
    explanation = `Allowed: ${label}; approved by ${approvedBy.join(', ')} for: ${pending[0]!.reason}${more(pending.length)}`;
  } else if (pending.length) {
    effect = 'allow';
    explanation = `Allowed: ${label}; review will need approval for: ${pending[0]!.reason}${more(pending.length)}`;
  } else {
    effect = 'allow';
    explanation = `Allowed: ${label}; no rule of ${effective.policyRef}${effective.layers.length > 1 ? ' or its overlays' : ''} restricts it`;
  }
  return {
    decisionId: randomUUID(),
    at: now.toISOString(),
    action,
    subject: facts.changeId ?? (DRAFT_ACTIONS.has(action) ? 'new draft' : 'change'),
    effect,
    matchedRules,
    explanation: oneLine(explanation),
    policyHash: effective.policyHash,
  };
}

/**
 * A decision made without evaluating rules: when there is no valid policy to
 * evaluate (fail closed, an invalid repository policy or user setting).
 */
export function blockDecision(
  action: PolicyAction,
  facts: ChangeFacts,
  rule: MatchedRule,
  now: Date = new Date(),
  policyHash?: string,
): DecisionRecord {
  return {
    decisionId: randomUUID(),
    at: now.toISOString(),
    action,
    subject: facts.changeId ?? (DRAFT_ACTIONS.has(action) ? 'new draft' : 'change'),
    effect: 'block',
    matchedRules: [{ ...rule, effect: 'block', reason: oneLine(rule.reason ?? '') }],
    explanation: oneLine(`Blocked: ${ACTION_LABELS[action]}: ${rule.reason ?? rule.rule}`),
    ...(policyHash ? { policyHash } : {}),
  };
}

/** Actions allowed while the org policy is unavailable: only work that stays in a local draft. */
export function isDraftAction(action: PolicyAction): boolean {
  return DRAFT_ACTIONS.has(action);
}

function more(count: number): string {
  return count > 1 ? ` (and ${count - 1} more reason${count > 2 ? 's' : ''})` : '';
}

/** `approvable`: an approval in review satisfies it (false for the approval requirements themselves). */
type Add = (rule: string, effect: Effect, reason: string, policyRef: string, paths?: readonly string[], approvable?: boolean) => void;
type Condition = (name: StopCondition, rule: string, reason: string, policyRef: string, paths?: readonly string[]) => void;
type RefOf = (field: string) => string;

const EFFECT_RANK = (effect: Effect): number => EFFECTS.indexOf(effect);

function checkPaths(effective: EffectivePolicy, files: readonly FileFact[], add: Add, condition: Condition, caseInsensitive = false): void {
  const compiled = compilePolicy(effective, caseInsensitive);
  const rules = effective.policy.pathRules;
  const hits = new Map<number, { payload: PathRulePayload; paths: string[] }>();
  const sensitive: string[] = [];
  let sensitiveIndex = -1;
  const deciders = new Map<PolicyOrigin, PathRulePayload>();
  for (const file of files) {
    const paths = file.oldPath && file.oldPath !== file.path ? [file.path, file.oldPath] : [file.path];
    for (const path of paths) {
      if (compiled.pathRules.count) {
        // Within one level the last matching rule decides (as in CODEOWNERS),
        // so a later rule can carve an exception; across levels the strictest holds.
        deciders.clear();
        for (const match of compiled.pathRules.match(path)) deciders.set(match.level, match);
        for (const decider of deciders.values()) {
          if (rules[decider.index]!.effect === 'allow') continue;
          const hit = hits.get(decider.index);
          if (hit) hit.paths.push(path);
          else hits.set(decider.index, { payload: decider, paths: [path] });
        }
      }
      if (compiled.sensitivePaths.count) {
        const matched = compiled.sensitivePaths.match(path);
        if (matched.length) {
          sensitive.push(path);
          if (sensitiveIndex < 0) sensitiveIndex = matched[0]!;
        }
      }
    }
  }
  const ordered = [...hits.entries()].sort(([a], [b]) => EFFECT_RANK(rules[b]!.effect) - EFFECT_RANK(rules[a]!.effect) || a - b);
  for (const [index, { payload, paths }] of ordered) {
    const rule = rules[index]!;
    const verb = paths.length === 1 ? 'matches' : 'match';
    add(
      `pathRules[${payload.localIndex}] ${JSON.stringify(rule.glob)}`,
      rule.effect,
      `${listPaths(paths)} ${verb} "${rule.glob}": ${rule.reason}`,
      refForOrigin(effective, payload.level),
      paths,
    );
  }
  if (sensitive.length) {
    const origin = effective.origins[`sensitivePaths[${sensitiveIndex}]`];
    condition(
      'sensitivePath',
      'sensitivePaths',
      `${listPaths(sensitive)}: ${CONDITION_WORDS.sensitivePath}`,
      refForOrigin(effective, origin),
      sensitive,
    );
  }
}

function checkBlastRadius(effective: EffectivePolicy, files: readonly FileFact[], condition: Condition, refOf: RefOf): void {
  const { maxFiles, maxChangedLines } = effective.policy.blastRadius;
  if (maxFiles !== undefined && files.length > maxFiles) {
    condition(
      'blastRadius',
      'blastRadius.maxFiles',
      `${files.length} files changed; the limit is ${maxFiles}`,
      refOf('blastRadius.maxFiles'),
    );
  }
  if (maxChangedLines !== undefined) {
    let lines = 0;
    for (const file of files) lines += file.additions + file.deletions;
    if (lines > maxChangedLines)
      condition(
        'blastRadius',
        'blastRadius.maxChangedLines',
        `${lines} lines changed; the limit is ${maxChangedLines}`,
        refOf('blastRadius.maxChangedLines'),
      );
  }
}

function checkFlags(flags: readonly FlagFact[], condition: Condition, refOf: RefOf): void {
  const groups = new Map<StopCondition, FlagFact[]>();
  for (const flag of flags) {
    const name = FLAG_CONDITION[flag.kind];
    if (!name) continue;
    const list = groups.get(name);
    if (list) list.push(flag);
    else groups.set(name, [flag]);
  }
  for (const [name, group] of groups) {
    const paths = group.map((flag) => flag.path).filter((path): path is string => !!path);
    const details = group.map((flag) => flag.detail).filter((detail): detail is string => !!detail);
    const what = paths.length ? listPaths(paths) : details.length ? details[0]! : group[0]!.kind;
    condition(name, `stopConditions.${name}`, `${CONDITION_WORDS[name]}: ${what}`, refOf(`stopConditions.${name}`), paths);
  }
}

function checkTasks(effective: EffectivePolicy, tasks: readonly TaskFact[], condition: Condition, add: Add, refOf: RefOf): void {
  const byId = new Map(tasks.map((task) => [task.id, task]));
  const problems: string[] = [];
  const required = effective.policy.lanes.sandbox.requiredTasks;
  // The matched rule names the policy that required the first task that did not pass.
  let firstFailing = -1;
  required.forEach((task, index) => {
    const run = byId.get(task.id);
    if (run?.outcome === 'passed') return;
    problems.push(run ? `${task.id} ${run.outcome === 'failed' ? 'failed' : `ended ${run.outcome}`}` : `${task.id} was not run`);
    if (firstFailing < 0) firstFailing = index;
  });
  for (const run of tasks) {
    if (run.required && run.outcome !== 'passed' && !required.some((task) => task.id === run.id))
      problems.push(`${run.id} ${run.outcome === 'failed' ? 'failed' : `ended ${run.outcome}`}`);
  }
  const origin = firstFailing >= 0 ? `lanes.sandbox.requiredTasks[${firstFailing}]` : 'stopConditions.failedRequiredTask';
  if (problems.length)
    condition('failedRequiredTask', 'lanes.sandbox.requiredTasks', `required task ${problems.join('; ')}`, refOf(origin));
  if (effective.policy.lanes.sandbox.network.tasks === 'none') {
    const networked = tasks
      .filter((task) => task.networkMode !== undefined && task.networkMode !== 'none')
      .map((task) => `${task.id} (${task.networkMode})`);
    if (networked.length) {
      add(
        'lanes.sandbox.network.tasks',
        'block',
        `tasks ran with network access, which the policy forbids: ${networked.join(', ')}`,
        refOf('lanes.sandbox.network.tasks'),
      );
    }
  }
}

/** Adds what approval is still missing; returns who approved (counting ones only). */
function checkApprovals(effective: EffectivePolicy, facts: ChangeFacts, findings: readonly Finding[], add: Add, refOf: RefOf): string[] {
  const approvals = effective.policy.lanes.approvals;
  const approvers: string[] = [];
  let selfApprovals = 0;
  for (const approval of facts.approvals ?? []) {
    const isSelf = approval.isAuthor === true || (facts.author !== undefined && sameName(approval.by, facts.author));
    if (approvals.forbidSelfApproval && isSelf) {
      selfApprovals++;
      continue;
    }
    if (!approvers.some((name) => sameName(name, approval.by))) approvers.push(approval.by);
  }
  const approvableRules = findings.some((finding) => finding.approvable);
  const needed = Math.max(approvals.minApprovals, approvableRules ? 1 : 0);
  if (approvers.length < needed) {
    const selfNote = selfApprovals ? `; the author's own approval does not count` : '';
    add(
      'lanes.approvals.minApprovals',
      'requireApproval',
      `needs ${needed} approval${needed === 1 ? '' : 's'}, has ${approvers.length}${selfNote}`,
      refOf('lanes.approvals.minApprovals'),
      undefined,
      false,
    );
  }
  const compiled = compilePolicy(effective, facts.caseInsensitivePaths);
  if (compiled.reviewers.count && facts.files) {
    const matched = new Map<number, string[]>();
    for (const file of facts.files) {
      for (const path of file.oldPath && file.oldPath !== file.path ? [file.path, file.oldPath] : [file.path]) {
        for (const index of compiled.reviewers.match(path)) {
          const list = matched.get(index);
          if (list) list.push(path);
          else matched.set(index, [path]);
        }
      }
    }
    for (const [index, paths] of matched) {
      const entry = approvals.sensitivePathReviewers[index]!;
      if (approvers.some((name) => entry.reviewers.some((reviewer) => sameName(reviewer, name)))) continue;
      add(
        `lanes.approvals.sensitivePathReviewers[${index}] ${JSON.stringify(entry.glob)}`,
        'requireApproval',
        `${listPaths(paths)} needs approval from one of: ${entry.reviewers.join(', ')}`,
        refOf(`lanes.approvals.sensitivePathReviewers[${index}]`),
        paths,
        false,
      );
    }
  }
  return approvers;
}

/** The evidence fields an evidence record has, as policy names them. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function presentEvidenceFields(evidence: Evidence): EvidenceField[] {
  const present: EvidenceField[] = [];
  const report = evidence.agentReport;
  if (evidence.diff) present.push('filesTouched', 'flags');
  if (evidence.tasks.length) present.push('tests');
  if (evidence.tasks.some((task) => task.failsOnBase !== null)) present.push('failsWithoutChange');
  if (report?.assumptions?.length) present.push('assumptions');
  if (report?.confidenceLimits?.length) present.push('confidenceLimits');
  if (report?.summary?.trim()) present.push('summary');
  if (evidence.prompt.ref) present.push('prompt');
  if (evidence.agent.id) present.push('agent');
  if (evidence.base.sha && evidence.headSha) present.push('baseAndHead');
  if (evidence.decisions.length) present.push('policyDecisions');
  return present;
}

/** Facts from a change's evidence; `extras` adds what evidence does not hold (approvals, base branch, author...). */
export function factsFromEvidence(evidence: Evidence, extras: Partial<ChangeFacts> = {}): ChangeFacts {
  return {
    changeId: evidence.changeId,
    agentId: evidence.agent.id,
    ...(evidence.diff ? { files: evidence.diff.files } : {}),
    flags: evidence.flags,
    tasks: evidence.tasks,
    evidence: presentEvidenceFields(evidence),
    ...extras,
  };
}
