import { createWriteStream, type WriteStream } from 'node:fs';
import { lstat, mkdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { type AgentReportParse, oversizedReportError, parseAgentReport } from '../../core/draft/agentEvidence';
import { AGENTS_SETTING, type AgentConfig, DEFAULT_AGENT_TIMEOUT_SECONDS, substitutePlaceholders } from '../../core/draft/agentConfig';
import { type PromptInput, composePrompt } from '../../core/draft/draft';
import { environmentWithoutGitRedirects } from '../git/gitProcess';
import { LaneError } from '../../core/errors';
import type { StreamRedactor } from '../../core/redaction';

/** @internal Exported for its unit tests; the product calls it inside this module. */
export class AgentRunError extends LaneError {
  override name = 'AgentRunError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('agentRun', message, options);
  }
}

type AgentOutcome = 'succeeded' | 'failed' | 'timedOut' | 'cancelled' | 'notFound';

export interface AgentRunResult {
  outcome: AgentOutcome;
  /** The agent's exit code, when it exited by itself. */
  exitCode?: number;
  /** The signal that ended it, when it was killed. */
  signal?: string;
  message: string;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  logFile: string;
  /** The prompt file the agent was given. */
  promptFile: string;
}

export interface RunAgentOptions {
  agent: AgentConfig;
  changeId: string;
  worktreePath: string;
  /** The task, base and any requested changes from a review; becomes the prompt file. */
  prompt: PromptInput;
  /** Where the prompt file is written; outside the worktree. */
  promptFile: string;
  /** LANES_EVIDENCE_FILE: where the agent writes its report; outside the worktree. Removed before the run. */
  evidenceFile: string;
  /** The change's log; output is appended line by line. Outside the worktree. */
  logFile: string;
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Aborting stops the agent and its process tree ("Lanes: Stop Agent"). */
  signal?: AbortSignal;
  /** Applied to every output line before the callback and the log (e.g. secret redaction). */
  redactLine?: (line: string) => string;
  /** A redactor per stream that may hold lines back (a private key block) until it can cut them whole; wins over redactLine. */
  redactStream?: () => StreamRedactor;
  /** How long after SIGTERM the process group gets SIGKILL. */
  killGraceMs?: number;
  /** Overrides agent.timeoutSeconds (tests). */
  timeoutMs?: number;
}

const MAX_LINE_CHARS = 8_000;
const MAX_LOG_BYTES = 50 * 1024 * 1024;

async function assertOutside(worktreeReal: string, path: string, what: string): Promise<void> {
  if (!isAbsolute(path)) throw new AgentRunError(`The ${what} must be an absolute path, not "${path}".`);
  const parent = await realpath(dirname(path)).catch(() => resolve(dirname(path)));
  const inside = relative(worktreeReal, join(parent, basename(path)));
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    throw new AgentRunError(
      `The ${what} ${path} lies inside the worktree; it must lie outside it, where the agent's edits cannot reach it.`,
    );
  }
}

const WINDOWS = process.platform === 'win32';

/** Signals the agent's whole process group (its tree, on Windows); it may already be gone. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (WINDOWS) {
    // Windows has no process groups to signal; taskkill /T ends the tree.
    execa('taskkill', ['/pid', String(pid), '/T', '/F'], { reject: false, windowsHide: true }).catch(() => undefined);
    return;
  }
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Runs a CLI agent in the change's worktree. The command's arguments get their
 * placeholders substituted one by one and run without a shell. The agent runs in
 * its own process group, so a timeout, a cancel, or its own exit ends every
 * process it started (a process that leaves the group with setsid escapes this).
 */
