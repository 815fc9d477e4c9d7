import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ResolvedTask } from '../../core/sandbox/lanesConfig';
import { type BaseOverlay, type TestFileResult, testFileResults } from '../../core/sandbox/baseRun';
import type { TaskEvidence } from '../../core/evidence';
import { git } from '../git/gitProcess';
import { runTaskSequence } from './taskRun';
import { type BaseRunRequest, type BaseRunResult, baseRunResult, type TaskSandbox } from './types';

/**
 * Adds a scratch worktree checked out (detached) at the base commit, with
 * the change's test files put over it (checked out from the head; the test
 * files the change removes are removed), and with the same folder name as
 * the change's worktree so paths inside the sandbox match. The returned
 * function removes it, whatever happened.
 */
async function addBaseWorktree(
  stateDir: string,
  request: { repoRoot: string; baseSha: string; headSha: string; overlay: BaseOverlay; changeId: string; changeWorktreePath: string },
): Promise<{ worktreePath: string; remove: () => Promise<void> }> {
  const scratch = join(stateDir, 'base-worktrees', `${request.changeId}-${randomBytes(4).toString('hex')}`);
  const worktreePath = join(scratch, basename(request.changeWorktreePath));
  const remove = async () => {
    await git(request.repoRoot, ['worktree', 'remove', '--force', '--force', worktreePath]).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    await git(request.repoRoot, ['worktree', 'prune']).catch(() => undefined);
  };
  await mkdir(scratch, { recursive: true });
  try {
    await git(request.repoRoot, ['worktree', 'add', '--detach', worktreePath, request.baseSha]);
    // Paths go through stdin, NUL-separated and literal: a file name is never read as an option or a glob.
    const { checkout, remove: removed } = request.overlay;
    if (removed.length)
      await git(
        worktreePath,
        ['--literal-pathspecs', 'rm', '-q', '-f', '--ignore-unmatch', '--pathspec-from-file=-', '--pathspec-file-nul'],
        {
          input: `${removed.join('\0')}\0`,
        },
      );
    if (checkout.length)
      await git(worktreePath, ['--literal-pathspecs', 'checkout', request.headSha, '--pathspec-from-file=-', '--pathspec-file-nul'], {
        input: `${checkout.join('\0')}\0`,
      });
    return { worktreePath, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

/** Per task, the change's test files its log names as failed or passed. */
async function fileResults(tasks: readonly TaskEvidence[], testFiles: readonly string[]): Promise<Map<string, TestFileResult[]>> {
  const results = new Map<string, TestFileResult[]>();
  for (const task of tasks) {
    if (!task.logFile) continue;
    const log = await readFile(task.logFile, 'utf8').catch(() => '');
    const files = testFileResults(log, testFiles);
    if (files.length) results.set(task.id, files);
  }
  return results;
}

/** A base-commit sandbox got ready ahead of time (startOnBase): its tasks run once, then it is disposed. */
export interface BaseRunner {
  /** Runs the given (test) tasks on the base; at most once. */
  run(tasks: readonly ResolvedTask[]): Promise<BaseRunResult>;
  /** Removes the scratch worktree (and the sandbox's base container); safe to call more than once. */
  dispose(): Promise<void>;
}

/**
 * "Tests fail without the change", in two steps so the lane can overlap the
 * first with the change's own run: adds the scratch worktree at the base
 * commit with the change's test files over it and prepares a sandbox of its
 * own for it (role base: a separate container, so nothing the change's tasks
 * leave behind in theirs can reach the base run); then runs the given tasks
 * there with the one task runner, their logs named base-<task>.
 */
export async function startTasksOnBase(
  sandbox: Pick<TaskSandbox, 'prepare'>,
  stateDir: string,
  request: Omit<BaseRunRequest, 'tasks'>,
  cleanup: () => Promise<void> = async () => undefined,
): Promise<BaseRunner> {
  let disposed: Promise<void> | undefined;
  let worktree: { worktreePath: string; remove: () => Promise<void> } | undefined;
  const dispose = () =>
    (disposed ??= (async () => {
      try {
        await worktree?.remove();
      } finally {
        await cleanup();
      }
    })());
  try {
    worktree = await addBaseWorktree(stateDir, request);
    const { changeId, source, policy, logDir, signal, onTaskOutput } = request;
    const prepared = await sandbox.prepare({
      changeId,
      worktreePath: worktree.worktreePath,
      source,
      policy,
      role: 'base',
      logDir,
      signal,
      onOutput: onTaskOutput ? (text) => onTaskOutput('prepare', text) : undefined,
    });
    let ran = false;
    return {
      dispose,
      run: async (tasks) => {
        if (ran || disposed) throw new Error('a base run runs its tasks once, before it is disposed');
        ran = true;
        const evidence = await runTaskSequence(prepared, tasks, {
          logDir,
          signal,
          maxLogChars: request.maxLogChars,
          redactionPatterns: request.redactionPatterns,
          onTaskOutput,
        });
        return baseRunResult(prepared.preparation, evidence, await fileResults(evidence, request.overlay.checkout));
      },
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** startTasksOnBase and its run in one, disposed after. */
export async function runTasksOnBase(
  sandbox: Pick<TaskSandbox, 'prepare'>,
  stateDir: string,
  request: BaseRunRequest,
  cleanup?: () => Promise<void>,
): Promise<BaseRunResult> {
  const runner = await startTasksOnBase(sandbox, stateDir, request, cleanup);
  try {
    return await runner.run(request.tasks);
  } finally {
    await runner.dispose();
  }
}
