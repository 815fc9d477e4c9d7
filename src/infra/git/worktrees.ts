import { mkdir, readdir, realpath, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Change } from '../../core/change';
import {
  type GitOperation,
  type ObservedWorktree,
  type ReconcileAction,
  type ReconcileFinding,
  type RepositoryState,
  assertChangeId,
  hasControlCharacters,
  isLaneBranch,
  laneBranchName,
  laneFolderName,
  reconcileDraftState,
} from '../../core/draft/draft';
import { countUncommitted, parsePorcelainV2, parseWorktreeList } from '../../core/git/gitOutput';
import { LaneError } from '../../core/errors';
import { GitCommandError, git } from './gitProcess';
import { pathExists } from '../storage/fileStore';

export class WorktreeError extends LaneError {
  constructor(message: string, kind = 'worktree') {
    super(kind, message);
  }
}

/** Thrown when removing would lose uncommitted work; pass force after asking the user. */
export class UncommittedWorkError extends WorktreeError {
  constructor(
    readonly path: string,
    readonly entries: number,
  ) {
    super(
      `The worktree at ${path} has ${entries} uncommitted change${entries === 1 ? '' : 's'}. Commit or copy what you need, or confirm removing it anyway.`,
      'uncommittedWork',
    );
  }
}

export interface ResolvedBase {
  /** What the user asked for, or "HEAD". */
  ref: string;
  sha: string;
  /** The branch HEAD was on, when the default base was used and HEAD is not detached. */
  branch?: string;
}

const LIST_REFS_HINT = 'List the branches with "git branch -a", the tags with "git tag" and recent commits with "git log --oneline".';

/** Resolves the draft's base commit: HEAD of the current branch by default, or any branch, tag or SHA. */
export async function resolveBase(repoRoot: string, ref?: string): Promise<ResolvedBase> {
  const asked = ref?.trim();
  if (!asked) {
    const [head, branch] = await Promise.all([
      git(repoRoot, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okExitCodes: [1] }),
      git(repoRoot, ['symbolic-ref', '--quiet', '--short', 'HEAD'], { okExitCodes: [1] }),
    ]);
    if (head.exitCode !== 0)
      throw new WorktreeError('This repository has no commits yet, so a draft has no base. Make a first commit, then start the draft.');
    const name = branch.exitCode === 0 ? branch.stdout.trim() : undefined;
    return { ref: 'HEAD', sha: head.stdout.trim(), ...(name ? { branch: name } : {}) };
  }
  // A ref starting with "-" would be read as an option; control characters are never part of a ref.
  if (asked.startsWith('-') || hasControlCharacters(asked)) {
    throw new WorktreeError(`"${asked}" is not a valid branch, tag or commit name. ${LIST_REFS_HINT}`);
  }
  const resolved = await git(repoRoot, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${asked}^{commit}`], {
    okExitCodes: [1, 128],
  });
  if (resolved.exitCode !== 0) {
    throw new WorktreeError(`The base "${asked}" is not a branch, tag or commit in this repository. ${LIST_REFS_HINT}`);
  }
  return { ref: asked, sha: resolved.stdout.trim() };
}

/**
 * The checkout's branch, HEAD commit and operations in progress: what decides whether a draft may start. Quick (three
 * small git calls and marker files), so New Draft need not wait for the status of a large checkout to decide.
 */
export async function repositoryHead(repoRoot: string): Promise<Omit<RepositoryState, 'uncommitted'>> {
  const [dirs, head, branch] = await Promise.all([
    git(repoRoot, ['rev-parse', '--absolute-git-dir', '--git-common-dir']),
    git(repoRoot, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okExitCodes: [1] }),
    git(repoRoot, ['symbolic-ref', '--quiet', '--short', 'HEAD'], { okExitCodes: [1] }),
  ]);
  const [gitDir = '', commonDirRaw = ''] = dirs.stdout.trim().split('\n');
  const commonDir = resolve(repoRoot, commonDirRaw);
  const markers: [GitOperation, string[]][] = [
    ['merge', ['MERGE_HEAD']],
    ['rebase', ['rebase-merge', 'rebase-apply']],
    ['cherryPick', ['CHERRY_PICK_HEAD']],
    ['revert', ['REVERT_HEAD']],
    ['bisect', ['BISECT_LOG']],
  ];
  const operations: GitOperation[] = [];
  for (const [operation, files] of markers) {
    for (const file of files) {
      if ((await pathExists(join(gitDir, file))) || (operation === 'bisect' && (await pathExists(join(commonDir, file))))) {
        operations.push(operation);
        break;
      }
    }
  }
  const headSha = head.exitCode === 0 ? head.stdout.trim() : '';
  const name = branch.exitCode === 0 ? branch.stdout.trim() : '';
  return { ...(name ? { branch: name } : {}), ...(headSha ? { headSha } : {}), operations };
}

/** The checkout's staged, modified, untracked and conflicted files: its status, the long part in a large checkout. */
export async function uncommittedChanges(repoRoot: string): Promise<RepositoryState['uncommitted']> {
  const status = await git(repoRoot, ['--no-optional-locks', 'status', '--porcelain=v2', '-z', '--untracked-files=normal']);
  return countUncommitted(parsePorcelainV2(status.stdout).entries);
}

/** Makes sure the worktrees directory exists and lies outside the repository's working tree; returns its real path. */
export async function prepareWorktreesDir(repoRoot: string, worktreesDir: string): Promise<string> {
  if (!isAbsolute(worktreesDir)) throw new WorktreeError(`The worktrees directory must be an absolute path, not "${worktreesDir}".`);
  await mkdir(worktreesDir, { recursive: true });
  const [dirReal, rootReal] = await Promise.all([realpath(worktreesDir), realpath(repoRoot)]);
  const inside = relative(rootReal, dirReal);
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    throw new WorktreeError(
      `The worktrees directory ${worktreesDir} is inside the repository ${repoRoot}; it must lie outside every workspace folder (use the extension's storage).`,
    );
  }
  return dirReal;
}