export async function runAgent(options: RunAgentOptions): Promise<AgentRunResult> {
  const { agent, worktreePath, promptFile, evidenceFile, logFile } = options;
  let worktreeReal: string;
  try {
    if (!(await stat(worktreePath)).isDirectory()) throw new Error('not a folder');
    worktreeReal = await realpath(worktreePath);
  } catch {
    throw new AgentRunError(
      `The worktree ${worktreePath} of change ${options.changeId} is missing; run "Lanes: Reconcile" to restore it or discard the change.`,
    );
  }
  await assertOutside(worktreeReal, promptFile, 'prompt file');
  await assertOutside(worktreeReal, evidenceFile, 'evidence file (LANES_EVIDENCE_FILE)');
  await assertOutside(worktreeReal, logFile, 'log file');

  const promptText = composePrompt(options.prompt);
  await Promise.all([
    mkdir(dirname(promptFile), { recursive: true }),
    mkdir(dirname(evidenceFile), { recursive: true }),
    mkdir(dirname(logFile), { recursive: true }),
  ]);
  await writeFile(promptFile, promptText, { mode: 0o600 });
  // A report left by an earlier run must not pass for this run's.
  await rm(evidenceFile, { force: true });

  const [file, ...args] = substitutePlaceholders(agent.command, { prompt: promptText, promptFile, worktree: worktreePath });
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const log = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
  let logBytes = 0;
  const writeLog = (text: string) => {
    if (logBytes > MAX_LOG_BYTES) return;
    logBytes += Buffer.byteLength(text);
    log.write(logBytes > MAX_LOG_BYTES ? '[log truncated: over 50 MB]\n' : text);
  };
  writeLog(`── ${startedAt} agent ${agent.id}: ${[file, ...args.map((arg) => (arg === promptText ? '{prompt}' : arg))].join(' ')}\n`);

  const finish = async (
    result: Omit<AgentRunResult, 'startedAt' | 'endedAt' | 'durationMs' | 'logFile' | 'promptFile'>,
  ): Promise<AgentRunResult> => {
    const ended = Date.now();
    writeLog(`── ${new Date(ended).toISOString()} ${result.outcome}: ${result.message}\n`);
    await closeLog(log);
    return { ...result, startedAt, endedAt: new Date(ended).toISOString(), durationMs: ended - started, logFile, promptFile };
  };

  if (options.signal?.aborted) return finish({ outcome: 'cancelled', message: `Agent "${agent.label}" was stopped before it started.` });

  const timeoutMs = options.timeoutMs ?? (agent.timeoutSeconds ?? DEFAULT_AGENT_TIMEOUT_SECONDS) * 1000;
  const subprocess = execa(file!, args, {
    cwd: worktreePath,
    extendEnv: false,
    env: environmentWithoutGitRedirects({
      ...agent.env,
      LANES_EVIDENCE_FILE: evidenceFile,
      LANES_CHANGE_ID: options.changeId,
      LANES_WORKTREE: worktreePath,
      LANES_PROMPT_FILE: promptFile,
    }),
    // Its own process group (setsid), so the whole tree can be signalled at once.
    detached: !WINDOWS,
    stdin: 'ignore',
    buffer: false,
    reject: false,
    windowsHide: true,
  });

  const pump = (stream: Readable | null, name: 'stdout' | 'stderr') =>
    new Promise<void>((done) => {
      if (!stream) return done();
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      const redactor = options.redactStream?.();
      const emit = (line: string) => {
        writeLog(name === 'stderr' ? `[stderr] ${line}\n` : `${line}\n`);
        options.onLine?.(line, name);
      };
      lines.on('line', (raw) => {
        const cut = raw.length > MAX_LINE_CHARS ? `${raw.slice(0, MAX_LINE_CHARS)}…[line truncated]` : raw;
        if (redactor) redactor.push(cut).forEach(emit);
        else emit(options.redactLine ? options.redactLine(cut) : cut);
      });
      const end = () => {
        redactor?.flush().forEach(emit);
        done();
      };
      lines.on('close', end);
      stream.on('error', end);
    });
  const pumped = Promise.all([pump(subprocess.stdout, 'stdout'), pump(subprocess.stderr, 'stderr')]);

  let stopReason: 'timedOut' | 'cancelled' | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  const stop = (reason: 'timedOut' | 'cancelled') => {
    if (stopReason || subprocess.pid === undefined) return;
    stopReason = reason;
    killGroup(subprocess.pid, 'SIGTERM');
    graceTimer = setTimeout(() => killGroup(subprocess.pid!, 'SIGKILL'), options.killGraceMs ?? 2_000);
  };
  const timer = setTimeout(() => stop('timedOut'), timeoutMs);
  const onAbort = () => stop('cancelled');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  // When the agent itself exits, whatever it left running in its group goes too;
  // otherwise a straggler could keep writing after the commit, or hold the pipes open.
  subprocess.once('exit', () => {
    if (subprocess.pid !== undefined) killGroup(subprocess.pid, 'SIGKILL');
  });

  const result = await subprocess;
  clearTimeout(timer);
  options.signal?.removeEventListener('abort', onAbort);
  // Pipes held by a process that escaped the group must not hang the run.
  const streamsDone = await Promise.race([pumped.then(() => true), new Promise<boolean>((done) => setTimeout(() => done(false), 2_000))]);
  if (!streamsDone) {
    subprocess.stdout?.destroy();
    subprocess.stderr?.destroy();
  }
  if (graceTimer) clearTimeout(graceTimer);

  const code = (result as { code?: string }).code;
  const commandText = JSON.stringify(agent.command[0]);
  if (code === 'ENOENT') {
    return finish({
      outcome: 'notFound',
      message: `The command ${commandText} of agent "${agent.label}" was not found. Check "command" of the agent "${agent.id}" in the setting ${AGENTS_SETTING}: the program must be on PATH or an absolute path.`,
    });
  }
  if (code === 'EACCES') {
    return finish({
      outcome: 'failed',
      message: `The command ${commandText} of agent "${agent.label}" is not executable. Make it executable or fix "command" of the agent "${agent.id}" in the setting ${AGENTS_SETTING}.`,
    });
  }
  if (code === 'E2BIG') {
    return finish({
      outcome: 'failed',
      message: `The prompt is too long to pass as an argument to agent "${agent.label}". Use {promptFile} instead of {prompt} in "command" of the agent "${agent.id}" in ${AGENTS_SETTING}.`,
    });
  }
  const elapsed = seconds(Date.now() - started);
  if (stopReason === 'timedOut') {
    return finish({
      outcome: 'timedOut',
      ...(result.signal ? { signal: result.signal } : {}),
      message: `Agent "${agent.label}" did not finish within ${seconds(timeoutMs)} and was stopped with all its processes. If it needs longer, raise "timeoutSeconds" of the agent "${agent.id}" in ${AGENTS_SETTING}.`,
    });
  }
  if (stopReason === 'cancelled') {
    return finish({
      outcome: 'cancelled',
      ...(result.signal ? { signal: result.signal } : {}),
      message: `Agent "${agent.label}" was stopped after ${elapsed}, with all its processes.`,
    });
  }
  if (result.exitCode === 0)
    return finish({ outcome: 'succeeded', exitCode: 0, message: `Agent "${agent.label}" finished in ${elapsed}.` });
  if (result.exitCode !== undefined) {
    return finish({
      outcome: 'failed',
      exitCode: result.exitCode,
      message: `Agent "${agent.label}" exited with code ${result.exitCode} after ${elapsed}. Its output is in ${logFile}.`,
    });
  }
  if (result.signal) {
    return finish({
      outcome: 'failed',
      signal: result.signal,
      message: `Agent "${agent.label}" was killed by ${result.signal} after ${elapsed}. Its output is in ${logFile}.`,
    });
  }
  return finish({
    outcome: 'failed',
    message: `Agent "${agent.label}" could not run: ${result.shortMessage ?? 'unknown error'}. Check the agent "${agent.id}" in ${AGENTS_SETTING}.`,
  });
}

function closeLog(log: WriteStream): Promise<void> {
  return new Promise((done) => log.end(() => done()));
}

/**
 * Reads and validates the agent's report from LANES_EVIDENCE_FILE. No file is not
 * an error (the fields stay missing); a symbolic link, a folder or an oversized
 * file is refused without being read.
 */
export async function readAgentReport(evidenceFile: string): Promise<AgentReportParse> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(evidenceFile);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
    throw error;
  }
  if (!info.isFile())
    return {
      error: `The agent's report (LANES_EVIDENCE_FILE) at ${evidenceFile} is not a regular file (a link or a folder); it was not read.`,
    };
  const oversized = oversizedReportError(info.size);
  if (oversized) return { error: oversized };
  return parseAgentReport(await readFile(evidenceFile, 'utf8'));
}
