import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { MAX_RENDERED_LINES_PER_FILE } from '../../src/core/review/reviewModel';
import {
  WorktreeMissingError,
  listReviewDiff,
  loadFileDiffs,
  readBlob,
  resolveReviewHead,
  worktreeDiffHash,
} from '../../src/infra/review/reviewDiff';

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'T',
      GIT_AUTHOR_EMAIL: 't@example.invalid',
      GIT_COMMITTER_NAME: 'T',
      GIT_COMMITTER_EMAIL: 't@example.invalid',
    },
  }).trim();
}

function write(root: string, files: Record<string, string | Buffer>): void {
  for (const [path, contents] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), contents);
  }
}

describe('review diff (real git repositories)', () => {
  let dir: string;
  let repo: string;
  let worktree: string;
  let base: string;
  let head: string;

  before(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-review-diff-')));
    repo = join(dir, 'repo');
    mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    write(repo, { 'src/a.js': 'one\ntwo\nthree\n', 'old name.txt': 'same content here\nand more\n', 'gone.txt': 'bye\n' });
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', 'base');
    base = git(repo, 'rev-parse', 'HEAD');
    worktree = join(dir, 'wt');
    git(repo, 'worktree', 'add', '-q', '-b', 'lanes/abcd1234-test', worktree, base);
    write(worktree, {
      'src/a.js': 'one\nTWO\nthree\nfour\n',
      'image.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1, 2, 3, 0]),
      'big.txt': Array.from({ length: MAX_RENDERED_LINES_PER_FILE + 1 }, (_, i) => `line ${i}`).join('\n') + '\n',
      'long.txt': `${'x'.repeat(5_000)}\n`,
    });
    git(worktree, 'mv', 'old name.txt', 'new name.txt');
    git(worktree, 'rm', '-q', 'gone.txt');
    git(worktree, 'add', '-A');
    git(worktree, 'commit', '-q', '-m', 'agent work');
    head = git(worktree, 'rev-parse', 'HEAD');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists every file with its status, line counts and how it is shown', async () => {
    const listing = await listReviewDiff(repo, base, head);
    const byPath = new Map(listing.files.map((file) => [file.path, file]));
    assert.equal(listing.files.length, 6);
    assert.deepEqual(
      { ...byPath.get('src/a.js'), oldBlob: undefined, newBlob: undefined },
      { path: 'src/a.js', status: 'modified', additions: 2, deletions: 1, display: 'text', oldBlob: undefined, newBlob: undefined },
    );
    assert.equal(byPath.get('new name.txt')?.status, 'renamed');
    assert.equal(byPath.get('new name.txt')?.oldPath, 'old name.txt');
    assert.equal(byPath.get('gone.txt')?.status, 'deleted');
    assert.equal(byPath.get('image.png')?.display, 'binary');
    assert.equal(byPath.get('image.png')?.additions, null);
    assert.equal(byPath.get('big.txt')?.display, 'tooLarge');
    assert.match(byPath.get('big.txt')?.note ?? '', /Too large to show here \(5,001 changed lines/);
    assert.equal(listing.totals.files, 6);
    assert.equal(listing.totals.additions, 2 + MAX_RENDERED_LINES_PER_FILE + 1 + 1);
    assert.match(listing.hash, /^[0-9a-f]{64}$/);
  });

  it('loads a text file diff in hunks, cuts very long lines, and never renders binary or enormous files', async () => {
    const listing = await listReviewDiff(repo, base, head);
    const [text, binary, big, long, renamed, unknown] = await loadFileDiffs(repo, listing, [
      'src/a.js',
      'image.png',
      'big.txt',
      'long.txt',
      'new name.txt',
      '--output=/tmp/x',
    ]);
    assert.equal(text?.kind, 'text');
    if (text?.kind === 'text') {
      assert.equal(text.hunks.length, 1);
      assert.deepEqual(text.hunks[0]!.lines, [' one', '-two', '+TWO', ' three', '+four']);
      assert.equal(text.hunks[0]!.header, '@@ -1,3 +1,4 @@');
    }
    const [added] = await loadFileDiffs(repo, listing, ['long.txt']);
    assert.equal(added?.kind === 'text' && added.hunks[0]!.header, '@@ -0,0 +1,1 @@', 'an empty side reads as git writes it');
    assert.equal(binary?.kind, 'binary');
    assert.equal(big?.kind, 'tooLarge');
    assert.equal(long?.kind, 'text');
    if (long?.kind === 'text') {
      assert.equal(long.truncatedLines, 1);
      assert.ok(long.hunks[0]!.lines[0]!.length < 2_100);
    }
    assert.equal(renamed?.kind, 'empty');
    assert.match(renamed?.kind === 'empty' ? renamed.message : '', /Renamed from old name\.txt without changes/);
    assert.deepEqual(unknown, { path: '--output=/tmp/x', kind: 'error', message: 'This file is not part of the reviewed diff.' });
  });

  it('hashes the worktree on disk like the committed diff, ignores a no-op touch, and sees every real edit', async () => {
    const listing = await listReviewDiff(repo, base, head);
    assert.equal(await worktreeDiffHash(worktree, base), listing.hash, 'a clean worktree at head has the reviewed hash');
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(worktree, 'src/a.js'), future, future);
    assert.equal(await worktreeDiffHash(worktree, base), listing.hash, 'touching a file changes nothing');
    write(worktree, { 'src/a.js': 'one\nTWO\nthree\nfour\nfive\n' });
    const edited = await worktreeDiffHash(worktree, base);
    assert.notEqual(edited, listing.hash, 'an uncommitted edit changes the hash');
    write(worktree, { 'src/a.js': 'one\nTWO\nthree\nfour\n' });
    assert.equal(await worktreeDiffHash(worktree, base), listing.hash, 'undoing the edit restores it');
    write(worktree, { 'untracked.txt': 'new\n' });
    assert.notEqual(await worktreeDiffHash(worktree, base), listing.hash, 'an untracked file counts');
    rmSync(join(worktree, 'untracked.txt'));
    assert.equal(git(worktree, 'status', '--porcelain'), '', 'the real index was not touched');
  });

  it('says so when the worktree is gone', async () => {
    await assert.rejects(worktreeDiffHash(join(dir, 'nowhere'), base), WorktreeMissingError);
  });

  it('reads blobs for the diff editors and refuses anything that is not an object id', async () => {
    const listing = await listReviewDiff(repo, base, head);
    const file = listing.files.find((f) => f.path === 'src/a.js')!;
    assert.equal(Buffer.from(await readBlob(repo, file.newBlob!)).toString('utf8'), 'one\nTWO\nthree\nfour\n');
    assert.equal((await readBlob(repo, '0'.repeat(40))).length, 0);
    await assert.rejects(readBlob(repo, 'HEAD:src/a.js'), /is not a git object id/);
  });

  it('resolves the reviewed head from the record, else from the lane branch', async () => {
    assert.equal(await resolveReviewHead(repo, { headSha: head, branch: 'x' }), head);
    assert.equal(await resolveReviewHead(repo, { branch: 'lanes/abcd1234-test' }), head);
    await assert.rejects(resolveReviewHead(repo, { branch: 'lanes/none' }), /branch lanes\/none does not exist/);
    await assert.rejects(listReviewDiff(repo, '--output=/tmp/x', head), /is not a commit id or ref/);
  });
});
