import { createWriteStream, type WriteStream } from 'node:fs';
import { lstat, mkdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { execa } from 'execa';
import { type AgentReportParse, oversizedReportError, parseAgentReport } from '../../core/draft/agentEvidence';
import {
  AGENTS_SETTING,
  type AgentConfig,
  DEFAULT_AGENT_TIMEOUT_SECONDS,
  type McpServerEntry,
  mcpPlaceholders,
  type PlaceholderValues,
  substituteOne,
  substitutePlaceholders,
} from '../../core/draft/agentConfig';
import { type PromptInput, composePrompt } from '../../core/draft/draft';
import { type BoundaryHandle, type CanaryProbe, type IsolationEvidence, escapedProbes } from '../../core/draft/agentIsolation';
import { type OpenedBoundary, openHostBoundary } from './boundary/agentBoundary';
import { watchDiskUse } from './boundary/diskWatch';
import { type ProcessLimits, watchProcessTree } from './boundary/processWatch';
import { findOnPath } from '../sandbox/engine';
import { LaneError } from '../../core/errors';
import type { StreamRedactor } from '../../core/redaction';

/** @internal Exported for its unit tests; the product calls it inside this module. */
export class AgentRunError extends LaneError {
  override name = 'AgentRunError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('agentRun', message, options);
  }
}

type AgentOutcome = 'succeeded' | 'failed' | 'timedOut' | 'cancelled' | 'notFound' | 'refused';

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
  /** The boundary it ran in; absent when none could be opened. */
  isolation?: IsolationEvidence;
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
  /** Aborting stops the agent and its process tree ("Agent Lanes: Stop Agent"). */
  signal?: AbortSignal;
  /** Applied to every output line before the callback and the log (e.g. secret redaction). */
  redactLine?: (line: string) => string;
  /** A redactor per stream that may hold lines back (a private key block) until it can cut them whole; wins over redactLine. */
  redactStream?: () => StreamRedactor;
  /** How long after SIGTERM the process group gets SIGKILL. */
  killGraceMs?: number;
  /** Overrides agent.timeoutSeconds (tests). */
  timeoutMs?: number;
  /**
   * Opens the isolation boundary for the agent's command and environment
   * (default: none, the host — only where policy names it).
   */
  openBoundary?: (argv: string[], env: Record<string, string>) => Promise<OpenedBoundary>;
  /** Called once the boundary has a handle, before the agent runs: the lane keeps it for crash recovery. */
  onBoundary?: (handle: BoundaryHandle) => Promise<void>;
  /** Secret values handed to the agent's environment by name (from SecretStorage). */
  secrets?: Record<string, string>;
  /** Stops the agent when its worktree and git grow past this many MB. */
  diskLimitMb?: number;
  /** Memory and process limits, measured on the agent's process tree where the boundary has no cgroup (the process boundary). */
  processLimits?: ProcessLimits;
  /** LANES_CHANNEL: the run's lane channel socket (see laneChannel.ts). */
  channelPath?: string;
  /** LANES_MCP_CONFIG and {mcpConfig}: a file with the MCP server entry for `agent-lanes mcp`. */
  mcpConfigFile?: string;
  /**
   * Work the agent must not start before (the snapshot of the user's checkout): awaited after the boundary
   * and its canary, so both run meanwhile. A rejection refuses the run.
   */
  ready?: Promise<unknown>;
  /** That entry: with it (and the file), the agent's mcpArgs and mcpEnv wire the server into its CLI. */
  mcpServer?: McpServerEntry;
  /**
   * Aborted when the agent said it finished (lanes_finish_draft): unless it
   * exits by itself within finishGraceMs, its run is stopped and still counts
   * as succeeded.
   */
  finished?: AbortSignal;
  finishGraceMs?: number;
}

const MAX_LINE_CHARS = 8_000;
/** How long a gated canary has to report before the run is refused. */
const CANARY_TIMEOUT_MS = 30_000;
/** The canary's report is one line of JSON; anything longer is not one. */
const MAX_REPORT_CHARS = 64 * 1024;

