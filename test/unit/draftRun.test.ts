import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import type { AgentConfig } from '../../src/core/draft/agentConfig';
import { runAgent } from '../../src/infra/draft/agentRunner';
import { snapshotCheckout } from '../../src/infra/draft/checkoutGuard';
import { finishDraftRun } from '../../src/infra/draft/draftRun';
import { createWorktree, resolveBase } from '../../src/infra/git/worktrees';
import { cleanupTemp, commitAll, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

const SCRIPTED_AGENT = resolve(__dirname, '../../../test/fixtures/agents/scripted-agent.mjs');
const scripted: AgentConfig = { id: 'scripted', label: 'Scripted agent', command: [process.execPath, SCRIPTED_AGENT, '{promptFile}'] };

async function draft(task: string) {
  const repo = makeRepo({
    'package.json': `${JSON.stringify({ name: 'sample', version: '1.0.0' }, null, 2)}\n`,
    'README.md': '# sample\n',
  });
  const storage = tempDir('lanes-storage-');
  const base = await resolveBase(repo);
  const lane = await createWorktree({
    repoRoot: repo,
    worktreesDir: join(storage, 'worktrees'),
    changeId: 'a1b2c3d4',
    slug: 'demo',
    baseSha: base.sha,
  });
  const checkoutBefore = await snapshotCheckout(repo);
  const evidenceFile = join(storage, 'a1b2c3d4', 'evidence.json');
  const run = await runAgent({
    agent: scripted,
    changeId: 'a1b2c3d4',
    worktreePath: lane.path,
    prompt: { task, changeId: 'a1b2c3d4', baseRef: base.ref, baseSha: base.sha },
    promptFile: join(storage, 'a1b2c3d4', 'prompt.md'),
    evidenceFile,
    logFile: join(storage, 'a1b2c3d4', 'agent.log'),
  });
  const finished = await finishDraftRun({
    repoRoot: repo,
    changeId: 'a1b2c3d4',
    branch: lane.branch,
    worktreePath: lane.path,
    baseSha: base.sha,
    agentId: 'scripted',
    promptRef: 'prompt-a1b2c3d4-1',
    evidenceFile,
    checkoutBefore,
  });
  return { repo, lane, run, finished };
}

describe('a whole draft run with the scripted agent', function () {
  this.timeout(30_000);
  afterEach(cleanupTemp);

  it('drafts a greeting with a secret and a new dependency: committed, analysed, flagged, report read, checkout untouched', async () => {
    const { repo, lane, run, finished } = await draft('Add a greeting function and a test. Also write a secret and add a dependency.');
    assert.equal(run.outcome, 'succeeded');
    assert.equal(finished.commit.outcome, 'committed');
    assert.equal(runGit(repo, ['rev-parse', lane.branch]).trim(), finished.commit.headSha);
    assert.deepEqual(finished.analysis!.files.map((file) => `${file.status} ${file.path}`).sort(), [
      'added config/credentials.js',
      'added src/greeting.js',
      'added test/greeting.test.js',
      'modified package.json',
    ]);
    assert.deepEqual(finished.flags.map((flag) => `${flag.kind} ${flag.path}`).sort(), [
      'newDependency package.json',
      'secretLike config/credentials.js',
      'sensitivePath config/credentials.js',
    ]);
    assert.equal(finished.checkout.untouched, true);
    assert.ok('report' in finished.agentReport);
    assert.match(finished.agentReport.report.summary!, /wrote src\/greeting\.js/);
  });

  it('an agent that changes nothing leaves the change with no changes and no commit', async () => {
    const { lane, finished } = await draft('Change nothing.');
    assert.equal(finished.commit.outcome, 'noChanges');
    assert.equal(finished.commit.headSha, lane.baseSha);
    assert.equal(finished.analysis, undefined);
    assert.deepEqual(finished.flags, []);
  });

  it('turns a touched checkout and refused .git paths into flags', async () => {
    // A first run makes the repository; the second, misbehaving run needs its path.
    const first = await draft('Change nothing.');
    const task = ['@write sub/.GIT/config [core]', '@write fine.txt ok', `@write ${join(first.repo, 'README.md')} tampered`].join('\n');
    const checkoutBefore = await snapshotCheckout(first.repo);
    const storage = tempDir('lanes-storage-');
    await runAgent({
      agent: scripted,
      changeId: 'a1b2c3d4',
      worktreePath: first.lane.path,
      prompt: { task, changeId: 'a1b2c3d4', baseRef: 'HEAD', baseSha: first.lane.baseSha },
      promptFile: join(storage, 'prompt.md'),
      evidenceFile: join(storage, 'evidence.json'),
      logFile: join(storage, 'agent.log'),
    });
    const finished = await finishDraftRun({
      repoRoot: first.repo,
      changeId: 'a1b2c3d4',
      branch: first.lane.branch,
      worktreePath: first.lane.path,
      baseSha: first.lane.baseSha,
      agentId: 'scripted',
      promptRef: 'p2',
      evidenceFile: join(storage, 'evidence.json'),
      checkoutBefore,
    });
    assert.equal(finished.checkout.untouched, false);
    assert.deepEqual(
      finished.flags.map((flag) => `${flag.kind} ${flag.path ?? ''}`),
      ['checkoutTouched ', 'gitPath sub/.GIT/config'],
    );
    assert.match(finished.flags[0]!.detail, /README\.md was changed/);
    assert.deepEqual(
      finished.analysis!.files.map((file) => file.path),
      ['fine.txt'],
    );
  });
});

describe('a history that carries a secret head no longer has (issue 13 §3)', function () {
  this.timeout(30_000);
  afterEach(cleanupTemp);

  const KEY = 'AKIAZ3MXQ7PLR4TW2KDN';

  /** An agent that committed twice itself (as an unconfined agent can): a secret in the first commit and in its message, removed in the second. */
  async function committedTwice() {
    const repo = makeRepo({ 'README.md': '# sample\n' });
    const storage = tempDir('lanes-storage-');
    const base = await resolveBase(repo);
    const lane = await createWorktree({
      repoRoot: repo,
      worktreesDir: join(storage, 'worktrees'),
      changeId: 'a1b2c3d4',
      slug: 'demo',
      baseSha: base.sha,
    });
    const checkoutBefore = await snapshotCheckout(repo);
    writeFiles(lane.path, { 'config.txt': `key = ${KEY}\n`, 'app.txt': 'app\n' });
    commitAll(lane.path, `add config with ${KEY}`);
    writeFiles(lane.path, { 'config.txt': 'key = from the environment\n' });
    const agentHead = commitAll(lane.path, 'remove the key');
    writeFiles(lane.path, { 'more.txt': 'left uncommitted\n' });
    const finish = (secretInHistory?: 'block' | 'squash') =>
      finishDraftRun({
        repoRoot: repo,
        changeId: 'a1b2c3d4',
        branch: lane.branch,
        worktreePath: lane.path,
        baseSha: base.sha,
        agentId: 'scripted',
        promptRef: 'prompt-a1b2c3d4-1',
        evidenceFile: join(storage, 'a1b2c3d4', 'evidence.json'),
        checkoutBefore,
        subject: 'Add the app',
        ...(secretInHistory ? { secretInHistory } : {}),
      });
    return { repo, lane, base: base.sha, agentHead, finish };
  }

  it('block (the default): flagged secretInHistory, the branch keeps its commits', async () => {
    const { repo, lane, base, agentHead, finish } = await committedTwice();
    const finished = await finish();
    assert.equal(finished.commit.squashed, undefined);
    assert.equal(runGit(repo, ['rev-parse', `${finished.commit.headSha}^`]).trim(), agentHead);
    assert.equal(runGit(repo, ['rev-list', '--count', `${base}..${lane.branch}`]).trim(), '3');
    const history = finished.flags.filter((flag) => flag.kind === 'secretInHistory');
    assert.equal(history.length, 2, JSON.stringify(finished.flags));
    assert.ok(history.some((flag) => flag.path === 'config.txt'));
    assert.ok(history.some((flag) => /message/.test(flag.detail)));
  });

  it('squash: the lane squashes its commits into one on the base, same tree, no secretInHistory flag, nothing of the history left on the branch', async () => {
    const { repo, lane, base, finish } = await committedTwice();
    const finished = await finish('squash');
    const head = finished.commit.headSha;
    assert.equal(runGit(repo, ['rev-parse', lane.branch]).trim(), head);
    assert.equal(runGit(repo, ['rev-list', '--count', `${base}..${lane.branch}`]).trim(), '1');
    assert.equal(runGit(repo, ['rev-parse', `${head}^`]).trim(), base);
    assert.deepEqual(finished.commit.squashed?.commits, 3);
    assert.equal(runGit(repo, ['show', '-s', '--format=%B', head]).includes(KEY), false);
    assert.match(runGit(repo, ['show', '-s', '--format=%B', head]), /^Add the app\n[\s\S]*Lanes-Change-Id: a1b2c3d4/);
    assert.equal(runGit(repo, ['log', '-p', `${base}..${lane.branch}`]).includes(KEY), false);
    assert.deepEqual(
      finished.flags.filter((flag) => flag.kind === 'secretInHistory' || flag.kind === 'secretLike'),
      [],
    );
    assert.equal(finished.analysis!.totals.files, 3);
    assert.equal(runGit(lane.path, ['status', '--porcelain']).trim(), '', 'the worktree is clean on the squashed commit');
  });

  it('squash does not hide a secret head still holds', async () => {
    const { repo, lane, finish } = await committedTwice();
    writeFiles(lane.path, { 'still.txt': `other ${'ghp_' + 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5'}\n` });
    const finished = await finish('squash');
    assert.equal(runGit(repo, ['rev-list', '--count', `${finished.commit.headSha}`, `^${lane.baseSha}`]).trim(), '1');
    assert.deepEqual(
      finished.flags.filter((flag) => flag.kind === 'secretLike').map((flag) => flag.path),
      ['still.txt'],
    );
  });
});
