import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import type { DiffAnalysis } from '../../src/core/draft/diffAnalysis';
import type { FlagKind } from '../../src/core/evidence';
import { analyzeChange } from '../../src/infra/git/gitDiff';
import { cleanupTemp, commitAll, head, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

// Issue 13 §3: a secret or the change's scope cannot hide in the diff, whatever the
// attributes say, in the history between base and head, in commit messages, in
// binary files or in file names.

const KEY = 'AKIAZ3MXQ7PLR4TW2KDN';
const GHP = 'ghp_' + 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5';

interface Lane {
  repo: string;
  worktree: string;
  base: string;
}

function lane(baseFiles: Record<string, string | Buffer> = { 'README.md': 'x\n' }): Lane {
  const repo = makeRepo(baseFiles);
  const base = head(repo);
  const worktree = join(tempDir('lanes-storage-'), 'wt');
  runGit(repo, ['worktree', 'add', '-q', '-b', 'lanes/a1b2c3d4-test', worktree, base]);
  return { repo, worktree, base };
}

function step(l: Lane, files: Record<string, string | Buffer>, message = 'lane', remove: string[] = []): string {
  writeFiles(l.worktree, files);
  for (const path of remove) runGit(l.worktree, ['rm', '-q', '--', path]);
  return commitAll(l.worktree, message);
}

async function analyse(l: Lane, headSha = head(l.worktree)): Promise<DiffAnalysis> {
  return analyzeChange({ repoRoot: l.repo, baseSha: l.base, headSha, worktreePath: l.worktree });
}

function flagged(analysis: DiffAnalysis, kind: FlagKind): { path: string; detail: string }[] {
  return analysis.flags.filter((flag) => flag.kind === kind).map((flag) => ({ path: flag.path ?? '', detail: flag.detail }));
}

function assertNeverQuoted(analysis: DiffAnalysis, ...secrets: string[]): void {
  const text = JSON.stringify(analysis.flags);
  for (const secret of secrets) assert.equal(text.includes(secret.slice(4, 16)), false, `a flag quotes the secret: ${text}`);
}

describe('diff scan: secrets and scope cannot hide (issue 13 §3)', function () {
  this.timeout(60_000);
  afterEach(cleanupTemp);

  describe('attributes never decide what is read', () => {
    const cases: { name: string; setup: (l: Lane) => void }[] = [
      { name: 'the checkout .gitattributes: *.txt -diff', setup: (l) => writeFiles(l.repo, { '.gitattributes': '*.txt -diff\n' }) },
      { name: 'the checkout .gitattributes: *.txt binary', setup: (l) => writeFiles(l.repo, { '.gitattributes': '*.txt binary\n' }) },
      { name: '.git/info/attributes: *.txt -diff', setup: (l) => writeFiles(l.repo, { '.git/info/attributes': '*.txt -diff\n' }) },
      {
        name: 'core.attributesFile: *.txt binary',
        setup: (l) => {
          writeFiles(l.repo, { '.git/extra-attributes': '*.txt binary\n' });
          runGit(l.repo, ['config', 'core.attributesFile', join(l.repo, '.git/extra-attributes')]);
        },
      },
      {
        name: 'diff=foo with a textconv that hides the line, and diff.foo.binary',
        setup: (l) => {
          writeFiles(l.repo, { '.git/info/attributes': '*.txt diff=foo\n' });
          runGit(l.repo, ['config', 'diff.foo.textconv', 'sed -e s/AKIA.*/clean/']);
          runGit(l.repo, ['config', 'diff.foo.binary', 'true']);
        },
      },
      {
        name: 'diff=foo with a textconv only (cached textconv)',
        setup: (l) => {
          writeFiles(l.repo, { '.git/info/attributes': '*.txt diff=foo\n' });
          runGit(l.repo, ['config', 'diff.foo.textconv', 'sed -e s/AKIA.*/clean/']);
          runGit(l.repo, ['config', 'diff.foo.cachetextconv', 'true']);
        },
      },
    ];
    for (const { name, setup } of cases) {
      it(`${name}: the secret is found and the lines are counted`, async () => {
        const l = lane({ 'README.md': 'x\n', 'notes.txt': 'one\ntwo\n' });
        setup(l);
        step(l, { 'notes.txt': `one\nkey ${KEY}\nthree\nfour\n`, 'new.txt': `a\nb\nc ${GHP}\n` });
        const analysis = await analyse(l);
        assert.deepEqual(
          flagged(analysis, 'secretLike')
            .map((flag) => flag.path)
            .sort(),
          ['new.txt', 'notes.txt'],
        );
        const notes = analysis.files.find((file) => file.path === 'notes.txt')!;
        const added = analysis.files.find((file) => file.path === 'new.txt')!;
        assert.deepEqual([notes.additions, notes.deletions, notes.binary], [3, 1, false]);
        assert.deepEqual([added.additions, added.deletions, added.binary], [3, 0, false]);
        assert.deepEqual(analysis.totals, { files: 2, additions: 6, deletions: 1 });
        assert.deepEqual(flagged(analysis, 'binaryFile'), []);
      });
    }

    it('a .gitattributes in the change itself (-diff, binary, diff=foo) hides nothing, in any commit of the change', async () => {
      const l = lane();
      step(l, { '.gitattributes': '*.txt -diff\n*.md binary\n*.cfg diff=foo\n' }, 'attributes first');
      step(l, { 'a.txt': `${KEY}\n`, 'b.md': `${GHP}\n`, 'c.cfg': `x\n${KEY}\n` }, 'then the secrets');
      const analysis = await analyse(l);
      assert.deepEqual(
        flagged(analysis, 'secretLike')
          .map((flag) => flag.path)
          .sort(),
        ['a.txt', 'b.md', 'c.cfg'],
      );
      assert.equal(analysis.totals.additions, 1 + 3 + 1 + 2);
    });
  });

  describe('every commit between base and head', () => {
    it('a secret added in one commit and removed in the next is flagged secretInHistory, naming the commit, never the secret', async () => {
      const l = lane();
      const first = step(l, { 'config.txt': `key = ${KEY}\n`, 'app.txt': 'app\n' }, 'add config');
      step(l, { 'config.txt': 'key = from the environment\n' }, 'oops');
      const analysis = await analyse(l);
      assert.deepEqual(flagged(analysis, 'secretLike'), [], 'head has no secret');
      const history = flagged(analysis, 'secretInHistory');
      assert.equal(history.length, 1, JSON.stringify(analysis.flags));
      assert.equal(history[0]!.path, 'config.txt');
      assert.match(history[0]!.detail, new RegExp(first.slice(0, 12)));
      assert.match(history[0]!.detail, /awsAccessKeyId/);
      assertNeverQuoted(analysis, KEY);
    });

    it('a file added with a secret and deleted later, and a secret in a file renamed later, are flagged', async () => {
      const l = lane();
      step(l, { 'tmp/creds.txt': `${GHP}\n`, 'keep.txt': `${KEY}\n` }, 'one');
      step(l, {}, 'two', ['tmp/creds.txt']);
      runGit(l.worktree, ['mv', 'keep.txt', 'kept.txt']);
      step(l, { 'kept.txt': 'no secret\n' }, 'three');
      const history = flagged(await analyse(l), 'secretInHistory');
      assert.deepEqual(history.map((flag) => flag.path).sort(), ['keep.txt', 'tmp/creds.txt']);
    });

    it('a secret that is still in head is a secretLike flag, not a second secretInHistory flag', async () => {
      const l = lane();
      step(l, { 'config.txt': `key = ${KEY}\n` }, 'one');
      step(l, { 'other.txt': 'x\n' }, 'two');
      const analysis = await analyse(l);
      assert.deepEqual(
        flagged(analysis, 'secretLike').map((flag) => flag.path),
        ['config.txt'],
      );
      assert.deepEqual(flagged(analysis, 'secretInHistory'), []);
    });

    it('a secret that was in the base already is not blamed on the change when a commit edits its file', async () => {
      const l = lane({ 'README.md': 'x\n', 'fixture.txt': `example ${KEY}\nline\n` });
      step(l, { 'fixture.txt': `example ${KEY}\nline two\n` }, 'one');
      step(l, { 'fixture.txt': `example ${KEY}\nline three\n` }, 'two');
      const analysis = await analyse(l);
      assert.deepEqual(flagged(analysis, 'secretInHistory'), []);
      assert.deepEqual(flagged(analysis, 'secretLike'), []);
    });

    it('a secret in a binary file added then removed (NUL bytes around the key) is flagged', async () => {
      const l = lane();
      step(l, { 'blob.bin': Buffer.concat([Buffer.from([0, 1, 2, 0]), Buffer.from(`x ${KEY} y`), Buffer.from([0, 0xff])]) }, 'one');
      step(l, {}, 'two', ['blob.bin']);
      assert.deepEqual(
        flagged(await analyse(l), 'secretInHistory').map((flag) => flag.path),
        ['blob.bin'],
      );
    });

    it('a secret in a commit message of the change is flagged, and in a merge commit message', async () => {
      const l = lane();
      const one = step(l, { 'a.txt': 'a\n' }, `fix the thing\n\nused ${GHP} to test`);
      runGit(l.worktree, ['checkout', '-q', '-b', 'side', l.base]);
      step(l, { 'b.txt': 'b\n' }, 'side work');
      runGit(l.worktree, ['checkout', '-q', 'lanes/a1b2c3d4-test']);
      runGit(l.worktree, ['merge', '-q', '--no-ff', '-m', `merge side\n\naws ${KEY}`, 'side']);
      const merge = head(l.worktree);
      const analysis = await analyse(l, merge);
      const history = flagged(analysis, 'secretInHistory');
      assert.equal(history.length, 2, JSON.stringify(analysis.flags));
      assert.ok(
        history.some(
          (flag) => flag.detail.includes(one.slice(0, 12)) && /message/.test(flag.detail) && /githubToken|github/i.test(flag.detail),
        ),
      );
      assert.ok(history.some((flag) => flag.detail.includes(merge.slice(0, 12)) && /message/.test(flag.detail)));
      assertNeverQuoted(analysis, KEY, GHP);
    });

    it('a record separator in a commit message does not cut the rest of the message out of the scan', async () => {
      const l = lane();
      step(l, { 'a.txt': 'a\n' }, `subject\n\n\x1e${'f'.repeat(40)}\0x\0y\0z\0${GHP}`.replace(/\0/g, ' '));
      step(l, { 'b.txt': 'b\n' }, `subject\n\n\x1enot an id ${KEY}`);
      assert.equal(flagged(await analyse(l), 'secretInHistory').length, 2);
    });

    it('a secret in an unrelated history merged into the change (a root commit), removed again, is flagged whatever log.showRoot says', async () => {
      const l = lane();
      runGit(l.repo, ['config', 'log.showRoot', 'false']);
      runGit(l.worktree, ['checkout', '-q', '--orphan', 'other']);
      runGit(l.worktree, ['rm', '-rfq', '.']);
      step(l, { 'vendor.txt': `${KEY}\n` }, 'unrelated root');
      runGit(l.worktree, ['checkout', '-q', 'lanes/a1b2c3d4-test']);
      runGit(l.worktree, ['merge', '-q', '--allow-unrelated-histories', '-m', 'merge', 'other']);
      step(l, {}, 'drop it', ['vendor.txt']);
      assert.deepEqual(
        flagged(await analyse(l), 'secretInHistory').map((flag) => flag.path),
        ['vendor.txt'],
      );
    });

    it('a secret in the author or committer of a commit is flagged', async () => {
      const l = lane();
      writeFiles(l.worktree, { 'a.txt': 'a\n' });
      runGit(l.worktree, ['add', '-A']);
      runGit(l.worktree, ['-c', `user.name=${KEY}`, 'commit', '-q', '--author', `${GHP} <x@example.invalid>`, '-m', 'plain']);
      const history = flagged(await analyse(l), 'secretInHistory');
      assert.equal(history.length, 1, JSON.stringify(history));
      assert.match(history[0]!.detail, /author|committer/);
    });

    it('one lane commit with a clean message adds no history flag', async () => {
      const l = lane();
      step(l, { 'a.txt': 'a\n' }, 'Agent Lanes draft 1234');
      const analysis = await analyse(l);
      assert.deepEqual(flagged(analysis, 'secretInHistory'), []);
    });
  });

  describe('binary files and file names', () => {
    it('a secret as a printable run inside a binary file is flagged secretLike, the file still binary', async () => {
      const l = lane();
      step(l, { 'image.png': Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13]), Buffer.from(KEY), Buffer.from([0, 1])]) });
      const analysis = await analyse(l);
      assert.deepEqual(
        flagged(analysis, 'secretLike').map((flag) => flag.path),
        ['image.png'],
      );
      assert.match(flagged(analysis, 'secretLike')[0]!.detail, /binary/);
      assert.deepEqual(
        flagged(analysis, 'binaryFile').map((flag) => flag.path),
        ['image.png'],
      );
      assertNeverQuoted(analysis, KEY);
    });

    it('a secret that was already in the old version of a binary file is not flagged again', async () => {
      const blob = (tail: number) => Buffer.concat([Buffer.from([0, 0, 1]), Buffer.from(` ${KEY} `), Buffer.from([0, tail])]);
      const l = lane({ 'README.md': 'x\n', 'data.bin': blob(1) });
      step(l, { 'data.bin': blob(2) });
      assert.deepEqual(flagged(await analyse(l), 'secretLike'), []);
    });

    it('a binary file turned into text with a secret is flagged (git still calls it binary)', async () => {
      const l = lane({ 'README.md': 'x\n', 'data.bin': Buffer.from([0, 1, 2, 3, 0, 0]) });
      step(l, { 'data.bin': `plain text now\nkey ${KEY}\n` });
      assert.deepEqual(
        flagged(await analyse(l), 'secretLike').map((flag) => flag.path),
        ['data.bin'],
      );
    });

    it('a secret in a UTF-16 text file (little and big endian) is flagged', async () => {
      const l = lane();
      const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`token = ${GHP}\r\n`, 'utf16le')]);
      const be = Buffer.from(Buffer.from(`\ufeffkey ${KEY}\n`, 'utf16le')).swap16();
      step(l, { 'le.txt': le, 'be.txt': be });
      assert.deepEqual(
        flagged(await analyse(l), 'secretLike')
          .map((flag) => flag.path)
          .sort(),
        ['be.txt', 'le.txt'],
      );
    });

    it('a secret inside a gzip file is flagged', async () => {
      const l = lane();
      step(l, { 'dump.gz': gzipSync(Buffer.from(`config\nkey=${KEY}\n`)) });
      assert.deepEqual(
        flagged(await analyse(l), 'secretLike').map((flag) => flag.path),
        ['dump.gz'],
      );
    });

    it('a secret in a file name, a folder name or the new name of a rename is flagged secretLike', async () => {
      const l = lane({ 'README.md': 'x\n', 'old.txt': 'same content that stays the same\n' });
      runGit(l.worktree, ['mv', 'old.txt', `${GHP}.txt`]);
      step(l, { [`${KEY}/readme.md`]: 'hello\n' });
      const analysis = await analyse(l);
      assert.deepEqual(
        flagged(analysis, 'secretLike')
          .map((flag) => flag.path)
          .sort(),
        [`${GHP}.txt`, `${KEY}/readme.md`].sort(),
      );
      for (const flag of flagged(analysis, 'secretLike')) {
        assert.match(flag.detail, /name/);
        assert.equal(flag.detail.includes(KEY) || flag.detail.includes(GHP), false, 'the detail never quotes the token');
      }
    });

    it('a file name with a secret that lived only in an earlier commit is flagged secretInHistory', async () => {
      const l = lane();
      step(l, { [`notes-${KEY}.txt`]: 'x\n' }, 'one');
      step(l, {}, 'two', [`notes-${KEY}.txt`]);
      const history = flagged(await analyse(l), 'secretInHistory');
      assert.equal(history.length, 1, JSON.stringify(history));
      assert.match(history[0]!.detail, /name/);
    });
  });
});
