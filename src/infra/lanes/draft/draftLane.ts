import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type AgentConfig, DEFAULT_AGENT_TIMEOUT_SECONDS } from '../../../core/draft/agentConfig';
import {
  type AgentIsolationBackend,
  type AgentLimits,
  type BackendAvailability,
  type BoundaryHandle,
  type EgressRecord,
  chooseBackend,
} from '../../../core/draft/agentIsolation';
import type { Flag } from '../../../core/evidence';
import {
  type McpServerCommand,
  mcpServerCommand,
  openBoundary,
  probeProcessBackend,
  stopLeftoverRun,
} from '../../draft/boundary/agentBoundary';
import { type ChannelSocketPlace, channelSocketPlace } from '../../draft/laneChannel';
import { type AgentChannel, type DraftTaskRunner, openAgentChannel } from './agentChannel';
import { detectEngine, type EngineSetting } from '../../sandbox/engine';
import { type Actor, type Change, titleFromTask } from '../../../core/change';
import { type DiffAnalysisOptions, refusedPathFlags } from '../../../core/draft/diffAnalysis';
import {
  DraftInputError,
  type PromptInput,
  type ReconcileAction,
  type ReconcileFinding,
  type DraftStartAssessment,
  type RepositoryState,
  assessDraftStart,
  composePrompt,
  slugify,
} from '../../../core/draft/draft';
import { transition } from '../../../core/lanes';
import type { DecisionRecord } from '../../../core/decision';
import type { AgentReport, Evidence } from '../../../core/evidence';
import type { AgentTranscript } from '../../../core/draft/agentTranscript';
import { readAgentTranscript } from '../../../core/draft/transcriptReading';
import { compileSecretPatterns, createStreamRedactor, redactText, redactValue } from '../../../core/redaction';
import { type AgentRunResult, runAgent } from '../../draft/agentRunner';
import { redactAgentReport } from '../../draft/agentReportRedaction';
import { type CheckoutVerdict, snapshotCheckout } from '../../draft/checkoutGuard';
import { type FinishedDraftRun, analyzeLaneCommit, finishDraftRun } from '../../draft/draftRun';
import { commitLaneWork } from '../../git/laneCommit';
import { type PoolClaim, WorktreePool } from '../../draft/worktreePool';
import { normalizeSparsePaths, outsideSparseFlags } from '../../../core/draft/sparsePaths';
import {
  type ResolvedBase,
  UncommittedWorkError,
  applyReconcileAction,
  createWorktree,
  reconcile,
  removeWorktree,
  repositoryHead,
  resolveBase,
  uncommittedChanges,
} from '../../git/worktrees';
import { CHAT_AGENT_ID, EXTENSION_ACTOR, REVERT_AGENT_ID } from '../../../core/constants';
import { git } from '../../git/gitProcess';
import { type LaneContext, decide, moveChange } from '../laneContext';
import { counted } from '../../../core/words';
import { classifyChange } from '../../../core/policy/rollout';

/** The agent of a draft: a CLI agent from the settings, or an agent in VS Code's chat using the lane's tools. */
export type DraftAgent = { kind: 'cli'; config: AgentConfig } | { kind: 'chat' } | { kind: 'revert' };

export interface StartDraftInput {
  task: string;
  /** Branch, tag or SHA; default HEAD of the current branch. */
  baseRef?: string;
  agent: DraftAgent;
  actor: Actor;
  /** Who asked (GitHub login or git user.email). */
  createdBy: string;
  /** A task class of the policy (docs/policy.md, "Task classes"); policy may add others. */
  taskClass?: string;
}

export interface StartedDraft {
  change: Change;
  /** Shown to the user before the agent runs (uncommitted work not included, a merge in progress...). */
  warnings: string[];
}

export interface AgentHooks {
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  signal?: AbortSignal;
  /** Test hook: overrides the agent's timeout. */
  timeoutMs?: number;
  /** Values of the secrets the agent's configuration names (from SecretStorage); they join redaction for the run. */
  secrets?: Record<string, string>;
}

/** Where the container boundary comes from: the Sandbox lane's engine and default image settings. */
interface BoundarySettings {
  engine: EngineSetting;
  defaultImage: string;
}

export interface DraftLaneOptions {
  /** Read at every run. Without it only the process boundary (and host, where policy names it) can be used. */
  boundarySettings?: () => BoundarySettings;
  /** lanes_run_tasks on the lane channel: the Sandbox lane's runDraftTasks. Without it the tool says no sandbox is there. */
  runTasks?: DraftTaskRunner;
  /**
   * The extension's `dist/mcp.js` (`agent-lanes mcp`): bound read-only into the
   * boundary, and named in the run's MCP configuration ({mcpConfig}, LANES_MCP_CONFIG).
   */
  mcpServerScript?: string;
  /** After lanes_finish_draft, how long the agent has to exit before its run is stopped (default 10 s). */
  finishGraceSeconds?: number;
  /** agentLanes.draft.* (read at every use). Without it: no pool, whole worktrees. */
  draftSettings?: () => DraftSettings;
}

/** How new worktrees are made: the warm pool's size and the sparse folders. */
export interface DraftSettings {
  /** agentLanes.draft.worktreePool: worktrees kept ready; 0 turns the pool off. */
  worktreePool: number;
  /** agentLanes.draft.sparsePaths: folders the agent's worktree holds (git's cone mode); empty: the whole tree. */
  sparsePaths: readonly unknown[];
}

export interface DraftOutcome {
  change: Change;
  run?: AgentRunResult;
  /** committed, noChanges, or the run's own failure (failed, timedOut, cancelled, notFound). */
  outcome: 'committed' | 'noChanges' | AgentRunResult['outcome'];
  message: string;
  checkout?: CheckoutVerdict;
  reportError?: string;
}

