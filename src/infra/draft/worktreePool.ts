import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { assertChangeId, laneBranchName, laneFolderName } from '../../core/draft/draft';
import { sparseKey } from '../../core/draft/sparsePaths';
import type { Logger } from '../../core/logger';
import { parseWorktreeList } from '../../core/git/gitOutput';
import { GitCommandError, git } from '../git/gitProcess';
import { type CreatedWorktree, WorktreeError, applySparsePaths, prepareWorktreesDir, undoCreate } from '../git/worktrees';
import { pathExists } from '../storage/fileStore';

/** A folder being prepared: never handed out; a crash leaves it for recover() to remove. */
const PREPARING = 'preparing-';
/** How long after its checkout a pooled worktree's index is refreshed (past the file system's timestamp second). */
const RACY_SETTLE_MS = 1_100;
/** A folder fully prepared and checked: `ready-<sparse key>-<random>`. */
const READY = 'ready-';

export interface WorktreePoolOptions {
  repoRoot: string;
  /** Outside every workspace folder, beside the worktrees folder (RepoStorage.poolDir). */
  poolDir: string;
  /** Where handed-out worktrees go (RepoStorage.worktreesDir). */
  worktreesDir: string;
  /** How many worktrees to keep ready (agentLanes.draft.worktreePool); 0 disables the pool. Read at every use. */
  size: () => number;
  /** The sparse folders new worktrees get (agentLanes.draft.sparsePaths); empty: the whole tree. Read at every use. */
  sparsePaths: () => readonly string[];
  logger?: Logger;
}

export interface TakeOptions {
  changeId: string;
  slug: string;
  baseSha: string;
}

/** A ready worktree picked and checked for one New Draft. */
export interface PoolClaim {
  path: string;
  /** The commit it is checked out at (from `git worktree list`). */
  head: string;
}

/** How a worktree was handed out, for the audit and the bench. */
export interface TakenWorktree extends CreatedWorktree {
  /** moved: the pooled worktree was at another commit and was checked out at the base. */
  from: 'pool' | 'moved';
}

/**
 * A warm pool of prepared worktrees per repository, so New Draft does not pay
 * the checkout. Each pooled worktree is a detached `git worktree add` at a base
 * commit, made with the same git calls (and hardening) as a fresh one, in a
 * `preparing-…` folder that becomes `ready-…` only once it is complete and its
 * `git status --porcelain --ignored` is empty. A worktree leaves the pool when
 * it is handed out and never comes back: one an agent worked in is removed
 * with its change, never reused. Before it is handed out it is checked again
 * (registered, detached, nothing in `git status --ignored`), else discarded.
 */
export class WorktreePool {
  private refilling: Promise<void> | undefined;
  private wanted: string | undefined;
  /** Ready folders claimed by a take in progress (so two New Drafts never get one folder). */
  private readonly claimed = new Set<string>();
  /** Folders this pool is preparing right now (recover leaves them to their preparation). */
  private readonly preparing = new Set<string>();
  private disposed = false;

  constructor(private readonly options: WorktreePoolOptions) {}

  private get size(): number {
    const size = this.options.size();
    return Number.isInteger(size) && size > 0 ? Math.min(size, 10) : 0;
  }

  private get key(): string {
    return sparseKey(this.options.sparsePaths());
  }

  /** The pool folder's real path (git lists worktrees by real path), made if missing, refused inside the repository. */
  private async root(): Promise<string> {
    return (this.rootPath ??= await prepareWorktreesDir(this.options.repoRoot, this.options.poolDir));
  }
  private rootPath: string | undefined;

  /** Every entry of the pool folder, by full path. */
  private async entries(): Promise<string[]> {
    const root = await this.root();
    return (await readdir(root).catch(() => [] as string[])).map((name) => join(root, name));
  }

  /** The ready folders of the current sparse key, not claimed by a take in progress. */
  private async readyFolders(): Promise<string[]> {
    const prefix = `${READY}${this.key}-`;
    return (await this.entries()).filter((path) => basename(path).startsWith(prefix) && !this.claimed.has(path));
  }

  /**
   * Hands out a pooled worktree for a new change: moved to the change's folder,
   * checked out at `baseSha` if the pool's commit is another, on a new lane
   * branch. Undefined when the pool is off or holds none that passes the checks
   * (the caller then creates one the usual way).
   */
  async take(take: TakeOptions): Promise<TakenWorktree | undefined> {
    return this.handOut(await this.claim(), take);
  }

