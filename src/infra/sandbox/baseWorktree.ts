import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type BaseOverlay, type TestFileResult, testFileResults } from '../../core/sandbox/baseRun';
import type { TaskEvidence } from '../../core/evidence';
import { git } from '../git/gitProcess';
import { runTaskSequence } from './taskRun';
import { type BaseRunRequest, type BaseRunResult, baseRunResult, type TaskSandbox } from './types';

/**
 * Runs `work` in a scratch worktree checked out (detached) at the base
 * commit, with the change's test files put over it (checked out from the
 * head; the test files the change removes are removed), and with the same
 * folder name as the change's worktree so paths inside the sandbox match;
 * removes the worktree afterwards, whatever happened.
 */
async function withBaseWorktree<T>(
  stateDir: string,
  request: { repoRoot: string; baseSha: string; headSha: string; overlay: BaseOverlay; changeId: string; changeWorktreePath: string },
  work: (worktreePath: string) => Promise<T>,
): Promise<T> {
  const scratch = join(stateDir, 'base-worktrees', `${request.changeId}-${randomBytes(4).toString('hex')}`);
  const worktreePath = join(scratch, basename(request.changeWorktreePath));
  await mkdir(scratch, { recursive: true });
  try {
    await git(request.repoRoot, ['worktree', 'add', '--detach', worktreePath, request.baseSha]);
    // Paths go through stdin, NUL-separated and literal: a file name is never read as an option or a glob.
    const { checkout, remove } = request.overlay;
    if (remove.length)
      await git(
        worktreePath,
        ['--literal-pathspecs', 'rm', '-q', '-f', '--ignore-unmatch', '--pathspec-from-file=-', '--pathspec-file-nul'],
        {
          input: `${remove.join('\0')}\0`,
        },
      );
    if (checkout.length)
      await git(worktreePath, ['--literal-pathspecs', 'checkout', request.headSha, '--pathspec-from-file=-', '--pathspec-file-nul'], {
        input: `${checkout.join('\0')}\0`,
      });
    return await work(worktreePath);
  } finally {
    await git(request.repoRoot, ['worktree', 'remove', '--force', '--force', worktreePath]).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    await git(request.repoRoot, ['worktree', 'prune']).catch(() => undefined);
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

/**
 * "Tests fail without the change": prepares the sandbox for a scratch
 * worktree at the base commit with the change's test files over it, and runs
 * the given (test) tasks there with the one task runner; their logs are named
 * base-<task>.
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
    return baseRunResult(prepared.preparation, tasks, await fileResults(tasks, request.overlay.checkout));
  });
}
