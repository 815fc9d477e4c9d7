import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeChange } from '../../src/infra/git/gitDiff';
import { gitUserEmail } from '../../src/infra/git/queries';
import { git } from '../../src/infra/git/gitProcess';
import { commitLaneWork } from '../../src/infra/git/laneCommit';
import { createWorktree, removeWorktree } from '../../src/infra/git/worktrees';
import { PullRequestError, pushBranch } from '../../src/infra/github/pullRequests';
import { listReviewDiff, loadFileDiffs, worktreeDiffHash } from '../../src/infra/review/reviewDiff';
import { cleanupTemp, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

const CHANGE_ID = 'a1b2c3d4';

/** A folder where every planted program leaves a file named after itself when it runs. */
class Markers {
  readonly dir = tempDir('lanes-markers-');
  private readonly scripts = tempDir('lanes-scripts-');

  /** A script that records `name` and then passes stdin through (so a filter would still "work"). */
  script(name: string, body = 'cat'): string {
    const path = join(this.scripts, `${name}.sh`);
    writeFileSync(path, `#!/bin/sh\ntouch '${join(this.dir, name)}'\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  fired(): string[] {
    return readdirSync(this.dir).sort();
  }
}

const HOOKS = ['pre-commit', 'prepare-commit-msg', 'commit-msg', 'post-commit', 'post-checkout', 'reference-transaction', 'pre-push'];

/** Plants every program-running key in the repository's config, an included file, hooks and attributes. */
function plantRepository(repo: string, markers: Markers): void {
  const set = (key: string, value: string) => runGit(repo, ['config', key, value]);
  const hooksDir = join(repo, '.git', 'hooks');
  mkdirSync(hooksDir, { recursive: true });
  for (const hook of HOOKS)
    writeFileSync(join(hooksDir, hook), `#!/bin/sh\ntouch '${join(markers.dir, `hook-${hook}`)}'\n`, { mode: 0o755 });
  const plantedHooks = tempDir('lanes-hooks-');
  for (const hook of HOOKS)
    writeFileSync(join(plantedHooks, hook), `#!/bin/sh\ntouch '${join(markers.dir, `hooksPath-${hook}`)}'\n`, { mode: 0o755 });
  set('core.hooksPath', plantedHooks);
  set('core.fsmonitor', markers.script('fsmonitor', 'exit 1'));
  set('filter.evil.clean', markers.script('filter-clean'));
  set('filter.evil.smudge', markers.script('filter-smudge'));
  set('filter.evil.process', markers.script('filter-process'));
  set('filter.evil.required', 'true');
  // Subsections are case-sensitive: filter.Evil is another driver than filter.evil.
  set('filter.Evil.clean', markers.script('filter-case-clean'));
  set('diff.external', markers.script('diff-external'));
  set('diff.evil.command', markers.script('diff-command'));
  set('diff.evil.textconv', markers.script('textconv'));
  set('merge.evil.driver', markers.script('merge-driver'));
  set('core.askPass', markers.script('askpass'));
  set('core.alternateRefsCommand', markers.script('alternate-refs'));
  set('gpg.program', markers.script('gpg'));
  set('gpg.ssh.program', markers.script('gpg-ssh'));
  set('commit.gpgSign', 'true');
  set('credential.helper', `!${markers.script('credential')}`);
  // Through an include: a second filter driver, planted in a file the repository's config includes.
  const included = join(tempDir('lanes-include-'), 'included.config');
  writeFileSync(included, `[filter "inc"]\n\tclean = ${markers.script('include-clean')}\n\tsmudge = ${markers.script('include-smudge')}\n`);
  set('include.path', included);
  writeFileSync(
    join(repo, '.git', 'info', 'attributes'),
    '* filter=evil diff=evil merge=evil\n*.inc filter=inc\n*.case filter=Evil\n*.wt filter=wt\n',
  );
}

/** Per-worktree config (extensions.worktreeConfig) with a third filter driver. */
function plantWorktreeConfig(repo: string, worktree: string, markers: Markers): void {
  runGit(repo, ['config', 'extensions.worktreeConfig', 'true']);
  runGit(worktree, ['config', '--worktree', 'filter.wt.clean', markers.script('worktree-clean')]);
  runGit(worktree, ['config', '--worktree', 'filter.wt.smudge', markers.script('worktree-smudge')]);
}

/** Runs `body` with HOME (and so ~/.gitconfig) pointing at a folder holding `gitconfig`. */
async function withHome<T>(gitconfig: string, body: () => Promise<T>): Promise<T> {
  const home = tempDir('lanes-home-');
  writeFileSync(join(home, '.gitconfig'), gitconfig);
  const saved = { HOME: process.env.HOME, XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME };
  process.env.HOME = home;
  delete process.env.XDG_CONFIG_HOME;
  try {
    return await body();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

describe('hardened git: repository config that runs programs never runs', function () {
  this.timeout(60_000);
  afterEach(cleanupTemp);

  it('runs nothing planted during worktree creation, lane commit, diff analysis, review diff and removal', async () => {
    const markers = new Markers();
    const repo = makeRepo({ 'README.md': '# sample\n', 'old.txt': 'one\ntwo\n' });
    const baseSha = head(repo);
    plantRepository(repo, markers);

    const worktreesDir = tempDir('lanes-storage-');
    const created = await createWorktree({ repoRoot: repo, worktreesDir, changeId: CHANGE_ID, slug: 'planted', baseSha });
    plantWorktreeConfig(repo, created.path, markers);
    writeFiles(created.path, {
      '.gitattributes': '* filter=evil diff=evil\n*.wt filter=wt\n',
      'old.txt': 'one\ntwo\nthree\n',
      'added.inc': 'included driver\n',
      'added.wt': 'worktree driver\n',
      'plain.txt': 'hello\n',
      'added.case': 'case-sensitive driver\n',
    });
    const committed = await commitLaneWork({
      worktreePath: created.path,
      branch: created.branch,
      baseSha,
      changeId: CHANGE_ID,
      agentId: 'test-agent',
      promptRef: 'prompt-1',
    });
    assert.equal(committed.outcome, 'committed');
    assert.equal(runGit(repo, ['show', `${committed.headSha}:added.inc`]), 'included driver\n', 'stored as written: no filter ran');

    const analysis = await analyzeChange({ repoRoot: repo, baseSha, headSha: committed.headSha, worktreePath: created.path });
    assert.equal(analysis.files.find((file) => file.path === 'old.txt')?.additions, 1);
    const listing = await listReviewDiff(repo, baseSha, committed.headSha);
    const diffs = await loadFileDiffs(
      repo,
      listing,
      listing.files.map((file) => file.path),
    );
    assert.ok(
      diffs.every((diff) => diff.kind !== 'error'),
      JSON.stringify(diffs),
    );
    assert.equal(await worktreeDiffHash(created.path, baseSha), listing.hash);

    await removeWorktree({ repoRoot: repo, worktreePath: created.path, branch: created.branch });
    assert.equal(existsSync(created.path), false);
    assert.deepEqual(markers.fired(), []);
  });

  it('neutralises a key planted after the overrides of its repository were cached', async () => {
    const markers = new Markers();
    const repo = makeRepo();
    const baseSha = head(repo);
    const created = await createWorktree({
      repoRoot: repo,
      worktreesDir: tempDir('lanes-storage-'),
      changeId: CHANGE_ID,
      slug: 'late',
      baseSha,
    });
    // Config files older than the racy window: the first lane commit's listing is cached.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await commitLaneWork({
      worktreePath: created.path,
      branch: created.branch,
      baseSha,
      changeId: CHANGE_ID,
      agentId: 'a',
      promptRef: 'p',
    });
    runGit(repo, ['config', 'filter.late.clean', markers.script('late-clean')]);
    writeFileSync(join(repo, '.git', 'info', 'attributes'), '* filter=late\n');
    writeFiles(created.path, { 'late.txt': 'written after the cache\n' });
    await commitLaneWork({
      worktreePath: created.path,
      branch: created.branch,
      baseSha,
      changeId: CHANGE_ID,
      agentId: 'a',
      promptRef: 'p',
    });
    assert.deepEqual(markers.fired(), []);
  });

  it('uses the user global filter in place of a repository filter of the same name', async () => {
    const markers = new Markers();
    const repo = makeRepo();
    const baseSha = head(repo);
    runGit(repo, ['config', 'filter.lfsish.clean', markers.script('agent-clean')]);
    writeFileSync(join(repo, '.git', 'info', 'attributes'), '*.bin filter=lfsish\n');
    await withHome(`[filter "lfsish"]\n\tclean = ${markers.script('user-clean')}\n`, async () => {
      const created = await createWorktree({
        repoRoot: repo,
        worktreesDir: tempDir('lanes-storage-'),
        changeId: CHANGE_ID,
        slug: 'x',
        baseSha,
      });
      writeFiles(created.path, { 'data.bin': 'payload\n' });
      await commitLaneWork({
        worktreePath: created.path,
        branch: created.branch,
        baseSha,
        changeId: CHANGE_ID,
        agentId: 'a',
        promptRef: 'p',
      });
    });
    assert.deepEqual(markers.fired(), ['user-clean']);
  });

  it('reads the user global user.email when the repository sets none', async () => {
    const repo = makeRepo();
    runGit(repo, ['config', '--unset', 'user.email']);
    const email = await withHome('[user]\n\temail = global@example.invalid\n', () => gitUserEmail(repo));
    assert.equal(email, 'global@example.invalid');
  });

  describe('push', () => {
    /** A repository with a lane branch, and a bare remote to push it to. */
    function pushable(): { repo: string; bare: string; branch: string; sha: string } {
      const repo = makeRepo();
      const bare = join(tempDir('lanes-remote-'), 'remote.git');
      runGit(repo, ['init', '-q', '--bare', bare]);
      const branch = `lanes/${CHANGE_ID}-push`;
      runGit(repo, ['branch', branch]);
      return { repo, bare, branch, sha: head(repo) };
    }

    it('ignores a planted remote.<name>.receivepack and hooks, and pushes with git-receive-pack', async () => {
      const markers = new Markers();
      const { repo, bare, branch, sha } = pushable();
      plantRepository(repo, markers);
      runGit(repo, ['remote', 'add', 'origin', bare]);
      runGit(repo, ['config', 'remote.origin.receivepack', markers.script('receive-pack', 'exec git-receive-pack "$@"')]);
      const pushed = await pushBranch({ repoRoot: repo, branch });
      assert.equal(pushed.step.outcome, 'done');
      assert.equal(runGit(bare, ['rev-parse', `refs/heads/${branch}`]).trim(), sha);
      assert.deepEqual(markers.fired(), []);
    });

    it('uses the user global core.sshCommand, never one planted in the repository, for an ssh URL reached through insteadOf', async () => {
      const markers = new Markers();
      const { repo, bare, branch, sha } = pushable();
      // The user's "ssh": runs the remote command locally, as a real ssh would on the server.
      const userSsh = markers.script('user-ssh', 'for last; do :; done\nexec sh -c "$last"');
      runGit(repo, ['config', 'core.sshCommand', markers.script('agent-ssh')]);
      runGit(repo, ['config', 'ssh.variant', 'plink']);
      runGit(repo, ['config', 'url.ssh://git.example.invalid/.insteadOf', 'lanes-remote:']);
      runGit(repo, ['remote', 'add', 'origin', `lanes-remote:${bare}`]);
      const pushed = await withHome(`[core]\n\tsshCommand = ${userSsh}\n[ssh]\n\tvariant = simple\n`, () =>
        pushBranch({ repoRoot: repo, branch }),
      );
      assert.equal(pushed.step.outcome, 'done');
      assert.equal(runGit(bare, ['rev-parse', `refs/heads/${branch}`]).trim(), sha);
      assert.deepEqual(markers.fired(), ['user-ssh']);
    });

    it('refuses an ext:: URL reached through insteadOf, even when the repository allows every protocol', async () => {
      const markers = new Markers();
      const { repo, branch } = pushable();
      runGit(repo, ['config', 'protocol.allow', 'always']);
      runGit(repo, ['config', 'protocol.ext.allow', 'always']);
      runGit(repo, ['config', `url.ext::${markers.script('ext-transport', 'exit 1')}.insteadOf`, 'evil:remote']);
      runGit(repo, ['remote', 'add', 'origin', 'evil:remote']);
      await assert.rejects(pushBranch({ repoRoot: repo, branch }), (error: Error) => error instanceof PullRequestError);
      assert.deepEqual(markers.fired(), []);
    });
  });

  it('reads a file marked -diff in .git/info/attributes as text: its secret is flagged and its lines counted', async () => {
    const repo = makeRepo({ 'README.md': 'x\n', 'image.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]) });
    const baseSha = head(repo);
    writeFileSync(join(repo, '.git', 'info', 'attributes'), '* -diff\n');
    const worktree = join(tempDir('lanes-storage-'), 'wt');
    runGit(repo, ['worktree', 'add', '-q', '-b', `lanes/${CHANGE_ID}-diff`, worktree, baseSha]);
    writeFiles(worktree, {
      'config/settings.txt': 'region = eu\naws_key = "AKIAZ3MXQ7PLR4TW2KDN"\n',
      'image.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 9, 9, 9]),
    });
    runGit(worktree, ['add', '-A']);
    runGit(worktree, ['commit', '-q', '-m', 'lane']);
    const analysis = await analyzeChange({ repoRoot: repo, baseSha, headSha: head(worktree), worktreePath: worktree });
    const flagged = (kind: string) => analysis.flags.filter((flag) => flag.kind === kind).map((flag) => flag.path);
    assert.deepEqual(flagged('secretLike'), ['config/settings.txt']);
    assert.deepEqual(flagged('binaryFile'), ['image.png'], 'a real binary stays binary');
    const settings = analysis.files.find((file) => file.path === 'config/settings.txt');
    assert.equal(settings?.additions, 2);
    assert.equal(settings?.binary, false);
  });
});

/**
 * git on PATH through a shim that logs each configuration listing and holds its output back for a while (the real git
 * has read the config by then), so that other calls arrive while a listing is under way.
 */
function slowListingGit(): { dir: string; log: string; restore: () => void } {
  const dir = tempDir('lanes-git-shim-');
  const log = join(dir, 'listings.log');
  const real = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  writeFileSync(
    join(dir, 'git'),
    `#!/bin/sh
case " $* " in
  *" config --list "*)
    echo listed >> '${log}'
    out=$(mktemp); '${real}' "$@" > "$out"; rc=$?; sleep 0.6; cat "$out"; rm -f "$out"; exit $rc ;;
esac
exec '${real}' "$@"
`,
  );
  chmodSync(join(dir, 'git'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path ?? ''}`;
  return { dir, log, restore: () => (process.env.PATH = path) };
}

describe('hardened git: calls that arrive while the configuration is listed', function () {
  this.timeout(30_000);

  it('share one listing when nothing changed since it began', async () => {
    const repo = makeRepo();
    // Config files well older than the listing.
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(repo, '.git', 'config'), past, past);
    const shim = slowListingGit();
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => git(repo, ['rev-parse', 'HEAD'])));
      assert.equal(new Set(results.map((result) => result.stdout)).size, 1);
      assert.equal(readFileSync(shim.log, 'utf8').trim().split('\n').length, 1, 'one listing for five calls');
    } finally {
      shim.restore();
    }
  });

  it('list again when a key was planted after the listing began, and neutralise it', async () => {
    const markers = new Markers();
    const repo = makeRepo();
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(repo, '.git', 'config'), past, past);
    const shim = slowListingGit();
    try {
      const first = git(repo, ['rev-parse', 'HEAD']);
      // The first listing has read the config and is held back: a filter is planted now, then a call that runs it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      runGit(repo, ['config', 'filter.late.clean', markers.script('late-clean')]);
      writeFileSync(join(repo, '.git', 'info', 'attributes'), '* filter=late\n');
      writeFiles(repo, { 'late.txt': 'planted while the configuration was listed\n' });
      await git(repo, ['add', 'late.txt']);
      await first;
      assert.deepEqual(markers.fired(), []);
      assert.equal(readFileSync(shim.log, 'utf8').trim().split('\n').length, 2, 'the second call listed for itself');
    } finally {
      shim.restore();
    }
  });
});

describe('hardened git: what it says when it cannot run', () => {
  it('names a folder that is gone, instead of saying git is not installed', async () => {
    const gone = join(tempDir(), 'vanished-worktree');
    await assert.rejects(
      git(gone, ['status', '--porcelain']),
      (error: Error) => /the folder .*vanished-worktree does not exist/.test(error.message) && !/not installed/.test(error.message),
    );
  });
});
