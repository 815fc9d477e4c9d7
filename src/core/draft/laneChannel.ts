import { z } from 'zod';
import { AgentReportSchema, type TaskEvidence } from '../evidence';
import { counted } from '../words';

/**
 * The lane channel: what an agent working on one change may ask the lanes
 * while it runs. The Draft lane serves it on a Unix socket in the run's
 * exchange folder (`LANES_CHANNEL`), newline-delimited JSON-RPC 2.0, for that
 * change only and only while the run lasts; `agent-lanes mcp` turns it into
 * MCP tools. Pure schemas and shapes: the socket is in infra.
 */

/**
 * The tools, by their MCP name; the channel's JSON-RPC methods have the same names.
 * @internal Exported for its unit tests; the product uses it inside this module.
 */
export const LANE_CHANNEL_METHODS = ['lanes_get_task', 'lanes_run_tasks', 'lanes_report_evidence', 'lanes_finish_draft'] as const;
export type LaneChannelMethod = (typeof LANE_CHANNEL_METHODS)[number];

/** What the MCP server tells an agent about each tool. */
export const LANE_TOOL_DESCRIPTIONS: Readonly<Record<LaneChannelMethod, { title: string; description: string }>> = Object.freeze({
  lanes_get_task: {
    title: 'Get the task',
    description:
      'The task of the change you are working on, the changes a reviewer requested (if the change came back from review), its base, and the whole prompt file you were given.',
  },
  lanes_run_tasks: {
    title: 'Run the required tasks',
    description:
      "Runs the change's required tasks (tests, lint...) now, in the network-less sandbox, on the worktree as it is (uncommitted edits included), and returns each task's outcome, counts and the end of its log. Does not move the change: use it to iterate on failing tests.",
  },
  lanes_report_evidence: {
    title: 'Report evidence',
    description:
      'Records your report for the reviewer: a summary of what you changed, the assumptions you made and the limits of your confidence (what you did not check). Secrets are redacted. A later report replaces an earlier one.',
  },
  lanes_finish_draft: {
    title: 'Finish the draft',
    description:
      'Ends your turn on this change: the lanes commit what the worktree holds when your run ends (exit now; otherwise your run is stopped after a short grace period). After this call every other call is refused. The change stays in Draft: the user promotes it.',
  },
});

/** sun_path holds 108 bytes on Linux (104 on macOS) with its NUL; keep a margin. */
export const MAX_SOCKET_PATH_BYTES = 103;

/** The longest request line the channel reads; a longer one is refused and the connection closed. */
export const MAX_CHANNEL_LINE_BYTES = 2 * 1024 * 1024;

/** How much of each task's log a run_tasks answer carries (its end: where failures are). */
const LOG_TAIL_CHARS = 4_000;

/** JSON-RPC error codes: the standard ones, and the channel's own. */
export const ChannelErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  /** Another change, a draft that ended, a change no longer in Draft, or a policy block. */
  refused: -32001,
  /** Tasks of this change are running already. */
  busy: -32002,
  /** The lanes could not do it (a sandbox that cannot start...): the message says why. */
  failed: -32003,
} as const;

const ChangeIdParam = z.string().min(1).max(64);

/** A request as it arrives; the method and its params are checked one by one, so each refusal can be audited. */
export const LaneChannelRequestSchema = z.strictObject({
  jsonrpc: z.literal('2.0'),
  id: z.union([z.number().int(), z.string().max(64)]),
  method: z.string().min(1).max(64),
  params: z.record(z.string(), z.unknown()).optional(),
});
export type LaneChannelRequest = z.infer<typeof LaneChannelRequestSchema>;

/** Every call names the change it is for: the channel acts only on its own. */
export const LaneChannelParamsSchemas = {
  lanes_get_task: z.strictObject({ changeId: ChangeIdParam }),
  lanes_run_tasks: z.strictObject({ changeId: ChangeIdParam }),
  lanes_report_evidence: z.strictObject({ changeId: ChangeIdParam, report: AgentReportSchema }),
  lanes_finish_draft: z.strictObject({ changeId: ChangeIdParam }),
} satisfies Record<LaneChannelMethod, z.ZodType>;

