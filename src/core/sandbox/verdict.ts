import type { TaskEvidence } from '../evidence';
import { counted } from '../words';

/** Marks, inside a passed verdict's message, the tasks that failed without being required (the Lanes view reads it back). */
export const OPTIONAL_FAILED = 'not required and failed: ';

export interface SandboxRunFacts {
  /** The tasks the run was meant to run, in order. */
  planned: readonly { id: string; required: boolean }[];
  /** The evidence of the tasks, run or skipped. */
  tasks: readonly TaskEvidence[];
  /** The sandbox could not be set up (`cancelled` when the set-up was cancelled). */
  setupError?: { kind: string; message: string };
  /** Policy stopped the run (the kill switch, a runTask block): its explanation. */
  blockedBy?: string;
  /** The run was cancelled (stopped by the person, or by the kill switch). */
  cancelled: boolean;
}

export interface SandboxVerdict {
  verdict: 'passed' | 'failed' | 'error';
  /** Required tasks that did not pass or have no evidence at all. */
  failedTasks: string[];
  /** Review when the verdict is passed (the Sandbox → Review gate still decides); else the change stays in Sandbox. */
  nextLane: 'review' | 'sandbox';
  /** One line for the person: what happened and what to do. */
  message: string;
}

function outcomeWords(task: TaskEvidence): string {
  switch (task.outcome) {
    case 'failed':
      return task.exitCode === null ? 'failed' : `failed, exit ${task.exitCode}`;
    case 'timedOut':
      return 'timed out';
    default:
      return task.outcome;
  }
}

/**
 * The verdict of a sandbox run: every required task must pass; a task that
 * is not required is shown, not blocking. A run that did not finish (set-up
 * error, policy stop, cancel, a sandbox failure during a task) has no verdict
 * on the change itself: it is an error that says to run again.
 */
export function sandboxVerdict(facts: SandboxRunFacts): SandboxVerdict {
  const { tasks } = facts;
  const byId = new Map(tasks.map((task) => [task.id, task]));
  const missing = facts.planned.filter((task) => task.required && !byId.has(task.id)).map((task) => task.id);
  const requiredNotPassed = tasks.filter((task) => task.required && task.outcome !== 'passed');
  const failedTasks = [...requiredNotPassed.map((task) => task.id), ...missing];
  const optionalFailed = tasks.filter((task) => !task.required && task.outcome !== 'passed' && task.outcome !== 'skipped');
  const optionalNote = optionalFailed.length ? ` ${OPTIONAL_FAILED}${optionalFailed.map((task) => task.id).join(', ')}.` : '';
  const error = (message: string): SandboxVerdict => ({ verdict: 'error', failedTasks, nextLane: 'sandbox', message });

  if (facts.setupError)
    return error(facts.setupError.kind === 'cancelled' ? `Cancelled: ${facts.setupError.message}` : facts.setupError.message);
  if (facts.blockedBy) return error(`Policy stopped the sandbox run: ${facts.blockedBy}`);
  if (facts.cancelled || tasks.some((task) => task.outcome === 'cancelled')) {
    const passed = tasks.filter((task) => task.outcome === 'passed').length;
    return error(`Cancelled: ${passed} of ${counted(tasks.length, 'task')} had passed; run the tasks again to get a verdict.`);
  }
  const sandboxFailure = requiredNotPassed.find((task) => task.outcome === 'error');
  if (sandboxFailure) return error(sandboxFailure.message ?? 'The sandbox failed during a task; run the tasks again.');
  if (failedTasks.length > 0) {
    const named = [...requiredNotPassed.map((task) => `${task.id} (${outcomeWords(task)})`), ...missing.map((id) => `${id} (missing)`)];
    return {
      verdict: 'failed',
      failedTasks,
      nextLane: 'sandbox',
      message: `Required task${named.length === 1 ? '' : 's'} did not pass: ${named.join(', ')}; the change stays in Sandbox. Fix it in Draft or look at the task log.${optionalNote}`,
    };
  }
  return {
    verdict: 'passed',
    failedTasks,
    nextLane: 'review',
    message:
      facts.planned.length === 0
        ? 'No tasks to run (none required by policy or .lanes/lanes.yaml).'
        : `${counted(tasks.filter((task) => task.required).length, 'required task')} passed.${optionalNote}`,
  };
}
