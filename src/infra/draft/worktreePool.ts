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
import { type DirectorySnapshot, directoriesUnchanged, snapshotDirectories } from './directorySnapshot';

/** A folder being prepared: never handed out; a crash leaves it for recover() to remove. */
const PREPARING = 'preparing-';
/** How long after its checkout a pooled worktree's index is refreshed (past the file system's timestamp second). */
const RACY_SETTLE_MS = 1_100;
/** A folder fully prepared: `ready-<sparse key>-<random>`; checked before it is handed out. */
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

/** What `git status` must print for a pooled worktree: nothing, ignored and untracked files included. */
const FULL_STATUS = ['status', '--porcelain', '--ignored'];
/** The tracked files and the index only: what the folder snapshot cannot see (a file written in place, a staged change). */
const TRACKED_STATUS = ['status', '--porcelain', '--untracked-files=no'];

/**
 * A warm pool of prepared worktrees per repository, so New Draft does not pay
 * the checkout. Each pooled worktree is a detached `git worktree add` at a base
 * commit, made with the same git calls (and hardening) as a fresh one, in a
 * `preparing-…` folder that becomes `ready-…` once it is complete. Right after
 * that, off New Draft's path, the pool snapshots its folders and checks it in
 * full (registered, detached, unlocked, `git status --porcelain --ignored`
 * empty); one that fails is discarded. A worktree leaves the pool when it is
 * handed out and never comes back: one an agent worked in is removed with its
 * change, never reused.
 *
 * Before it is handed out it is checked again: registered, detached and
 * unlocked, `git status --untracked-files=no` empty (no tracked file changed,
 * nothing staged) and every folder as in the snapshot (nothing added, removed
 * or renamed anywhere: see directorySnapshot.ts). That is what the full check
 * would find, without listing 100,000 names against the ignore rules. A folder
 * that changed, or a worktree without a snapshot (prepared by an earlier
 * session, or on a file system whose clock is too coarse), gets the full
 * check instead. Any failure discards the worktree.
 */
export class WorktreePool {
  private refilling: Promise<void> | undefined;
  private wanted: string | undefined;
  /** Ready folders claimed by a take in progress (so two New Drafts never get one folder). */
  private readonly claimed = new Set<string>();
  /** Folders this pool is preparing or checking right now (recover leaves them to it; claim skips them). */
  private readonly preparing = new Set<string>();
  /** Ready folders whose full check passed in this session, with their folders as they were before that check. */
  private readonly checked = new Map<string, DirectorySnapshot | undefined>();
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