export const LaneChannelResponseSchema = z.union([
  z.strictObject({ jsonrpc: z.literal('2.0'), id: z.union([z.number(), z.string(), z.null()]), result: z.unknown() }),
  z.strictObject({
    jsonrpc: z.literal('2.0'),
    id: z.union([z.number(), z.string(), z.null()]),
    error: z.object({ code: z.number().int(), message: z.string(), data: z.unknown().optional() }),
  }),
]);
export type LaneChannelResponse = z.infer<typeof LaneChannelResponseSchema>;

export function isLaneChannelMethod(method: string): method is LaneChannelMethod {
  return (LANE_CHANNEL_METHODS as readonly string[]).includes(method);
}

export interface GetTaskResult {
  changeId: string;
  title: string;
  task: string;
  baseRef: string;
  baseSha: string;
  requestedChanges: { comment: string; by: string; at: string }[];
  /** The prompt file the run was given (task, requested changes, working agreement). */
  prompt: string;
}

interface TaskResultView {
  id: string;
  command: string;
  required: boolean;
  outcome: TaskEvidence['outcome'];
  exitCode: number | null;
  durationMs: number;
  counts?: TaskEvidence['counts'];
  message?: string;
  /** The end of the task's log, redacted. */
  logTail: string;
}

export interface RunTasksResult {
  changeId: string;
  /** passed: every required task passed; failed: one did not; error: nothing could run to the end (sandbox, policy, cancel). */
  verdict: 'passed' | 'failed' | 'error';
  message: string;
  isolation?: 'container' | 'process';
  counts: Record<TaskEvidence['outcome'], number>;
  tasks: TaskResultView[];
}

export interface ReportEvidenceResult {
  changeId: string;
  /** The report's fields now recorded. */
  fields: string[];
  /** How many secret-like values were cut from it. */
  redactions: number;
  message: string;
}

export interface FinishDraftResult {
  changeId: string;
  message: string;
  /** The run is stopped this many seconds after the call, unless the agent exits first. */
  graceSeconds: number;
}

/** The last `max` characters of a log, starting at a line. */
export function logTail(text: string, max = LOG_TAIL_CHARS): string {
  if (text.length <= max) return text;
  const cut = text.slice(-max);
  const newline = cut.indexOf('\n');
  return `…${newline >= 0 && newline < cut.length - 1 ? cut.slice(newline + 1) : cut}`;
}

/** How many tasks ended each way. */
export function outcomeCounts(tasks: readonly Pick<TaskEvidence, 'outcome'>[]): RunTasksResult['counts'] {
  const counts = { passed: 0, failed: 0, timedOut: 0, cancelled: 0, error: 0, skipped: 0 };
  for (const task of tasks) counts[task.outcome]++;
  return counts;
}

/**
 * One line about a trial run of a draft's tasks: nothing moves, so unlike the
 * Sandbox lane's verdict it never speaks of lanes.
 */
export function draftTasksMessage(
  tasks: readonly Pick<TaskEvidence, 'id' | 'outcome' | 'required' | 'exitCode'>[],
  stop?: string,
): { verdict: RunTasksResult['verdict']; message: string } {
  if (stop) return { verdict: 'error', message: stop };
  if (tasks.length === 0) return { verdict: 'passed', message: 'No tasks to run (none required by policy or .lanes/lanes.yaml).' };
  const notPassed = tasks.filter((task) => task.required && task.outcome !== 'passed');
  const passed = tasks.filter((task) => task.outcome === 'passed').length;
  if (tasks.some((task) => task.outcome === 'cancelled' || task.outcome === 'error'))
    return {
      verdict: 'error',
      message: `The run did not finish: ${passed} of ${counted(tasks.length, 'task')} passed; run the tasks again.`,
    };
  if (notPassed.length === 0) return { verdict: 'passed', message: `Every required task passed (${passed} of ${tasks.length} passed).` };
  const named = notPassed.map((task) => (task.exitCode === null ? `${task.id} (${task.outcome})` : `${task.id} (exit ${task.exitCode})`));
  return { verdict: 'failed', message: `${passed} of ${counted(tasks.length, 'task')} passed; did not pass: ${named.join(', ')}.` };
}
