import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { directoriesUnchanged, snapshotDirectories } from '../../src/infra/draft/directorySnapshot';
import { cleanupTemp, tempDir, writeFiles } from './support/draftRepo';

/** A tree whose folders last changed well before the snapshot (as a pooled worktree's, checked after a settle). */
function settledTree(): string {
  const root = tempDir('lanes-snapshot-');
  writeFiles(root, { 'a.txt': 'a\n', 'src/b.ts': 'b\n', 'src/deep/c.ts': 'c\n', 'docs/d.md': 'd\n' });
  const past = new Date(Date.now() - 60_000);
  for (const folder of ['', 'src', 'src/deep', 'docs']) utimesSync(join(root, folder), past, past);
  return root;
}

describe('the folder snapshot of a pooled worktree', function () {
  this.timeout(30_000);
  afterEach(cleanupTemp);

  it('sees a file added in any folder, even with the folder time set back', async () => {
    const root = settledTree();
    // ctime is set by the system at every change; wait until a new change cannot share the old one's tick.
    await new Promise((settle) => setTimeout(settle, 60));
    const snapshot = await snapshotDirectories(root);
    assert.ok(snapshot, 'a snapshot of a settled tree');
    assert.equal(snapshot.folders.size, 4);
    assert.equal(await directoriesUnchanged(root, snapshot), true, 'nothing changed yet');
    const past = new Date(Date.now() - 60_000);
    writeFileSync(join(root, 'src/deep/planted.log'), 'x\n');
    utimesSync(join(root, 'src/deep'), past, past);
    assert.equal(await directoriesUnchanged(root, snapshot), false);
  });

  it('sees a folder added, a file removed, a folder swapped for another of the same name', async () => {
    const root = settledTree();
    await new Promise((settle) => setTimeout(settle, 60));
    const snapshot = (await snapshotDirectories(root))!;
    mkdirSync(join(root, 'docs/new'));
    assert.equal(await directoriesUnchanged(root, snapshot), false, 'a new folder');

    const second = settledTree();
    await new Promise((settle) => setTimeout(settle, 60));
    const again = (await snapshotDirectories(second))!;
    rmSync(join(second, 'a.txt'));
    assert.equal(await directoriesUnchanged(second, again), false, 'a removed file');

    const third = settledTree();
    await new Promise((settle) => setTimeout(settle, 60));
    const once = (await snapshotDirectories(third))!;
    const other = tempDir('lanes-snapshot-other-');
    writeFiles(other, { 'c.ts': 'c\n' });
    rmSync(join(third, 'src/deep'), { recursive: true });
    renameSync(other, join(third, 'src/deep'));
    assert.equal(await directoriesUnchanged(third, once), false, 'a swapped folder');
  });

  it('takes no snapshot of a tree that changed a moment ago (a later change could keep the same time)', async () => {
    const root = settledTree();
    writeFileSync(join(root, 'src/fresh.ts'), 'x\n');
    assert.equal(await snapshotDirectories(root), undefined);
    assert.equal(await snapshotDirectories(join(root, 'missing')), undefined, 'nor of a missing folder');
  });
});
