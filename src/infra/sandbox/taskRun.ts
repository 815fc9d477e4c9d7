import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { RedactionSummary, TaskEvidence } from '../../core/evidence';
import { BUILTIN_SECRET_PATTERNS, redactText, type SecretPattern } from '../../core/redaction';
import type { ResolvedTask } from '../../core/sandbox/lanesConfig';
import { parseTestSummary } from '../../core/sandbox/summaryParsers';
import { CappedLog, DEFAULT_MAX_LOG_CHARS, LineRedactor } from '../../core/sandbox/taskLog';
import { writeFileAtomic } from '../storage/fileStore';
import type { PreparedSandbox, SandboxLabel, SandboxProgress } from './types';

/** What every sandbox needs to run a task and keep its log. */
export interface TaskRunOptions {
  /** Where logs are stored, outside every worktree (e.g. RepoStorage.logsDir). */
  logDir: string;
  /** Aborting kills the task (in the container too) and records it as cancelled. */
  signal?: AbortSignal | undefined;
  /** The task's output as it arrives, redacted. */
  onOutput?: ((text: string) => void) | undefined;
  /** Stored log cap in characters (default 5 MiB); the head and the tail are kept. */
  maxLogChars?: number | undefined;
  /** Secret patterns for redaction (policy may add some); default the built-in ones. */
  redactionPatterns?: readonly SecretPattern[] | undefined;
}

export interface StoredLog {
  file: string;
  digest: string;
  truncated: boolean;
  redaction: RedactionSummary;
  text: string;
}

export function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;
}

/** `2026-11-21T15-18-16-589Z`: sortable and safe in a file name. */
function fileStamp(date = new Date()): string {
  return date.toISOString().replace(/[:.]/g, '-');
}

export function logFileFor(logDir: string, changeId: string, name: string, date = new Date()): string {
  return join(logDir, changeId, `${fileStamp(date)}-${name.replace(/[^A-Za-z0-9._-]/g, '_')}.log`);
}

/** Redacts, stores and digests a log; the digest is over the stored (redacted) text. */
export async function storeLog(
  file: string,
  log: CappedLog,
  patterns: readonly SecretPattern[] = BUILTIN_SECRET_PATTERNS,
): Promise<StoredLog> {
  const redacted = redactText(log.text(), patterns);
  await writeFileAtomic(file, redacted.text);
  return { file, digest: sha256(redacted.text), truncated: log.truncated, redaction: redacted.summary, text: redacted.text };
}

export interface CaptureHandle {
  /** Merged stdout and stderr of the running process. */
  output: Readable | undefined;
  /** Resolves when the process ends, never rejects. */
  done: Promise<{ exitCode: number | undefined; stderrTail: string }>;
}

export interface CaptureResult {
  exitCode: number | undefined;
  ended: 'exited' | 'timedOut' | 'cancelled';
  durationMs: number;
  startedAt: string;
  log: CappedLog;
  /** The last part of what was printed, for error detection (not redacted, never stored). */
  tail: string;
}

/**
 * Runs a process to its end, its time limit or a cancel, streaming its output
 * redacted and capturing it capped. `stop` must end the work for good (in a
 * container: kill the process there, not only the local client).
 */
export async function capture(
  start: () => CaptureHandle,
  stop: () => Promise<void>,
  options: {
    timeoutMs: number;
    signal?: AbortSignal | undefined;
    onOutput?: ((text: string) => void) | undefined;
    maxLogChars?: number | undefined;
    patterns?: readonly SecretPattern[] | undefined;
  },
): Promise<CaptureResult> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const log = new CappedLog(options.maxLogChars ?? DEFAULT_MAX_LOG_CHARS);
  const stream = options.onOutput ? new LineRedactor(options.onOutput, options.patterns) : undefined;
  let tail = '';
  if (options.signal?.aborted) {
    return { exitCode: undefined, ended: 'cancelled', durationMs: 0, startedAt, log, tail };
  }
  const handle = start();
  handle.output?.setEncoding('utf8');
  handle.output?.on('data', (chunk: string) => {
    log.append(chunk);
    stream?.write(chunk);
    tail = (tail + chunk).slice(-4096);
  });
  let ended: CaptureResult['ended'] = 'exited';
  let stopping: Promise<void> | undefined;
  const end = (why: 'timedOut' | 'cancelled') => {
    if (stopping) return;
    ended = why;
    stopping = stop().catch(() => undefined);
  };
  const timer = setTimeout(() => end('timedOut'), options.timeoutMs);
  const onAbort = () => end('cancelled');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const { exitCode, stderrTail } = await handle.done;
    await stopping;
    if (stderrTail) tail = (tail + stderrTail).slice(-4096);
    stream?.end();
    return { exitCode, ended, durationMs: Date.now() - started, startedAt, log, tail };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** The evidence for a task from its capture and its stored log. */
