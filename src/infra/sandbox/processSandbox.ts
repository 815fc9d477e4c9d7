import { DEFAULT_TASK_TIMEOUT_SECONDS } from '../../core/constants';
import { homedir } from 'node:os';
import { realpath, stat } from 'node:fs/promises';
import { execa } from 'execa';
import type { PreparationEvidence, TaskEvidence } from '../../core/evidence';
import type { Logger } from '../../core/logger';
import { BUILTIN_SECRET_PATTERNS, type SecretPattern } from '../../core/redaction';
import type { ResolvedTask } from '../../core/sandbox/lanesConfig';
import type { SandboxRole } from '../../core/sandbox/sandboxConfig';
import { DEFAULT_PREPARATION_TIMEOUT_SECONDS, preparationReach } from '../../core/sandbox/sandboxPolicy';
import { CappedLog } from '../../core/sandbox/taskLog';
import { type BaseRunner, runTasksOnBase, startTasksOnBase } from './baseWorktree';
import { findOnPath } from './engine';
import { capture, logFileFor, storeLog, taskEvidence, type TaskRunOptions } from './taskRun';
import {
  type BaseRunRequest,
  type BaseRunResult,
  type PreparedSandbox,
  type PrepareRequest,
  SandboxError,
  type TaskSandbox,
} from './types';

/**
 * The lesser isolation, for machines without a container engine when policy
 * allows it: bubblewrap. The whole file system is read-only, the worktree
 * (and a private /tmp and home) writable; no network (a new network
 * namespace with only loopback), its own pid namespace, a cleared
 * environment, and /run hidden so the engine and D-Bus sockets are out of
 * reach. It uses no image and ignores devcontainer.json: tasks run with the
 * host's tools. The evidence says `isolation: process`.
 */

export type ProcessSandboxDetection = { available: true; bwrap: string } | { available: false; message: string };

const BWRAP_HELP = 'Install bubblewrap (`sudo apt-get install -y bubblewrap`); it needs unprivileged user namespaces, or root.';

/** Whether bubblewrap is installed and can make the namespaces the sandbox needs here. */
export async function detectProcessSandbox(options: { pathVariable?: string; timeoutMs?: number } = {}): Promise<ProcessSandboxDetection> {
  const bwrap = await findOnPath('bwrap', options.pathVariable);
  if (!bwrap) return { available: false, message: `bubblewrap (bwrap) is not on PATH. ${BWRAP_HELP}` };
  const probe = await execa(
    bwrap,
    ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--unshare-net', '--unshare-pid', '--die-with-parent', 'true'],
    {
      reject: false,
      timeout: options.timeoutMs ?? 10_000,
      stdin: 'ignore',
    },
  );
  if (probe.exitCode !== 0) {
    return {
      available: false,
      message: `bubblewrap cannot create its namespaces here (${(probe.stderr || probe.shortMessage || '').trim()}). ${BWRAP_HELP}`,
    };
  }
  return { available: true, bwrap };
}

export interface ProcessSandboxOptions {
  bwrap: string;
  /** A private folder outside every worktree (base-commit worktrees). */
  stateDir: string;
  logger?: Logger | undefined;
  redactionPatterns?: readonly SecretPattern[] | undefined;
  /** PATH inside the sandbox; default the extension host's. */
  pathVariable?: string | undefined;
}

export class ProcessSandbox implements TaskSandbox {
  readonly isolation = 'process' as const;
  private readonly patterns: readonly SecretPattern[];

  constructor(private readonly options: ProcessSandboxOptions) {
    this.patterns = options.redactionPatterns ?? BUILTIN_SECRET_PATTERNS;
  }