async function branchExists(repoRoot: string, branch: string): Promise<boolean> {
  const found = await git(repoRoot, ['for-each-ref', '--format=%(refname)', `refs/heads/${branch}`]);
  return found.stdout.trim() === `refs/heads/${branch}`;
}

export interface CreateWorktreeOptions {
  repoRoot: string;
  /** Absolute, outside every workspace folder (RepoStorage.worktreesDir). */
  worktreesDir: string;
  changeId: string;
  /** From slugify(title). */
  slug: string;
  baseSha: string;
  /** Folders for a sparse worktree (normalizeSparsePaths); empty or absent: the whole tree. */
  sparsePaths?: readonly string[];
}

export interface CreatedWorktree {
  path: string;
  branch: string;
  baseSha: string;
}

/**
 * Creates the draft's worktree on a new lane branch at the base commit, with a
 * single `git worktree add` doing the checkout. Any failure removes whatever this
 * call created (folder, registration, branch), so no half state is left behind.
 */
export async function createWorktree(options: CreateWorktreeOptions): Promise<CreatedWorktree> {
  const { repoRoot, changeId, slug, baseSha } = options;
  assertChangeId(changeId);
  if (!/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/.test(baseSha))
    throw new WorktreeError(`"${baseSha}" is not a full commit SHA; resolve the base with resolveBase() first.`);
  const branch = laneBranchName(changeId, slug);
  const dir = await prepareWorktreesDir(repoRoot, options.worktreesDir);
  const path = join(dir, laneFolderName(changeId, slug));
  if (await pathExists(path)) {
    throw new WorktreeError(
      `The folder ${path} already exists, so the worktree for change ${changeId} cannot be created there. Run "Agent Lanes: Reconcile" to clean up leftovers.`,
    );
  }
  try {
    // One git process; `-b` refuses an existing branch before creating anything, so no separate check is needed.
    const sparse = options.sparsePaths ?? [];
    await git(repoRoot, [
      'worktree',
      'add',
      '--quiet',
      '--no-track',
      ...(sparse.length ? ['--no-checkout'] : []),
      '-b',
      branch,
      path,
      baseSha,
    ]);
    if (sparse.length) await applySparsePaths(path, sparse);
  } catch (error) {
    const detail = error instanceof GitCommandError ? error.stderr.trim() : (error as Error).message;
    if (/a branch named '.*' already exists/.test(detail)) {
      // Not ours: git refused before creating anything, so the existing branch is left alone.
      throw new WorktreeError(
        `The branch ${branch} already exists, so change ${changeId} cannot use it. Run "Agent Lanes: Reconcile" to clean up leftovers.`,
      );
    }
    await undoCreate(repoRoot, path, branch);
    throw new WorktreeError(`Could not create the worktree for change ${changeId} at ${path}: ${detail}. Nothing was left behind.`);
  }
  return { path, branch, baseSha };
}

