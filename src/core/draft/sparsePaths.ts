import { createHash } from 'node:crypto';
import type { FileChange, Flag } from '../evidence';
import { LaneError } from '../errors';
import { hasControlCharacters } from './draft';
import { isGitComponent } from './worktreePaths';

/**
 * Sparse worktrees (agentLanes.draft.sparsePaths): the agent's worktree holds
 * only these folders (git's cone mode: everything under each folder, and the
 * files directly in the root and in each folder on the way to one). The lane's
 * commit and the diff analysis still see the whole tree.
 */

class SparsePathsError extends LaneError {
  constructor(message: string) {
    super('sparsePaths', message);
  }
}

/**
 * Checks the configured folders and returns them normalised (forward slashes,
 * no "." parts or trailing slash), sorted, each once. A folder inside another
 * is kept: git's cone mode accepts it. Refuses what is not a plain relative
 * folder, with what to write instead.
 */
export function normalizeSparsePaths(input: readonly unknown[]): string[] {
  const folders = new Set<string>();
  for (const value of input) {
    if (typeof value !== 'string')
      throw new SparsePathsError(
        `agentLanes.draft.sparsePaths: ${JSON.stringify(value)} is not a folder name; write folders such as "src" or "packages/app".`,
      );
    const shown = JSON.stringify(value);
    if (hasControlCharacters(value))
      throw new SparsePathsError(`agentLanes.draft.sparsePaths: ${shown} holds a control character; write a plain folder such as "src".`);
    if (/^(?:[\\/]|[A-Za-z]:|~)/.test(value))
      throw new SparsePathsError(
        `agentLanes.draft.sparsePaths: ${shown} is absolute; write a folder relative to the repository root, such as "src".`,
      );
    if (/[*?[\]!\\]/.test(value))
      throw new SparsePathsError(
        `agentLanes.draft.sparsePaths: ${shown} is a pattern; cone mode takes folders only, such as "src" or "packages/app".`,
      );
    const parts: string[] = [];
    for (const part of value.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..')
        throw new SparsePathsError(`agentLanes.draft.sparsePaths: ${shown} contains ".."; write a folder inside the repository.`);
      if (isGitComponent(part)) throw new SparsePathsError(`agentLanes.draft.sparsePaths: ${shown} names a .git folder.`);
      if (part.startsWith('-')) throw new SparsePathsError(`agentLanes.draft.sparsePaths: ${shown} has a part starting with "-".`);
      parts.push(part);
    }
    // The root is the whole tree: no sparse checkout at all.
    if (!parts.length) return [];
    folders.add(parts.join('/'));
  }
  return [...folders].sort();
}

/** A short name for a set of sparse folders ("full" for the whole tree): pooled worktrees are kept per key. */
export function sparseKey(folders: readonly string[]): string {
  if (!folders.length) return 'full';
  return createHash('sha256')
    .update([...folders].sort().join('\0'))
    .digest('hex')
    .slice(0, 12);
}

/** Whether cone mode leaves `path` (a file, repository-relative) out of a worktree made sparse with `folders`. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function outsideSparseCone(path: string, folders: readonly string[]): boolean {
  if (!folders.length) return false;
  const slash = path.lastIndexOf('/');
  if (slash < 0) return false;
  const parent = path.slice(0, slash);
  for (const folder of folders) {
    if (path.startsWith(`${folder}/`)) return false;
    // Files directly in a folder on the way to a cone folder are in the cone too.
    if (folder.startsWith(`${parent}/`)) return false;
  }
  return true;
}

/** At most this many files outside the sparse folders are named one by one; one flag stands for the rest. */
const MAX_NAMED = 20;

/**
 * unusualScope flags for the files a change touches outside the folders of its
 * sparse worktree: the agent was shown only those folders, so a write elsewhere
 * (a new file, or one it recreated) is committed and analysed like any other,
 * and named here so a reviewer sees it.
 */
export function outsideSparseFlags(files: readonly Pick<FileChange, 'path' | 'oldPath'>[], folders: readonly string[]): Flag[] {
  if (!folders.length) return [];
  const outside = files.filter((file) =>
    [file.path, ...(file.oldPath ? [file.oldPath] : [])].some((path) => outsideSparseCone(path, folders)),
  );
  const shown = folders.map((folder) => `${folder}/`).join(', ');
  const flags: Flag[] = outside.slice(0, MAX_NAMED).map((file) => ({
    kind: 'unusualScope',
    path: file.path,
    detail: `${file.path} is outside the sparse worktree's folders (${shown}): the agent was not shown it, yet the change touches it.`,
  }));
  if (outside.length > MAX_NAMED)
    flags.push({ kind: 'unusualScope', detail: `…and ${outside.length - MAX_NAMED} more files outside the sparse worktree's folders.` });
  return flags;
}
