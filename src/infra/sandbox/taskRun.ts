import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { RedactionSummary, TaskEvidence } from '../../core/evidence';
import { BUILTIN_SECRET_PATTERNS, redactText, type SecretPattern } from '../../core/redaction';
import type { ResolvedTask } from '../../core/sandbox/lanesConfig';
import { parseTestSummary } from '../../core/sandbox/summaryParsers';
import { CappedLog, DEFAULT_MAX_LOG_CHARS, LineRedactor } from '../../core/sandbox/taskLog';
import { writeFileAtomic } from '../storage/fileStore';
import type { RunTasksRequest } from './types';

/** What every sandbox needs to run a task and keep its log. */
export interface TaskRunOptions {
  /** Where logs are stored, outside every worktree (e.g. RepoStorage.logsDir). */
  logDir: string;
  /** Aborting kills the task (in the container too) and records it as cancelled. */
  signal?: AbortSignal;
  /** The task's output as it arrives, redacted. */
  onOutput?: (text: string) => void;
  /** Stored log cap in characters (default 5 MiB); the head and the tail are kept. */
  maxLogChars?: number;
  /** Secret patterns for redaction (policy may add some); default the built-in ones. */
  redactionPatterns?: readonly SecretPattern[];
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
export function fileStamp(date = new Date()): string {
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
    signal?: AbortSignal;
    onOutput?: (text: string) => void;
    maxLogChars?: number;
    patterns?: readonly SecretPattern[];
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
  sandbox: { isolation: 'container' | 'process'; networkMode: string; image?: string; imageId?: string },
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

/** A task that did not run (an earlier failure of the sandbox itself, or a cancel). */
export function skippedTask(
  task: ResolvedTask,
  sandbox: { isolation: 'container' | 'process'; networkMode: string; image?: string; imageId?: string },
  message: string,
): TaskEvidence {
  return taskEvidence(
    task,
    { exitCode: undefined, durationMs: 0, startedAt: new Date().toISOString() },
    'skipped',
    undefined,
    sandbox,
    message,
  );
}

type SandboxLabel = Parameters<typeof skippedTask>[1];

/**
 * Runs the tasks one after the other with progress events. After a cancel (or
 * a sandbox error, when `stopAfterError` names why) the rest are recorded as
 * skipped, never silently dropped.
 */
export async function runTaskSequence(
  request: Pick<RunTasksRequest, 'tasks' | 'signal' | 'onProgress'>,
  sandbox: SandboxLabel,
  runOne: (task: ResolvedTask) => Promise<TaskEvidence>,
  stopAfterError?: string,
): Promise<TaskEvidence[]> {
  const cancelled = 'Not run: the run was cancelled.';
  const tasks: TaskEvidence[] = [];
  let stopReason: string | undefined;
  for (const [index, task] of request.tasks.entries()) {
    if (!stopReason && request.signal?.aborted) stopReason = cancelled;
    if (stopReason) {
      tasks.push(skippedTask(task, sandbox, stopReason));
      continue;
    }
    request.onProgress?.({ kind: 'taskStarted', task, index, total: request.tasks.length });
    const evidence = await runOne(task);
    tasks.push(evidence);
    request.onProgress?.({ kind: 'taskFinished', evidence, index, total: request.tasks.length });
    if (evidence.outcome === 'error' && stopAfterError) stopReason = stopAfterError;
    if (evidence.outcome === 'cancelled') stopReason = cancelled;
  }
  return tasks;
}