/** The first line a stream carries, or undefined when it ends, passes the cap or the time runs out first. */
function firstLine(stream: Readable, timeoutMs: number): Promise<string | undefined> {
  return new Promise((done) => {
    let text = '';
    const settle = (line: string | undefined) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onEnd);
      done(line);
    };
    const onData = (chunk: Buffer | string) => {
      text += chunk.toString();
      const end = text.indexOf('\n');
      if (end >= 0) settle(text.slice(0, end));
      else if (text.length > MAX_REPORT_CHARS) settle(undefined);
    };
    const onEnd = () => settle(undefined);
    const timer = setTimeout(onEnd, timeoutMs);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onEnd);
  });
}
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
      `The worktree ${worktreePath} of change ${options.changeId} is missing; run "Agent Lanes: Reconcile" to restore it or discard the change.`,
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

  const placeholders: PlaceholderValues = {
    prompt: promptText,
    promptFile,
    worktree: worktreePath,
    mcpConfig: options.mcpConfigFile ?? '',
    ...(options.mcpServer ? mcpPlaceholders(options.mcpServer) : {}),
  };
  const [program, ...rest] = substitutePlaceholders(agent.command, placeholders);
  // The CLI is told about the lanes' MCP server only when the run has one (a channel that opened).
  const withMcp = Boolean(options.mcpConfigFile && options.mcpServer);
  const argv = [program!, ...(withMcp ? substitutePlaceholders(agent.mcpArgs ?? [], placeholders) : []), ...rest];
  const [file, ...args] = argv;
  const mcpEnv = withMcp
    ? Object.fromEntries(Object.entries(agent.mcpEnv ?? {}).map(([name, value]) => [name, substituteOne(value, placeholders)]))
    : {};
  const env = agentEnvironment({
    ...agent.env,
    ...mcpEnv,
    ...options.secrets,
    LANES_EVIDENCE_FILE: evidenceFile,
    LANES_CHANGE_ID: options.changeId,
    LANES_WORKTREE: worktreePath,
    LANES_PROMPT_FILE: promptFile,
    LANES_CHANNEL: options.channelPath,
    LANES_MCP_CONFIG: options.mcpConfigFile,
  });
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

  /** Every output line, cut and redacted, to the log and the callback; resolves when both streams ended. */
  const pumpOutput = (child: { stdout: Readable | null; stderr: Readable | null }) => {
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
    return Promise.all([pump(child.stdout, 'stdout'), pump(child.stderr, 'stderr')]);
  };

  let boundary: OpenedBoundary | undefined;
  let probes: CanaryProbe[] = [];
  let canaryMs: number | undefined;
  let stoppedFor: string | undefined;
  const finish = async (
    result: Omit<AgentRunResult, 'startedAt' | 'endedAt' | 'durationMs' | 'logFile' | 'promptFile'>,
  ): Promise<AgentRunResult> => {
    const ended = Date.now();
    const isolation = boundary?.evidence({
      probes,
      ...(canaryMs !== undefined ? { canaryMs } : {}),
      ...(stoppedFor ? { stoppedFor } : {}),
    });
    await boundary?.close().catch(() => undefined);
    writeLog(`── ${new Date(ended).toISOString()} ${result.outcome}: ${result.message}\n`);
    await closeLog(log);
    return {
      ...result,
      startedAt,
      endedAt: new Date(ended).toISOString(),
      durationMs: ended - started,
      logFile,
      promptFile,
      ...(isolation ? { isolation } : {}),
    };
  };

  if (options.signal?.aborted) return finish({ outcome: 'cancelled', message: `Agent "${agent.label}" was stopped before it started.` });

  const spawnWrapped = (command: OpenedBoundary['command'], gate: boolean) =>
    execa(command.file, command.args, {
      cwd: command.cwd,
      extendEnv: false,
      env: command.env,
      // Its own process group (setsid), so the whole tree can be signalled at once.
      detached: !WINDOWS,
      // A gated start: fd 3 carries the canary's report out and the host's "go" in.
      stdio: gate ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
      windowsHide: true,
    });
  // Set when the boundary runs the canary and the agent in one start: the launcher waits for "go" on fd 3.
  let gated: ReturnType<typeof spawnWrapped> | undefined;
  let pumped: Promise<unknown> | undefined;
  /** A gated launcher that must not go on: its group is killed before the agent could start. */
  const refuseGated = async () => {
    if (!gated) return;
    if (gated.pid !== undefined) killGroup(gated.pid, 'SIGKILL');
    await gated;
    await Promise.race([pumped, new Promise((done) => setTimeout(done, 2_000))]);
  };

  // The boundary first, then the canary inside it: an escape refuses the run before the agent exists.
  try {
    boundary = await (options.openBoundary ?? ((argv2, env2) => Promise.resolve(openHostBoundary(argv2, env2, worktreePath))))(argv, env);
    if (boundary.gatedCanary && !options.signal?.aborted) {
      const canaryStarted = performance.now();
      const gate = await boundary.gatedCanary();
      try {
        gated = spawnWrapped(gate.command, true);
        pumped = pumpOutput(gated);
        const report = await firstLine(gated.stdio[3] as Readable, CANARY_TIMEOUT_MS);
        if (report === undefined) {
          await refuseGated();
          const exit = await gated;
          throw new Error(
            `the isolation canary did not report in the ${boundary.backend} boundary (exit code ${exit.exitCode ?? exit.signal ?? 'none'}); its output is in ${logFile}.`,
          );
        }
        probes = await gate.verify(report);
      } finally {
        await gate.close();
      }
      canaryMs = Math.round(performance.now() - canaryStarted);
    } else {
      const canary = await boundary.canary();
      probes = canary.probes;
      canaryMs = canary.ms;
    }
    await options.ready;
  } catch (error) {
    await refuseGated();
    return finish({ outcome: 'refused', message: `Agent "${agent.label}" was not started: ${(error as Error).message}` });
  }
  const escaped = escapedProbes(probes);
  if (escaped.length) {
    await refuseGated();
    return finish({
      outcome: 'refused',
      message: `Agent "${agent.label}" was not started: the isolation canary escaped the ${boundary.backend} boundary (${escaped.map((probe) => `${probe.name}: ${probe.detail}`).join('; ')}). Nothing ran; report this to your platform team.`,
    });
  }
  for (const probe of probes) writeLog(`── canary ${probe.name}: ${probe.outcome} (${probe.detail})\n`);
  // Inside a boundary a missing program is only an exit code; say it the way the host would.
  if (boundary.backend !== 'container' && !(await findOnPath(file!, env.PATH))) {
    await refuseGated();
    return finish({
      outcome: 'notFound',
      message: `The command ${JSON.stringify(file)} of agent "${agent.label}" was not found. Check "command" of the agent "${agent.id}" in the setting ${AGENTS_SETTING}: the program must be on PATH or an absolute path.${agent.install ? ` ${agent.install}` : ''}`,
    });
  }
  if (options.signal?.aborted) {
    await refuseGated();
    return finish({ outcome: 'cancelled', message: `Agent "${agent.label}" was stopped before it started.` });
  }

  const timeoutMs = options.timeoutMs ?? (agent.timeoutSeconds ?? DEFAULT_AGENT_TIMEOUT_SECONDS) * 1000;
  if (boundary.backend !== 'process' && boundary.backend !== 'host') await options.onBoundary?.(await boundary.handle());
  let subprocess: ReturnType<typeof spawnWrapped>;
  if (gated) {
    // Checked from outside and clean: the launcher may start the agent now.
    subprocess = gated;
    (gated.stdio[3] as Writable).end('go\n');
  } else {
    subprocess = spawnWrapped(boundary.command, false);
    pumped = pumpOutput(subprocess);
  }

  if (subprocess.pid !== undefined && (boundary.backend === 'process' || boundary.backend === 'host'))
    await options.onBoundary?.(await boundary.handle(subprocess.pid)).catch(() => undefined);
  let stopReason: 'timedOut' | 'cancelled' | 'limit' | 'finished' | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  const openBoundary = boundary;
  const stop = (reason: 'timedOut' | 'cancelled' | 'limit' | 'finished') => {
    if (stopReason || subprocess.pid === undefined) return;
    stopReason = reason;
    killGroup(subprocess.pid, 'SIGTERM');
    void openBoundary.stop();
    graceTimer = setTimeout(() => killGroup(subprocess.pid!, 'SIGKILL'), options.killGraceMs ?? 2_000);
  };
  const timer = setTimeout(() => stop('timedOut'), timeoutMs);
  const watched =
    boundary.backend === 'process' && subprocess.pid !== undefined && (options.processLimits?.memoryMb || options.processLimits?.pids)
      ? watchProcessTree(subprocess.pid, options.processLimits, (what) => {
          stoppedFor = what;
          stop('limit');
        })
      : undefined;
  const disk = options.diskLimitMb
    ? await watchDiskUse([worktreePath], options.diskLimitMb, (what) => {
        stoppedFor = what;
        stop('limit');
      })
    : undefined;
  const onAbort = () => stop('cancelled');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let finishTimer: NodeJS.Timeout | undefined;
  const onFinished = () => {
    finishTimer = setTimeout(() => stop('finished'), options.finishGraceMs ?? 10_000);
  };
  if (options.finished?.aborted) onFinished();
  else options.finished?.addEventListener('abort', onFinished, { once: true });
  // When the agent itself exits, whatever it left running in its group goes too;
  // otherwise a straggler could keep writing after the commit, or hold the pipes open.
  subprocess.once('exit', () => {
    if (subprocess.pid !== undefined) killGroup(subprocess.pid, 'SIGKILL');
  });

  const result = await subprocess;
  clearTimeout(timer);
  if (finishTimer) clearTimeout(finishTimer);
  options.finished?.removeEventListener('abort', onFinished);
  disk?.stop();
  watched?.stop();
  options.signal?.removeEventListener('abort', onAbort);
  // Pipes held by a process that escaped the group must not hang the run.
  const streamsDone = await Promise.race([
    (pumped ?? Promise.resolve()).then(() => true),
    new Promise<boolean>((done) => setTimeout(() => done(false), 2_000)),
  ]);
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
      message: `The command ${commandText} of agent "${agent.label}" was not found. Check "command" of the agent "${agent.id}" in the setting ${AGENTS_SETTING}: the program must be on PATH or an absolute path.${agent.install ? ` ${agent.install}` : ''}`,
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
  if (stopReason === 'limit') {
    return finish({
      outcome: 'failed',
      ...(result.signal ? { signal: result.signal } : {}),
      message: `Agent "${agent.label}" was stopped after ${elapsed}: ${stoppedFor ?? 'a limit was reached'}.`,
    });
  }
  if (stopReason === 'finished') {
    return finish({
      outcome: 'succeeded',
      ...(result.signal ? { signal: result.signal } : {}),
      message: `Agent "${agent.label}" finished its draft (lanes_finish_draft) and was stopped after ${elapsed}, when it had not exited by itself.`,
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

/**
 * The agent's whole environment: what its configuration names, and only a
 * PATH and a locale from the editor's — never tokens, the SSH agent or git's
 * credential helpers.
 */
function agentEnvironment(named: Record<string, string | undefined>): Record<string, string> {
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: process.env.LANG ?? 'C.UTF-8',
    TMPDIR: '/tmp',
    GIT_TERMINAL_PROMPT: '0',
  };
  for (const [key, value] of Object.entries(named)) if (value !== undefined) base[key] = value;
  return base;
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
