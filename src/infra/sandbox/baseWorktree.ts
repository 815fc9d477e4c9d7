import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { git } from '../git/gitProcess';
import { runTaskSequence } from './taskRun';
import { type BaseRunRequest, type BaseRunResult, baseRunResult, type TaskSandbox } from './types';

/**
 * Runs `work` in a scratch worktree checked out (detached) at the base
 * commit, with the same folder name as the change's worktree so paths inside
 * the sandbox match; removes the worktree afterwards, whatever happened.
 */
async function withBaseWorktree<T>(
  stateDir: string,
  request: { repoRoot: string; baseSha: string; changeId: string; changeWorktreePath: string },
  work: (worktreePath: string) => Promise<T>,
): Promise<T> {
  const scratch = join(stateDir, 'base-worktrees', `${request.changeId}-${randomBytes(4).toString('hex')}`);
  const worktreePath = join(scratch, basename(request.changeWorktreePath));
  await mkdir(scratch, { recursive: true });
  try {
    await git(request.repoRoot, ['worktree', 'add', '--detach', worktreePath, request.baseSha]);
    return await work(worktreePath);
  } finally {
    await git(request.repoRoot, ['worktree', 'remove', '--force', '--force', worktreePath]).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    await git(request.repoRoot, ['worktree', 'prune']).catch(() => undefined);
  }
}

/**
 * "Tests fail without the change": prepares the sandbox for a scratch
 * worktree at the base commit and runs the given (test) tasks there with the
 * one task runner; their logs are named base-<task>.
 */
export async function runTasksOnBase(
  sandbox: Pick<TaskSandbox, 'prepare'>,
  stateDir: string,
  request: BaseRunRequest,
): Promise<BaseRunResult> {
  return withBaseWorktree(stateDir, request, async (worktreePath) => {
    const { changeId, source, policy, logDir, signal, onTaskOutput } = request;
    const prepared = await sandbox.prepare({
      changeId,
      worktreePath,
      source,
      policy,
      role: 'base',
      logDir,
      signal,
      onOutput: onTaskOutput ? (text) => onTaskOutput('prepare', text) : undefined,
    });
    const tasks = await runTaskSequence(prepared, request.tasks, {
      logDir,
      signal,
      maxLogChars: request.maxLogChars,
      redactionPatterns: request.redactionPatterns,
      onTaskOutput,
    });
    return baseRunResult(prepared.preparation, tasks);
  });
}
