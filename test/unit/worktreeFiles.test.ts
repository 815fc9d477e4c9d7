import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorktreePathError, normalizeWorktreePath } from '../../src/core/draft/worktreePaths';
import { WorktreeFiles, realpathOfNearestExisting } from '../../src/infra/draft/worktreeFiles';
import { cleanupTemp, makeRepo, runGit, tempDir, writeFiles } from './support/draftRepo';

/** A lane worktree (with its .git file) and a folder outside it that must stay untouched. */
function setup(): { worktree: string; outside: string } {
  const repo = makeRepo({ 'src/index.ts': 'export {};\n', 'README.md': '# r\n' });
  const worktree = join(tempDir('lanes-storage-'), 'wt');
  runGit(repo, ['worktree', 'add', '-q', '-b', 'lanes/a1b2c3d4-t', worktree]);
  const outside = tempDir('lanes-outside-');
  writeFiles(outside, { 'secret.txt': 'outside\n' });
  return { worktree, outside };
}

async function refuses(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.ok(error instanceof WorktreePathError, `${error.name}: ${error.message}`);
    assert.match(error.message, message);
    return true;
  });
}

describe('worktree files for the language model tools', () => {
  afterEach(cleanupTemp);

  describe('normalizeWorktreePath', () => {
    it('normalises relative paths', () => {
      assert.equal(normalizeWorktreePath('src//a/./b.ts'), 'src/a/b.ts');
      assert.equal(normalizeWorktreePath('src\\win\\x.ts'), 'src/win/x.ts');
      assert.equal(normalizeWorktreePath('.', { allowRoot: true }), '');
      assert.equal(normalizeWorktreePath('a..b/..c'), 'a..b/..c');
    });

    it('refuses absolute paths, "..", .git, NUL and non-strings with a message saying what to do', () => {
      assert.throws(() => normalizeWorktreePath('/etc/passwd'), /absolute path; give a path relative to the worktree root/);
      assert.throws(() => normalizeWorktreePath('C:\\Windows\\x'), /absolute path/);
      assert.throws(() => normalizeWorktreePath('\\\\server\\share'), /absolute path/);
      assert.throws(() => normalizeWorktreePath('~/x'), /absolute path/);
      assert.throws(() => normalizeWorktreePath('src/../../x'), /contains ".."; paths must stay inside/);
      assert.throws(() => normalizeWorktreePath('..\\x'), /contains "\.\."/);
      assert.throws(() => normalizeWorktreePath('.git/config'), /inside \.git; git's own files are off limits/);
      assert.throws(() => normalizeWorktreePath('sub/.GIT/hooks/x'), /inside \.git/);
      assert.throws(() => normalizeWorktreePath('a\0b'), /NUL/);
      assert.throws(() => normalizeWorktreePath(42), /must be a string/);
      assert.throws(() => normalizeWorktreePath('./'), /names the worktree root/);
    });
  });

  it('reads, writes (creating folders), lists and deletes inside the worktree', async () => {
    const { worktree } = setup();
    const files = await WorktreeFiles.open(worktree);
    assert.deepEqual(await files.read('src/index.ts'), { path: 'src/index.ts', content: 'export {};\n', sizeBytes: 11 });
    assert.deepEqual(await files.write('src/new/deep.ts', 'const x = 1;\n'), { path: 'src/new/deep.ts', sizeBytes: 13, created: true });
    assert.equal(readFileSync(join(worktree, 'src/new/deep.ts'), 'utf8'), 'const x = 1;\n');
    assert.equal((await files.write('src/new/deep.ts', 'const x = 2;\n')).created, false);
    const listing = await files.list('.', { recursive: true });
    assert.deepEqual(
      listing.entries.map((entry) => `${entry.type}:${entry.path}`),
      ['file:README.md', 'directory:src', 'file:src/index.ts', 'directory:src/new', 'file:src/new/deep.ts'],
    );
    assert.equal(listing.truncated, false);
    assert.deepEqual(await files.delete('src/new/deep.ts'), { path: 'src/new/deep.ts', type: 'file' });
    assert.deepEqual(await files.delete('src/new'), { path: 'src/new', type: 'directory' });
    assert.equal(existsSync(join(worktree, 'src/new')), false);
  });

  it('never lists .git and caps the listing', async () => {
    const { worktree } = setup();
    writeFiles(worktree, Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`many/f${i}.txt`, 'x'])));
    const files = await WorktreeFiles.open(worktree, { maxListEntries: 4 });
    const listing = await files.list('');
    assert.equal(
      listing.entries.some((entry) => entry.path === '.git'),
      false,
    );
    const capped = await files.list('many');
    assert.equal(capped.entries.length, 4);
    assert.equal(capped.truncated, true);
  });

  it('refuses absolute paths, "..", and .git for every operation', async () => {
    const { worktree, outside } = setup();
    const files = await WorktreeFiles.open(worktree);
    await refuses(files.read(join(outside, 'secret.txt')), /absolute path/);
    await refuses(files.write('../escape.txt', 'x'), /contains ".."/);
    await refuses(files.delete('src/../../x'), /contains ".."/);
    await refuses(files.read('.git'), /inside \.git/);
    await refuses(files.write('.git/hooks/post-commit', '#!/bin/sh\n'), /inside \.git/);
    await refuses(files.list('.git'), /inside \.git/);
    assert.equal(existsSync(join(worktree, '..', 'escape.txt')), false);
  });

  it('refuses paths that a symbolic link leads out of the worktree, for reads, writes, listings and deletes', async () => {
    const { worktree, outside } = setup();
    symlinkSync(outside, join(worktree, 'out-dir'));
    symlinkSync(join(outside, 'secret.txt'), join(worktree, 'out-file'));
    symlinkSync(join(outside, 'not-yet.txt'), join(worktree, 'dangling-out'));
    const files = await WorktreeFiles.open(worktree);
    await refuses(files.read('out-file'), /leads outside the change's worktree through a symbolic link/);
    await refuses(files.read('out-dir/secret.txt'), /leads outside/);
    await refuses(files.write('out-dir/new.txt', 'x'), /leads outside/);
    await refuses(files.write('out-dir/deeper/new.txt', 'x'), /leads outside/);
    await refuses(files.write('out-file', 'overwritten'), /leads outside/);
    await refuses(files.write('dangling-out', 'created outside?'), /symbolic link to a missing target/);
    await refuses(files.list('out-dir'), /leads outside/);
    await refuses(files.delete('out-dir/secret.txt'), /leads outside/);
    assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'outside\n');
    assert.equal(existsSync(join(outside, 'new.txt')), false);
    assert.equal(existsSync(join(outside, 'not-yet.txt')), false);
    // Deleting the link itself is fine: the target is not touched.
    assert.deepEqual(await files.delete('out-file'), { path: 'out-file', type: 'symlink' });
    assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'outside\n');
  });

  it('refuses a link that leads into .git, and allows one that stays inside', async () => {
    const { worktree } = setup();
    symlinkSync('.git', join(worktree, 'gitlink'));
    symlinkSync('src/index.ts', join(worktree, 'alias.ts'));
    const files = await WorktreeFiles.open(worktree);
    await refuses(files.read('gitlink'), /leads into \.git/);
    assert.equal((await files.read('alias.ts')).content, 'export {};\n');
    await files.write('alias.ts', 'export const y = 1;\n');
    assert.equal(readFileSync(join(worktree, 'src/index.ts'), 'utf8'), 'export const y = 1;\n');
  });

  it('enforces the read and write size limits and refuses binary reads', async () => {
    const { worktree } = setup();
    writeFiles(worktree, { 'big.txt': 'x'.repeat(200), 'bin.dat': Buffer.from([1, 0, 2]) });
    const files = await WorktreeFiles.open(worktree, { maxReadBytes: 100, maxWriteBytes: 50 });
    await refuses(files.read('big.txt'), /200 bytes, over the read limit of 100/);
    await refuses(files.write('w.txt', 'y'.repeat(51)), /51 bytes, over the write limit of 50/);
    await refuses(files.read('bin.dat'), /binary file/);
  });

  it('explains missing files, folders given as files, and non-empty folders', async () => {
    const { worktree } = setup();
    const files = await WorktreeFiles.open(worktree);
    await refuses(files.read('nope.ts'), /does not exist/);
    await refuses(files.read('src'), /is a folder; list it instead/);
    await refuses(files.write('src', 'x'), /is a folder; give a file path/);
    await refuses(files.delete('src'), /not empty; delete its files first, or ask for a recursive delete/);
    assert.deepEqual(await files.delete('src', { recursive: true }), { path: 'src', type: 'directory' });
    await refuses(WorktreeFiles.open(join(worktree, 'gone')), /worktree .* is missing/);
  });

  it('realpathOfNearestExisting resolves through existing links', async () => {
    const dir = tempDir();
    const target = tempDir();
    mkdirSync(join(dir, 'a'));
    symlinkSync(target, join(dir, 'a', 'link'));
    writeFileSync(join(target, 'exists'), '');
    assert.equal(await realpathOfNearestExisting(join(dir, 'a', 'link', 'x', 'y')), join(target, 'x', 'y'));
  });
});
