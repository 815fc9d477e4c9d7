import { randomBytes, randomUUID } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Actor } from '../../../core/change';
import {
  ChannelErrorCode,
  type FinishDraftResult,
  type GetTaskResult,
  type LaneChannelMethod,
  LaneChannelParamsSchemas,
  type LaneChannelRequest,
  type ReportEvidenceResult,
  type RunTasksResult,
  draftTasksMessage,
  isLaneChannelMethod,
  logTail,
  outcomeCounts,
} from '../../../core/draft/laneChannel';
import type { AgentReport, TaskEvidence } from '../../../core/evidence';
import { type SecretPattern, redactText, redactValue } from '../../../core/redaction';
import { type ChannelSocketPlace, type LaneChannel, LaneChannelError, openLaneChannel } from '../../draft/laneChannel';
import { PolicyDeniedError } from '../../policy/policyService';
import { type LaneContext, decide } from '../laneContext';
import type { DraftTasksOutcome } from '../sandbox/sandboxLane';
import { counted } from '../../../core/words';

/** Runs a draft's tasks now (SandboxLane.runDraftTasks), as the Draft lane is given it. */
export type DraftTaskRunner = (changeId: string, actor: Actor, signal: AbortSignal) => Promise<DraftTasksOutcome>;

export interface AgentChannelOptions {
  ctx: LaneContext;
  place: ChannelSocketPlace;
  changeId: string;
  agentId: string;
  /** The prompt as written to the run's prompt file (kept here: the file lies where the agent writes, and is never read back). */
  prompt: string;
  /** LANES_EVIDENCE_FILE: a reported report goes there, redacted, and is read with the rest when the run ends. */
  evidenceFile: string;
  /** The redaction the agent's report file gets (policy's patterns and the built-in ones). */
  patterns: readonly SecretPattern[];
  runTasks?: DraftTaskRunner | undefined;
  /** Told once, when the agent calls lanes_finish_draft. */
  onFinish: () => void;
  finishGraceSeconds: number;
}

/** The lane channel of one agent run, as the Draft lane serves it. */
export interface AgentChannel extends LaneChannel {
  /** Whether the agent called lanes_finish_draft. */
  readonly finished: boolean;
}

const MAX_LOG_READ_BYTES = 256 * 1024;

async function readLogTail(file: string | undefined): Promise<string> {
  if (!file) return '';
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, MAX_LOG_READ_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return logTail(buffer.toString('utf8'));
  } finally {
    await handle.close();
  }
}

/**
 * Writes the exchange folder's file without following anything the agent put
 * there: a fresh file (O_EXCL, never a planted link) renamed over the name.
 */
async function writeInExchangeFolder(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.lanes-${randomBytes(8).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
  } finally {
    await handle.close();
  }
  await rename(temp, path).catch(async (error: unknown) => {
    await unlink(temp).catch(() => undefined);
    throw error;
  });
}

/**
 * Opens the lane channel of one agent run. Every call is a policy decision
 * (`agentCall`, in the audit log) and an `agent.tool` audit event; a call for
 * another change, after lanes_finish_draft, or once the change has left Draft
 * is refused, and the refusal is audited the same way.
 */
