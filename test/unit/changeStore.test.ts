import * as assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Change } from '../../src/core/change';
import { ChangeStore } from '../../src/core/changeStore';
import { JsonFilePersistence } from '../../src/infra/storage/fileStore';

const actor = { type: 'user' as const, id: 'dev' };

function sample(id: string, overrides: Partial<Change> = {}): Change {
  return {
    id,
    title: `Change ${id}`,
    task: 'task',
    agentId: 'agent',
    baseRef: 'main',
    baseSha: 'a'.repeat(40),
    headSha: 'b'.repeat(40),
    branch: `lanes/${id}-x`,
    worktreePath: '/tmp/x',
    lane: 'draft',
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    history: [],
    ...overrides,
  };
}

describe('ChangeStore with a file on disk', () => {
  let file: string;
  beforeEach(() => {
    file = join(mkdtempSync(join(tmpdir(), 'lanes-store-')), 'changes.json');
  });

  it('persists changes and transitions so a new store (a reload) sees the same', async () => {
    const store = new ChangeStore(new JsonFilePersistence(file));
    await store.load();
    await store.add(sample('00000001'));
    const moved = await store.transition('00000001', 'promote', actor);
    assert.ok(moved.ok);
    const reloaded = new ChangeStore(new JsonFilePersistence(file));
    await reloaded.load();
    assert.equal(reloaded.get('00000001')?.lane, 'sandbox');
    assert.equal(reloaded.get('00000001')?.history.length, 1);
  });

  it('refuses a duplicate id, a missing change and a lane change through update', async () => {
    const store = new ChangeStore(new JsonFilePersistence(file));
    await store.add(sample('00000002'));
    await assert.rejects(store.add(sample('00000002')), /already exists/);
    const missing = await store.transition('ffffffff', 'promote', actor);
    assert.equal(missing.ok, false);
    assert.match(!missing.ok ? missing.reason : '', /no change ffffffff/);
    await assert.rejects(
      store.update('00000002', (c) => ({ ...c, lane: 'review' })),
      /only through a transition/,
    );
  });

  it('serialises concurrent mutations so none is lost', async () => {
    const store = new ChangeStore(new JsonFilePersistence(file));
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.add(sample(String(i).padStart(8, '0')))));
    const reloaded = new ChangeStore(new JsonFilePersistence(file));
    await reloaded.load();
    assert.equal(reloaded.all().length, 20);
  });

  it('reports a corrupt file clearly and leaves it as it is', async () => {
    writeFileSync(file, '{ not json');
    const store = new ChangeStore(new JsonFilePersistence(file));
    await assert.rejects(store.load(), /not valid JSON.*left as they are/);
    assert.equal(readFileSync(file, 'utf8'), '{ not json');
    writeFileSync(file, JSON.stringify({ version: 1, changes: [{ id: 'nothex!!' }] }));
    await assert.rejects(store.load(), /do not match the expected format at changes\.0\.id/);
  });

  it('keeps fields written by a newer version', async () => {
    writeFileSync(file, JSON.stringify({ version: 1, changes: [{ ...sample('0000000a'), futureField: { x: 1 } }] }));
    const store = new ChangeStore(new JsonFilePersistence(file));
    await store.update('0000000a', (c) => ({ ...c, title: 'Renamed' }));
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(raw.changes[0].futureField, { x: 1 });
    assert.equal(raw.changes[0].title, 'Renamed');
  });
});