/** Secret values handed to an agent, as patterns: they are redacted from its output like any other secret. */
function literalPatterns(values: readonly string[]) {
  const usable = values.filter((value) => value.length >= 4);
  return compileSecretPatterns(
    usable.map((value, index) => ({ name: `agentSecret${index + 1}`, pattern: value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') })),
  ).patterns;
}

/** The agent's stdout lines, kept up to 20 MB for its transcript (the log has them all). */
function transcriptCollector(): { push(line: string): void; text(): string } {
  const lines: string[] = [];
  let size = 0;
  return {
    push(line) {
      if (size > 20 * 1024 * 1024) return;
      size += line.length + 1;
      lines.push(line);
    },
    text: () => lines.join('\n'),
  };
}

/** A failed run's last word from its transcript (redacted, one line, capped), for the message the user reads. */
const saidLast = (transcript: AgentTranscript | undefined) =>
  transcript?.finalMessage ? ` It said: "${transcript.finalMessage.replace(/\s+/g, ' ').trim().slice(0, 300)}"` : '';

const transcriptField = (transcript: AgentTranscript | undefined) => (transcript ? { transcript } : {});

const agentIdOf = (agent: DraftAgent) =>
  agent.kind === 'cli' ? agent.config.id : agent.kind === 'revert' ? REVERT_AGENT_ID : CHAT_AGENT_ID;

/** The checkout's uncommitted counts before its status is read: they only word warnings, never a refusal. */
const NOTHING_UNCOMMITTED: RepositoryState['uncommitted'] = { staged: 0, unstaged: 0, untracked: 0, conflicted: 0 };

/** The Draft lane: worktree, agent, commit, analysis. The user's checkout is only ever read. */
export class DraftLane {
  private readonly running = new Map<string, AbortController>();
  /** Resolves when a run has recorded its end: between the agent's last state and its audited stop, a discard waits. */
  private readonly runEnds = new Map<string, Promise<void>>();

  /** Prepared worktrees, so New Draft does not pay the checkout. */
  readonly pool: WorktreePool;

  constructor(
    private readonly ctx: LaneContext,
    private readonly options: DraftLaneOptions = {},
  ) {
    this.pool = new WorktreePool({
      repoRoot: ctx.repoRoot,
      poolDir: join(ctx.storage.root, 'worktree-pool'),
      worktreesDir: ctx.storage.worktreesDir,
      size: () => options.draftSettings?.().worktreePool ?? 0,
      sparsePaths: () => this.sparsePaths(),
      logger: ctx.logger,
    });
  }

  /**
   * The change's task classes from its task (and the chosen class, which must be one of the policy's). The base
   * policy's classes: a repository's own policy cannot define classes.
   */
  private classify(task: string, chosen: string | undefined): string[] {
    const policy = this.ctx.policy.effective.policy;
    if (chosen !== undefined && !policy.taskClasses.some((taskClass) => taskClass.id === chosen)) {
      const known = policy.taskClasses.map((taskClass) => taskClass.id);
      throw new DraftInputError(
        known.length
          ? `There is no task class "${chosen}" in the policy. Choose one of: ${known.join(', ')}; or choose none and let the policy classify the task.`
          : `There is no task class "${chosen}": the policy defines no task classes. Start the draft without one.`,
      );
    }
    return classifyChange(policy, { task, ...(chosen ? { chosen } : {}) });
  }

  /** The sparse folders from the settings, checked (a wrong value stops New Draft with what to write instead). */
  private sparsePaths(): string[] {
    const configured = this.options.draftSettings?.().sparsePaths ?? [];
    try {
      return normalizeSparsePaths(configured);
    } catch (error) {
      throw new DraftInputError((error as Error).message);
    }
  }

  /**
   * When the repository opens or the settings change: removes what a crash
   * left half prepared and what the settings no longer want (everything when
   * the pool is off), then fills the pool at HEAD in the background.
   */
  async warmPool(): Promise<void> {
    await this.pool.recover();
    if ((this.options.draftSettings?.().worktreePool ?? 0) <= 0) return;
    const head = await resolveBase(this.ctx.repoRoot).catch(() => undefined);
    if (head) await this.pool.refill(head.sha);
  }

  isRunning(changeId: string): boolean {
    return this.running.has(changeId);
  }

  runningChanges(): string[] {
    return [...this.running.keys()];
  }

  /**
   * Whether any draft may start now (the kill switch), asked before anyone is asked for a task: decided and
   * audited like the start's own decision, and throws the same refusal.
   */
  async checkMayStart(actor: Actor): Promise<void> {
    await decide(this.ctx, 'createDraft', { author: actor.id }, undefined, actor);
  }

  async start(input: StartDraftInput): Promise<StartedDraft> {
    const { ctx } = this;
    const task = input.task.trim();
    if (!task) throw new DraftInputError('The task is empty: describe what the agent should do.');
    const agentId = agentIdOf(input.agent);
    // Only reads, started before the policy decides so their git calls overlap it: a pooled worktree is picked and
    // checked (its own `git status`) while the base and the checkout's head are read. A refusal gives the claim back.
    // The checkout's own status (the long part in a large checkout) only words warnings: the worktree is handed out
    // while it runs, and it is awaited before the change is recorded.
    const claimed = this.pool.claim().catch((error: Error) => {
      ctx.logger.warn(`Worktree pool: ${error.message}`);
      return undefined;
    });
    const uncommitted = uncommittedChanges(ctx.repoRoot);
    uncommitted.catch(() => undefined);
    const reads = Promise.all([resolveBase(ctx.repoRoot, input.baseRef), repositoryHead(ctx.repoRoot), claimed]);
    reads.catch(() => undefined);
    const explicitBase = Boolean(input.baseRef?.trim());
    let taskClasses: string[];
    let sparsePaths: string[];
    let base: ResolvedBase;
    let head: Omit<RepositoryState, 'uncommitted'>;
    let claim: PoolClaim | undefined;
    try {
      await decide(ctx, 'createDraft', { agentId, author: input.createdBy }, undefined, input.actor);
      taskClasses = this.classify(task, input.taskClass);
      sparsePaths = this.sparsePaths();
      [base, head, claim] = await reads;
    } catch (error) {
      this.pool.release(await claimed);
      throw error;
    }
    // Whether it may start does not depend on uncommitted files (assessDraftStart): decided before anything is made.
    const mayStart = assessDraftStart({ ...head, uncommitted: NOTHING_UNCOMMITTED }, explicitBase);
    if (!mayStart.allowed) {
      this.pool.release(claim);
      throw new DraftInputError(mayStart.refusal ?? 'The draft cannot start here.');
    }

    const id = randomBytes(4).toString('hex');
    const title = titleFromTask(task);
    const slug = slugify(title);
    // The pooled worktree when one passed its checks, else a new one; the pool refills behind.
    const pooled = await this.pool.handOut(claim, { changeId: id, slug, baseSha: base.sha });
    const worktree =
      pooled ??
      (await createWorktree({
        repoRoot: ctx.repoRoot,
        worktreesDir: ctx.storage.worktreesDir,
        changeId: id,
        slug,
        baseSha: base.sha,
        sparsePaths,
      }));
    const now = new Date().toISOString();
    const baseRef = base.branch ?? base.ref;
    let assessment: DraftStartAssessment;
    let change: Change;
    try {
      assessment = assessDraftStart({ ...head, uncommitted: await uncommitted }, explicitBase);
      change = {
        id,
        title,
        task,
        agentId,
        createdBy: input.createdBy,
        baseRef,
        baseSha: base.sha,
        branch: worktree.branch,
        worktreePath: worktree.path,
        lane: 'draft',
        createdAt: now,
        updatedAt: now,
        history: [],
        ...(input.taskClass ? { taskClass: input.taskClass } : {}),
        ...(assessment.promptNote ? { promptNote: assessment.promptNote } : {}),
      };
      await ctx.store.add(change);
      await ctx.evidence.write(this.initialEvidence(change));
    } catch (error) {
      // No half state: a status that failed or a record that could not be written takes its worktree with it.
      await removeWorktree({ repoRoot: ctx.repoRoot, worktreePath: worktree.path, branch: worktree.branch, force: true }).catch(
        () => undefined,
      );
      throw error;
    }
    await ctx.audit.append({
      actor: input.actor,
      action: 'change.create',
      changeId: id,
      details: {
        title,
        agentId,
        baseRef,
        baseSha: base.sha,
        branch: worktree.branch,
        promptRef: this.promptRef(change),
        taskClass: taskClasses[0],
        taskClasses,
        warnings: assessment.warnings,
        worktree: pooled ? pooled.from : 'new',
        ...(sparsePaths.length ? { sparsePaths } : {}),
      },
    });
    // The pool refills behind, once New Draft is done, at the checkout's HEAD: where the next draft starts unless
    // its base is named (a draft from a named base does not leave the pool at that base).
    if ((this.options.draftSettings?.().worktreePool ?? 0) > 0)
      void this.pool
        .refill(head.headSha ?? base.sha)
        .catch((error: unknown) => ctx.logger.warn(`Worktree pool: ${(error as Error).message}`));
    return { change, warnings: assessment.warnings };
  }

  private promptRef(change: Pick<Change, 'id' | 'task'>): string {
    return `prompt-${change.id}-${createHash('sha256').update(change.task).digest('hex').slice(0, 12)}`;
  }

  private secretPatterns() {
    return compileSecretPatterns(this.ctx.policy.effective.policy.secretPatterns ?? []).patterns;
  }

  private initialEvidence(change: Change): Evidence {
    const prompt = redactText(change.task, this.secretPatterns());
    return {
      schemaVersion: 1,
      changeId: change.id,
      agent: { id: change.agentId },
      prompt: { ref: this.promptRef(change), redacted: prompt.text, redaction: prompt.summary },
      base: { ref: change.baseRef, sha: change.baseSha },
      flags: [],
      tasks: [],
      decisions: [],
    };
  }

  /** Runs a CLI agent in the change's worktree, then commits and analyses what it left. */
  async runAgent(changeId: string, agent: AgentConfig, actor: Actor, hooks: AgentHooks = {}): Promise<DraftOutcome> {
    const { ctx } = this;
    const change = this.requireDraft(changeId);
    if (this.running.has(changeId))
      throw new DraftInputError(`An agent is already running on change ${changeId}; stop it first ("Agent Lanes: Stop Agent").`);
    await decide(ctx, 'startAgent', { agentId: agent.id }, change, actor);
    const agentPolicy = ctx.policy.effective.policy.lanes.agent;
    const choice = chooseBackend(agentPolicy.isolation, agent.isolation, await this.availability(agentPolicy.isolation, agent.isolation));
    if (!choice.ok) throw new DraftInputError(choice.message);
    const limits: AgentLimits = {
      ...agentPolicy.limits,
      timeoutSeconds: Math.min(agent.timeoutSeconds ?? DEFAULT_AGENT_TIMEOUT_SECONDS, agentPolicy.limits.timeoutSeconds ?? Infinity),
    };

    const controller = new AbortController();
    hooks.signal?.addEventListener('abort', () => controller.abort(), { once: true });
    this.running.set(changeId, controller);
    let ended: () => void = () => undefined;
    this.runEnds.set(changeId, new Promise<void>((resolve) => (ended = resolve)));
    const dir = ctx.storage.changeDir(changeId);
    await mkdir(dir, { recursive: true });
    const startedAt = new Date().toISOString();
    // The run's record and its audit event are written while the boundary opens and its canary runs: the agent
    // starts only once they are (the runner's `ready`), and the boundary's own record waits for them (onBoundary).
    const recorded = (async () => {
      await ctx.store.update(changeId, (c) => ({ ...c, agentId: agent.id, agentRun: { state: 'running', startedAt } }));
      await ctx.audit.append({
        actor,
        action: 'agent.start',
        changeId,
        details: { agentId: agent.id, command: agent.command[0], promptRef: this.promptRef(change), isolation: choice.backend },
      });
    })();
    recorded.catch(() => undefined);
    try {
      // Taken while the boundary opens and its canary runs; the agent starts only once it is done.
      const snapshot = snapshotCheckout(ctx.repoRoot);
      snapshot.catch(() => undefined);
      const patterns = [...this.secretPatterns(), ...literalPatterns(Object.values(hooks.secrets ?? {}))];
      // The only folder of ours the agent may write: its prompt and its report, made afresh for every run.
      const ioDir = join(dir, 'agent-io');
      await rm(ioDir, { recursive: true, force: true });
      await mkdir(ioDir, { recursive: true, mode: 0o700 });
      const evidenceFile = join(ioDir, 'agent-report.json');
      const promptFile = join(ioDir, 'prompt.md');
      const boundarySettings = this.options.boundarySettings?.();
      const prompt: PromptInput = {
        task: change.task,
        changeId,
        baseRef: change.baseRef,
        baseSha: change.baseSha,
        ...(typeof change.promptNote === 'string' ? { note: change.promptNote } : {}),
        requestedChanges: (change.requestedChanges ?? []).map((r) => ({ body: r.comment, author: r.by })),
      };
      const agentFinished = new AbortController();
      const finishGraceSeconds = this.options.finishGraceSeconds ?? 10;
      const { channel, mcpConfigFile, mcpServer } = await this.openChannel({
        changeId,
        agentId: agent.id,
        backend: choice.backend,
        ioDir,
        prompt: composePrompt(prompt),
        evidenceFile,
        onFinish: () => agentFinished.abort(),
        finishGraceSeconds,
      });
      // An agent with a transcript format (a preset): its redacted stdout is kept for the evidence, up to a cap.
      const stdout = agent.transcript ? transcriptCollector() : undefined;
      const onLine =
        hooks.onLine || stdout
          ? (line: string, stream: 'stdout' | 'stderr') => {
              if (stream === 'stdout') stdout?.push(line);
              hooks.onLine?.(line, stream);
            }
          : undefined;
      const run = await runAgent({
        openBoundary: async (argv, env) =>
          openBoundary({
            backend: choice.backend,
            changeId,
            repoRoot: ctx.repoRoot,
            worktreePath: change.worktreePath,
            branch: change.branch,
            headSha: change.headSha ?? change.baseSha,
            runDir: join(dir, 'agent-run'),
            ioDir,
            hiddenFolders: [dirname(dirname(ctx.storage.root))],
            canaryFolders: [dir],
            argv,
            env,
            allow: agentPolicy.network.allow,
            limits,
            image: agentPolicy.image ?? boundarySettings?.defaultImage,
            engine: choice.backend === 'container' ? await this.engine() : undefined,
            onRefused: (record) => void this.auditRefusedConnection(changeId, agent.id, record),
            ...(channel ? { channelSocket: channel.socketPath } : {}),
            ...(channel && this.options.mcpServerScript && mcpConfigFile ? { readOnlyPaths: [this.options.mcpServerScript] } : {}),
          }),
        onBoundary: async (handle) => {
          await recorded;
          await ctx.store.update(changeId, (c) => ({ ...c, agentRun: { state: 'running', startedAt, boundary: handle } }));
          await ctx.audit.append({ actor: EXTENSION_ACTOR, action: 'agent.isolation', changeId, details: { ...handle } });
        },
        ...(hooks.secrets ? { secrets: hooks.secrets } : {}),
        ...(limits.diskMb ? { diskLimitMb: limits.diskMb } : {}),
        processLimits: { memoryMb: limits.memoryMb, pids: limits.pids },
        agent,
        changeId,
        worktreePath: change.worktreePath,
        prompt,
        promptFile,
        evidenceFile,
        logFile: join(dir, 'agent.log'),
        signal: controller.signal,
        redactStream: () => createStreamRedactor(patterns),
        ...(onLine ? { onLine } : {}),
        timeoutMs: hooks.timeoutMs ?? limits.timeoutSeconds * 1000,
        ...(channel ? { channelPath: channel.socketPath } : {}),
        ...(mcpConfigFile && mcpServer ? { mcpConfigFile, mcpServer } : {}),
        ready: Promise.all([snapshot, recorded]),
        finished: agentFinished.signal,
        finishGraceMs: finishGraceSeconds * 1000,
      }).finally(() => channel?.close());
      // A boundary that failed to open returns before `ready`: the run's record still comes before its outcome's.
      await recorded.catch(() => undefined);
      const before = await snapshot;
      // Whatever the run's outcome, its work is committed and analysed: nothing is lost.
      const finished = await finishDraftRun({
        repoRoot: ctx.repoRoot,
        changeId,
        branch: change.branch,
        worktreePath: change.worktreePath,
        baseSha: change.baseSha,
        agentId: agent.id,
        promptRef: this.promptRef(change),
        evidenceFile,
        checkoutBefore: before,
        subject: redactText(change.title, patterns).text,
        ...this.analysisOptions(),
      });
      const transcript = stdout ? readAgentTranscript(agent.transcript, stdout.text(), patterns, agent.command) : undefined;
      const outcome = await this.record(changeId, { run, finished, actor, ...(transcript ? { transcript } : {}) });
      // Recorded after the commit, so the event names the commit the agent produced.
      await ctx.audit.append({
        actor: { type: 'agent', id: agent.id },
        action: 'agent.stop',
        changeId,
        details: {
          outcome: run.outcome,
          exitCode: run.exitCode,
          signal: run.signal,
          durationMs: run.durationMs,
          checkoutUntouched: finished.checkout.untouched,
          isolation: run.isolation
            ? {
                backend: run.isolation.backend,
                verified: run.isolation.verified,
                refusedConnections: run.isolation.network.refusedTotal,
                ...(run.isolation.stoppedFor ? { stoppedFor: run.isolation.stoppedFor } : {}),
                ...(run.outcome === 'refused' ? { probes: run.isolation.probes } : {}),
              }
            : undefined,
          result: outcome.outcome,
          headSha: outcome.change.headSha,
          ...(finished.commit.squashed ? { squashed: finished.commit.squashed } : {}),
        },
      });
      return outcome;
    } catch (error) {
      // Never before the run's own record, which would overwrite this one.
      await recorded.catch(() => undefined);
      await ctx.store
        .update(changeId, (c) => ({
          ...c,
          agentRun: { state: 'failed', startedAt, endedAt: new Date().toISOString(), message: (error as Error).message },
        }))
        .catch(() => undefined);
      throw error;
    } finally {
      this.running.delete(changeId);
      this.runEnds.delete(changeId);
      ended();
    }
  }

  /**
   * The run's lane channel (this change only, for as long as the run lasts:
   * LANES_CHANNEL; `agent-lanes mcp` speaks MCP over it) and its MCP
   * configuration. A channel that cannot open (a system without Unix sockets)
   * is logged, and the agent runs without one.
   */
  private async openChannel(options: {
    changeId: string;
    agentId: string;
    backend: AgentIsolationBackend;
    ioDir: string;
    prompt: string;
    evidenceFile: string;
    onFinish: () => void;
    finishGraceSeconds: number;
  }): Promise<{ channel?: AgentChannel; mcpConfigFile?: string; mcpServer?: McpServerCommand }> {
    const { ctx } = this;
    let place: ChannelSocketPlace | undefined;
    try {
      place = await channelSocketPlace(options.ioDir);
      const script = this.options.mcpServerScript;
      let mcpConfigFile: string | undefined;
      let server: McpServerCommand | undefined;
      if (script && (await stat(script).catch(() => undefined))?.isFile()) {
        server = await mcpServerCommand({ backend: options.backend, script, channelPath: place.path, changeId: options.changeId });
        mcpConfigFile = join(options.ioDir, 'mcp.json');
        await writeFile(mcpConfigFile, `${JSON.stringify({ mcpServers: { 'agent-lanes': server } }, null, 2)}\n`, { mode: 0o600 });
      }
      const channel = await openAgentChannel({
        ctx,
        place,
        changeId: options.changeId,
        agentId: options.agentId,
        prompt: options.prompt,
        evidenceFile: options.evidenceFile,
        patterns: this.secretPatterns(),
        runTasks: this.options.runTasks,
        onFinish: options.onFinish,
        finishGraceSeconds: options.finishGraceSeconds,
      });
      return { channel, ...(mcpConfigFile && server ? { mcpConfigFile, mcpServer: server } : {}) };
    } catch (error) {
      if (place?.ownFolder) await rm(place.ownFolder, { recursive: true, force: true }).catch(() => undefined);
      ctx.logger.warn(
        `Change ${options.changeId}: the agent runs without a lane channel (no lanes_* MCP tools): ${(error as Error).message}`,
      );
      return {};
    }
  }

  /**
   * "Agent Lanes: Stop Agent": stops the agent and its process tree. A run this
   * window does not hold (started before a reload or a crash) is found by its
   * recorded boundary, stopped and marked interrupted.
   */
  async stopAgent(changeId: string, actor: Actor = EXTENSION_ACTOR): Promise<boolean> {
    const controller = this.running.get(changeId);
    if (controller) {
      controller.abort();
      return true;
    }
    if (this.ctx.store.get(changeId)?.agentRun?.state !== 'running') return false;
    return (await this.recoverInterrupted(actor, [changeId])).length > 0;
  }

  /**
   * Runs that are recorded as running but that no agent of this window runs:
   * the editor stopped mid-run. Stops what is left of each (its container or
   * its process group), keeps the partial work in the worktree, marks the
   * change interrupted and audits `agent.interrupted`. Called when the
   * repository opens and by "Agent Lanes: Reconcile".
   */
  async recoverInterrupted(actor: Actor = EXTENSION_ACTOR, only?: readonly string[]): Promise<Change[]> {
    const { ctx } = this;
    const recovered: Change[] = [];
    for (const change of ctx.store.all()) {
      if (change.agentRun?.state !== 'running' || this.running.has(change.id) || (only && !only.includes(change.id))) continue;
      const handle = change.agentRun.boundary as BoundaryHandle | undefined;
      const stopped = handle
        ? await stopLeftoverRun(handle).catch((error: Error) => `could not stop it: ${error.message}`)
        : 'no boundary was recorded';
      const message = `The agent's run was interrupted (the editor stopped while it ran; ${stopped}). Its partial work is kept in the worktree: "Agent Lanes: Finish Draft" commits it, "Agent Lanes: Discard Change" drops it.`;
      const updated = await ctx.store.update(change.id, (c) => ({
        ...c,
        agentRun: { ...c.agentRun!, state: 'interrupted', endedAt: new Date().toISOString(), message },
      }));
      await ctx.audit.append({
        actor,
        action: 'agent.interrupted',
        changeId: change.id,
        details: { agentId: change.agentId, startedAt: change.agentRun.startedAt, stopped, ...(handle ? { boundary: { ...handle } } : {}) },
      });
      recovered.push(updated);
    }
    return recovered;
  }

  /** Per backend, when it was last probed and what the probe said. */
  private readonly availabilityCache = new Map<
    'process' | 'container',
    { at: number; state: NonNullable<BackendAvailability['process']> }
  >();

  /**
   * Which backends work here, in the order they would be chosen, stopping at
   * the first that works: a later one is not probed (podman's detection costs
   * a second) when an earlier one will run the agent. Each backend's answer is
   * kept a minute (bubblewrap and the engine do not come and go), on its own:
   * an agent that asked for one backend says nothing about the others.
   */
  private async availability(
    allowed: readonly AgentIsolationBackend[],
    requested: AgentIsolationBackend | undefined,
  ): Promise<BackendAvailability> {
    const value: BackendAvailability = {};
    for (const backend of requested ? [requested] : allowed) {
      if (backend === 'host') {
        if (!requested && allowed[0] === 'host') break;
        continue;
      }
      const cached = this.availabilityCache.get(backend);
      const state = cached && Date.now() - cached.at < 60_000 ? cached.state : await this.probe(backend);
      if (cached?.state !== state) this.availabilityCache.set(backend, { at: Date.now(), state });
      value[backend] = state;
      if (state.available) break;
    }
    return value;
  }

  private async probe(backend: 'process' | 'container'): Promise<NonNullable<BackendAvailability['process']>> {
    if (backend === 'process') {
      const probe = await probeProcessBackend();
      return probe.available ? { available: true } : { available: false, message: probe.message };
    }
    const engine = await this.engine().catch((error: Error) => error);
    const image = this.ctx.policy.effective.policy.lanes.agent.image ?? this.options.boundarySettings?.().defaultImage;
    return engine instanceof Error || !engine
      ? { available: false, message: engine instanceof Error ? engine.message : 'no container engine answers here; install podman' }
      : image
        ? { available: true }
        : { available: false, message: 'no agent image: set lanes.agent.image in policy or agentLanes.sandbox.defaultImage' };
  }

  private async engine() {
    const detection = await detectEngine(this.options.boundarySettings?.().engine ?? 'auto');
    if (!detection.found) throw new DraftInputError(detection.message);
    return detection.engine;
  }

  /** Each connection the proxy refused is a policy decision: in the audit log, with host, port and time. */
  private async auditRefusedConnection(changeId: string, agentId: string, record: EgressRecord): Promise<void> {
    await this.ctx.audit
      .append({
        actor: { type: 'agent', id: agentId },
        action: 'policy.decision',
        changeId,
        decisionId: randomUUID(),
        policy: this.ctx.policy.effective.policyRef,
        details: {
          action: 'agentEgress',
          effect: 'block',
          subject: `${record.host}:${record.port}`,
          explanation: `The agent's connection to ${record.host}:${record.port} was refused: ${record.reason ?? 'not in lanes.agent.network.allow'}.`,
          at: record.at,
        },
      })
      .catch((error: unknown) => this.ctx.logger.error('Auditing a refused connection', error));
  }

  stopAll(): void {
    for (const controller of this.running.values()) controller.abort();
    this.pool.dispose();
  }

  private analysisOptions(): DiffAnalysisOptions & { secretInHistory: 'block' | 'squash' } {
    const effective = this.ctx.policy.effective.policy;
    const { maxFiles, maxChangedLines } = effective.blastRadius ?? {};
    return {
      secretInHistory: effective.lanes.pullRequests.secretInHistory,
      ...(effective.sensitivePaths?.length ? { sensitivePaths: effective.sensitivePaths } : {}),
      secretPatterns: this.secretPatterns(),
      scope: { ...(maxFiles ? { maxFiles } : {}), ...(maxChangedLines ? { maxChangedLines } : {}) },
    };
  }

  /** "Agent Lanes: Finish Draft": commits and analyses what a chat agent left in the worktree. */
  async finish(changeId: string, options: { actor: Actor; body?: string }): Promise<DraftOutcome> {
    const change = this.requireDraft(changeId);
    const lane = {
      repoRoot: this.ctx.repoRoot,
      worktreePath: change.worktreePath,
      branch: change.branch,
      baseSha: change.baseSha,
      changeId,
      agentId: change.agentId,
      promptRef: this.promptRef(change),
      subject: redactText(change.title, this.secretPatterns()).text,
      ...(options.body ? { body: options.body } : {}),
    };
    const { commit, analysis } = await analyzeLaneCommit(await commitLaneWork(lane), lane, this.analysisOptions());
    const flags = [
      ...(analysis?.flags ?? []),
      ...refusedPathFlags(commit.refusedPaths),
      ...outsideSparseFlags(analysis?.files ?? [], commit.sparsePaths ?? []),
    ];
    return this.record(changeId, { finished: { commit, ...(analysis ? { analysis } : {}), flags }, actor: options.actor });
  }

  /**
   * A revert draft (the Release lane's rollback): a new change on the merged commit whose work is `git revert` of
   * it, written by the lanes, then finished like any draft, so it goes through Sandbox, Review and a pull request.
   * The merged commit must be in this repository (nothing is fetched: the repository is not written).
   */
  async startRevert(input: {
    sha: string;
    /** The branch the change was merged into: the revert's pull request goes there. */
    branch: string;
    title: string;
    reason: string;
    actor: Actor;
    createdBy: string;
  }): Promise<DraftOutcome> {
    const { ctx } = this;
    const parents = await git(ctx.repoRoot, ['rev-list', '--parents', '-n', '1', `${input.sha}^{commit}`]).then(
      (result) => result.stdout.trim().split(/\s+/).slice(1),
      () => undefined,
    );
    if (!parents)
      throw new DraftInputError(
        `The merged commit ${input.sha.slice(0, 12)} is not in this repository. Fetch it ("git fetch origin"), then roll back again.`,
      );
    const { change } = await this.start({
      task: `Revert "${input.title}" (${input.sha.slice(0, 12)}): ${input.reason}`,
      baseRef: input.sha,
      agent: { kind: 'revert' },
      actor: input.actor,
      createdBy: input.createdBy,
    });
    try {
      await ctx.store.update(change.id, (c) => ({ ...c, baseRef: input.branch }));
      // A merge commit is reverted against its first parent: the branch it was merged into.
      const mainline = parents.length > 1 ? ['-m', '1'] : [];
      await git(change.worktreePath, ['revert', '--no-commit', ...mainline, input.sha]);
      await git(change.worktreePath, ['revert', '--quit']);
    } catch (error) {
      await this.discard(change.id, input.actor).catch(() => undefined);
      throw new DraftInputError(`git revert of ${input.sha.slice(0, 12)} failed, so no revert draft was kept: ${(error as Error).message}`);
    }
    // git's own words: the intact rate finds the revert in the base branch's history, as it finds `git revert`.
    const full = (await git(ctx.repoRoot, ['rev-parse', `${input.sha}^{commit}`])).stdout.trim();
    return this.finish(change.id, { actor: input.actor, body: `This reverts commit ${full}.` });
  }

  /** Writes what a finished draft run produced into the evidence and the change record. */
  private async record(
    changeId: string,
    options: {
      run?: AgentRunResult;
      finished: Pick<FinishedDraftRun, 'commit' | 'flags'> & Partial<Pick<FinishedDraftRun, 'analysis' | 'checkout' | 'agentReport'>>;
      actor: Actor;
      /** What the agent's CLI said it did, read from its output (agents with a transcript format). */
      transcript?: AgentTranscript;
    },
  ): Promise<DraftOutcome> {
    const { ctx } = this;
    const change = this.requireDraft(changeId);
    const { run } = options;
    const { commit, analysis, checkout } = options.finished;
    const flags: Flag[] = [...options.finished.flags];
    if (run?.isolation?.backend === 'host')
      flags.unshift({
        kind: 'unconfined',
        detail:
          'The agent ran without an isolation boundary (policy lanes.agent.isolation names "host"): as you, with your files, credentials and network.',
      });
    // The agent's report is redacted where it enters, and its file in the change folder is rewritten redacted.
    const report = await redactAgentReport(
      options.finished.agentReport,
      join(ctx.storage.changeDir(changeId), 'agent-io', 'agent-report.json'),
      this.secretPatterns(),
    );
    const failedRun = run && run.outcome !== 'succeeded' ? run : undefined;
    const agentVersion = report && 'report' in report ? report.report.agentVersion : undefined;
    const alerts: string[] = [];
    if (commit.squashed)
      alerts.push(
        `Only the history of the agent's ${commit.squashed.commits} commits held secret-like tokens (head no longer does), so the lane squashed them into one commit ${commit.headSha.slice(0, 12)} on the base (policy lanes.pullRequests.secretInHistory: squash); the old head ${commit.squashed.previousHeadSha.slice(0, 12)} is never pushed.`,
      );
    if (checkout && !checkout.untouched)
      alerts.push(`Your checkout changed while the agent ran: ${checkout.differences.slice(0, 3).join('; ')}`);
    const reportError = report && 'error' in report ? report.error : undefined;
    await ctx.evidence.update(
      changeId,
      () => this.initialEvidence(change),
      ({ transcript: previousTranscript, ...evidence }) => ({
        ...evidence,
        agent: { id: change.agentId, ...(agentVersion ? { version: agentVersion } : {}) },
        ...(commit.outcome === 'committed' ? { headSha: commit.headSha } : {}),
        ...(analysis ? { diff: { hash: analysis.hash, files: analysis.files, totals: analysis.totals } } : {}),
        flags,
        ...(report && 'report' in report ? { agentReport: report.report } : {}),
        ...(reportError ? { agentReportError: reportError } : {}),
        ...(checkout
          ? { checkout: { untouched: checkout.untouched, ...(checkout.untouched ? {} : { detail: checkout.differences.join('; ') }) } }
          : {}),
        ...(run?.isolation ? { isolation: run.isolation } : {}),
        // A run's transcript replaces the last run's; a run without one leaves none behind.
        ...transcriptField(run ? options.transcript : previousTranscript),
        // A new head makes task results stale: the sandbox runs again.
        tasks: evidence.headSha === commit.headSha ? evidence.tasks : [],
      }),
    );
    const outcome: DraftOutcome['outcome'] = failedRun ? failedRun.outcome : commit.outcome;
    const message = failedRun
      ? `${failedRun.message}${saidLast(options.transcript)}${commit.outcome === 'committed' ? ' What it changed before stopping was committed to the lane branch.' : ''}`
      : commit.outcome === 'noChanges'
        ? `The agent changed nothing; change ${changeId} stays in Draft, marked "no changes".`
        : `The agent's work was committed on ${change.branch}: ${counted(analysis?.totals.files ?? 0, 'file')}, +${analysis?.totals.additions ?? 0} −${analysis?.totals.deletions ?? 0}${flags.length ? `, ${counted(flags.length, 'flag')}` : ''}.`;
    const state = failedRun
      ? failedRun.outcome === 'notFound'
        ? 'failed'
        : failedRun.outcome === 'refused'
          ? 'refused'
          : failedRun.outcome === 'succeeded'
            ? 'succeeded'
            : failedRun.outcome
      : commit.outcome === 'noChanges'
        ? 'noChanges'
        : 'succeeded';
    const updated = await ctx.store.update(changeId, (c) => ({
      ...c,
      headSha: commit.headSha,
      agentRun: {
        state,
        startedAt: run?.startedAt ?? c.agentRun?.startedAt ?? new Date().toISOString(),
        endedAt: run?.endedAt ?? new Date().toISOString(),
        ...(run?.exitCode !== undefined ? { exitCode: run.exitCode } : {}),
        message,
      },
      ...(alerts.length ? { alerts: [...(c.alerts ?? []), ...alerts] } : {}),
      // The diff moved on: an earlier sandbox verdict and approval no longer apply.
      ...(c.headSha !== commit.headSha ? { sandbox: undefined, approval: undefined } : {}),
    }));
    if (!run) {
      // A chat agent has no process to watch: finishing its draft is its stop.
      await ctx.audit.append({
        actor: options.actor,
        action: 'agent.stop',
        changeId,
        details: {
          agentId: change.agentId,
          result: outcome,
          headSha: commit.headSha,
          files: analysis?.totals.files ?? 0,
          ...(commit.squashed ? { squashed: commit.squashed } : {}),
        },
      });
    }
    return {
      change: updated,
      outcome,
      message,
      ...(run ? { run } : {}),
      ...(checkout ? { checkout } : {}),
      ...(reportError ? { reportError } : {}),
    };
  }

  /**
   * Closes a change for good: removes its worktree and lane branch, keeps its
   * record and audit. Refuses to lose uncommitted work unless `force`.
   */
  async discard(
    changeId: string,
    actor: Actor,
    options: { force?: boolean; event?: 'discard' | 'reject'; comment?: string } = {},
  ): Promise<Change> {
    const { ctx } = this;
    // An agent that has ended while the lane still records its stop: discard right after that.
    if (this.running.has(changeId) && ctx.store.get(changeId)?.agentRun?.state !== 'running') await this.runEnds.get(changeId);
    const change = ctx.store.get(changeId);
    if (!change) throw new DraftInputError(`There is no change ${changeId} in this repository.`);
    if (this.running.has(changeId))
      throw new DraftInputError(`The agent of change ${changeId} is still running; stop it first ("Agent Lanes: Stop Agent").`);
    const event = options.event ?? 'discard';
    // Check the move first, so a refused discard removes nothing.
    const dryRun = transition(change, event, actor);
    if (!dryRun.ok) throw new DraftInputError(dryRun.reason);
    const removed = await removeWorktree({
      repoRoot: ctx.repoRoot,
      worktreePath: change.worktreePath,
      branch: change.branch,
      force: options.force ?? false,
      // A rejected change keeps its branch: its commits stay for the audit and the proof bundle.
      keepBranch: event === 'reject',
    }).catch((error: Error) => {
      if (error instanceof UncommittedWorkError) throw error;
      ctx.logger.warn(`Cleaning up change ${changeId}: ${error.message}`);
      return { removedWorktree: false, removedBranch: false };
    });
    const result = await moveChange(ctx, changeId, event, actor, options.comment === undefined ? {} : { reason: options.comment });
    if (!result.ok) throw new DraftInputError(result.reason);
    if (event === 'discard') await ctx.audit.append({ actor, action: 'change.discard', changeId, details: { branch: change.branch } });
    await ctx.audit.append({ actor: EXTENSION_ACTOR, action: 'cleanup', changeId, details: { worktree: change.worktreePath, ...removed } });
    return result.change;
  }

  /**
   * What policy says about an agent in the chat writing `path` in a draft:
   * allow, requireApproval (confirm first) or block. The kill switch for
   * drafts is asked first, before every write.
   */
  async toolWriteDecision(changeId: string, path: string): Promise<DecisionRecord> {
    const { ctx } = this;
    const change = this.requireDraft(changeId);
    const repository = { repoRoot: ctx.repoRoot, baseSha: change.baseSha };
    const agentAllowed = await ctx.policy.decide('startAgent', { changeId, agentId: change.agentId }, repository);
    if (agentAllowed.effect === 'block') return agentAllowed;
    return ctx.policy.decide(
      'gate.draftToSandbox',
      { changeId, agentId: change.agentId, files: [{ path, additions: 1, deletions: 0 }] },
      repository,
    );
  }

  /** Keeps an agent's report, redacted, in the draft's evidence; returns the fields kept. */
  async recordAgentReport(changeId: string, report: AgentReport): Promise<string[]> {
    const { ctx } = this;
    this.requireDraft(changeId);
    const redacted = redactValue(report, this.secretPatterns()).value;
    const current = await ctx.evidence.read(changeId);
    if (current.kind !== 'ok')
      throw new DraftInputError(
        `The evidence of change ${changeId} cannot be updated: ${current.kind === 'invalid' ? current.message : 'it has none yet'}.`,
      );
    await ctx.evidence.write({ ...current.evidence, agentReport: redacted });
    return Object.keys(redacted);
  }

  /** Audits one tool call of an agent in the chat; a failure to audit is logged, never thrown at the agent. */
  async auditToolCall(changeId: string, actor: Actor, tool: string, details: Record<string, unknown>): Promise<void> {
    await this.ctx.audit
      .append({ actor, action: 'agent.tool', changeId, details: { tool, ...details } })
      .catch((error: unknown) => this.ctx.logger.error('Auditing a tool call', error));
  }

  /** Findings about worktrees and records that do not match (after a crash or a manual deletion); interrupted runs are stopped first. */
  async reconcile(): Promise<ReconcileFinding[]> {
    await this.recoverInterrupted();
    return reconcile(this.ctx.repoRoot, this.ctx.store.all(), this.ctx.storage.worktreesDir);
  }

  async applyReconcile(finding: ReconcileFinding, action: ReconcileAction, actor: Actor, options: { force?: boolean } = {}): Promise<void> {
    await applyReconcileAction(this.ctx.repoRoot, this.ctx.storage.worktreesDir, finding, action, options);
    await this.ctx.audit.append({
      actor,
      action: 'cleanup',
      ...(finding.changeId ? { changeId: finding.changeId } : {}),
      details: { kind: finding.kind, action, path: finding.path, branch: finding.branch },
    });
  }

  private requireDraft(changeId: string): Change {
    const change = this.ctx.store.get(changeId);
    if (!change) throw new DraftInputError(`There is no change ${changeId} in this repository.`);
    if (change.lane !== 'draft')
      throw new DraftInputError(`Change ${changeId} is in ${change.lane}; an agent works on a change only while it is in Draft.`);
    return change;
  }
}
