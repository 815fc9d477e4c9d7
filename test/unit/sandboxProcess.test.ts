import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResolvedTask } from '../../src/core/sandbox/lanesConfig';
import { detectProcessSandbox, ProcessSandbox } from '../../src/infra/sandbox/processSandbox';
import { selectSandbox } from '../../src/infra/sandbox/selectSandbox';
import { runTaskSequence } from '../../src/infra/sandbox/taskRun';
import { SandboxError, type SandboxSource } from '../../src/infra/sandbox/types';

function task(id: string, command: string, extra: Partial<ResolvedTask> = {}): ResolvedTask {
  return { id, command, timeoutSeconds: 30, test: false, required: true, source: 'repository', ...extra };
}

function sh(cwd: string, command: string, args: string[]): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('sandbox process isolation (bubblewrap)', function () {
  this.timeout(60_000);
  let root: string;
  let repo: string;
  let worktree: string;
  let logDir: string;
  let sandbox: ProcessSandbox;
  const policy = { allowProcessSandbox: true };

  before(async () => {
    const detection = await detectProcessSandbox();
    assert.ok(detection.available, detection.available ? '' : detection.message);
    root = mkdtempSync(join(tmpdir(), 'lanes-bwrap-'));
    repo = join(root, 'repo');
    worktree = join(root, 'worktrees', 'c0ffee00');
    logDir = join(root, 'storage', 'logs');
    mkdirSync(repo);
    sh(repo, 'git', ['init', '-q', '-b', 'main']);
    writeFileSync(join(repo, 'check.sh'), 'test -f feature.txt\n');
    sh(repo, 'git', ['add', '.']);
    sh(repo, 'git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-q', '-m', 'base']);
    sh(repo, 'git', ['worktree', 'add', '-q', '-b', 'lanes/c0ffee00', worktree]);
    writeFileSync(join(worktree, 'feature.txt'), 'change\n');
    sandbox = new ProcessSandbox({ bwrap: detection.bwrap, stateDir: join(root, 'storage', 'sandbox') });
  });

  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** The lane's path: prepare the sandbox, then the one task runner. */
  const run = async (tasks: ResolvedTask[], extra: { source?: SandboxSource } = {}) => {
    const prepared = await sandbox.prepare({
      changeId: 'c0ffee00',
      worktreePath: worktree,
      source: { prepare: [] },
      policy,
      logDir,
      ...extra,
    });
    return { isolation: sandbox.isolation, preparation: prepared.preparation, tasks: await runTaskSequence(prepared, tasks, { logDir }) };
  };

  it('runs a task in the worktree, labelled as process isolation with no network', async () => {
    const result = await run([task('unit', 'echo ok > result.txt && pwd && echo "  2 passing (1ms)"')]);
    const evidence = result.tasks[0]!;
    assert.equal(result.isolation, 'process');
    assert.equal(evidence.outcome, 'passed');
    assert.equal(evidence.isolation, 'process');
    assert.equal(evidence.networkMode, 'none');
    assert.equal(evidence.image, undefined);
    assert.deepEqual(evidence.counts, { passed: 2, failed: 0, skipped: 0, format: 'mocha' });
    assert.equal(readFileSync(join(worktree, 'result.txt'), 'utf8'), 'ok\n');
  });

  it('writes only to the worktree, hides the home folder, /run and the environment', async () => {
    process.env.LANES_TEST_SECRET = 'should-not-leak';
    const outside = join(repo, 'written-from-sandbox.txt');
    const result = await run([
      task('escape', `echo x > ${outside}; echo y > /etc/lanes-sandbox-test`),
      task('home', `ls -A ${homedir()} | wc -l; ls /run | wc -l; echo "secret=[$LANES_TEST_SECRET]"`),
    ]);
    delete process.env.LANES_TEST_SECRET;
    assert.equal(result.tasks[0]!.outcome, 'failed');
    // The repository sits under /tmp here, which the sandbox replaces with its own; /etc is read-only.
    assert.match(
      readFileSync(result.tasks[0]!.logFile!, 'utf8'),
      /written-from-sandbox\.txt: Directory nonexistent[\s\S]*lanes-sandbox-test: Read-only file system/,
    );
    assert.ok(!existsSync(outside));
    assert.ok(!existsSync('/etc/lanes-sandbox-test'));
    assert.equal(readFileSync(result.tasks[1]!.logFile!, 'utf8'), '0\n0\nsecret=[]\n');
  });

  it('fails a network attempt', async () => {
    const result = await run([
      task(
        'net',
        `node -e "require('net').connect(53,'1.1.1.1').on('connect',()=>process.exit(0)).on('error',e=>{console.log('NETWORK ERROR',e.code);process.exit(1)})"`,
      ),
    ]);
    assert.equal(result.tasks[0]!.outcome, 'failed');
    assert.match(readFileSync(result.tasks[0]!.logFile!, 'utf8'), /NETWORK ERROR ENETUNREACH/);
  });

  it('kills a task at its time limit and records it as timed out', async () => {
    const result = await run([task('hang', 'sleep 120', { timeoutSeconds: 1 })]);
    assert.equal(result.tasks[0]!.outcome, 'timedOut');
    assert.ok(result.tasks[0]!.durationMs < 10_000);
    assert.doesNotMatch(sh(root, 'ps', ['-eo', 'args']), /^sleep 120$/m);
  });

  it('runs prepare commands first and records them', async () => {
    const result = await run([task('t', 'cat prepared.txt')], { source: { prepare: ['echo ready > prepared.txt'] } });
    assert.equal(result.preparation?.outcome, 'passed');
    assert.equal(result.preparation?.networkMode, 'none');
    assert.equal(result.tasks[0]!.outcome, 'passed');
  });

  it('asks the before-task hook before every task; its reason skips that task and the rest', async () => {
    const prepared = await sandbox.prepare({ changeId: 'c0ffee00', worktreePath: worktree, source: { prepare: [] }, policy, logDir });
    const asked: string[] = [];
    const ran: string[] = [];
    const tasks = await runTaskSequence(
      prepared,
      [task('one', 'echo one > hook-one.txt'), task('two', 'echo two > hook-two.txt'), task('three', 'true')],
      {
        logDir,
        beforeTask: async (next) => {
          asked.push(next.id);
          return next.id === 'two' ? 'Not run: the kill switch is on.' : undefined;
        },
        afterTask: async (evidence) => {
          ran.push(evidence.id);
        },
      },
    );
    assert.deepEqual(asked, ['one', 'two']);
    assert.deepEqual(ran, ['one']);
    assert.deepEqual(
      tasks.map((t) => `${t.id}:${t.outcome}:${t.message ?? ''}`),
      ['one:passed:', 'two:skipped:Not run: the kill switch is on.', 'three:skipped:Not run: the kill switch is on.'],
    );
    assert.ok(existsSync(join(worktree, 'hook-one.txt')));
    assert.ok(!existsSync(join(worktree, 'hook-two.txt')), 'a stopped task never starts');
  });

  it('runs on the base commit in a scratch worktree', async () => {
    const base = sh(repo, 'git', ['rev-parse', 'main']).trim();
    const result = await sandbox.runOnBase({
      changeId: 'c0ffee00',
      repoRoot: repo,
      baseSha: base,
      headSha: base,
      overlay: { checkout: [], remove: [] },
      changeWorktreePath: worktree,
      source: { prepare: [] },
      tasks: [task('feature', 'sh check.sh', { test: true })],
      policy,
      logDir,
    });
    assert.deepEqual([...result.failsOnBase], [['feature', true]]);
    assert.doesNotMatch(sh(repo, 'git', ['worktree', 'list']), /base-worktrees/);
  });

  it("runs the change's own test files against the base commit's other files", async () => {
    // Base: one passing test script, one the change deletes, one it renames. The change adds
    // a feature and a test for it (with a name that reads like an option and a glob), edits
    // a test, and its new test fails without the feature.
    const repo2 = join(root, 'repo2');
    const wt = join(root, 'worktrees', 'base0ver');
    mkdirSync(join(repo2, 'tests'), { recursive: true });
    sh(repo2, 'git', ['init', '-q', '-b', 'main']);
    writeFileSync(join(repo2, 'tests', 'readme.sh'), 'echo "ok 1 - readme"\n');
    writeFileSync(join(repo2, 'tests', 'old.sh'), 'echo "ok 1 - old"\n');
    writeFileSync(join(repo2, 'tests', 'moved.sh'), 'echo "ok 1 - moved"\n');
    writeFileSync(join(repo2, 'run-tests.sh'), 'ls tests; rc=0; for f in tests/*.sh; do sh "$f" || rc=1; done; exit $rc\n');
    const commit = (cwd: string, message: string) => {
      sh(cwd, 'git', ['add', '-A']);
      sh(cwd, 'git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-q', '-m', message]);
      return sh(cwd, 'git', ['rev-parse', 'HEAD']).trim();
    };
    const base = commit(repo2, 'base');
    sh(repo2, 'git', ['worktree', 'add', '-q', '-b', 'lanes/base0ver', wt]);
    writeFileSync(join(wt, 'feature.txt'), 'the feature\n');
    writeFileSync(join(wt, 'tests', '-x*.sh'), 'test -f feature.txt || { echo "not ok 1 - feature missing"; exit 1; }\n');
    writeFileSync(join(wt, 'tests', 'readme.sh'), 'echo "ok 1 - readme, edited"\n');
    rmSync(join(wt, 'tests', 'old.sh'));
    sh(wt, 'git', ['mv', 'tests/moved.sh', 'tests/renamed.sh']);
    const head = commit(wt, 'the change');

    const tests = [task('scripts', 'sh run-tests.sh', { test: true })];
    const onChange = await runTaskSequence(
      await sandbox.prepare({ changeId: 'base0ver', worktreePath: wt, source: { prepare: [] }, policy, logDir }),
      tests,
      { logDir },
    );
    assert.equal(onChange[0]!.outcome, 'passed');
    const result = await sandbox.runOnBase({
      changeId: 'base0ver',
      repoRoot: repo2,
      baseSha: base,
      headSha: head,
      overlay: { checkout: ['tests/-x*.sh', 'tests/readme.sh', 'tests/renamed.sh'], remove: ['tests/moved.sh', 'tests/old.sh'] },
      changeWorktreePath: wt,
      source: { prepare: [] },
      tasks: tests,
      policy,
      logDir,
    });
    // Without the overlay the base has only passing tests and the task passes there too.
    assert.deepEqual([...result.failsOnBase], [['scripts', true]]);
    const log = readFileSync(result.tasks[0]!.logFile!, 'utf8');
    assert.match(log, /not ok 1 - feature missing/);
    assert.match(log, /ok 1 - readme, edited/, "the change's edit of a test runs");
    assert.deepEqual(
      log.split('\n').filter((line) => line.endsWith('.sh')),
      ['-x*.sh', 'readme.sh', 'renamed.sh'],
      'the deleted and renamed-away tests are gone; the new ones are there',
    );
    assert.equal(sh(repo2, 'git', ['rev-parse', 'HEAD']).trim(), base, "the user's checkout is not moved");
    assert.equal(sh(repo2, 'git', ['status', '--porcelain']), '', "the user's checkout is not written");
    assert.doesNotMatch(sh(repo2, 'git', ['worktree', 'list']), /base-worktrees/);
  });

  it('refuses to run when policy does not allow the process sandbox', async () => {
    await assert.rejects(
      sandbox.prepare({ changeId: 'c0ffee00', worktreePath: worktree, source: { prepare: [] }, policy: {}, logDir }),
      (error: unknown) =>
        error instanceof SandboxError && error.kind === 'noSandbox' && /policy does not allow the process sandbox/.test(error.message),
    );
  });

  it('is chosen only when there is no engine and policy allows it', async () => {
    const savedPath = process.env.PATH;
    // No docker or podman on this PATH, but bwrap (and sh) stay reachable.
    process.env.PATH = '/nonexistent';
    try {
      const forbidden = await selectSandbox({ engineSetting: 'auto', defaultImage: 'x', policy: {}, stateDir: join(root, 's') });
      assert.equal(forbidden.ok, false);
      if (!forbidden.ok)
        assert.match(
          forbidden.message,
          /No container engine was found.*apt-get install -y podman.*Policy does not allow the lesser process sandbox/s,
        );
    } finally {
      process.env.PATH = savedPath;
    }
    const withEngine = await selectSandbox({
      engineSetting: 'podman',
      defaultImage: 'x',
      policy: { allowProcessSandbox: true },
      stateDir: join(root, 's'),
      extensionRoot: process.cwd(),
    });
    assert.ok(withEngine.ok && withEngine.sandbox.isolation === 'container');
  });
});