  /** The ready folders of the current sparse key, not claimed by a take in progress nor being checked. */
  private async readyFolders(): Promise<string[]> {
    const prefix = `${READY}${this.key}-`;
    return (await this.entries()).filter(
      (path) => basename(path).startsWith(prefix) && !this.claimed.has(path) && !this.preparing.has(path),
    );
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
   * Picks a ready worktree and checks it (see the class comment), discarding
   * any that fails, so the check can run while New Draft does its other work.
   * The claim is then handed out (handOut) or given back untouched (release).
   */
  async claim(): Promise<PoolClaim | undefined> {
    if (this.size === 0 || this.disposed) return undefined;
    const ready = await this.readyFolders();
    // Those checked in full this session first: they need only the quick check.
    ready.sort((a, b) => Number(this.checked.has(b)) - Number(this.checked.has(a)));
    for (const candidate of ready) {
      this.claimed.add(candidate);
      const snapshot = this.checked.get(candidate);
      const checked = await this.checkPooled(candidate, this.checked.has(candidate) ? snapshot : undefined).catch(
        (error: Error) => error.message,
      );
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
    // Made the change's where it was checked (git there needs no new look at its configuration), then moved in;
    // the claim keeps every other take and recovery of this pool away meanwhile. Any failure removes it.
    this.checked.delete(candidate);
    let from: TakenWorktree['from'] = 'pool';
    try {
      if (claim.head !== take.baseSha) {
        // The base moved since the pool was filled: checkout updates only the files that differ.
        await git(candidate, ['checkout', '--quiet', '--detach', '--no-recurse-submodules', take.baseSha, '--']);
        from = 'moved';
      }
      // The branch is made only if it does not exist (an empty old value), then HEAD points at it: no checkout.
      await git(repoRoot, ['update-ref', '-m', 'Agent Lanes: new draft', `refs/heads/${branch}`, take.baseSha, '']);
    } catch (error) {
      const detail = error instanceof GitCommandError ? error.stderr.trim() : (error as Error).message;
      await this.discard(candidate);
      if (/reference already exists|unable to lock|cannot lock ref/i.test(detail))
        throw new WorktreeError(
          `The branch ${branch} already exists, so change ${take.changeId} cannot use it. Run "Lanes: Reconcile" to clean up leftovers.`,
        );
      this.options.logger?.warn(`Worktree pool: could not prepare ${candidate} for change ${take.changeId}: ${detail}`);
      return undefined;
    }
    try {
      await git(candidate, ['symbolic-ref', '-m', 'Agent Lanes: new draft', 'HEAD', `refs/heads/${branch}`]);
    } catch (error) {
      await undoCreate(repoRoot, candidate, branch);
      throw new WorktreeError(`Could not create the worktree for change ${take.changeId} at ${path}: ${(error as Error).message}`);
    }
    try {
      await git(repoRoot, ['worktree', 'move', candidate, path]);
    } catch (error) {
      // Not moved: the branch goes with the worktree, and New Draft makes a new one the usual way.
      this.options.logger?.warn(`Worktree pool: could not move ${candidate}: ${(error as Error).message}`);
      await this.discard(candidate);
      await undoCreate(repoRoot, candidate, branch);
      return undefined;
    }
    return { path, branch, baseSha: take.baseSha, from };
  }

  /**
   * Why a pooled worktree may not be handed out, or its commit when it may.
   * With a snapshot taken before its full check passed: the quick check (the
   * tracked files and the folders), falling back to the full check when a
   * folder changed. Without one: the full check.
   */
  private async checkPooled(path: string, snapshot?: DirectorySnapshot): Promise<string | { head: string }> {
    const [listing, status, unchanged] = await Promise.all([
      git(this.options.repoRoot, ['worktree', 'list', '--porcelain', '-z']),
      git(path, snapshot ? TRACKED_STATUS : FULL_STATUS, { timeoutMs: 60_000 }),
      snapshot ? directoriesUnchanged(path, snapshot) : true,
    ]);
    const entry = parseWorktreeList(listing.stdout).find((worktree) => worktree.path === path);
    if (!entry) return 'git does not list it as a worktree';
    if (!entry.detached) return `it is on ${entry.branchRef ?? 'a branch'}, not detached`;
    if (entry.locked !== undefined) return 'it is locked';
    // Something was added, removed or renamed since the full check (or a folder was touched): check in full again.
    const dirty = (unchanged ? status : await git(path, FULL_STATUS, { timeoutMs: 60_000 })).stdout.trim();
    if (dirty) return `it is not clean (${dirty.split('\n').slice(0, 3).join('; ')})`;
    if (!entry.head) return 'git lists no commit for it';
    return { head: entry.head };
  }

  /**
   * The full check of a ready worktree, off New Draft's path: its folders are
   * snapshotted first, so whatever changes after the snapshot shows at the
   * quick check and whatever changed before it shows now. A worktree that fails
   * is discarded; what failed is returned.
   */
  private async checkReady(path: string): Promise<string | undefined> {
    this.preparing.add(path);
    try {
      const snapshot = await snapshotDirectories(path);
      const problem = await this.checkPooled(path).catch((error: Error) => error.message);
      if (typeof problem === 'string') {
        this.options.logger?.warn(`Worktree pool: discarded ${path}: ${problem}.`);
        await this.discard(path);
        return problem;
      }
      this.checked.set(path, snapshot);
      return undefined;
    } finally {
      this.preparing.delete(path);
    }
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
        // Ready worktrees from before this session (or another window) get their full check now, not at New Draft.
        for (const path of await this.readyFolders()) if (!this.checked.has(path) && !this.disposed) await this.checkReady(path);
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

  /** One pooled worktree: added in a preparing folder, made sparse if asked, renamed ready, then checked in full. */
  private async prepareOne(baseSha: string): Promise<void> {
    const { repoRoot } = this.options;
    const poolDir = await this.root();
    const sparse = this.options.sparsePaths();
    const key = sparseKey(sparse);
    const id = randomBytes(6).toString('hex');
    const preparing = join(poolDir, `${PREPARING}${id}`);
    const ready = join(poolDir, `${READY}${key}-${id}`);
    this.preparing.add(preparing);
    try {
      await git(repoRoot, ['worktree', 'add', '--quiet', '--detach', ...(sparse.length ? ['--no-checkout'] : []), preparing, baseSha]);
      if (sparse.length) await applySparsePaths(preparing, sparse);
      if (this.disposed) throw new Error('the pool was closed');
      // Renamed before its check (renaming a folder changes its ctime, which the snapshot records); not handed out
      // before the check, which runs right after.
      this.preparing.add(ready);
      await git(repoRoot, ['worktree', 'move', preparing, ready]);
    } catch (error) {
      await this.discard(preparing);
      this.preparing.delete(ready);
      throw error;
    } finally {
      this.preparing.delete(preparing);
    }
    try {
      // Files written in the same second as the index are "racily clean": every status would read them again.
      // Refreshed a little later, the index is newer than every file, so the check at hand-out only stats them;
      // and the folders' times are then far enough in the past for the snapshot to see any later change.
      await new Promise((settle) => setTimeout(settle, RACY_SETTLE_MS));
      await git(ready, ['update-index', '-q', '--refresh'], { okExitCodes: [1] });
    } catch (error) {
      await this.discard(ready);
      throw error;
    } finally {
      this.preparing.delete(ready);
    }
    // A checkout that is not clean at once (say, line endings git converts) would be so every time: stop filling.
    const problem = await this.checkReady(ready);
    if (problem) throw new Error(`the new worktree is not clean: ${problem}`);
  }

  /** Removes a pooled worktree (registered or not) and its folder. */
  private async discard(path: string): Promise<void> {
    this.checked.delete(path);
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