export async function openAgentChannel(options: AgentChannelOptions): Promise<AgentChannel> {
  const { ctx, changeId, agentId } = options;
  /** What the agent sent (a tool name, a change id, a field name) is redacted before the audit log or an answer quotes it. */
  const quote = (text: string) => redactText(text.slice(0, 64), options.patterns).text;
  const actor: Actor = { type: 'agent', id: agentId };
  const running = new AbortController();
  let finished = false;
  let tasksRunning = false;

  const auditCall = (tool: string, outcome: 'ok' | 'refused' | 'failed', details: Record<string, unknown>) =>
    ctx.audit
      .append({ actor, action: 'agent.tool', changeId, details: { tool, via: 'laneChannel', outcome, ...details } })
      .catch((error: unknown) => ctx.logger.error(`Auditing a lane channel call of change ${changeId}`, error));

  /** A refusal the lane decides before policy is asked: audited as a blocked decision, like a refused connection. */
  const refuse = async (tool: string, explanation: string, extra: Record<string, unknown> = {}): Promise<never> => {
    const decisionId = randomUUID();
    await ctx.audit
      .append({
        actor,
        action: 'policy.decision',
        changeId,
        decisionId,
        policy: ctx.policy.effective.policyRef,
        details: { action: 'agentCall', effect: 'block', subject: `${changeId} ${tool}`, explanation, ...extra },
      })
      .catch((error: unknown) => ctx.logger.error(`Auditing a refused lane channel call of change ${changeId}`, error));
    await auditCall(tool, 'refused', { decisionId, reason: explanation, ...extra });
    throw new LaneChannelError(ChannelErrorCode.refused, explanation);
  };

  const handle = async (request: LaneChannelRequest): Promise<unknown> => {
    const tool = request.method;
    if (!isLaneChannelMethod(tool)) return refuse(quote(tool), `There is no tool "${quote(tool)}" on the lane channel.`);
    const parsed = LaneChannelParamsSchemas[tool].safeParse(request.params ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 3)
        .map((issue) => redactText(`${issue.path.map(String).join('.') || '(params)'}: ${issue.message}`, options.patterns).text)
        .join('; ');
      await auditCall(tool, 'refused', { reason: `invalid parameters: ${issues}` });
      throw new LaneChannelError(ChannelErrorCode.invalidParams, `Invalid parameters for ${tool}: ${issues}.`);
    }
    const params = parsed.data;
    if (params.changeId !== changeId)
      return refuse(tool, `This lane channel serves change ${changeId} only; a call for change ${quote(params.changeId)} is refused.`, {
        requestedChangeId: quote(params.changeId),
      });
    if (finished)
      return refuse(
        tool,
        `The draft of change ${changeId} has ended: the agent called lanes_finish_draft, and no further call is accepted.`,
      );
    const change = ctx.store.get(changeId);
    if (change?.lane !== 'draft')
      return refuse(
        tool,
        `Change ${changeId} is ${change ? `in ${change.lane}` : 'gone'}, not in Draft: an agent acts on a change only in Draft.`,
      );

    let decisionId: string;
    try {
      decisionId = (await decide(ctx, 'agentCall', { changeId, agentId }, change, actor, { record: false })).decisionId;
    } catch (error) {
      if (!(error instanceof PolicyDeniedError)) throw error;
      await auditCall(tool, 'refused', { decisionId: error.decision.decisionId, reason: error.decision.explanation });
      throw new LaneChannelError(ChannelErrorCode.refused, error.decision.explanation);
    }
    try {
      const { result, details } = await dispatch(tool, params as never);
      await auditCall(tool, 'ok', { decisionId, ...details });
      return result;
    } catch (error) {
      await auditCall(tool, 'failed', { decisionId, reason: (error as Error).message });
      if (error instanceof LaneChannelError) throw error;
      ctx.logger.error(`Lane channel ${tool} of change ${changeId}`, error);
      throw new LaneChannelError(ChannelErrorCode.failed, (error as Error).message);
    }
  };

  type Handled = { result: unknown; details: Record<string, unknown> };
  const dispatch = async (tool: LaneChannelMethod, params: { changeId: string; report?: AgentReport }): Promise<Handled> => {
    const change = ctx.store.get(changeId)!;
    switch (tool) {
      case 'lanes_get_task': {
        const result: GetTaskResult = {
          changeId,
          title: change.title,
          task: change.task,
          baseRef: change.baseRef,
          baseSha: change.baseSha,
          requestedChanges: (change.requestedChanges ?? []).map((r) => ({ comment: r.comment, by: r.by, at: r.at })),
          prompt: options.prompt,
        };
        return { result, details: { requestedChanges: result.requestedChanges.length } };
      }
      case 'lanes_run_tasks': {
        if (!options.runTasks)
          throw new LaneChannelError(ChannelErrorCode.failed, 'This editor runs no sandbox tasks for an agent (no Sandbox lane).');
        if (tasksRunning)
          throw new LaneChannelError(ChannelErrorCode.busy, `The tasks of change ${changeId} are running already; wait for them.`);
        tasksRunning = true;
        let run: DraftTasksOutcome;
        try {
          run = await options.runTasks(changeId, actor, running.signal);
        } finally {
          tasksRunning = false;
        }
        const { verdict, message } = draftTasksMessage(run.tasks, run.stop);
        const result: RunTasksResult = {
          changeId,
          verdict,
          message,
          ...(run.isolation ? { isolation: run.isolation } : {}),
          counts: outcomeCounts(run.tasks),
          tasks: await Promise.all(
            run.tasks.map(async (task: TaskEvidence) => ({
              id: task.id,
              command: task.command,
              required: task.required,
              outcome: task.outcome,
              exitCode: task.exitCode,
              durationMs: Math.round(task.durationMs),
              ...(task.counts ? { counts: task.counts } : {}),
              ...(task.message ? { message: task.message } : {}),
              logTail: await readLogTail(task.logFile),
            })),
          ),
        };
        return { result, details: { verdict, counts: result.counts, isolation: run.isolation } };
      }
      case 'lanes_report_evidence': {
        // Redacted as the report file is when the run ends, and written there: the end of the run reads it like any report.
        const { value, summary } = redactValue(params.report!, options.patterns);
        await writeInExchangeFolder(options.evidenceFile, `${JSON.stringify(value, null, 2)}\n`);
        const fields = Object.keys(value);
        const result: ReportEvidenceResult = {
          changeId,
          fields,
          redactions: summary.total,
          message: `Your report (${fields.join(', ') || 'empty'}) is recorded; it goes into the evidence when your run ends.${summary.total ? ` ${counted(summary.total, 'secret-like value')} ${summary.total === 1 ? 'was' : 'were'} redacted.` : ''}`,
        };
        return { result, details: { fields, redactions: summary.total } };
      }
      case 'lanes_finish_draft': {
        finished = true;
        running.abort();
        options.onFinish();
        const result: FinishDraftResult = {
          changeId,
          graceSeconds: options.finishGraceSeconds,
          message: `Your turn on change ${changeId} has ended. Exit now: what the worktree holds when your run ends is committed on the lane branch (stopped after ${options.finishGraceSeconds} s otherwise). The change stays in Draft; the user decides on its next step.`,
        };
        return { result, details: { graceSeconds: options.finishGraceSeconds } };
      }
    }
  };

  const channel = await openLaneChannel({
    place: options.place,
    handle,
    onMalformed: (reason) => void auditCall('(malformed)', 'refused', { reason }),
  });
  return {
    socketPath: channel.socketPath,
    get finished() {
      return finished;
    },
    async close() {
      running.abort();
      await channel.close();
    },
  };
}