/**
 * Makes a worktree made with `--no-checkout` sparse (cone mode, the folders
 * read from stdin so none is taken for an option) and checks out what the cone
 * holds. git keeps the cone in the worktree's own config (config.worktree),
 * which needs extensions.worktreeConfig in the repository's config: set once,
 * the first time a sparse worktree is made.
 */
export async function applySparsePaths(worktreePath: string, folders: readonly string[]): Promise<void> {
  await git(worktreePath, ['sparse-checkout', 'set', '--cone', '--stdin'], { input: `${folders.join('\n')}\n` });
  await git(worktreePath, ['read-tree', '-m', '-u', 'HEAD']);
}

/** Removes what a failed creation left: the folder, its registration, the branch. */
export async function undoCreate(repoRoot: string, path: string, branch: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  await git(repoRoot, ['worktree', 'prune']).catch(() => undefined);
  if (await branchExists(repoRoot, branch).catch(() => false)) {
    await git(repoRoot, ['branch', '-D', '--', branch]).catch(() => undefined);
  }
}

/** Uncommitted entries (modified, staged, untracked) of a worktree; ignored files do not count. */
async function uncommittedEntries(worktreePath: string): Promise<number> {
  const status = await git(worktreePath, ['--no-optional-locks', 'status', '--porcelain=v2', '-z', '--untracked-files=normal']);
  return parsePorcelainV2(status.stdout).entries.filter((entry) => entry.kind !== 'ignored').length;
}

export interface RemoveWorktreeOptions {
  repoRoot: string;
  worktreePath: string;
  /** The lane branch (lanes/…); only lane branches are ever deleted. */
  branch: string;
  /** Remove even with uncommitted work (after the user confirmed). */
  force?: boolean;
  /** Keep the lane branch (a rejected change keeps its commits for the audit and the proof bundle). */
  keepBranch?: boolean;
}

export interface RemovedWorktree {
  removedWorktree: boolean;
  removedBranch: boolean;
}

/** Removes a lane's worktree and branch; refuses to lose uncommitted work unless forced. */
export async function removeWorktree(options: RemoveWorktreeOptions): Promise<RemovedWorktree> {
  const { repoRoot, worktreePath, branch } = options;
  if (!isLaneBranch(branch)) throw new WorktreeError(`Refusing to delete "${branch}": Agent Lanes only deletes its own lanes/… branches.`);
  const listed = parseWorktreeList((await git(repoRoot, ['worktree', 'list', '--porcelain', '-z'])).stdout);
  const main = listed[0];
  if (main && (await sameFolder(main.path, worktreePath)))
    throw new WorktreeError(`Refusing to remove ${worktreePath}: it is the repository's main checkout.`);
  let registered: (typeof listed)[number] | undefined;
  for (const entry of listed.slice(1)) {
    if (entry.branchRef === `refs/heads/${branch}` || (await sameFolder(entry.path, worktreePath))) registered = entry;
  }
  if (registered && registered.branchRef !== undefined && registered.branchRef !== `refs/heads/${branch}`) {
    throw new WorktreeError(
      `The worktree at ${worktreePath} has ${registered.branchRef.replace('refs/heads/', '')} checked out, not ${branch}; remove it by hand if it is really a lane's.`,
    );
  }
  const folder = registered?.path ?? worktreePath;
  let removedWorktree = false;
  if (await pathExists(folder)) {
    if (!options.force) {
      const dirty = await uncommittedEntries(folder).catch(() => 0);
      if (dirty > 0) throw new UncommittedWorkError(folder, dirty);
    }
    if (!registered) throw new WorktreeError(`${folder} is not a worktree of this repository; it was left as it is.`);
    await forceRemoveRegisteredWorktree(repoRoot, folder);
    removedWorktree = true;
  } else if (registered) {
    await git(repoRoot, ['worktree', 'prune']);
    removedWorktree = true;
  }
  let removedBranch = false;
  if (!options.keepBranch && (await branchExists(repoRoot, branch))) {
    try {
      await git(repoRoot, ['branch', '-D', '--', branch]);
    } catch (error) {
      const detail = error instanceof GitCommandError ? error.stderr.trim() : String(error);
      throw new WorktreeError(
        `The worktree was removed but the branch ${branch} could not be deleted: ${detail}. If it is checked out somewhere, switch away from it and discard again.`,
      );
    }
    removedBranch = true;
  }
  return { removedWorktree, removedBranch };
}