  /** The bwrap arguments for a command in `worktree`; exported for the documentation and tests. */
  bwrapArgs(worktree: string, network: boolean, command: string): string[] {
    const home = homedir();
    const args = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--tmpfs', '/run'];
    // Keys, tokens and the extension's own storage live in the home folder: hide it.
    if (home && home !== '/') args.push('--tmpfs', home);
    args.push('--bind', worktree, worktree, '--chdir', worktree);
    args.push('--unshare-pid', '--unshare-ipc', '--unshare-uts', '--new-session', '--die-with-parent');
    if (!network) args.push('--unshare-net');
    args.push('--clearenv', '--setenv', 'PATH', this.options.pathVariable ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin');
    args.push('--setenv', 'HOME', home || '/tmp', '--setenv', 'LANG', process.env.LANG ?? 'C.UTF-8', '--setenv', 'CI', 'true');
    args.push('/bin/sh', '-c', command);
    return args;
  }

  private run(
    worktree: string,
    network: boolean,
    command: string,
    options: {
      timeoutMs: number;
      signal?: AbortSignal | undefined;
      onOutput?: ((text: string) => void) | undefined;
      maxLogChars?: number | undefined;
    },
  ) {
    let subprocess: ReturnType<typeof execa> | undefined;
    return capture(
      () => {
        // Its own process group, so a kill reaches bwrap and (through --die-with-parent and the pid namespace) everything inside.
        subprocess = execa(this.options.bwrap, this.bwrapArgs(worktree, network, command), {
          reject: false,
          buffer: false,
          all: true,
          stdin: 'ignore',
          detached: true,
        });
        const done = (async () => ({ exitCode: (await subprocess!).exitCode, stderrTail: '' }))();
        return { output: subprocess.all ?? undefined, done };
      },
      async () => {
        if (subprocess?.pid) {
          try {
            process.kill(-subprocess.pid, 'SIGKILL');
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
          }
        }
      },
      { ...options, patterns: this.patterns },
    );
  }

  /** Checks policy and the worktree, and runs the prepare commands (with the network policy allows for them). */
  async prepare(request: PrepareRequest): Promise<PreparedSandbox> {
    const { policy } = request;
    if (policy.allowProcessSandbox !== true) {
      throw new SandboxError(
        'noSandbox',
        'There is no container engine, and policy does not allow the process sandbox (bubblewrap), so no task can run. Install podman or Docker.',
      );
    }
    let worktree: string;
    try {
      worktree = await realpath(request.worktreePath);
      if (!(await stat(worktree)).isDirectory()) throw new Error('not a folder');
    } catch {
      throw new SandboxError(
        'engine',
        `The worktree ${request.worktreePath} of change ${request.changeId} is missing; restore it ("Agent Lanes: Reconcile") or discard the change.`,
      );
    }
    const role = request.role ?? 'change';
    const taskNetwork = policy.taskNetwork === 'open';
    const preparation = await this.runPrepareCommands(request, worktree, role);
    return {
      label: { isolation: 'process', networkMode: taskNetwork ? 'host' : 'none' },
      ...(preparation ? { preparation } : {}),
      auditDetails: {},
      runTask: (task, options) => this.runTask(request.changeId, worktree, task, taskNetwork, role, options),
    };
  }

  runOnBase(request: BaseRunRequest): Promise<BaseRunResult> {
    return runTasksOnBase(this, this.options.stateDir, request);
  }

  startOnBase(request: Omit<BaseRunRequest, 'tasks'>): Promise<BaseRunner> {
    return startTasksOnBase(this, this.options.stateDir, request);
  }

  private async runPrepareCommands(request: PrepareRequest, worktree: string, role: SandboxRole): Promise<PreparationEvidence | undefined> {
    const commands = request.source.prepare;
    const notes = request.source.devcontainer ? ['process sandbox: devcontainer.json is not used; tasks run with the host’s tools'] : [];
    if (commands.length === 0) return undefined;
    request.onPreparing?.('Preparing (process sandbox)');
    const reach = preparationReach(request.policy);
    const network = reach.networkMode !== 'none';
    const started = Date.now();
    const log = new CappedLog();
    const deadline = started + (request.policy.preparationTimeoutSeconds ?? DEFAULT_PREPARATION_TIMEOUT_SECONDS) * 1000;
    let outcome: PreparationEvidence['outcome'] = 'passed';
    let message: string | undefined;
    for (const command of commands) {
      log.append(`── prepare: ${command}\n`);
      const run = await this.run(worktree, network, command, {
        timeoutMs: Math.max(deadline - Date.now(), 1_000),
        signal: request.signal,
        onOutput: request.onOutput,
      });
      log.append(run.log.text());
      if (run.ended !== 'exited' || run.exitCode !== 0) {
        outcome = run.ended === 'timedOut' ? 'timedOut' : 'failed';
        message = `prepare "${command}" ${run.ended === 'timedOut' ? 'did not finish in time' : run.ended === 'cancelled' ? 'was cancelled' : `failed with exit code ${run.exitCode}`}`;
        break;
      }
    }
    const stored = await storeLog(
      logFileFor(request.logDir, request.changeId, `${role === 'base' ? 'base-' : ''}prepare`),
      log,
      this.patterns,
    );
    const evidence: PreparationEvidence = {
      commands: [...commands],
      networkMode: network ? 'host' : 'none',
      reachable: network
        ? reach.reachable.map((item) => item.replace('not enforced per host', 'not enforced per host; the host network'))
        : [],
      outcome,
      durationMs: Date.now() - started,
      logDigest: stored.digest,
      logFile: stored.file,
      ...(message ? { message } : {}),
      ...(notes.length ? { notes } : {}),
    };
    if (outcome !== 'passed') {
      throw new SandboxError(
        request.signal?.aborted ? 'cancelled' : 'preparationFailed',
        `The ${message}; no task ran. Its output is in the preparation log. Fix .lanes/lanes.yaml in the base commit.`,
        evidence,
      );
    }
    return evidence;
  }

  private async runTask(
    changeId: string,
    worktree: string,
    task: ResolvedTask,
    network: boolean,
    role: SandboxRole,
    options: TaskRunOptions,
  ): Promise<TaskEvidence> {
    const timeoutMs = (task.timeoutSeconds || DEFAULT_TASK_TIMEOUT_SECONDS) * 1000;
    const run = await this.run(worktree, network, task.command, {
      timeoutMs,
      signal: options.signal,
      onOutput: options.onOutput,
      maxLogChars: options.maxLogChars,
    });
    let outcome: TaskEvidence['outcome'] = run.exitCode === 0 ? 'passed' : 'failed';
    let message: string | undefined;
    if (run.ended === 'timedOut') {
      outcome = 'timedOut';
      message = `Killed after its time limit of ${task.timeoutSeconds} s.`;
    } else if (run.ended === 'cancelled') {
      outcome = 'cancelled';
      message = 'Cancelled; the task was stopped.';
    }
    if (message) run.log.append(`\n[agent-lanes: ${message}]\n`);
    const stored = await storeLog(
      logFileFor(options.logDir, changeId, `${role === 'base' ? 'base-' : ''}${task.id}`),
      run.log,
      options.redactionPatterns ?? this.patterns,
    );
    return taskEvidence(task, run, outcome, stored, { isolation: 'process', networkMode: network ? 'host' : 'none' }, message);
  }
}
