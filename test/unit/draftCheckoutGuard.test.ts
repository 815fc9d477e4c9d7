import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AgentConfig } from '../../src/core/draft/agentConfig';
import { runAgent } from '../../src/infra/draft/agentRunner';
import { compareCheckoutSnapshots, snapshotCheckout, verifyCheckout } from '../../src/infra/draft/checkoutGuard';
import { commitLaneWork } from '../../src/infra/git/laneCommit';
import { createWorktree } from '../../src/infra/git/worktrees';
import { WorktreePool } from '../../src/infra/draft/worktreePool';
import { cleanupTemp, commitAll, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

const SCRIPTED_AGENT = resolve(__dirname, '../../../test/fixtures/agents/scripted-agent.mjs');
const scripted: AgentConfig = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, SCRIPTED_AGENT, '{promptFile}'] };

describe("the user's checkout is verified untouched", function () {
  this.timeout(30_000);
  afterEach(cleanupTemp);

  it('finds nothing when nothing changed, uncommitted work of the user included', async () => {
    const repo = makeRepo({ 'a.txt': 'a\n' });
    writeFiles(repo, { 'a.txt': 'user edit\n', 'mine.txt': 'untracked\n' });
    const before = await snapshotCheckout(repo);
    const verdict = await verifyCheckout(before);
    assert.equal(verdict.untouched, true);
    assert.deepEqual(verdict.differences, []);
  });

  it('does not rewrite the index while looking', async () => {
    const repo = makeRepo({ 'a.txt': 'a\n' });
    // A stale stat in the index: a plain `git status` would refresh and rewrite it.
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(repo, 'a.txt'), future, future);
    const index = join(repo, '.git', 'index');
    const { mtimeMs } = statSync(index);
    await new Promise((done) => setTimeout(done, 20));
    await snapshotCheckout(repo);
    assert.equal(statSync(index).mtimeMs, mtimeMs);
  });

  it('sees a new file, an edit, a further edit to a modified file, a staged change, a deletion and a moved HEAD', async () => {
    const repo = makeRepo({ 'a.txt': 'a\n', 'b.txt': 'b\n', 'c.txt': 'c\n', 'd.txt': 'd\n' });
    writeFiles(repo, { 'c.txt': 'user edit\n' });
    const before = await snapshotCheckout(repo);
    writeFiles(repo, { 'new.txt': 'agent\n', 'a.txt': 'agent\n' });
    appendFileSync(join(repo, 'c.txt'), 'agent again, same status\n');
    writeFiles(repo, { 'b.txt': 'staged\n' });
    runGit(repo, ['add', 'b.txt']);
    rmSync(join(repo, 'd.txt'));
    const verdict = await verifyCheckout(before);
    assert.equal(verdict.untouched, false);
    assert.deepEqual(verdict.differences.sort(), [
      'a.txt was changed',
      'b.txt was changed',
      'c.txt was modified again',
      'd.txt was changed',
      'new.txt appeared (untracked)',
    ]);
    commitAll(repo, 'agent commits in the user checkout');
    const moved = await verifyCheckout(before);
    assert.match(moved.differences[0]!, /^HEAD moved from [0-9a-f]{12} to [0-9a-f]{12}$/);
  });

  it('sees a switched branch and work that went back to committed', async () => {
    const repo = makeRepo({ 'a.txt': 'a\n' });
    writeFiles(repo, { 'a.txt': 'user work\n' });
    const before = await snapshotCheckout(repo);
    runGit(repo, ['checkout', '-q', '--', 'a.txt']);
    runGit(repo, ['checkout', '-q', '-b', 'other']);
    const verdict = await verifyCheckout(before);
    assert.deepEqual(verdict.differences, [
      'the checked-out branch changed from main to other',
      'a.txt went back to its committed state',
      '.git HEAD was modified',
      'ref refs/heads/other was created',
    ]);
  });

  it("sees what a process with the user's rights can do to .git and ignored files (for a run without a boundary)", async () => {
    const repo = makeRepo({ 'a.txt': 'a\n', '.gitignore': '.env\n' });
    writeFiles(repo, { '.env': 'TOKEN=1\n' });
    runGit(repo, ['tag', 'v1']);
    const before = await snapshotCheckout(repo);
    const dotGit = join(repo, '.git');
    writeFileSync(join(dotGit, 'hooks', 'post-checkout'), '#!/bin/sh\ntouch /tmp/x\n', { mode: 0o755 });
    runGit(repo, ['config', 'core.hooksPath', '/tmp/evil']);
    mkdirSync(join(dotGit, 'info'), { recursive: true });
    appendFileSync(join(dotGit, 'info', 'attributes'), '* -diff\n');
    appendFileSync(join(dotGit, 'info', 'exclude'), 'config/\n');
    runGit(repo, ['branch', 'side']);
    runGit(repo, ['tag', '-f', 'v1', 'HEAD']);
    runGit(repo, ['update-ref', 'refs/heads/lanes/own-branch', 'HEAD']);
    writeFiles(repo, { '.env': 'TOKEN=stolen-and-replaced\n' });
    const verdict = await verifyCheckout(before);
    const text = verdict.differences.join('\n');
    for (const expected of [
      /\.git hooks\/post-checkout was created/,
      /\.git config was modified/,
      /\.git info\/attributes was created/,
      /\.git info\/exclude was modified/,
      /ref refs\/heads\/side was created/,
      /the ignored file \.env was modified/,
    ])
      assert.match(text, expected);
    assert.doesNotMatch(text, /lanes\/own-branch/, "the lanes' own branches are theirs to move");
  });

  it('caps the list of differences', () => {
    const before = { repoRoot: '/r', takenAt: '', records: {}, fileStats: {} };
    const after = { ...before, records: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`f${i}`, `? f${i}`])) };
    const verdict = compareCheckoutSnapshots(before, after);
    assert.equal(verdict.differences.length, 51);
    assert.equal(verdict.differences[50], 'and 10 more');
  });

  it('a well-behaved agent run leaves the checkout untouched; a misbehaving one writing by absolute path is caught', async () => {
    const repo = makeRepo({ 'src/app.js': 'app\n' });
    const storage = tempDir('lanes-storage-');
    const lane = await createWorktree({
      repoRoot: repo,
      worktreesDir: join(storage, 'worktrees'),
      changeId: 'a1b2c3d4',
      slug: 'greet',
      baseSha: head(repo),
    });
    const run = (task: string) =>
      runAgent({
        agent: scripted,
        changeId: 'a1b2c3d4',
        worktreePath: lane.path,
        prompt: { task, changeId: 'a1b2c3d4', baseRef: 'main', baseSha: lane.baseSha },
        promptFile: join(storage, 'prompt.md'),
        evidenceFile: join(storage, 'evidence.json'),
        logFile: join(storage, 'agent.log'),
      });

    const before = await snapshotCheckout(repo);
    assert.equal((await run('add a greeting function and a test')).outcome, 'succeeded');
    const committed = await commitLaneWork({
      worktreePath: lane.path,
      branch: lane.branch,
      baseSha: lane.baseSha,
      changeId: 'a1b2c3d4',
      agentId: 'scripted',
      promptRef: 'p1',
    });
    assert.equal(committed.outcome, 'committed');
    assert.deepEqual(await verifyCheckout(before).then((verdict) => verdict.differences), [], 'the draft happened in the worktree only');

    const beforeBad = await snapshotCheckout(repo);
    assert.equal((await run(`@write ${join(repo, 'src/app.js')} tampered\\n`)).outcome, 'succeeded');
    const verdict = await verifyCheckout(beforeBad);
    assert.equal(verdict.untouched, false);
    assert.deepEqual(verdict.differences, ['src/app.js was changed']);
  });

  it('the worktree pool (prepare, hand out, move to a new base, discard, empty) leaves the checkout untouched, sparse worktrees too', async () => {
    const repo = makeRepo({ 'a.txt': 'a\n', 'src/b.txt': 'b\n', 'docs/c.txt': 'c\n', '.gitignore': '.env\n' });
    writeFiles(repo, { 'a.txt': 'user edit\n', 'mine.txt': 'untracked\n', '.env': 'SECRET=1\n' });
    const storage = tempDir('lanes-storage-');
    const settings = { size: 2, sparse: [] as string[] };
    const pool = new WorktreePool({
      repoRoot: repo,
      poolDir: join(storage, 'worktree-pool'),
      worktreesDir: join(storage, 'worktrees'),
      size: () => settings.size,
      sparsePaths: () => settings.sparse,
    });
    // The first sparse worktree sets extensions.worktreeConfig in the repository's config, once (docs/draft.md).
    await createWorktree({
      repoRoot: repo,
      worktreesDir: join(storage, 'worktrees'),
      changeId: 'f0f0f0f0',
      slug: 'first',
      baseSha: head(repo),
      sparsePaths: ['src'],
    });
    const base = head(repo);
    // A later commit on a side branch: a pooled worktree at base is moved there when handed out.
    const tree = runGit(repo, ['rev-parse', `${base}^{tree}`]).trim();
    const side = runGit(repo, ['commit-tree', tree, '-p', base, '-m', 'side']).trim();
    runGit(repo, ['branch', 'side', side]);
    const before = await snapshotCheckout(repo);
    await pool.refill(base);
    const taken = await pool.take({ changeId: 'a1b2c3d4', slug: 'guarded', baseSha: base });
    assert.equal(taken?.from, 'pool');
    writeFileSync(join(taken.path, 'dirty.txt'), 'x\n');
    const moved = await pool.take({ changeId: 'b1b2c3d4', slug: 'guarded-too', baseSha: side });
    assert.equal(moved?.from, 'moved');
    settings.sparse = ['src'];
    await pool.recover();
    await pool.refill(base);
    settings.size = 0;
    await pool.recover();
    const verdict = await verifyCheckout(before);
    assert.deepEqual(verdict.differences, []);
    assert.equal(verdict.untouched, true);
  });
});
