import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { git } from './gitProcess';

// A linked worktree's own state read from its files, where that saves a git process on the lane's path (each start
// of git costs the editor ~10–15 ms); anything unusual falls back to asking git, so the answer is always git's.

/** The worktree's own git folder (`.git/worktrees/<name>`), from its `.git` file; undefined when it is not one. */
async function linkedGitDir(worktreePath: string): Promise<string | undefined> {
  const text = await readFile(join(worktreePath, '.git'), 'utf8').catch(() => undefined);
  const match = text === undefined ? null : /^gitdir: (.+)\n?$/.exec(text);
  if (!match?.[1]) return undefined;
  return isAbsolute(match[1]) ? match[1] : resolve(worktreePath, match[1]);
}

/** The ref HEAD names (`refs/heads/…`), or "" when HEAD is detached: what `git symbolic-ref --quiet HEAD` prints. */
export async function symbolicHead(worktreePath: string): Promise<string> {
  const gitDir = await linkedGitDir(worktreePath);
  const head = gitDir ? await readFile(join(gitDir, 'HEAD'), 'utf8').catch(() => undefined) : undefined;
  const match = head === undefined ? null : /^ref: (refs\/heads\/[^\s]+)\n$/.exec(head);
  if (match?.[1]) return match[1];
  return (await git(worktreePath, ['symbolic-ref', '--quiet', 'HEAD'], { okExitCodes: [1] })).stdout.trim();
}

/**
 * The folders of a sparse worktree (cone mode), or undefined for a whole one: what `git sparse-checkout list`
 * prints. Without the worktree's `info/sparse-checkout` file git calls it not sparse, so only then is git asked.
 */
export async function sparseFolders(worktreePath: string): Promise<string[] | undefined> {
  const gitDir = await linkedGitDir(worktreePath);
  if (gitDir && !(await stat(join(gitDir, 'info', 'sparse-checkout')).catch(() => undefined))) return undefined;
  // An older git without sparse-checkout answers 1 or 128: not sparse either.
  const listed = await git(worktreePath, ['sparse-checkout', 'list'], { okExitCodes: [1, 128] });
  return listed.exitCode === 0 ? listed.stdout.split('\n').filter(Boolean) : undefined;
}
