import { LaneError } from '../errors';

/** Path rules for tools that act inside one change's worktree (the lexical part; infra adds realpath checks). */

export class WorktreePathError extends LaneError {
  override name = 'WorktreePathError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('worktreePath', message, options);
  }
}

/** `.git` and the spellings some file systems treat as `.git` (".git.", ".GIT", "git~1"). */
export function isGitComponent(part: string): boolean {
  return /^\.git[. ]*$/i.test(part) || /^git~\d+$/i.test(part);
}

/**
 * Checks a path an agent gave and returns it normalised (forward slashes, no "."
 * parts; "" for the worktree root). Refuses absolute paths, ".." parts, NUL and
 * anything inside .git, each with a message that says what to do instead.
 */
export function normalizeWorktreePath(input: unknown, options: { allowRoot?: boolean } = {}): string {
  if (typeof input !== 'string')
    throw new WorktreePathError('The path must be a string relative to the worktree root, such as "src/index.ts".');
  if (input.includes('\0'))
    throw new WorktreePathError('The path contains a NUL character; give a plain relative path such as "src/index.ts".');
  if (/^(?:[\\/]|[A-Za-z]:|~[\\/]|~$)/.test(input)) {
    throw new WorktreePathError(`"${input}" is an absolute path; give a path relative to the worktree root, such as "src/index.ts".`);
  }
  const parts: string[] = [];
  for (const part of input.split(/[\\/]/)) {
    if (part === '' || part === '.') continue;
    if (part === '..')
      throw new WorktreePathError(
        `"${input}" contains ".."; paths must stay inside the change's worktree, so give one relative to its root without "..".`,
      );
    if (isGitComponent(part)) throw new WorktreePathError(`"${input}" is inside .git; git's own files are off limits to agents.`);
    parts.push(part);
  }
  if (!parts.length && !options.allowRoot)
    throw new WorktreePathError(`"${input}" names the worktree root; give a file path such as "src/index.ts".`);
  return parts.join('/');
}