  /**
   * Picks a ready worktree and checks it (registered, detached, unlocked,
   * `git status --porcelain --ignored` empty), discarding any that fails, so
   * the check can run while New Draft does its other work. The claim is then
   * handed out (handOut) or given back untouched (release).
   */
  async claim(): Promise<PoolClaim | undefined> {
    if (this.size === 0 || this.disposed) return undefined;
    for (const candidate of await this.readyFolders()) {
      this.claimed.add(candidate);
      const checked = await this.checkPooled(candidate).catch((error: Error) => error.message);
      if (typeof checked !== 'string') return { path: candidate, head: checked.head };
      const problem = checked;
      this.options.logger?.warn(`Worktree pool: discarded ${candidate}: ${problem}.`);
      await this.discard(candidate);
      this.claimed.delete(candidate);
    }
    return undefined;
  }

  /** Gives a claimed worktree back to the pool (the draft did not start); nothing touched it. */
  release(claim: PoolClaim | undefined): void {
    if (claim) this.claimed.delete(claim.path);
  }

  /** Makes a claimed, checked worktree the change's (see take). */
  async handOut(claim: PoolClaim | undefined, take: TakeOptions): Promise<TakenWorktree | undefined> {
    if (!claim) return undefined;
    try {
      assertChangeId(take.changeId);
      return await this.moveIn(claim, take, laneBranchName(take.changeId, take.slug));
    } finally {
      this.claimed.delete(claim.path);
    }
  }

  private async moveIn(claim: PoolClaim, take: TakeOptions, branch: string): Promise<TakenWorktree | undefined> {
    const { repoRoot } = this.options;
    const candidate = claim.path;
    const dir = await prepareWorktreesDir(repoRoot, this.options.worktreesDir);
    const path = join(dir, laneFolderName(take.changeId, take.slug));
    if (await pathExists(path))
      throw new WorktreeError(
        `The folder ${path} already exists, so the worktree for change ${take.changeId} cannot be created there. Run "Lanes: Reconcile" to clean up leftovers.`,
      );
    // The move is the claim on disk: from here the folder is the change's, and any failure removes it.
    try {
      await git(repoRoot, ['worktree', 'move', candidate, path]);
    } catch (error) {
      this.options.logger?.warn(`Worktree pool: could not move ${candidate}: ${(error as Error).message}`);
      await this.discard(candidate);
      return undefined;
    }
    let from: TakenWorktree['from'] = 'pool';
    try {
      if (claim.head !== take.baseSha) {
        // The base moved since the pool was filled: checkout updates only the files that differ.
        await git(path, ['checkout', '--quiet', '--detach', '--no-recurse-submodules', take.baseSha, '--']);
        from = 'moved';
      }
      // The branch is made only if it does not exist (an empty old value), then HEAD points at it: no checkout.
      await git(repoRoot, ['update-ref', '-m', 'Agent Lanes: new draft', `refs/heads/${branch}`, take.baseSha, '']);
    } catch (error) {
      const detail = error instanceof GitCommandError ? error.stderr.trim() : (error as Error).message;
      await this.discard(path);
      if (/reference already exists|unable to lock|cannot lock ref/i.test(detail))
        throw new WorktreeError(
          `The branch ${branch} already exists, so change ${take.changeId} cannot use it. Run "Lanes: Reconcile" to clean up leftovers.`,
        );
      this.options.logger?.warn(`Worktree pool: could not prepare ${path} for change ${take.changeId}: ${detail}`);
      return undefined;
    }
    try {
      await git(path, ['symbolic-ref', '-m', 'Agent Lanes: new draft', 'HEAD', `refs/heads/${branch}`]);
    } catch (error) {
      await undoCreate(repoRoot, path, branch);
      throw new WorktreeError(`Could not create the worktree for change ${take.changeId} at ${path}: ${(error as Error).message}`);
    }
    return { path, branch, baseSha: take.baseSha, from };
  }