/**
 * `git worktree remove` twice forced also removes a locked worktree (a half-created
 * one is locked "initializing"); it still refuses a worktree holding a nested
 * repository (an agent-made gitlink), so then the folder is deleted and pruned.
 */
async function forceRemoveRegisteredWorktree(repoRoot: string, folder: string): Promise<void> {
  try {
    await git(repoRoot, ['worktree', 'remove', '--force', '--force', folder]);
  } catch (error) {
    if (!(error instanceof GitCommandError)) throw error;
    await rm(folder, { recursive: true, force: true });
    await git(repoRoot, ['worktree', 'prune']);
  }
}

async function sameFolder(a: string, b: string): Promise<boolean> {
  if (resolve(a) === resolve(b)) return true;
  const [ra, rb] = await Promise.all([realpath(a).catch(() => resolve(a)), realpath(b).catch(() => resolve(b))]);
  return ra === rb;
}

/** Recreates a change's worktree from its lane branch (after its folder was deleted by hand). */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export async function restoreWorktree(repoRoot: string, worktreePath: string, branch: string): Promise<void> {
  if (!isLaneBranch(branch)) throw new WorktreeError(`"${branch}" is not a lane branch.`);
  if (!(await branchExists(repoRoot, branch)))
    throw new WorktreeError(`The branch ${branch} no longer exists, so the worktree cannot be restored; discard the change instead.`);
  if (await pathExists(worktreePath))
    throw new WorktreeError(`${worktreePath} already exists; remove it first or run "Agent Lanes: Reconcile".`);
  await git(repoRoot, ['worktree', 'prune']);
  try {
    await git(repoRoot, ['worktree', 'add', '--quiet', worktreePath, branch]);
  } catch (error) {
    await rm(worktreePath, { recursive: true, force: true });
    await git(repoRoot, ['worktree', 'prune']).catch(() => undefined);
    throw new WorktreeError(
      `Could not restore the worktree at ${worktreePath} from ${branch}: ${error instanceof GitCommandError ? error.stderr.trim() : String(error)}`,
    );
  }
}

interface LaneWorktreeListing {
  /** Worktrees on a lanes/… branch or inside the worktrees directory; never the main checkout. */
  worktrees: (ObservedWorktree & { detached: boolean })[];
  /** Short names of every lanes/… branch. */
  laneBranches: string[];
}

/** Lists the lane worktrees and branches git knows of. hasUncommittedWork is computed only when asked (one status per worktree). */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export async function listLaneWorktrees(
  repoRoot: string,
  options: { worktreesDir?: string; checkUncommitted?: boolean } = {},
): Promise<LaneWorktreeListing> {
  const [list, refs] = await Promise.all([
    git(repoRoot, ['worktree', 'list', '--porcelain', '-z']),
    git(repoRoot, ['for-each-ref', '--format=%(refname)', 'refs/heads/lanes/']),
  ]);
  const dirReal = options.worktreesDir ? await realpath(options.worktreesDir).catch(() => resolve(options.worktreesDir!)) : undefined;
  const worktrees: LaneWorktreeListing['worktrees'] = [];
  for (const entry of parseWorktreeList(list.stdout).slice(1)) {
    const branch = entry.branchRef?.startsWith('refs/heads/') ? entry.branchRef.slice('refs/heads/'.length) : undefined;
    const inDir = dirReal !== undefined && isInside(dirReal, entry.path);
    if (!isLaneBranch(branch) && !inDir) continue;
    const folderExists = await pathExists(entry.path);
    const hasUncommittedWork = folderExists && options.checkUncommitted ? (await uncommittedEntries(entry.path).catch(() => 1)) > 0 : false;
    worktrees.push({
      path: entry.path,
      ...(branch ? { branch } : {}),
      ...(entry.head ? { head: entry.head } : {}),
      ...(entry.locked !== undefined ? { locked: entry.locked } : {}),
      ...(entry.prunable !== undefined ? { prunable: entry.prunable } : {}),
      folderExists,
      hasUncommittedWork,
      detached: entry.detached,
    });
  }
  const laneBranches = refs.stdout
    .split('\n')
    .filter(Boolean)
    .map((ref) => ref.slice('refs/heads/'.length));
  return { worktrees, laneBranches };
}

