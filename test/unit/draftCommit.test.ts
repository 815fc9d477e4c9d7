import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LaneCommitError, commitLaneWork, laneCommitMessage, parseRefusedPaths } from '../../src/infra/git/laneCommit';
import { createWorktree } from '../../src/infra/git/worktrees';
import { cleanupTemp, commitAll, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

async function laneFor(files: Record<string, string> = { 'keep.txt': 'keep\n', 'gone.txt': 'bye\n' }) {
  const repo = makeRepo(files);
  const created = await createWorktree({
    repoRoot: repo,
    worktreesDir: join(tempDir('lanes-storage-'), 'worktrees'),
    changeId: 'a1b2c3d4',
    slug: 'work',
    baseSha: head(repo),
  });
  return { repo, ...created };
}

const ids = { changeId: 'a1b2c3d4', agentId: 'scripted', promptRef: 'prompt-0001' };

describe('draft commit on the lane branch', () => {
  afterEach(cleanupTemp);

  it('commits additions, edits and deletions with the Lanes trailers and the user identity', async () => {
    const lane = await laneFor();
    writeFiles(lane.path, { 'new/file.txt': 'new\n', 'keep.txt': 'edited\n' });
    rmSync(join(lane.path, 'gone.txt'));
    const result = await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids });
    assert.equal(result.outcome, 'committed');
    assert.equal(result.createdCommit, true);
    assert.equal(result.headSha, head(lane.path));
    assert.deepEqual(result.refusedPaths, []);
    assert.deepEqual(result.identity, { name: 'Test User', email: 'test@example.invalid', fallback: false });
    const names = runGit(lane.repo, ['diff', '--name-status', lane.baseSha, lane.branch]).trim().split('\n').sort();
    assert.deepEqual(names, ['A\tnew/file.txt', 'D\tgone.txt', 'M\tkeep.txt']);
    const trailers = runGit(lane.repo, ['log', '-1', '--format=%(trailers:only,unfold)', lane.branch]).trim();
    assert.equal(trailers, 'Lanes-Change-Id: a1b2c3d4\nAI-Agent: scripted\nAI-Prompt-Ref: prompt-0001');
    assert.equal(
      runGit(lane.repo, ['log', '-1', '--format=%an <%ae>|%cn <%ce>', lane.branch]).trim(),
      'Test User <test@example.invalid>|Test User <test@example.invalid>',
    );
    assert.equal(runGit(lane.repo, ['status', '--porcelain']), '', "the user's checkout is untouched");
  });

  it('reports noChanges when the agent changed nothing, and makes no commit', async () => {
    const lane = await laneFor();
    const result = await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids });
    assert.equal(result.outcome, 'noChanges');
    assert.equal(result.createdCommit, false);
    assert.equal(head(lane.path), lane.baseSha);
  });

  it('reports noChanges when the agent only rewrote a file to the same content', async () => {
    const lane = await laneFor();
    writeFiles(lane.path, { 'keep.txt': 'keep\n' });
    assert.equal(
      (await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids })).outcome,
      'noChanges',
    );
  });

  it('keeps commits the agent made itself and commits what it left on top', async () => {
    const lane = await laneFor();
    writeFiles(lane.path, { 'by-agent.txt': '1\n' });
    const agentCommit = commitAll(lane.path, 'agent commit');
    writeFiles(lane.path, { 'left-over.txt': '2\n' });
    const result = await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids });
    assert.equal(result.outcome, 'committed');
    assert.equal(runGit(lane.path, ['rev-parse', 'HEAD~1']).trim(), agentCommit);
    const nothingLeft = await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids });
    assert.equal(nothingLeft.outcome, 'committed', 'the lane still differs from the base');
    assert.equal(nothingLeft.createdCommit, false);
  });

  it('uses the fallback identity when git has none configured', async () => {
    const lane = await laneFor();
    runGit(lane.repo, ['config', '--unset', 'user.name']);
    runGit(lane.repo, ['config', '--unset', 'user.email']);
    const saved = { global: process.env.GIT_CONFIG_GLOBAL, system: process.env.GIT_CONFIG_NOSYSTEM };
    process.env.GIT_CONFIG_GLOBAL = '/dev/null';
    process.env.GIT_CONFIG_NOSYSTEM = '1';
    try {
      writeFiles(lane.path, { 'x.txt': 'x\n' });
      const result = await commitLaneWork({
        worktreePath: lane.path,
        branch: lane.branch,
        baseSha: lane.baseSha,
        ...ids,
        fallbackIdentity: { name: 'Lanes Bot', email: 'bot@lanes.invalid' },
      });
      assert.equal(result.identity.fallback, true);
      assert.equal(runGit(lane.repo, ['log', '-1', '--format=%an <%ae>', lane.branch]).trim(), 'Lanes Bot <bot@lanes.invalid>');
    } finally {
      if (saved.global === undefined) delete process.env.GIT_CONFIG_GLOBAL;
      else process.env.GIT_CONFIG_GLOBAL = saved.global;
      if (saved.system === undefined) delete process.env.GIT_CONFIG_NOSYSTEM;
      else process.env.GIT_CONFIG_NOSYSTEM = saved.system;
    }
  });

  it('commits what git can store and reports the .git paths it refused', async () => {
    const lane = await laneFor();
    writeFiles(lane.path, { 'fine.txt': 'ok\n', 'sub/.GIT/config': '[core]\n' });
    const result = await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids });
    assert.equal(result.outcome, 'committed');
    assert.deepEqual(result.refusedPaths, ['sub/.GIT/config']);
    assert.equal(runGit(lane.repo, ['diff', '--name-only', lane.baseSha, lane.branch]).trim(), 'fine.txt');
  });

  it('never runs a hook, not even one the agent planted', async () => {
    const lane = await laneFor();
    const marker = join(tempDir(), 'hook-ran');
    const hooks = join(lane.repo, '.git', 'hooks');
    mkdirSync(hooks, { recursive: true });
    for (const hook of ['pre-commit', 'prepare-commit-msg', 'commit-msg', 'post-commit']) {
      writeFileSync(join(hooks, hook), `#!/bin/sh\necho ${hook} >> ${marker}\nexit 1\n`, { mode: 0o755 });
    }
    writeFiles(lane.path, { 'x.txt': 'x\n' });
    const result = await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids });
    assert.equal(result.outcome, 'committed');
    assert.equal(existsSync(marker), false, 'no hook ran');
  });

  it('refuses to commit when the agent switched the worktree to another branch', async () => {
    const lane = await laneFor();
    runGit(lane.path, ['checkout', '-q', '-b', 'elsewhere']);
    writeFiles(lane.path, { 'x.txt': 'x\n' });
    await assert.rejects(
      commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids }),
      (error: Error) => {
        assert.ok(error instanceof LaneCommitError);
        assert.match(error.message, /is on elsewhere, not on its lane branch lanes\/a1b2c3d4-work.*Nothing was committed/);
        return true;
      },
    );
  });

  it('refuses to commit on a detached HEAD, and reads HEAD the way git does when its file is unusual', async () => {
    const lane = await laneFor();
    runGit(lane.path, ['checkout', '-q', '--detach']);
    writeFiles(lane.path, { 'x.txt': 'x\n' });
    await assert.rejects(
      commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids }),
      /is on a detached HEAD/,
    );
    // Back on the lane branch, but HEAD written without its newline: not the usual file, so git is asked, and agrees.
    runGit(lane.path, ['checkout', '-q', lane.branch]);
    const gitDir = runGit(lane.path, ['rev-parse', '--absolute-git-dir']).trim();
    writeFileSync(join(gitDir, 'HEAD'), `ref: refs/heads/${lane.branch}`);
    const result = await commitLaneWork({ worktreePath: lane.path, branch: lane.branch, baseSha: lane.baseSha, ...ids });
    assert.equal(result.outcome, 'committed');
    assert.equal(runGit(lane.repo, ['rev-parse', lane.branch]).trim(), result.headSha);
  });

  it('refuses a branch outside lanes/', async () => {
    const lane = await laneFor();
    await assert.rejects(commitLaneWork({ worktreePath: lane.repo, branch: 'main', baseSha: lane.baseSha, ...ids }), /not a lane branch/);
  });

  it('keeps trailer values on one line so none can smuggle another trailer', () => {
    const message = laneCommitMessage({
      changeId: 'a1b2c3d4',
      agentId: 'evil\nLanes-Change-Id: 00000000',
      promptRef: 'p',
      subject: 'Fix\nthings',
    });
    assert.equal(message, 'Fix things\n\nLanes-Change-Id: a1b2c3d4\nAI-Agent: evil Lanes-Change-Id: 00000000\nAI-Prompt-Ref: p\n');
  });

  it('parses the paths git add refused', () => {
    assert.deepEqual(
      parseRefusedPaths(
        "error: invalid path 'a/.git/x'\nerror: unable to add 'a/.git/x' to index\nerror: open(\"locked.txt\"): Permission denied\nwarning: other\n",
      ),
      ['a/.git/x', 'locked.txt'],
    );
  });
});