  /** Why a pooled worktree may not be handed out, or its commit when it may. */
  private async checkPooled(path: string): Promise<string | { head: string }> {
    const listed = parseWorktreeList((await git(this.options.repoRoot, ['worktree', 'list', '--porcelain', '-z'])).stdout);
    const entry = listed.find((worktree) => worktree.path === path);
    if (!entry) return 'git does not list it as a worktree';
    if (!entry.detached) return `it is on ${entry.branchRef ?? 'a branch'}, not detached`;
    if (entry.locked !== undefined) return 'it is locked';
    const status = await git(path, ['status', '--porcelain', '--ignored'], { timeoutMs: 60_000 });
    if (status.stdout.trim()) return `it is not clean (${status.stdout.trim().split('\n').slice(0, 3).join('; ')})`;
    if (!entry.head) return 'git lists no commit for it';
    return { head: entry.head };
  }

  /**
   * Prepares worktrees at `baseSha` until the pool holds its size, in the
   * background (the promise is for tests and the bench). Ready worktrees at
   * another commit are kept: a take moves them to the base.
   */
  refill(baseSha: string): Promise<void> {
    this.wanted = baseSha;
    this.refilling ??= this.fill().finally(() => (this.refilling = undefined));
    return this.refilling;
  }

  private async fill(): Promise<void> {
    try {
      while (!this.disposed && this.wanted) {
        const ready = await this.readyFolders();
        if (ready.length >= this.size) {
          // Too many (the size went down): the surplus goes.
          for (const path of ready.slice(this.size)) await this.discard(path);
          return;
        }
        await this.prepareOne(this.wanted);
      }
    } catch (error) {
      this.options.logger?.warn(`Worktree pool: could not prepare a worktree: ${(error as Error).message}`);
    }
  }

  /** One pooled worktree: added in a preparing folder, made sparse if asked, checked, then renamed ready. */
  private async prepareOne(baseSha: string): Promise<void> {
    const { repoRoot } = this.options;
    const poolDir = await this.root();
    const sparse = this.options.sparsePaths();
    const key = sparseKey(sparse);
    const id = randomBytes(6).toString('hex');
    const preparing = join(poolDir, `${PREPARING}${id}`);
    this.preparing.add(preparing);
    try {
      await git(repoRoot, ['worktree', 'add', '--quiet', '--detach', ...(sparse.length ? ['--no-checkout'] : []), preparing, baseSha]);
      if (sparse.length) await applySparsePaths(preparing, sparse);
      // Files written in the same second as the index are "racily clean": every status would read them again.
      // Refreshed a little later, the index is newer than every file, so the check at hand-out only stats them.
      await new Promise((settle) => setTimeout(settle, RACY_SETTLE_MS));
      await git(preparing, ['update-index', '-q', '--refresh'], { okExitCodes: [1] });
      const problem = await this.checkPooled(preparing);
      if (typeof problem === 'string') throw new Error(`the new worktree is not clean: ${problem}`);
      if (this.disposed) throw new Error('the pool was closed');
      await git(repoRoot, ['worktree', 'move', preparing, join(poolDir, `${READY}${key}-${id}`)]);
    } catch (error) {
      await this.discard(preparing);
      throw error;
    } finally {
      this.preparing.delete(preparing);
    }
  }

  /** Removes a pooled worktree (registered or not) and its folder. */
  private async discard(path: string): Promise<void> {
    await git(this.options.repoRoot, ['worktree', 'remove', '--force', '--force', path]).catch(() => undefined);
    await rm(path, { recursive: true, force: true }).catch(() => undefined);
    await git(this.options.repoRoot, ['worktree', 'prune']).catch(() => undefined);
  }

  /**
   * When the repository opens: removes what a crash left half prepared
   * (`preparing-…` folders, registered or not), anything else in the pool
   * folder that is not a ready worktree of the current settings, and every
   * ready one when the pool is off (so turning it off empties it).
   */
  async recover(): Promise<void> {
    const keep = this.size > 0 ? new Set((await this.readyFolders()).slice(0, this.size)) : new Set<string>();
    for (const path of await this.entries()) {
      // A folder a New Draft is taking, or one this pool is preparing now, is not a leftover.
      if (keep.has(path) || this.claimed.has(path) || this.preparing.has(path)) continue;
      await this.discard(path);
    }
  }

  /** Stops refilling; a preparation under way is discarded when it ends. */
  dispose(): void {
    this.disposed = true;
    this.wanted = undefined;
  }
}