export function taskEvidence(
  task: ResolvedTask,
  run: Pick<CaptureResult, 'exitCode' | 'durationMs' | 'startedAt'>,
  outcome: TaskEvidence['outcome'],
  log: StoredLog | undefined,
  sandbox: SandboxLabel,
  message?: string,
): TaskEvidence {
  const counts = log ? parseTestSummary(log.text) : undefined;
  return {
    id: task.id,
    command: task.command,
    required: task.required,
    isolation: sandbox.isolation,
    ...(sandbox.image ? { image: sandbox.image } : {}),
    ...(sandbox.imageId ? { imageId: sandbox.imageId } : {}),
    networkMode: sandbox.networkMode,
    outcome,
    exitCode: run.exitCode ?? null,
    durationMs: run.durationMs,
    ...(counts ? { counts } : {}),
    ...(log ? { logFile: log.file } : {}),
    logDigest: log?.digest ?? sha256(''),
    logTruncated: log?.truncated ?? false,
    redaction: log?.redaction ?? { total: 0, byKind: {} },
    failsOnBase: null,
    startedAt: run.startedAt,
    ...(message ? { message } : {}),
  };
}

/** A task that did not run (an earlier failure of the sandbox itself, a policy stop, or a cancel). */
export function skippedTask(task: ResolvedTask, sandbox: SandboxLabel, message: string): TaskEvidence {
  return taskEvidence(
    task,
    { exitCode: undefined, durationMs: 0, startedAt: new Date().toISOString() },
    'skipped',
    undefined,
    sandbox,
    message,
  );
}

export interface TaskSequenceOptions extends Omit<TaskRunOptions, 'onOutput'> {
  /** Each task's output as it arrives, redacted, with its task id. */
  onTaskOutput?: ((taskId: string, text: string) => void) | undefined;
  onProgress?: ((progress: SandboxProgress) => void) | undefined;
  /**
   * Asked before every task (policy: the kill switch is checked before each
   * side effect). A reason stops the run there: this task and the rest are
   * recorded as skipped with it.
   */
  beforeTask?: ((task: ResolvedTask) => Promise<string | undefined>) | undefined;
  /** Told after every task that ran (its audit event). */
  afterTask?: (evidence: TaskEvidence) => Promise<void>;
}

const CANCELLED = 'Not run: the run was cancelled.';

/**
 * The one task runner of every sandbox: runs the tasks one after the other in
 * a prepared sandbox, with progress events. After a cancel, a stop from
 * `beforeTask`, or a failure of the sandbox itself, the rest are recorded as
 * skipped, never silently dropped.
 */
export async function runTaskSequence(
  prepared: PreparedSandbox,
  tasks: readonly ResolvedTask[],
  options: TaskSequenceOptions,
): Promise<TaskEvidence[]> {
  const { onTaskOutput, onProgress, beforeTask, afterTask, ...runOptions } = options;
  const results: TaskEvidence[] = [];
  let stopReason: string | undefined;
  for (const [index, task] of tasks.entries()) {
    if (!stopReason && options.signal?.aborted) stopReason = CANCELLED;
    if (!stopReason && beforeTask) stopReason = await beforeTask(task);
    if (stopReason) {
      results.push(skippedTask(task, prepared.label, stopReason));
      continue;
    }
    onProgress?.({ kind: 'taskStarted', task, index, total: tasks.length });
    const evidence = await prepared.runTask(task, {
      ...runOptions,
      ...(onTaskOutput ? { onOutput: (text: string) => onTaskOutput(task.id, text) } : {}),
    });
    results.push(evidence);
    await afterTask?.(evidence);
    onProgress?.({ kind: 'taskFinished', evidence, index, total: tasks.length });
    if (evidence.outcome === 'error' && prepared.stopAfterError) stopReason = prepared.stopAfterError;
    if (evidence.outcome === 'cancelled') stopReason = CANCELLED;
  }
  return results;
}
