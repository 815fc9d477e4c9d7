import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Actor, type Change, type ChangeStatus, LANE_LABELS, type SandboxSummary } from '../../../core/change';
import type { Disposable } from '../../../core/events';
import type { BaseRunEvidence, Evidence, PreparationEvidence, TaskEvidence } from '../../../core/evidence';
import { transition } from '../../../core/lanes';
import type { PolicyAction } from '../../../core/policy/evaluate';
import { compileSecretPatterns, type SecretPattern } from '../../../core/redaction';
import { agentClaims, checkClaims, unbackedClaimFlags } from '../../../core/sandbox/agentClaims';
import {
  applyBaseResults,
  type BaseOverlay,
  baseOverlay,
  changeTouchesTests,
  testsDoNotExerciseFlags,
} from '../../../core/sandbox/baseRun';
import { checkDevcontainer, describeRefusals } from '../../../core/sandbox/devcontainerCheck';
import { LanesConfigError, mergeTasks, type ResolvedTask } from '../../../core/sandbox/lanesConfig';
import { type SandboxPolicy, sandboxPolicyFrom } from '../../../core/sandbox/sandboxPolicy';
import { OPTIONAL_FAILED, sandboxVerdict } from '../../../core/sandbox/verdict';
import { git } from '../../git/gitProcess';
import { PolicyDeniedError } from '../../policy/policyService';
import { readSandboxSource } from '../../sandbox/baseSource';
import { type ContainerSandbox, type SandboxContainer, sandboxStateDir } from '../../sandbox/containerSandbox';
import { checkComposeSource } from '../../sandbox/composeSandbox';
import type { EngineSetting } from '../../sandbox/engine';
import { type SandboxSelection, selectSandbox } from '../../sandbox/selectSandbox';
import { runTaskSequence, skippedTask } from '../../sandbox/taskRun';
import type { BaseRunner } from '../../sandbox/baseWorktree';
import {
  type BaseRunResult,
  type PreparedSandbox,
  SandboxError,
  type SandboxProgress,
  type SandboxSource,
  type TaskSandbox,
} from '../../sandbox/types';
import { DEFAULT_TASK_TIMEOUT_SECONDS, EXTENSION_ACTOR } from '../../../core/constants';
import { LaneError } from '../../../core/errors';
import { type LaneContext, changeFacts, decide, moveChange } from '../laneContext';

/** The settings the Sandbox lane reads (the editor passes them in; this layer never reads VS Code). */
export interface SandboxSettings {
  /** agentLanes.sandbox.containerEngine */
  engine: EngineSetting;
  /** agentLanes.sandbox.defaultImage */
  defaultImage: string;
  /** agentLanes.sandbox.devcontainerCliPath (empty: the development install or PATH) */
  devcontainerCliPath?: string;
  /** The extension's folder (its node_modules/.bin/devcontainer is used in development). */
  extensionRoot?: string;
}

export interface SandboxLaneOptions {
  /** Read at every run, so changed settings apply to the next run. */
  settings: SandboxSettings | (() => SandboxSettings);
  /** Test hook: the time limit of `devcontainer up`. */
  upTimeoutMs?: number;
}

/** What the lane reports while it runs: the sandbox's own progress, plus its moves and the base run. */
export type SandboxLaneProgress = SandboxProgress | { kind: 'promoted'; to: ChangeStatus } | { kind: 'baseRun'; tasks: string[] };

export interface SandboxRunHooks {
  signal?: AbortSignal;
  /** Output of the preparation ('prepare'), each task (its id) and the base run ('base:<id>'), redacted. */
  onTaskOutput?: (taskId: string, text: string) => void;
  onProgress?: (progress: SandboxLaneProgress) => void;
}

export interface SandboxRunOutcome {
  change: Change;
  verdict: 'passed' | 'failed' | 'error';
  /** True when the run moved the change on to Review. */
  promoted: boolean;
  tasks: TaskEvidence[];
  preparation?: PreparationEvidence;
  isolation?: 'container' | 'process';
  /** One line for the person: what happened and what to do. */
  message: string;
  /** Why the change did not move to Review although its tasks passed (a policy gate), if so. */
  blockedBy?: string;
  /** Said once: e.g. the lesser process sandbox was used. */
  notice?: string;
}

/** What a run of a change's tasks needs, read from its base commit. */
interface SandboxPlan {
  source: SandboxSource;
  tasks: ResolvedTask[];
  mergeNotes: string[];
  sandboxPolicy: SandboxPolicy;
  patterns: SecretPattern[];
  sandbox: TaskSandbox;
  isolation: 'container' | 'process';
  notice: string | undefined;
}

/** A trial run of a draft's tasks (runDraftTasks): nothing moved, nothing recorded but the audit. */
export interface DraftTasksOutcome {
  tasks: TaskEvidence[];
  isolation?: 'container' | 'process';
  /** Why the run stopped short (no sandbox, policy, a failed preparation); the tasks not run are skipped with it. */
  stop?: string;
  notice?: string;
}

/** A sandbox container of this repository that no open change needs any more. */
export interface SandboxOrphan {
  container: SandboxContainer;
  changeId: string;
  reason: string;
}

