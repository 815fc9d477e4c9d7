import assert from 'node:assert/strict';
import { existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { WorktreePool } from '../../src/infra/draft/worktreePool';
import { git } from '../../src/infra/git/gitProcess';
import { removeWorktree } from '../../src/infra/git/worktrees';
import { cleanupTemp, commitAll, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

interface Setup {
  repo: string;
  storage: string;
  poolDir: string;
  worktreesDir: string;
  settings: { size: number; sparse: string[] };
  pool: WorktreePool;
}

function setup(files: Record<string, string> = { 'README.md': 'hello\n', 'src/a.ts': 'a\n', 'docs/b.md': 'b\n' }): Setup {
  const repo = makeRepo(files);
  const storage = tempDir('lanes-storage-');
  const settings = { size: 1, sparse: [] as string[] };
  const poolDir = join(storage, 'worktree-pool');
  const worktreesDir = join(storage, 'worktrees');
  const pool = new WorktreePool({
    repoRoot: repo,
    poolDir,
    worktreesDir,
    size: () => settings.size,
    sparsePaths: () => settings.sparse,
  });
  return { repo, storage, poolDir, worktreesDir, settings, pool };
}

const poolEntries = (s: Setup) => (existsSync(s.poolDir) ? readdirSync(s.poolDir).sort() : []);
const registered = (repo: string) =>
  runGit(repo, ['worktree', 'list', '--porcelain'])
    .split('\n')
    .filter((line) => line.startsWith('worktree '))
    .map((line) => line.slice('worktree '.length));

describe('the warm worktree pool', function () {
  this.timeout(60_000);
  afterEach(cleanupTemp);

  it('hands out a prepared worktree on a new lane branch, clean, without a checkout, and refills behind', async () => {
    const s = setup();
    const base = head(s.repo);
    await s.pool.refill(base);
    assert.equal(poolEntries(s).length, 1);
    assert.match(poolEntries(s)[0]!, /^ready-full-/);
    const started = performance.now();
    const taken = await s.pool.take({ changeId: 'a1b2c3d4', slug: 'pooled', baseSha: base });
    const elapsed = performance.now() - started;
    assert.ok(taken, 'a worktree from the pool');
    assert.equal(taken.from, 'pool');
    assert.equal(taken.path, join(s.worktreesDir, 'a1b2c3d4-pooled'));
    assert.equal(taken.branch, 'lanes/a1b2c3d4-pooled');
    assert.equal(runGit(taken.path, ['symbolic-ref', 'HEAD']).trim(), 'refs/heads/lanes/a1b2c3d4-pooled');
    assert.equal(head(taken.path), base);
    assert.equal(runGit(taken.path, ['status', '--porcelain', '--ignored']), '');
    assert.ok(existsSync(join(taken.path, 'src/a.ts')));
    assert.deepEqual(poolEntries(s), [], 'the worktree left the pool');
    assert.ok(elapsed < 5_000, `handed out in ${Math.round(elapsed)} ms`);
    await s.pool.refill(base);
    assert.equal(poolEntries(s).length, 1, 'refilled');
    assert.notEqual(join(s.poolDir, poolEntries(s)[0]!), taken.path);
  });

  it('never hands out a pooled worktree holding a file it did not check out (ignored ones too): it is discarded', async () => {
    const s = setup({ 'README.md': 'hello\n', '.gitignore': '*.log\n' });
    const base = head(s.repo);
    await s.pool.refill(base);
    const [ready] = poolEntries(s);
    // Whatever wrote there (an agent let loose, a person), the file must not reach a draft.
    writeFileSync(join(s.poolDir, ready!, 'left-behind.log'), 'from an earlier agent\n');
    const taken = await s.pool.take({ changeId: 'a1b2c3d4', slug: 'next', baseSha: base });
    assert.equal(taken, undefined, 'no worktree handed out');
    assert.deepEqual(poolEntries(s), [], 'the dirty worktree was discarded');
    assert.ok(!registered(s.repo).some((path) => path.includes('worktree-pool')), 'and unregistered');
    assert.equal(existsSync(join(s.worktreesDir, 'a1b2c3d4-next')), false);
  });

  it('after its full check, catches at hand-out a file planted deep down (its folder time set back) or a tracked file rewritten', async () => {
    const s = setup({ 'README.md': 'hello\n', '.gitignore': 'cache/\n', 'src/deep/a.ts': 'a\n' });
    const base = head(s.repo);
    await s.pool.refill(base);
    const ready = join(s.poolDir, poolEntries(s)[0]!);
    // The quick check at hand-out lists no untracked or ignored names: the folder snapshot must see this one.
    const past = new Date(Date.now() - 3_600_000);
    writeFiles(ready, { 'src/deep/cache/planted.bin': 'from elsewhere\n' });
    utimesSync(join(ready, 'src/deep/cache'), past, past);
    utimesSync(join(ready, 'src/deep'), past, past);
    assert.equal(await s.pool.take({ changeId: 'a1b2c3d4', slug: 'planted', baseSha: base }), undefined, 'not handed out');
    assert.deepEqual(poolEntries(s), [], 'discarded');

    await s.pool.refill(base);
    const next = join(s.poolDir, poolEntries(s)[0]!);
    writeFileSync(join(next, 'src/deep/a.ts'), 'rewritten\n');
    assert.equal(await s.pool.take({ changeId: 'b1b2c3d4', slug: 'rewritten', baseSha: base }), undefined, 'not handed out');
    assert.deepEqual(poolEntries(s), []);
  });

  it('checks in full a ready worktree an earlier session left, before handing it out', async () => {
    const s = setup({ 'README.md': 'hello\n', '.gitignore': '*.log\n' });
    const base = head(s.repo);
    await s.pool.refill(base);
    const ready = join(s.poolDir, poolEntries(s)[0]!);
    writeFileSync(join(ready, 'left-behind.log'), 'x\n');
    const later = new WorktreePool({
      repoRoot: s.repo,
      poolDir: s.poolDir,
      worktreesDir: s.worktreesDir,
      size: () => 1,
      sparsePaths: () => [],
    });
    assert.equal(await later.take({ changeId: 'a1b2c3d4', slug: 'later', baseSha: base }), undefined);
    assert.deepEqual(poolEntries(s), [], 'discarded');
    await later.refill(base);
    const taken = await later.take({ changeId: 'a1b2c3d4', slug: 'later', baseSha: base });
    assert.ok(taken, 'a new one is handed out');
    assert.equal(runGit(taken.path, ['status', '--porcelain', '--ignored']), '');
  });

  it('never takes back a worktree an agent worked in: discarding the change removes it, the pool makes a new one', async () => {
    const s = setup();
    const base = head(s.repo);
    await s.pool.refill(base);
    const first = await s.pool.take({ changeId: 'a1b2c3d4', slug: 'one', baseSha: base });
    writeFiles(first!.path, { 'agent.txt': 'the agent was here\n' });
    await removeWorktree({ repoRoot: s.repo, worktreePath: first!.path, branch: first!.branch, force: true });
    await s.pool.refill(base);
    const second = await s.pool.take({ changeId: 'b1b2c3d4', slug: 'two', baseSha: base });
    assert.ok(second);
    assert.equal(existsSync(join(second.path, 'agent.txt')), false);
    assert.equal(runGit(second.path, ['status', '--porcelain', '--ignored']), '');
  });

  it('moves a pooled worktree whose base moved to the new base', async () => {
    const s = setup();
    const old = head(s.repo);
    await s.pool.refill(old);
    writeFiles(s.repo, { 'src/a.ts': 'a, later\n', 'src/new.ts': 'new\n' });
    const moved = commitAll(s.repo, 'moved on');
    const taken = await s.pool.take({ changeId: 'a1b2c3d4', slug: 'moved', baseSha: moved });
    assert.equal(taken?.from, 'moved');
    assert.equal(head(taken.path), moved);
    assert.equal(runGit(taken.path, ['symbolic-ref', 'HEAD']).trim(), 'refs/heads/lanes/a1b2c3d4-moved');
    assert.equal(runGit(taken.path, ['show', 'HEAD:src/a.ts']), 'a, later\n');
    assert.ok(existsSync(join(taken.path, 'src/new.ts')));
    assert.equal(runGit(taken.path, ['status', '--porcelain', '--ignored']), '');
  });

  it('never hands out a half-prepared worktree (a crash mid-prepare) and removes it on recovery', async () => {
    const s = setup();
    const base = head(s.repo);
    // What a crash between `git worktree add` and the rename to ready-… leaves: registered and locked as git left it.
    const half = join(s.poolDir, 'preparing-0123456789ab');
    runGit(s.repo, ['worktree', 'add', '-q', '--detach', '--lock', half, base]);
    const taken = await s.pool.take({ changeId: 'a1b2c3d4', slug: 'crash', baseSha: base });
    assert.equal(taken, undefined);
    assert.ok(existsSync(half), 'left alone until recovery');
    await s.pool.recover();
    assert.deepEqual(poolEntries(s), []);
    assert.ok(!registered(s.repo).includes(half), 'unregistered');
  });

  it('a recovery while a New Draft holds its claim leaves that worktree alone; a refused draft gives it back', async () => {
    const s = setup();
    const base = head(s.repo);
    s.settings.size = 2;
    await s.pool.refill(base);
    const claim = await s.pool.claim();
    assert.ok(claim);
    s.settings.size = 1;
    await s.pool.recover();
    assert.ok(existsSync(claim.path), 'the claimed worktree stays');
    s.pool.release(claim);
    const taken = await s.pool.take({ changeId: 'a1b2c3d4', slug: 'after', baseSha: base });
    assert.ok(taken, 'released, it can be taken');
  });

  it('a ready worktree that is no longer right (locked, or on a branch) is discarded, not handed out', async () => {
    const s = setup();
    const base = head(s.repo);
    await s.pool.refill(base);
    const ready = join(s.poolDir, poolEntries(s)[0]!);
    runGit(ready, ['switch', '-q', '-c', 'someone-elses']);
    assert.equal(await s.pool.take({ changeId: 'a1b2c3d4', slug: 'x', baseSha: base }), undefined);
    assert.deepEqual(poolEntries(s), []);
  });

  it('empties the pool when it is turned off, and keeps only what the settings want', async () => {
    const s = setup();
    const base = head(s.repo);
    s.settings.size = 2;
    await s.pool.refill(base);
    assert.equal(poolEntries(s).length, 2);
    s.settings.size = 1;
    await s.pool.recover();
    assert.equal(poolEntries(s).length, 1, 'the surplus goes');
    s.settings.size = 0;
    assert.equal(await s.pool.take({ changeId: 'a1b2c3d4', slug: 'off', baseSha: base }), undefined, 'off: nothing handed out');
    await s.pool.recover();
    assert.deepEqual(poolEntries(s), []);
    assert.ok(!registered(s.repo).some((path) => path.includes('worktree-pool')));
    // A stray folder in the pool folder goes too.
    writeFiles(join(s.poolDir, 'stray'), { 'x.txt': 'x\n' });
    await s.pool.recover();
    assert.deepEqual(poolEntries(s), []);
  });

  it('keeps sparse worktrees apart: one made for other folders is not handed out', async () => {
    const s = setup();
    const base = head(s.repo);
    s.settings.sparse = ['src'];
    await s.pool.refill(base);
    const [ready] = poolEntries(s);
    assert.ok(existsSync(join(s.poolDir, ready!, 'src/a.ts')));
    assert.equal(existsSync(join(s.poolDir, ready!, 'docs/b.md')), false, 'docs/ is outside the cone');
    s.settings.sparse = ['docs'];
    assert.equal(await s.pool.take({ changeId: 'a1b2c3d4', slug: 'other', baseSha: base }), undefined);
    s.settings.sparse = ['src'];
    const taken = await s.pool.take({ changeId: 'a1b2c3d4', slug: 'same', baseSha: base });
    assert.ok(taken);
    assert.equal((await git(taken.path, ['sparse-checkout', 'list'])).stdout.trim(), 'src');
    assert.equal(existsSync(join(taken.path, 'docs/b.md')), false);
  });

  it('refuses a pool folder inside the repository', async () => {
    const repo = makeRepo();
    const pool = new WorktreePool({
      repoRoot: repo,
      poolDir: join(repo, 'pool'),
      worktreesDir: join(tempDir(), 'worktrees'),
      size: () => 1,
      sparsePaths: () => [],
    });
    await assert.rejects(pool.take({ changeId: 'a1b2c3d4', slug: 'x', baseSha: head(repo) }), /inside the repository/);
  });
});
