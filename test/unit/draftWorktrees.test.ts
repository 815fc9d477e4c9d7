import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Change } from '../../src/core/change';
import { reconcileDraftState } from '../../src/core/draft/draft';
import {
  UncommittedWorkError,
  WorktreeError,
  applyReconcileAction,
  createWorktree,
  listLaneWorktrees,
  reconcile,
  removeWorktree,
  repositoryHead,
  resolveBase,
  restoreWorktree,
  uncommittedChanges,
} from '../../src/infra/git/worktrees';
import { cleanupTemp, commitAll, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

function change(overrides: Partial<Change> & Pick<Change, 'id' | 'branch' | 'worktreePath'>): Change {
  return {
    title: 'A change',
    task: 'Do something',
    agentId: 'scripted',
    baseRef: 'HEAD',
    baseSha: '0'.repeat(40),
    lane: 'draft',
    createdAt: '2026-11-21T10:00:00.000Z',
    updatedAt: '2026-11-21T10:00:00.000Z',
    history: [],
    ...overrides,
  };
}

function branches(root: string): string[] {
  return runGit(root, ['for-each-ref', '--format=%(refname:short)', 'refs/heads/']).split('\n').filter(Boolean);
}

function worktreeCount(root: string): number {
  return runGit(root, ['worktree', 'list', '--porcelain'])
    .split('\n')
    .filter((line) => line.startsWith('worktree ')).length;
}

describe('draft worktrees (real git repositories)', () => {
  afterEach(cleanupTemp);

  describe('resolveBase', () => {
    it('defaults to the HEAD commit of the current branch', async () => {
      const repo = makeRepo();
      const base = await resolveBase(repo);
      assert.equal(base.sha, head(repo));
      assert.equal(base.ref, 'HEAD');
      assert.equal(base.branch, 'main');
    });

    it('resolves a branch, a tag and a SHA to their commit', async () => {
      const repo = makeRepo();
      const first = head(repo);
      runGit(repo, ['tag', '-a', 'v1', '-m', 'annotated']);
      runGit(repo, ['branch', 'feature']);
      writeFiles(repo, { 'b.txt': 'b\n' });
      commitAll(repo);
      assert.equal((await resolveBase(repo, 'v1')).sha, first, 'an annotated tag peels to its commit');
      assert.equal((await resolveBase(repo, 'feature')).sha, first);
      assert.equal((await resolveBase(repo, first.slice(0, 10))).sha, first);
      assert.equal((await resolveBase(repo, 'main')).sha, head(repo));
    });

    it('refuses a ref that does not exist, naming it and how to list refs', async () => {
      const repo = makeRepo();
      await assert.rejects(resolveBase(repo, 'no-such-branch'), (error: Error) => {
        assert.ok(error instanceof WorktreeError);
        assert.match(error.message, /"no-such-branch" is not a branch, tag or commit/);
        assert.match(error.message, /git branch -a/);
        return true;
      });
    });

    it('refuses a ref that would be read as an option', async () => {
      const repo = makeRepo();
      await assert.rejects(resolveBase(repo, '--output=/tmp/x'), /not a valid branch, tag or commit name/);
    });

    it('refuses a repository without commits, saying to make one', async () => {
      const repo = tempDir();
      runGit(repo, ['init', '-q']);
      await assert.rejects(resolveBase(repo), /no commits yet/);
    });
  });

  describe("the checkout's state (repositoryHead, uncommittedChanges)", () => {
    /** What New Draft reads of the checkout: its head at once, its uncommitted files from the status. */
    const repositoryState = async (repo: string) => ({ ...(await repositoryHead(repo)), uncommitted: await uncommittedChanges(repo) });

    it('reports a clean repository', async () => {
      const repo = makeRepo();
      const state = await repositoryState(repo);
      assert.deepEqual(state.operations, []);
      assert.deepEqual(state.uncommitted, { staged: 0, unstaged: 0, untracked: 0, conflicted: 0 });
      assert.equal(state.branch, 'main');
      assert.equal(state.headSha, head(repo));
    });

    it('counts staged, modified and untracked files', async () => {
      const repo = makeRepo({ 'a.txt': 'a\n', 'b.txt': 'b\n' });
      writeFiles(repo, { 'a.txt': 'changed\n', 'new.txt': 'n\n', 'b.txt': 'staged\n' });
      runGit(repo, ['add', 'b.txt']);
      const state = await repositoryState(repo);
      assert.deepEqual(state.uncommitted, { staged: 1, unstaged: 1, untracked: 1, conflicted: 0 });
    });

    it('sees a merge in progress with a conflict', async () => {
      const repo = makeRepo({ 'a.txt': 'base\n' });
      runGit(repo, ['checkout', '-q', '-b', 'other']);
      writeFiles(repo, { 'a.txt': 'other\n' });
      commitAll(repo);
      runGit(repo, ['checkout', '-q', 'main']);
      writeFiles(repo, { 'a.txt': 'main\n' });
      commitAll(repo);
      assert.throws(() => runGit(repo, ['merge', 'other']));
      const state = await repositoryState(repo);
      assert.deepEqual(state.operations, ['merge']);
      assert.equal(state.uncommitted.conflicted, 1);
    });

    it('sees a rebase in progress (HEAD detached)', async () => {
      const repo = makeRepo({ 'a.txt': 'base\n' });
      runGit(repo, ['checkout', '-q', '-b', 'other']);
      writeFiles(repo, { 'a.txt': 'other\n' });
      commitAll(repo);
      runGit(repo, ['checkout', '-q', 'main']);
      writeFiles(repo, { 'a.txt': 'main\n' });
      commitAll(repo);
      assert.throws(() => runGit(repo, ['rebase', 'other']));
      const state = await repositoryState(repo);
      assert.ok(state.operations.includes('rebase'));
      assert.equal(state.branch, undefined);
    });

    it('names the unborn branch of a repository without commits, and no HEAD commit', async () => {
      const repo = tempDir();
      runGit(repo, ['init', '-q', '-b', 'trunk']);
      const state = await repositoryHead(repo);
      assert.equal(state.branch, 'trunk');
      assert.equal(state.headSha, undefined);
      assert.deepEqual(state.operations, []);
    });
  });

  describe('createWorktree', () => {
    it('creates the lane branch at the base and a folder in the worktrees directory', async () => {
      const repo = makeRepo({ 'src/a.ts': 'export {};\n' });
      const storage = tempDir('lanes-storage-');
      const base = await resolveBase(repo);
      const created = await createWorktree({
        repoRoot: repo,
        worktreesDir: join(storage, 'worktrees'),
        changeId: 'a1b2c3d4',
        slug: 'add-greeting',
        baseSha: base.sha,
      });
      assert.equal(created.branch, 'lanes/a1b2c3d4-add-greeting');
      assert.equal(created.path, join(storage, 'worktrees', 'a1b2c3d4-add-greeting'));
      assert.ok(existsSync(join(created.path, 'src/a.ts')));
      assert.equal(head(created.path), base.sha);
      assert.equal(runGit(created.path, ['symbolic-ref', '--short', 'HEAD']).trim(), created.branch);
      assert.equal(runGit(repo, ['status', '--porcelain']), '', "the user's checkout is untouched");
    });

    it('refuses a worktrees directory inside the repository', async () => {
      const repo = makeRepo();
      await assert.rejects(
        createWorktree({
          repoRoot: repo,
          worktreesDir: join(repo, '.lanes-worktrees'),
          changeId: 'a1b2c3d4',
          slug: 'x',
          baseSha: head(repo),
        }),
        /inside the repository.*outside every workspace folder/,
      );
    });

    it('leaves no branch and no folder when git fails (a commit that does not exist)', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      await assert.rejects(
        createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: 'f'.repeat(40) }),
        (error: Error) => error instanceof WorktreeError && /Nothing was left behind/.test(error.message),
      );
      assert.deepEqual(branches(repo), ['main']);
      assert.equal(existsSync(join(dir, 'a1b2c3d4-x')), false);
      assert.equal(worktreeCount(repo), 1);
    });

    it('leaves no branch, folder or registration when the checkout fails after git made the branch', async () => {
      const repo = makeRepo({ 'a.txt': 'a\n' });
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      // A crafted commit with a .git/config entry: git creates the branch, then refuses to check the tree out.
      const blob = runGit(repo, ['hash-object', '-w', '--stdin'], 'evil\n').trim();
      const inner = runGit(repo, ['mktree'], `100644 blob ${blob}\tconfig\n`).trim();
      const tree = runGit(repo, ['mktree'], `100644 blob ${blob}\ta.txt\n040000 tree ${inner}\t.git\n`).trim();
      const crafted = runGit(repo, ['commit-tree', tree, '-p', 'HEAD', '-m', 'crafted']).trim();
      await assert.rejects(
        createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: crafted }),
        (error: Error) => {
          assert.ok(error instanceof WorktreeError);
          assert.match(error.message, /invalid path '\.git\/config'.*Nothing was left behind/s);
          return true;
        },
      );
      assert.deepEqual(branches(repo), ['main']);
      assert.equal(existsSync(join(dir, 'a1b2c3d4-x')), false);
      assert.equal(worktreeCount(repo), 1);
    });

    it('refuses when the folder or the branch already exists, and keeps an existing branch untouched', async () => {
      const repo = makeRepo({ 'a.txt': 'a\n' });
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'a1b2c3d4-x'), 'in the way');
      await assert.rejects(
        createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) }),
        /folder .* already exists.*Reconcile/,
      );
      assert.deepEqual(branches(repo), ['main']);
      rmSync(join(dir, 'a1b2c3d4-x'));
      runGit(repo, ['branch', 'lanes/a1b2c3d4-x']);
      await assert.rejects(
        createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) }),
        /branch lanes\/a1b2c3d4-x already exists/,
      );
      assert.deepEqual(branches(repo).sort(), ['lanes/a1b2c3d4-x', 'main'], 'the pre-existing branch is kept');
      assert.equal(existsSync(join(dir, 'a1b2c3d4-x')), false);
    });

    it('refuses a bad change id or slug with a message saying what is expected', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      await assert.rejects(
        createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'XYZ', slug: 'x', baseSha: head(repo) }),
        /8 lower-case hex/,
      );
      await assert.rejects(
        createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: '../x', baseSha: head(repo) }),
        /not a usable slug/,
      );
      await assert.rejects(
        createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: 'main' }),
        /not a full commit SHA/,
      );
    });

    it('holds several drafts at once, each on its own branch and folder', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const one = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: '00000001', slug: 'one', baseSha: head(repo) });
      const two = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: '00000002', slug: 'two', baseSha: head(repo) });
      writeFiles(one.path, { 'only-one.txt': '1\n' });
      assert.equal(existsSync(join(two.path, 'only-one.txt')), false);
      const listing = await listLaneWorktrees(repo);
      assert.deepEqual(listing.worktrees.map((worktree) => worktree.branch).sort(), ['lanes/00000001-one', 'lanes/00000002-two']);
      assert.deepEqual(listing.laneBranches.sort(), ['lanes/00000001-one', 'lanes/00000002-two']);
    });
  });

  describe('removeWorktree', () => {
    it('removes the worktree and its branch', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      const removed = await removeWorktree({ repoRoot: repo, worktreePath: created.path, branch: created.branch });
      assert.deepEqual(removed, { removedWorktree: true, removedBranch: true });
      assert.equal(existsSync(created.path), false);
      assert.deepEqual(branches(repo), ['main']);
      assert.equal(worktreeCount(repo), 1);
    });

    it('refuses to delete uncommitted work unless forced', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      writeFiles(created.path, { 'work.txt': 'precious\n' });
      await assert.rejects(removeWorktree({ repoRoot: repo, worktreePath: created.path, branch: created.branch }), (error: Error) => {
        assert.ok(error instanceof UncommittedWorkError);
        assert.match(error.message, /1 uncommitted change/);
        return true;
      });
      assert.ok(existsSync(join(created.path, 'work.txt')), 'nothing was deleted');
      await removeWorktree({ repoRoot: repo, worktreePath: created.path, branch: created.branch, force: true });
      assert.equal(existsSync(created.path), false);
    });

    it('removes a worktree holding a nested repository the agent made', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      const nested = join(created.path, 'vendor/lib');
      mkdirSync(nested, { recursive: true });
      runGit(nested, ['init', '-q']);
      writeFiles(nested, { 'x.txt': 'x\n' });
      commitAll(nested);
      commitAll(created.path, 'adds a gitlink');
      await removeWorktree({ repoRoot: repo, worktreePath: created.path, branch: created.branch, force: true });
      assert.equal(existsSync(created.path), false);
      assert.equal(worktreeCount(repo), 1);
    });

    it('copes with a worktree folder deleted by hand', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      rmSync(created.path, { recursive: true, force: true });
      const removed = await removeWorktree({ repoRoot: repo, worktreePath: created.path, branch: created.branch });
      assert.deepEqual(removed, { removedWorktree: true, removedBranch: true });
      assert.equal(worktreeCount(repo), 1);
    });

    it('never deletes a branch outside lanes/ nor the main checkout', async () => {
      const repo = makeRepo();
      await assert.rejects(
        removeWorktree({ repoRoot: repo, worktreePath: repo, branch: 'main' }),
        /only deletes its own lanes\/… branches/,
      );
      await assert.rejects(removeWorktree({ repoRoot: repo, worktreePath: repo, branch: 'lanes/a1b2c3d4-x' }), /main checkout/);
      assert.deepEqual(branches(repo), ['main']);
    });
  });

  describe('reconcile', () => {
    it('finds nothing when records and worktrees agree', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      const findings = await reconcile(repo, [change({ id: 'a1b2c3d4', branch: created.branch, worktreePath: created.path })], dir);
      assert.deepEqual(findings, []);
    });

    it('finds a worktree deleted by hand and restores it from its branch with the committed work', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      writeFiles(created.path, { 'done.txt': 'committed work\n' });
      const laneHead = commitAll(created.path, 'lane work');
      rmSync(created.path, { recursive: true, force: true });
      const record = change({ id: 'a1b2c3d4', branch: created.branch, worktreePath: created.path });
      const findings = await reconcile(repo, [record], dir);
      assert.equal(findings.length, 1);
      const [finding] = findings;
      assert.equal(finding!.kind, 'worktreeMissing');
      assert.equal(finding!.changeId, 'a1b2c3d4');
      assert.equal(finding!.hasUncommittedWork, false);
      assert.deepEqual(finding!.actions, ['restoreWorktree', 'prune']);
      assert.match(finding!.message, /missing.*deleted by hand.*still holds the committed work/);
      await applyReconcileAction(repo, dir, finding!, 'restoreWorktree');
      assert.equal(head(created.path), laneHead);
      assert.ok(existsSync(join(created.path, 'done.txt')));
      assert.deepEqual(await reconcile(repo, [record], dir), []);
    });

    it('finds a lane worktree with no change record, with its uncommitted work, and removes it only when forced', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      writeFiles(created.path, { 'unsaved.txt': 'work\n' });
      const [finding] = await reconcile(repo, [], dir);
      assert.equal(finding!.kind, 'orphanWorktree');
      assert.equal(finding!.hasUncommittedWork, true);
      assert.match(finding!.message, /no change record.*uncommitted work/);
      await assert.rejects(applyReconcileAction(repo, dir, finding!, 'removeWorktree'), UncommittedWorkError);
      assert.ok(existsSync(join(created.path, 'unsaved.txt')));
      await applyReconcileAction(repo, dir, finding!, 'removeWorktree', { force: true });
      assert.equal(existsSync(created.path), false);
      assert.deepEqual(branches(repo), ['main']);
    });

    it('finds a worktree left half-created by a crash (locked "initializing", folder missing) and prunes it', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      // What a killed `git worktree add` leaves: the registration still locked "initializing", a partial or no folder.
      runGit(repo, ['worktree', 'lock', '--reason', 'initializing', created.path]);
      rmSync(created.path, { recursive: true, force: true });
      const findings = await reconcile(repo, [], dir);
      const half = findings.find((finding) => finding.kind === 'halfCreated');
      assert.ok(half, JSON.stringify(findings));
      assert.equal(half.hasUncommittedWork, false);
      assert.deepEqual(half.actions, ['prune']);
      // git does not prune a locked worktree; the action unlocks what it prunes.
      await applyReconcileAction(repo, dir, half, 'prune');
      assert.equal(worktreeCount(repo), 1, 'the registration is gone');
      const orphan = (await reconcile(repo, [], dir)).find((finding) => finding.kind === 'orphanBranch');
      assert.equal(orphan?.branch, 'lanes/a1b2c3d4-x');
      await applyReconcileAction(repo, dir, orphan!, 'deleteBranch');
      assert.deepEqual(await reconcile(repo, [], dir), []);
    });

    it('finds a half-created worktree whose folder still exists and removes it', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      const created = await createWorktree({ repoRoot: repo, worktreesDir: dir, changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) });
      runGit(repo, ['worktree', 'lock', '--reason', 'initializing', created.path]);
      const [half] = await reconcile(repo, [], dir);
      assert.equal(half!.kind, 'halfCreated');
      assert.deepEqual(half!.actions, ['removeWorktree']);
      await applyReconcileAction(repo, dir, half!, 'removeWorktree');
      assert.equal(existsSync(created.path), false);
      assert.equal(worktreeCount(repo), 1);
      assert.deepEqual(branches(repo), ['main']);
    });

    it('finds a stray folder in the worktrees directory and removes it only when forced if it holds files', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      writeFiles(join(dir, 'deadbeef-left-over'), { 'file.txt': 'x\n' });
      const [stray] = await reconcile(repo, [], dir);
      assert.equal(stray!.kind, 'strayFolder');
      assert.equal(stray!.hasUncommittedWork, true);
      await assert.rejects(applyReconcileAction(repo, dir, stray!, 'removeFolder'), UncommittedWorkError);
      await applyReconcileAction(repo, dir, stray!, 'removeFolder', { force: true });
      assert.equal(existsSync(join(dir, 'deadbeef-left-over')), false);
    });

    it('refuses an action that does not fit the finding', async () => {
      const repo = makeRepo();
      const dir = join(tempDir('lanes-storage-'), 'worktrees');
      writeFiles(join(dir, 'stray'), {});
      mkdirSync(join(dir, 'stray'), { recursive: true });
      const [stray] = await reconcile(repo, [], dir);
      await assert.rejects(applyReconcileAction(repo, dir, stray!, 'deleteBranch'), /does not apply to this finding/);
    });

    it('restoreWorktree refuses when the branch is gone', async () => {
      const repo = makeRepo();
      await assert.rejects(restoreWorktree(repo, join(tempDir(), 'wt'), 'lanes/a1b2c3d4-x'), /no longer exists.*discard the change/);
    });
  });

  describe('reconcileDraftState (pure)', () => {
    it('reports a missing worktree whose branch is gone too, with no restore offered', () => {
      const findings = reconcileDraftState({
        changes: [change({ id: 'a1b2c3d4', branch: 'lanes/a1b2c3d4-x', worktreePath: '/s/wt/a1b2c3d4-x' })],
        worktrees: [],
        laneBranches: [],
        strayFolders: [],
      });
      assert.equal(findings.length, 1);
      assert.equal(findings[0]!.kind, 'worktreeMissing');
      assert.deepEqual(findings[0]!.actions, []);
      assert.match(findings[0]!.message, /branch .* is gone too.*discard the change/);
    });

    it('treats the worktree of a closed change as an orphan', () => {
      const findings = reconcileDraftState({
        changes: [
          change({
            id: 'a1b2c3d4',
            branch: 'lanes/a1b2c3d4-x',
            worktreePath: '/s/wt/a1b2c3d4-x',
            lane: 'closed',
            closedReason: 'discarded',
          }),
        ],
        worktrees: [{ path: '/s/wt/a1b2c3d4-x', branch: 'lanes/a1b2c3d4-x', folderExists: true, hasUncommittedWork: false }],
        laneBranches: ['lanes/a1b2c3d4-x'],
        strayFolders: [],
      });
      assert.deepEqual(
        findings.map((finding) => [finding.kind, finding.changeId]),
        [['orphanWorktree', 'a1b2c3d4']],
      );
      assert.match(findings[0]!.message, /closed \(discarded\)/);
    });

    it('reports a half-created worktree of an open change', () => {
      const findings = reconcileDraftState({
        changes: [change({ id: 'a1b2c3d4', branch: 'lanes/a1b2c3d4-x', worktreePath: '/s/wt/a1b2c3d4-x' })],
        worktrees: [
          { path: '/s/wt/a1b2c3d4-x', branch: 'lanes/a1b2c3d4-x', locked: 'initializing', folderExists: true, hasUncommittedWork: true },
        ],
        laneBranches: ['lanes/a1b2c3d4-x'],
        strayFolders: [],
      });
      assert.equal(findings[0]!.kind, 'halfCreated');
      assert.equal(findings[0]!.hasUncommittedWork, true);
    });
  });
});