/** A request the lane refuses before doing anything; the message says what to do. */
export class SandboxInputError extends LaneError {
  constructor(message: string) {
    super('sandboxInput', message);
  }
}

/**
 * The short text the Lanes view shows for a change's sandbox verdict:
 * "tasks passed", "unit failed", "tasks running", "sandbox error"...
 */
export function describeSandboxVerdict(summary: SandboxSummary | undefined): string | undefined {
  if (!summary) return undefined;
  switch (summary.verdict) {
    case 'running':
      return 'tasks running';
    case 'passed': {
      const optional = summary.message?.includes(OPTIONAL_FAILED)
        ? summary.message.slice(summary.message.indexOf(OPTIONAL_FAILED) + OPTIONAL_FAILED.length).replace(/\.$/, '')
        : '';
      return optional ? `tasks passed · ${optional} failed (not required)` : 'tasks passed';
    }
    case 'failed':
      return summary.failedTasks.length ? `${summary.failedTasks.join(', ')} failed` : 'tasks failed';
    case 'error':
      return /cancel/i.test(summary.message ?? '') ? 'sandbox cancelled' : 'sandbox error';
  }
}

/**
 * The Sandbox lane for one repository: promotes a finished draft through the
 * Draft → Sandbox gate, runs the required tasks in the change's dev container
 * (or, when policy allows and there is no engine, the process sandbox), runs
 * the test tasks on the base commit when the change touches tests, records
 * evidence and audit, and promotes to Review when every required task passed
 * and the Sandbox → Review gate allows it. What decides the sandbox
 * (devcontainer.json, `.lanes/lanes.yaml`, the repository's policy) is read
 * from the change's base commit. Policy is asked before every side effect.
 */
export class SandboxLane implements Disposable {
  private readonly running = new Map<string, AbortController>();
  private cached: { key: string; selection: Promise<SandboxSelection> } | undefined;
  private readonly lanes = new Map<string, ChangeStatus>();
  private readonly subscriptions: Disposable[] = [];
  private readonly cleanups = new Set<Promise<unknown>>();

  constructor(
    private readonly ctx: LaneContext,
    private readonly options: SandboxLaneOptions,
  ) {
    for (const change of ctx.store.all()) this.lanes.set(change.id, change.lane);
    // Whatever closes a change (discard, reject, its pull request merged or closed) takes its containers with it.
    this.subscriptions.push(ctx.store.onDidChange((change) => this.onChangeStored(change)));
  }

  get stateDir(): string {
    return sandboxStateDir(this.ctx.storage.root);
  }

  isRunning(changeId: string): boolean {
    return this.running.has(changeId);
  }

  runningChanges(): string[] {
    return [...this.running.keys()];
  }

  /** "Agent Lanes: Stop Sandbox Tasks": the running task is killed in the container, the rest are skipped. */
  stop(changeId: string): boolean {
    const controller = this.running.get(changeId);
    controller?.abort();
    return controller !== undefined;
  }

  stopAll(): void {
    for (const controller of this.running.values()) controller.abort();
  }

  private settings(): SandboxSettings {
    return typeof this.options.settings === 'function' ? this.options.settings() : this.options.settings;
  }