function isInside(dir: string, path: string): boolean {
  const inside = relative(dir, path);
  return inside !== '' && !inside.startsWith('..') && !isAbsolute(inside);
}

/**
 * Compares the change records with git's worktrees and branches and the
 * worktrees directory: missing worktrees, orphans, half-created worktrees and
 * stray folders, each saying whether cleaning it up would lose uncommitted work.
 */
export async function reconcile(repoRoot: string, changes: readonly Change[], worktreesDir: string): Promise<ReconcileFinding[]> {
  const listing = await listLaneWorktrees(repoRoot, { worktreesDir, checkUncommitted: true });
  const strayFolders: { path: string; hasFiles: boolean }[] = [];
  let entries: string[] = [];
  try {
    entries = await readdir(worktreesDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const dirReal = entries.length ? await realpath(worktreesDir) : worktreesDir;
  const known = await Promise.all(listing.worktrees.map((worktree) => realpath(worktree.path).catch(() => resolve(worktree.path))));
  for (const name of entries) {
    const path = join(dirReal, name);
    if (known.includes(path) || listing.worktrees.some((worktree) => resolve(worktree.path) === path)) continue;
    if (!(await stat(path)).isDirectory()) continue;
    strayFolders.push({ path, hasFiles: (await readdir(path)).length > 0 });
  }
  return reconcileDraftState({ changes, worktrees: listing.worktrees, laneBranches: listing.laneBranches, strayFolders });
}

/** Carries out one action of a reconcile finding. Refuses to lose uncommitted work unless forced. */
export async function applyReconcileAction(
  repoRoot: string,
  worktreesDir: string,
  finding: ReconcileFinding,
  action: ReconcileAction,
  options: { force?: boolean } = {},
): Promise<void> {
  if (!finding.actions.includes(action))
    throw new WorktreeError(`"${action}" does not apply to this finding (${finding.kind}); choose one of: ${finding.actions.join(', ')}.`);
  switch (action) {
    case 'prune':
      // git never prunes a locked worktree; a half-created one is locked "initializing" by git itself.
      if (finding.kind === 'halfCreated' && finding.path) await git(repoRoot, ['worktree', 'unlock', finding.path]).catch(() => undefined);
      await git(repoRoot, ['worktree', 'prune']);
      return;
    case 'restoreWorktree':
      await restoreWorktree(repoRoot, finding.path!, finding.branch!);
      return;
    case 'removeWorktree': {
      const path = finding.path!;
      if (finding.branch && isLaneBranch(finding.branch) && (finding.kind !== 'halfCreated' || !finding.changeId)) {
        await removeWorktree({ repoRoot, worktreePath: path, branch: finding.branch, force: options.force ?? false });
        return;
      }
      // A worktree whose branch belongs to an open change (or a detached one): remove only the worktree.
      if (await pathExists(path)) {
        const dirty = options.force ? 0 : await uncommittedEntries(path).catch(() => 1);
        if (dirty > 0) throw new UncommittedWorkError(path, dirty);
        await forceRemoveRegisteredWorktree(repoRoot, path);
      } else {
        await git(repoRoot, ['worktree', 'prune']);
      }
      return;
    }
    case 'deleteBranch':
      if (!isLaneBranch(finding.branch)) throw new WorktreeError(`Refusing to delete "${finding.branch}": not a lane branch.`);
      await git(repoRoot, ['branch', '-D', '--', finding.branch!]);
      return;
    case 'removeFolder': {
      const dirReal = await realpath(worktreesDir);
      const path = finding.path!;
      if (!isInside(dirReal, path))
        throw new WorktreeError(`Refusing to remove ${path}: it is not inside the worktrees directory ${worktreesDir}.`);
      if (finding.hasUncommittedWork && !options.force) throw new UncommittedWorkError(path, (await readdir(path)).length);
      await rm(path, { recursive: true, force: true });
      return;
    }
  }
}
