import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeSparsePaths, outsideSparseCone, outsideSparseFlags } from '../../src/core/draft/sparsePaths';
import { finishDraftRun } from '../../src/infra/draft/draftRun';
import { snapshotCheckout } from '../../src/infra/draft/checkoutGuard';
import { prepareAgentGit } from '../../src/infra/draft/boundary/agentGit';
import { createWorktree } from '../../src/infra/git/worktrees';
import { cleanupTemp, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

const FILES = {
  'README.md': 'hello\n',
  'src/a.ts': 'a\n',
  'src/deep/b.ts': 'b\n',
  'packages/app/index.ts': 'app\n',
  'packages/top.json': '{}\n',
  'packages/lib/lib.ts': 'lib\n',
  'docs/guide.md': 'guide\n',
};

describe('sparse worktrees (agentLanes.draft.sparsePaths)', function () {
  this.timeout(60_000);
  afterEach(cleanupTemp);

  it('checks the configured folders and says what to write instead', () => {
    assert.deepEqual(normalizeSparsePaths(['src/', './packages//app', 'src']), ['packages/app', 'src']);
    assert.deepEqual(normalizeSparsePaths(['.']), [], 'the root is the whole tree');
    for (const [value, message] of [
      ['../up', /contains "\.\."/],
      ['/abs', /is absolute/],
      ['src/*.ts', /cone mode takes folders only/],
      ['a/.git', /\.git folder/],
      ['-rf', /starting with "-"/],
      [42, /is not a folder name/],
      ['a\nb', /control character/],
    ] as const)
      assert.throws(() => normalizeSparsePaths([value]), message, String(value));
  });

  it('knows what cone mode holds: the folders, and the files in the root and on the way to one', () => {
    const folders = ['packages/app'];
    assert.equal(outsideSparseCone('README.md', folders), false);
    assert.equal(outsideSparseCone('packages/top.json', folders), false);
    assert.equal(outsideSparseCone('packages/app/deep/x.ts', folders), false);
    assert.equal(outsideSparseCone('packages/lib/lib.ts', folders), true);
    assert.equal(outsideSparseCone('src/a.ts', folders), true);
    assert.equal(outsideSparseCone('src/a.ts', []), false);
  });

  it('shows the agent only the folders; what it writes outside them is committed, analysed in full and flagged', async () => {
    const repo = makeRepo(FILES);
    const base = head(repo);
    const storage = tempDir('lanes-storage-');
    const created = await createWorktree({
      repoRoot: repo,
      worktreesDir: join(storage, 'worktrees'),
      changeId: 'a1b2c3d4',
      slug: 'sparse',
      baseSha: base,
      sparsePaths: ['packages/app'],
    });
    const wt = created.path;
    assert.ok(existsSync(join(wt, 'packages/app/index.ts')));
    assert.ok(existsSync(join(wt, 'README.md')) && existsSync(join(wt, 'packages/top.json')));
    for (const outside of ['src/a.ts', 'packages/lib/lib.ts', 'docs/guide.md'])
      assert.equal(existsSync(join(wt, outside)), false, `${outside} is not in the worktree`);
    assert.equal(runGit(wt, ['status', '--porcelain']), '', 'the folders it does not hold are not deletions');

    // The agent's own git (in the boundary) sees the same: nothing deleted.
    const agentGit = await prepareAgentGit({
      repoRoot: repo,
      worktreePath: wt,
      dir: join(storage, 'agent-git'),
      branch: created.branch,
      headSha: base,
    });
    assert.equal(runGit(wt, ['--git-dir', agentGit.gitDir, '--work-tree', wt, 'status', '--porcelain']), '');

    const before = await snapshotCheckout(repo);
    // Inside, and outside: a new file in a folder it was not shown, and one it recreated from memory.
    writeFiles(wt, { 'packages/app/index.ts': 'app 2\n', 'docs/new.md': 'new\n', 'src/a.ts': 'rewritten\n' });
    const finished = await finishDraftRun({
      repoRoot: repo,
      changeId: 'a1b2c3d4',
      branch: created.branch,
      worktreePath: wt,
      baseSha: base,
      agentId: 'scripted',
      promptRef: 'prompt-a1b2c3d4-1',
      evidenceFile: join(storage, 'none.json'),
      checkoutBefore: before,
    });
    assert.equal(finished.commit.outcome, 'committed');
    assert.deepEqual(finished.commit.sparsePaths, ['packages/app']);
    assert.deepEqual(
      finished.analysis?.files.map((file) => `${file.status} ${file.path}`).sort(),
      ['added docs/new.md', 'modified packages/app/index.ts', 'modified src/a.ts'],
      'the analysis sees the whole change, nothing outside the cone dropped and nothing it did not hold deleted',
    );
    const outside = finished.flags.filter((flag) => flag.kind === 'unusualScope' && flag.path);
    assert.deepEqual(outside.map((flag) => flag.path).sort(), ['docs/new.md', 'src/a.ts']);
    assert.match(outside[0]!.detail, /outside the sparse worktree's folders \(packages\/app\/\)/);
    assert.equal(runGit(repo, ['show', `${finished.commit.headSha}:docs/guide.md`]), 'guide\n', 'untouched files stay in the tree');
    assert.equal(finished.checkout.untouched, true);
    rmSync(wt, { recursive: true, force: true });
  });

  it('names at most 20 files outside the folders, then one flag for the rest', () => {
    const files = Array.from({ length: 25 }, (_, i) => ({ path: `other/f${i}.ts` }));
    const flags = outsideSparseFlags(files, ['src']);
    assert.equal(flags.length, 21);
    assert.match(flags[20]!.detail, /and 5 more files outside/);
    assert.deepEqual(outsideSparseFlags(files, []), []);
  });
});