  /**
   * Runs the change's sandbox tasks. A change in Draft (with commits) is
   * promoted to Sandbox first; a change in Sandbox runs again. Throws
   * SandboxInputError, SandboxError or PolicyDeniedError when nothing could
   * run; otherwise records the verdict and returns it.
   */
  async run(changeId: string, actor: Actor, hooks: SandboxRunHooks = {}): Promise<SandboxRunOutcome> {
    const change = this.ctx.store.get(changeId);
    if (!change) throw new SandboxInputError(`There is no change ${changeId} in this repository.`);
    if (this.running.has(changeId)) {
      throw new SandboxInputError(
        `The sandbox tasks of change ${changeId} are already running; wait for them, or stop them ("Agent Lanes: Stop Sandbox Tasks").`,
      );
    }
    if (change.lane !== 'draft' && change.lane !== 'sandbox') {
      const where = change.lane === 'closed' ? 'closed' : `in ${LANE_LABELS[change.lane]}`;
      throw new SandboxInputError(`Change ${changeId} is ${where}; sandbox tasks run for changes in Draft or Sandbox.`);
    }
    if (change.lane === 'draft') {
      const dryRun = transition(change, 'promote', actor);
      if (!dryRun.ok) throw new SandboxInputError(dryRun.reason);
    }
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    if (hooks.signal?.aborted) controller.abort();
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    // The kill switch stops a run in progress, not only the next one.
    const killSwitch = this.ctx.policy.onDidChangeKillSwitch((event) => {
      if (event.current.disableSandbox || event.current.cancelRunning) controller.abort();
    });
    this.running.set(changeId, controller);
    try {
      return await this.runReserved(change, actor, controller.signal, hooks);
    } finally {
      this.running.delete(changeId);
      killSwitch.dispose();
      hooks.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * "Agent Lanes: Promote" for Draft and Sandbox: a draft runs its sandbox tasks
   * (and moves on to Review when they pass); a change in Sandbox whose tasks
   * passed for its head only asks the Sandbox → Review gate again (a gate
   * that blocked before may allow now); otherwise its tasks run again.
   */
  async promote(changeId: string, actor: Actor, hooks: SandboxRunHooks = {}): Promise<SandboxRunOutcome> {
    const { ctx } = this;
    const change = ctx.store.get(changeId);
    const passed =
      change?.lane === 'sandbox' &&
      change.sandbox?.verdict === 'passed' &&
      (!change.sandbox.headSha || change.sandbox.headSha === change.headSha);
    if (!change || !passed || this.running.has(changeId)) return this.run(changeId, actor, hooks);
    const read = await ctx.evidence.read(changeId);
    const evidence = read.kind === 'ok' ? read.evidence : undefined;
    const outcome = (updated: Change, promoted: boolean, blockedBy?: string): SandboxRunOutcome => ({
      change: updated,
      verdict: 'passed',
      promoted,
      tasks: evidence?.tasks ?? [],
      ...(evidence?.preparation ? { preparation: evidence.preparation } : {}),
      message: promoted
        ? `Change ${changeId}: its sandbox tasks had passed; it moved to Review.`
        : `Change ${changeId} stays in Sandbox: ${blockedBy}`,
      ...(blockedBy ? { blockedBy } : {}),
    });
    try {
      await decide(ctx, 'gate.sandboxToReview', changeFacts(change, evidence), change, actor);
    } catch (error) {
      if (error instanceof PolicyDeniedError) return outcome(ctx.store.get(changeId) ?? change, false, error.decision.explanation);
      throw error;
    }
    const moved = await moveChange(ctx, changeId, 'promote', actor);
    if (!moved.ok) return outcome(ctx.store.get(changeId) ?? change, false, moved.reason);
    hooks.onProgress?.({ kind: 'promoted', to: 'review' });
    return outcome(moved.change, true);
  }

  /**
   * Runs a draft's tasks now, on its worktree as it is (uncommitted edits
   * included), for the agent that works on it (`lanes_run_tasks` on the lane
   * channel): the same tasks, sandbox and redaction as a sandbox run, policy
   * asked (`runTask`) before the run and before each task, each task audited.
   * Nothing moves: the change stays in Draft, its evidence and sandbox verdict
   * are left alone (they belong to the committed head), no base-commit run.
   */
  async runDraftTasks(changeId: string, actor: Actor, hooks: SandboxRunHooks = {}): Promise<DraftTasksOutcome> {
    const { ctx } = this;
    const change = ctx.store.get(changeId);
    if (!change) throw new SandboxInputError(`There is no change ${changeId} in this repository.`);
    if (change.lane !== 'draft')
      throw new SandboxInputError(
        `Change ${changeId} is ${change.lane === 'closed' ? 'closed' : `in ${LANE_LABELS[change.lane]}`}, not in Draft.`,
      );
    if (this.running.has(changeId))
      throw new SandboxInputError(`The sandbox tasks of change ${changeId} are already running; wait for them to finish.`);
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    if (hooks.signal?.aborted) controller.abort();
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    const killSwitch = ctx.policy.onDidChangeKillSwitch((event) => {
      if (event.current.disableSandbox || event.current.cancelRunning) controller.abort();
    });
    this.running.set(changeId, controller);
    try {
      let plan: SandboxPlan;
      try {
        plan = await this.plan(change);
      } catch (error) {
        if (error instanceof SandboxError || error instanceof SandboxInputError) return { tasks: [], stop: error.message };
        throw error;
      }
      const { isolation, sandbox } = plan;
      const skipAll = (reason: string) => plan.tasks.map((task) => skippedTask(task, { isolation, networkMode: 'none' }, reason));
      const outcome = (tasks: TaskEvidence[], stop?: string): DraftTasksOutcome => ({
        tasks,
        isolation,
        ...(stop ? { stop } : {}),
        ...(plan.notice ? { notice: plan.notice } : {}),
      });
      if (plan.tasks.length === 0) return outcome([]);
      const blocked = await this.allowed('runTask', change, actor, isolation, { record: false });
      if (blocked) return outcome(skipAll(`Not run: ${blocked}`), `Policy stopped the run: ${blocked}`);
      let prepared: PreparedSandbox;
      try {
        prepared = await sandbox.prepare({
          changeId,
          worktreePath: change.worktreePath,
          source: plan.source,
          policy: plan.sandboxPolicy,
          role: 'change',
          logDir: ctx.storage.logsDir,
          signal: controller.signal,
          onOutput: hooks.onTaskOutput ? (text) => hooks.onTaskOutput!('prepare', text) : undefined,
          onPreparing: (message) => hooks.onProgress?.({ kind: 'preparing', message }),
        });
      } catch (error) {
        if (!(error instanceof SandboxError)) throw error;
        return outcome(skipAll(`Not run: ${error.message}`), error.message);
      }
      let policyStop: string | undefined;
      const tasks = await runTaskSequence(prepared, plan.tasks, {
        logDir: ctx.storage.logsDir,
        signal: controller.signal,
        redactionPatterns: plan.patterns,
        onTaskOutput: hooks.onTaskOutput,
        onProgress: hooks.onProgress,
        beforeTask: async () => {
          policyStop = await this.allowed('runTask', ctx.store.get(changeId) ?? change, actor, isolation, { record: false });
          return policyStop && `Not run: ${policyStop}`;
        },
        afterTask: async (task) => {
          await this.auditTask(changeId, task, { draft: true });
        },
      });
      return outcome(tasks, policyStop ? `Policy stopped the run: ${policyStop}` : undefined);
    } finally {
      this.running.delete(changeId);
      killSwitch.dispose();
      hooks.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async auditTask(changeId: string, task: TaskEvidence, extra: Record<string, unknown> = {}): Promise<void> {
    await this.ctx.audit.append({
      actor: EXTENSION_ACTOR,
      action: 'task.run',
      changeId,
      details: {
        id: task.id,
        outcome: task.outcome,
        exitCode: task.exitCode,
        durationMs: Math.round(task.durationMs),
        networkMode: task.networkMode,
        logDigest: task.logDigest,
        isolation: task.isolation,
        required: task.required,
        ...extra,
      },
    });
  }

  private async runReserved(change: Change, actor: Actor, signal: AbortSignal, hooks: SandboxRunHooks): Promise<SandboxRunOutcome> {
    const { ctx } = this;
    const changeId = change.id;
    const read = await ctx.evidence.read(changeId);
    if (read.kind !== 'ok') {
      throw new SandboxInputError(
        read.kind === 'missing'
          ? `Change ${changeId} has no evidence record, so its sandbox run could not be recorded. Finish its draft first ("Agent Lanes: Finish Draft").`
          : `${read.message} Its sandbox run could not be recorded.`,
      );
    }
    const evidence = read.evidence;
    await this.checkWorktree(change);

    const { source, tasks, mergeNotes, sandboxPolicy, patterns, sandbox, isolation, notice } = await this.plan(change);

    let current = change;
    if (change.lane === 'draft') {
      await decide(ctx, 'gate.draftToSandbox', changeFacts(change, evidence, { isolation }), change, actor);
      const moved = await moveChange(ctx, changeId, 'promote', actor);
      if (!moved.ok) throw new SandboxInputError(moved.reason);
      current = moved.change;
      hooks.onProgress?.({ kind: 'promoted', to: 'sandbox' });
    }
    const headSha = current.headSha;
    current = await ctx.store.update(changeId, (c) => ({
      ...c,
      sandbox: { verdict: 'running', at: new Date().toISOString(), ...(headSha ? { headSha } : {}), failedTasks: [] },
    }));

    try {
      return await this.execute({
        change: current,
        actor,
        signal,
        hooks,
        evidence,
        source,
        tasks,
        mergeNotes,
        sandboxPolicy,
        patterns,
        sandbox,
        notice,
      });
    } catch (error) {
      const message =
        error instanceof SandboxError || error instanceof PolicyDeniedError
          ? error.message
          : `The sandbox run failed unexpectedly: ${(error as Error).message}. See the log, then run the tasks again.`;
      await ctx.store
        .update(changeId, (c) => ({
          ...c,
          sandbox: { verdict: 'error', at: new Date().toISOString(), ...(headSha ? { headSha } : {}), failedTasks: [], message },
        }))
        .catch((again: unknown) => ctx.logger.error(`Recording the sandbox error of change ${changeId}`, again));
      throw error;
    }
  }

  /**
   * What a run of this change's tasks needs, all read from its base commit:
   * the tasks (policy's and `.lanes/lanes.yaml`'s), the sandbox policy,
   * redaction patterns and the sandbox itself. A devcontainer.json that asks
   * for more than policy allows is refused (and audited) here, before anything runs.
   */
  private async plan(change: Change): Promise<SandboxPlan> {
    const { ctx } = this;
    const changeId = change.id;
    // What decides the sandbox comes from the base commit, never from the worktree.
    let source: SandboxSource;
    let tasks: ResolvedTask[];
    let mergeNotes: string[];
    let sandboxPolicy: SandboxPolicy;
    let patterns: SecretPattern[];
    let patternKey: string;
    try {
      const fromBase = await readSandboxSource(ctx.repoRoot, change.baseSha);
      source = fromBase.source;
      const effective = await ctx.policy.effectiveFor({ repoRoot: ctx.repoRoot, baseSha: change.baseSha });
      if (!effective.ok) throw new SandboxInputError(`The sandbox of change ${changeId} cannot be set up: ${effective.reason}.`);
      const view = sandboxPolicyFrom(effective.effective.policy.lanes.sandbox);
      sandboxPolicy = view.policy;
      const merged = mergeTasks(view.requiredTasks, fromBase.lanesConfig, {
        defaultTimeoutSeconds: Math.min(DEFAULT_TASK_TIMEOUT_SECONDS, view.maxTimeoutSeconds ?? DEFAULT_TASK_TIMEOUT_SECONDS),
        ...(view.maxTimeoutSeconds !== undefined ? { maxTimeoutSeconds: view.maxTimeoutSeconds } : {}),
      });
      tasks = merged.tasks;
      mergeNotes = merged.notes;
      const extra = effective.effective.policy.secretPatterns ?? [];
      patterns = compileSecretPatterns(extra).patterns;
      patternKey = JSON.stringify(extra);
    } catch (error) {
      if (error instanceof LanesConfigError) throw new SandboxInputError(error.message);
      throw error;
    }

    const selection = await this.select(sandboxPolicy, patterns, patternKey);
    if (!selection.ok) throw new SandboxError('noSandbox', selection.message);
    const sandbox = selection.sandbox;
    const isolation = sandbox.isolation;

    // A devcontainer.json that asks for more than policy allows is refused before anything moves.
    if (isolation === 'container' && source.devcontainer) {
      const label = source.devcontainer.label ?? source.devcontainer.path;
      const check = checkDevcontainer(source.devcontainer.text, label, sandboxPolicy.devcontainer ?? {});
      const refusal =
        check.kind === 'syntaxError'
          ? new SandboxError('configSyntax', check.message)
          : check.refusals.length > 0
            ? new SandboxError('refused', describeRefusals(check))
            : check.config.dockerComposeFile !== undefined
              ? await checkComposeSource(source, check, sandboxPolicy.devcontainer ?? {}).then(
                  () => undefined,
                  (error: unknown) => {
                    if (error instanceof SandboxError) return error;
                    throw error;
                  },
                )
              : undefined;
      if (refusal) {
        await ctx.audit.append({
          actor: EXTENSION_ACTOR,
          action: 'sandbox.prepare',
          changeId,
          details: { isolation, outcome: 'refused', kind: refusal.kind, file: source.devcontainer.path, reason: refusal.message },
        });
        throw refusal;
      }
    }

    return { source, tasks, mergeNotes, sandboxPolicy, patterns, sandbox, isolation, notice: selection.notice };
  }

  /** The worktree must hold exactly the change's head: that is what the tasks test and the evidence names. */
  private async checkWorktree(change: Change): Promise<void> {
    let head: string;
    let dirty: string;
    try {
      head = (await git(change.worktreePath, ['rev-parse', 'HEAD'])).stdout.trim();
      dirty = (await git(change.worktreePath, ['status', '--porcelain', '--untracked-files=no'])).stdout.trimEnd();
    } catch {
      throw new SandboxInputError(
        `The worktree ${change.worktreePath} of change ${change.id} is missing or broken; restore it ("Agent Lanes: Reconcile Worktrees") or discard the change.`,
      );
    }
    if (dirty) {
      const files = dirty
        .split('\n')
        .filter(Boolean)
        .slice(0, 3)
        .map((line) => line.slice(3))
        .join(', ');
      throw new SandboxInputError(
        `The worktree of change ${change.id} has uncommitted edits (${files}); the sandbox tests the committed change only. ${change.lane === 'draft' ? 'Record them with "Agent Lanes: Finish Draft", or undo them.' : 'Undo them, or send the change back to Draft.'}`,
      );
    }
    if (change.headSha && head !== change.headSha) {
      throw new SandboxInputError(
        `The worktree of change ${change.id} is at ${head.slice(0, 10)}, not at the change's recorded head ${change.headSha.slice(0, 10)} (commits were made outside the lane). ${change.lane === 'draft' ? 'Run "Agent Lanes: Finish Draft" to record them.' : 'Send the change back to Draft.'}`,
      );
    }
  }

  /** Asks policy before a side effect; a block comes back as its explanation instead of an exception. */
  private async allowed(
    action: PolicyAction,
    change: Change,
    actor: Actor,
    isolation: 'container' | 'process',
    options: { record?: boolean } = {},
  ): Promise<string | undefined> {
    const read = await this.ctx.evidence.read(change.id);
    const facts = changeFacts(change, read.kind === 'ok' ? read.evidence : undefined, { isolation });
    try {
      await decide(this.ctx, action, facts, change, actor, options);
      return undefined;
    } catch (error) {
      if (error instanceof PolicyDeniedError) return error.decision.explanation;
      throw error;
    }
  }

  private async execute(run: {
    change: Change;
    actor: Actor;
    signal: AbortSignal;
    hooks: SandboxRunHooks;
    evidence: Evidence;
    source: SandboxSource;
    tasks: ResolvedTask[];
    mergeNotes: string[];
    sandboxPolicy: SandboxPolicy;
    patterns: SecretPattern[];
    sandbox: TaskSandbox;
    notice: string | undefined;
  }): Promise<SandboxRunOutcome> {
    const { ctx } = this;
    const { change, actor, signal, hooks, sandbox } = run;
    const changeId = change.id;
    const isolation = sandbox.isolation;
    const logDir = ctx.storage.logsDir;
    let results: TaskEvidence[] = [];
    let preparation: PreparationEvidence | undefined;
    let setupError: SandboxError | undefined;
    // Policy is asked before the run and again before every task (the kill switch can be pulled mid-run).
    const policyStop: { blockedBy?: string | undefined } = {};

    const auditTask = (task: TaskEvidence, onBase = false) => this.auditTask(changeId, task, onBase ? { onBase: true } : {});
    const auditPreparation = (prep: PreparationEvidence | undefined, extra: Record<string, unknown>) =>
      ctx.audit.append({
        actor: EXTENSION_ACTOR,
        action: 'sandbox.prepare',
        changeId,
        details: {
          isolation,
          ...(prep
            ? {
                outcome: prep.outcome,
                networkMode: prep.networkMode,
                reachable: prep.reachable,
                commands: prep.commands.length,
                durationMs: Math.round(prep.durationMs),
                ...(prep.logDigest ? { logDigest: prep.logDigest } : {}),
              }
            : { outcome: 'none' }),
          ...extra,
        },
      });
    const skipAll = (reason: string) => run.tasks.map((task) => skippedTask(task, { isolation, networkMode: 'none' }, reason));

    let blockedBy: string | undefined;
    const headSha = change.headSha;
    let tasks: TaskEvidence[] = [];
    let baseRun: BaseRunEvidence | undefined;
    const baseNotes: string[] = [];
    // The base commit's sandbox, started early (see below) and always disposed.
    let baseStart: { overlay: BaseOverlay; runner: Promise<BaseRunner> } | undefined;
    try {
      if (run.tasks.length > 0) policyStop.blockedBy = await this.allowed('runTask', change, actor, isolation);
      if (policyStop.blockedBy) {
        results = skipAll(`Not run: ${policyStop.blockedBy}`);
      } else if (run.tasks.length > 0) {
        // The base commit's sandbox gets ready while the change's own run goes on; its tasks run only if the change's test tasks pass.
        if (change.headSha && run.tasks.some((task) => task.test && task.required) && changeTouchesTests(run.evidence.diff?.files ?? [])) {
          const overlay = baseOverlay(run.evidence.diff?.files ?? []);
          baseStart = {
            overlay,
            runner: sandbox.startOnBase({
              changeId,
              repoRoot: ctx.repoRoot,
              baseSha: change.baseSha,
              headSha: change.headSha,
              overlay,
              changeWorktreePath: change.worktreePath,
              source: run.source,
              policy: run.sandboxPolicy,
              logDir,
              signal,
              redactionPatterns: run.patterns,
              onTaskOutput: (id, text) => hooks.onTaskOutput?.(`base:${id}`, text),
            }),
          };
          // Awaited below (or disposed); this only keeps an early failure from being unhandled meanwhile.
          baseStart.runner.catch(() => undefined);
        }
        let prepared: PreparedSandbox | undefined;
        try {
          prepared = await sandbox.prepare({
            changeId,
            worktreePath: change.worktreePath,
            source: run.source,
            policy: run.sandboxPolicy,
            role: 'change',
            logDir,
            signal,
            onOutput: hooks.onTaskOutput ? (text) => hooks.onTaskOutput!('prepare', text) : undefined,
            onPreparing: (message) => hooks.onProgress?.({ kind: 'preparing', message }),
          });
        } catch (error) {
          if (!(error instanceof SandboxError)) throw error;
          setupError = error;
          preparation = error.preparation;
          await auditPreparation(preparation, { error: error.kind, message: error.message });
          results = skipAll(`Not run: ${error.message}`);
        }
        if (prepared) {
          preparation = prepared.preparation;
          await auditPreparation(preparation, prepared.auditDetails);
          results = await runTaskSequence(prepared, run.tasks, {
            logDir,
            signal,
            redactionPatterns: run.patterns,
            onTaskOutput: hooks.onTaskOutput,
            onProgress: hooks.onProgress,
            beforeTask: async () => {
              policyStop.blockedBy = await this.allowed('runTask', ctx.store.get(changeId) ?? change, actor, isolation);
              return policyStop.blockedBy && `Not run: ${policyStop.blockedBy}`;
            },
            afterTask: async (evidence) => {
              await auditTask(evidence);
            },
          });
        }
      }
      blockedBy = policyStop.blockedBy;

      // "Tests fail without the change": the test tasks that passed run again on the base commit.
      tasks = results;
      const testTasks = run.tasks.filter(
        (task) => task.test && task.required && results.find((r) => r.id === task.id)?.outcome === 'passed',
      );
      if (
        !setupError &&
        !blockedBy &&
        !signal.aborted &&
        headSha &&
        testTasks.length > 0 &&
        changeTouchesTests(run.evidence.diff?.files ?? [])
      ) {
        const blocked = await this.allowed('runTask', ctx.store.get(changeId) ?? change, actor, isolation);
        if (blocked) {
          baseNotes.push(`The test tasks were not run on the base commit: ${blocked}`);
        } else {
          hooks.onProgress?.({ kind: 'baseRun', tasks: testTasks.map((task) => task.id) });
          const overlay = baseStart?.overlay ?? baseOverlay(run.evidence.diff?.files ?? []);
          try {
            const runner = await baseStart!.runner;
            let base: BaseRunResult;
            try {
              base = await runner.run(testTasks);
            } finally {
              baseStart = undefined;
              await runner.dispose();
            }
            for (const task of base.tasks) await auditTask(task, true);
            tasks = applyBaseResults(results, base.failsOnBase, base.files);
            baseRun = { baseSha: change.baseSha, testFiles: overlay.checkout, removedTestFiles: overlay.remove };
          } catch (error) {
            if (!(error instanceof SandboxError)) throw error;
            ctx.logger.warn(`Change ${changeId}: the base-commit run failed: ${error.message}`);
            baseNotes.push(
              `The test tasks could not run on the base commit (${error.message}); whether they fail without the change is not known.`,
            );
          }
        }
      }
    } finally {
      if (baseStart) await baseStart.runner.then((runner) => runner.dispose()).catch(() => undefined);
    }
    const notes = [
      ...(preparation?.notes ?? []),
      ...run.mergeNotes,
      ...(run.notice ? [run.notice] : []),
      ...(run.tasks.length === 0 ? ['No task ran: policy requires none and the base commit has no tasks in .lanes/lanes.yaml.'] : []),
      ...baseNotes,
    ];
    const recordedPreparation: PreparationEvidence | undefined = preparation
      ? { ...preparation, ...(notes.length ? { notes } : {}) }
      : notes.length
        ? { commands: [], networkMode: 'none', reachable: [], outcome: 'skipped', durationMs: 0, notes }
        : undefined;
    const updatedEvidence = await ctx.evidence.update(
      changeId,
      () => run.evidence,
      (current) => {
        const { preparation: _previous, baseRun: _previousBaseRun, ...rest } = current;
        return {
          ...rest,
          ...(recordedPreparation ? { preparation: recordedPreparation } : {}),
          ...(baseRun ? { baseRun } : {}),
          tasks,
          flags: [
            ...current.flags.filter((flag) => flag.kind !== 'testsDoNotExercise' && flag.kind !== 'unbackedClaim'),
            ...testsDoNotExerciseFlags(tasks),
            // What the agent says about its tests, against what the sandbox's run shows.
            ...unbackedClaimFlags(checkClaims(agentClaims({ transcript: current.transcript, report: current.agentReport }), tasks)),
          ],
        };
      },
    );

    const { verdict, failedTasks, nextLane, message } = sandboxVerdict({
      planned: run.tasks,
      tasks,
      ...(setupError ? { setupError } : {}),
      ...(blockedBy ? { blockedBy } : {}),
      cancelled: signal.aborted,
    });
    let updated = await ctx.store.update(changeId, (c) => ({
      ...c,
      sandbox: {
        verdict,
        at: new Date().toISOString(),
        ...(headSha ? { headSha } : {}),
        failedTasks,
        message,
      },
    }));

    let promoted = false;
    let gateBlock: string | undefined;
    if (nextLane === 'review') {
      try {
        await decide(ctx, 'gate.sandboxToReview', changeFacts(updated, updatedEvidence), updated, actor);
        const moved = await moveChange(ctx, changeId, 'promote', actor);
        if (moved.ok) {
          updated = moved.change;
          promoted = true;
          hooks.onProgress?.({ kind: 'promoted', to: 'review' });
        } else {
          gateBlock = moved.reason;
        }
      } catch (error) {
        if (!(error instanceof PolicyDeniedError)) throw error;
        gateBlock = error.decision.explanation;
      }
      updated = ctx.store.get(changeId) ?? updated;
    }
    const finalMessage = promoted
      ? `Change ${changeId}: ${message} It moved to Review.`
      : gateBlock
        ? `Change ${changeId}: ${message} It stays in Sandbox: ${gateBlock}`
        : `Change ${changeId}: ${message}`;
    return {
      change: updated,
      verdict,
      promoted,
      tasks,
      ...(recordedPreparation ? { preparation: recordedPreparation } : {}),
      isolation,
      message: finalMessage,
      ...(gateBlock ? { blockedBy: gateBlock } : blockedBy ? { blockedBy } : {}),
      ...(run.notice ? { notice: run.notice } : {}),
    };
  }

  /** The sandbox for this run; a container sandbox is kept while the settings stay the same (one queue, no re-detection). */
  private async select(policy: SandboxPolicy, patterns: readonly SecretPattern[], patternKey: string): Promise<SandboxSelection> {
    const settings = this.settings();
    const key = JSON.stringify([
      settings.engine,
      settings.defaultImage,
      settings.devcontainerCliPath ?? '',
      settings.extensionRoot ?? '',
      patternKey,
    ]);
    if (this.cached?.key === key) {
      const selection = await this.cached.selection;
      if (selection.ok && selection.containerSandbox) return selection;
    }
    const selection = selectSandbox({
      engineSetting: settings.engine,
      defaultImage: settings.defaultImage,
      ...(settings.devcontainerCliPath ? { devcontainerCliPath: settings.devcontainerCliPath } : {}),
      ...(settings.extensionRoot ? { extensionRoot: settings.extensionRoot } : {}),
      policy,
      stateDir: this.stateDir,
      logger: this.ctx.logger,
      redactionPatterns: patterns,
      ...(this.options.upTimeoutMs ? { upTimeoutMs: this.options.upTimeoutMs } : {}),
    });
    this.cached = { key, selection };
    const result = await selection;
    if (!result.ok || !result.containerSandbox) this.cached = undefined;
    return result;
  }

  /** The container sandbox for cleanup, or undefined when no engine answers. */
  private async containers(): Promise<ContainerSandbox | undefined> {
    const patterns = this.ctx.policy.effective.policy.secretPatterns ?? [];
    const selection = await this.select({ allowProcessSandbox: false }, compileSecretPatterns(patterns).patterns, JSON.stringify(patterns));
    return selection.ok ? selection.containerSandbox : undefined;
  }

  private onChangeStored(change: Change | undefined): void {
    if (!change) {
      // A reload: take the lanes as they are now.
      for (const known of this.ctx.store.all()) this.lanes.set(known.id, known.lane);
      return;
    }
    const before = this.lanes.get(change.id);
    this.lanes.set(change.id, change.lane);
    if (change.lane !== 'closed' || before === 'closed' || !change.sandbox) return;
    this.stop(change.id);
    const reason = change.closedReason ?? 'closed';
    const work = this.removeContainers(change.id, EXTENSION_ACTOR, reason).catch((error: unknown) =>
      this.ctx.logger.error(
        `Removing the sandbox container of change ${change.id} (${reason}) failed; "Agent Lanes: Clean Up Sandbox Containers" offers it again`,
        error,
      ),
    );
    this.cleanups.add(work);
    void work.finally(() => this.cleanups.delete(work));
  }

  /** Waits for the container removals that closing changes started (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.cleanups]);
  }

  /**
   * Removes a change's sandbox containers (its own and a leftover base-commit
   * one) and their state. Runs by itself when a change closes (discard,
   * reject, its pull request merged or closed); call it after a pull request
   * closes if the change record is kept open. Returns how many containers went.
   */
  async removeContainers(changeId: string, actor: Actor = EXTENSION_ACTOR, reason = 'closed'): Promise<number> {
    const engine = await this.containers();
    if (!engine) return 0;
    const removed = await engine.removeSandbox(changeId);
    await this.ctx.audit.append({ actor, action: 'cleanup', changeId, details: { sandbox: true, containersRemoved: removed, reason } });
    return removed;
  }

  /** Whether this repository ever used a sandbox: otherwise no engine is asked anything. */
  private async usedSandbox(changes: readonly Change[]): Promise<boolean> {
    if (changes.some((change) => change.sandbox)) return true;
    return (await this.stateChangeIds()).size > 0;
  }

  /** Changes this repository created containers for (their state files). */
  private async stateChangeIds(): Promise<Set<string>> {
    const names = await readdir(join(this.stateDir, 'containers')).catch(() => [] as string[]);
    return new Set(
      names.map((name) => /^([0-9a-f]{8})-(?:change|base)\.json$/.exec(name)?.[1]).filter((id): id is string => id !== undefined),
    );
  }

  /**
   * Sandbox containers of this repository that no open change needs: those of
   * closed changes, those created here whose change record is gone, and
   * base-commit containers left by a run that did not finish. Containers of
   * other repositories (other windows) are never listed.
   */
  async findOrphans(changes: readonly Change[] = this.ctx.store.all()): Promise<SandboxOrphan[]> {
    if (!(await this.usedSandbox(changes))) return [];
    const engine = await this.containers();
    if (!engine) return [];
    const byId = new Map(changes.map((change) => [change.id, change]));
    const created = await this.stateChangeIds();
    const orphans: SandboxOrphan[] = [];
    for (const container of await engine.listSandboxContainers()) {
      const change = byId.get(container.changeId);
      if (change?.lane === 'closed')
        orphans.push({ container, changeId: container.changeId, reason: `change ${change.id} is ${change.closedReason ?? 'closed'}` });
      else if (!change && created.has(container.changeId))
        orphans.push({
          container,
          changeId: container.changeId,
          reason: `change ${container.changeId} has no record in this repository any more`,
        });
      else if (change && container.role === 'base' && !this.running.has(change.id))
        orphans.push({
          container,
          changeId: change.id,
          reason: `a base-commit container of change ${change.id} left by a run that did not finish`,
        });
    }
    return orphans;
  }

  /** Removes what findOrphans found, audited. */
  async removeOrphans(orphans: readonly SandboxOrphan[], actor: Actor): Promise<number> {
    let removed = 0;
    for (const changeId of new Set(orphans.map((orphan) => orphan.changeId)))
      removed += await this.removeContainers(changeId, actor, 'orphan');
    return removed;
  }

  /**
   * After a restart: a verdict still "running" belongs to a run that ended
   * with the window; it becomes an error that says so.
   */
  async markInterrupted(): Promise<Change[]> {
    const marked: Change[] = [];
    for (const change of this.ctx.store.all()) {
      if (change.sandbox?.verdict !== 'running' || this.running.has(change.id)) continue;
      marked.push(
        await this.ctx.store.update(change.id, (c) => ({
          ...c,
          sandbox: {
            ...c.sandbox!,
            verdict: 'error',
            message: 'The sandbox run was interrupted (the window closed or crashed); run the tasks again.',
          },
        })),
      );
    }
    return marked;
  }

  dispose(): void {
    this.stopAll();
    for (const subscription of this.subscriptions) subscription.dispose();
  }
}
