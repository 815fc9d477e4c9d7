import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Change } from '../../src/core/change';
import { ChangeStore } from '../../src/core/changeStore';
import { ChangeFolderPersistence } from '../../src/infra/storage/fileStore';
import { RepoStorage } from '../../src/infra/storage/repoStorage';

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

const storageIn = (base: string) => new RepoStorage(base, 'f'.repeat(64), 'app');
const storeOn = (storage: RepoStorage) => new ChangeStore(new ChangeFolderPersistence(storage));

/**
 * Crash-test child: started by the test below with this very file, it updates
 * one change in a loop and prints the count of every update that resolved.
 */
async function crashChild(base: string): Promise<void> {
  const store = storeOn(storageIn(base));
  await store.load();
  process.stdout.write('ready\n');
  for (let count = 1; ; count++) {
    // A big title, so a write takes long enough to be killed in the middle of.
    await store.update('c0ffee00', (c) => ({ ...c, title: `${count} ${'x'.repeat(1_000_000)}` }));
    process.stdout.write(`durable ${count}\n`);
  }
}

if (process.env.CHANGE_STORE_CRASH_CHILD) {
  void crashChild(process.env.CHANGE_STORE_CRASH_CHILD);
} else {
  describe('ChangeStore with a folder of records on disk', () => {
    let base: string;
    let storage: RepoStorage;
    beforeEach(() => {
      base = mkdtempSync(join(tmpdir(), 'lanes-store-'));
      storage = storageIn(base);
    });

    it('persists changes and transitions so a new store (a reload) sees the same', async () => {
      const store = storeOn(storage);
      await store.load();
      await store.add(sample('00000001'));
      const moved = await store.transition('00000001', 'promote', actor);
      assert.ok(moved.ok);
      const reloaded = storeOn(storage);
      await reloaded.load();
      assert.equal(reloaded.get('00000001')?.lane, 'sandbox');
      assert.equal(reloaded.get('00000001')?.history.length, 1);
      assert.deepEqual(reloaded.unreadable, []);
    });

    it('a move and what goes with it are one write: no reader sees the change moved without it', async () => {
      const store = storeOn(storage);
      await store.load();
      await store.add(sample('0000000a', { lane: 'review' }));
      const seen: { lane?: string; comments: number }[] = [];
      store.onDidChange((change) => seen.push({ lane: change?.lane, comments: change?.requestedChanges?.length ?? 0 }));
      const moved = await store.transition('0000000a', 'requestChanges', actor, 'fix it', (change) => ({
        ...change,
        requestedChanges: [{ at: 'now', by: 'rev', comment: 'fix it' }],
      }));
      assert.ok(moved.ok);
      assert.deepEqual(seen, [{ lane: 'draft', comments: 1 }]);
      const reloaded = storeOn(storage);
      await reloaded.load();
      assert.deepEqual(
        reloaded.get('0000000a')?.requestedChanges?.map((r) => r.comment),
        ['fix it'],
      );
    });

    it('writes one change alone: the other records keep their bytes and their files', async () => {
      const store = storeOn(storage);
      for (let i = 0; i < 5; i++) await store.add(sample(`0000000${i}`));
      const before = (id: string) => statSync(storage.changeRecordFile(id));
      const other = before('00000003');
      const otherText = readFileSync(storage.changeRecordFile('00000003'), 'utf8');
      await store.update('00000001', (c) => ({ ...c, title: 'Renamed' }));
      assert.equal(JSON.parse(readFileSync(storage.changeRecordFile('00000001'), 'utf8')).title, 'Renamed');
      const after = before('00000003');
      assert.equal(after.ino, other.ino, 'the other record was not replaced');
      assert.equal(after.mtimeMs, other.mtimeMs);
      assert.equal(readFileSync(storage.changeRecordFile('00000003'), 'utf8'), otherText);
      assert.deepEqual(readdirSync(storage.changeDir('00000001')), ['change.json'], 'no temporary file is left');
    });

    it('writes a change again whose folder was taken away while the store was open', async () => {
      const store = storeOn(storage);
      await store.add(sample('0000000e'));
      rmSync(storage.changeDir('0000000e'), { recursive: true });
      await store.update('0000000e', (c) => ({ ...c, title: 'Back' }));
      assert.equal(JSON.parse(readFileSync(storage.changeRecordFile('0000000e'), 'utf8')).title, 'Back');
    });

    it('refuses a duplicate id, a missing change and a lane change through update', async () => {
      const store = storeOn(storage);
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
      const store = storeOn(storage);
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.add(sample(String(i).padStart(8, '0')))));
      const reloaded = storeOn(storage);
      await reloaded.load();
      assert.equal(reloaded.all().length, 20);
    });

    it('two windows on one repository: each writes its own change and neither loses the other’s', async () => {
      const first = storeOn(storage);
      const second = storeOn(storage);
      await first.load();
      await second.load();
      await first.add(sample('0000000a'));
      // The second window never saw 0000000a; its writes must not take it away.
      await second.add(sample('0000000b'));
      await second.add(sample('0000000c'));
      await first.update('0000000a', (c) => ({ ...c, title: 'From the first window' }));
      const reloaded = storeOn(storage);
      await reloaded.load();
      assert.deepEqual(
        reloaded
          .all()
          .map((c) => c.id)
          .sort(),
        ['0000000a', '0000000b', '0000000c'],
      );
      assert.equal(reloaded.get('0000000a')?.title, 'From the first window');
    });

    it('keeps fields written by a newer version', async () => {
      mkdirSync(storage.changeDir('0000000a'), { recursive: true });
      writeFileSync(storage.changeRecordFile('0000000a'), JSON.stringify({ ...sample('0000000a'), futureField: { x: 1 } }));
      const store = storeOn(storage);
      await store.update('0000000a', (c) => ({ ...c, title: 'Renamed' }));
      const raw = JSON.parse(readFileSync(storage.changeRecordFile('0000000a'), 'utf8'));
      assert.deepEqual(raw.futureField, { x: 1 });
      assert.equal(raw.title, 'Renamed');
    });

    describe('a record that is corrupt or hand-edited', () => {
      beforeEach(async () => {
        const store = storeOn(storage);
        for (const id of ['0000000a', '0000000b', '0000000c', '0000000d']) await store.add(sample(id));
      });

      it('is named with its file and what is wrong; the other changes load and stay writable', async () => {
        const broken = storage.changeRecordFile('0000000b');
        writeFileSync(broken, '{ "id": "0000000b", "title": ');
        const edited = storage.changeRecordFile('0000000c');
        const editedText = JSON.stringify({ ...sample('0000000c'), lane: 'nowhere' });
        writeFileSync(edited, editedText);
        const store = storeOn(storage);
        await store.load();
        assert.deepEqual(
          store
            .all()
            .map((c) => c.id)
            .sort(),
          ['0000000a', '0000000d'],
        );
        assert.equal(store.unreadable.length, 2);
        const byId = new Map(store.unreadable.map((record) => [record.id, record]));
        assert.match(byId.get('0000000b')!.message, /change record .*0000000b[\\/]change\.json is not valid JSON .*left as it is/);
        assert.equal(byId.get('0000000b')!.source, broken);
        assert.match(byId.get('0000000c')!.message, /0000000c[\\/]change\.json does not match the expected format at lane/);
        // Left as they were; the readable ones still change; the unreadable id is not taken over.
        assert.equal(readFileSync(broken, 'utf8'), '{ "id": "0000000b", "title": ');
        await store.update('0000000a', (c) => ({ ...c, title: 'Still writable' }));
        await assert.rejects(store.add(sample('0000000b')), /0000000b already exists but cannot be read: .*not valid JSON/);
        await assert.rejects(
          store.update('0000000c', (c) => c),
          /no change 0000000c/,
        );
        assert.equal(readFileSync(edited, 'utf8'), editedText);
      });

      it('a record moved into another change’s folder, or a link in place of a record, is refused', async () => {
        writeFileSync(storage.changeRecordFile('0000000b'), readFileSync(storage.changeRecordFile('0000000a')));
        const outside = join(base, 'elsewhere.json');
        writeFileSync(outside, JSON.stringify(sample('0000000d')));
        // Replace the record with a link to a file outside the changes folder.
        const link = storage.changeRecordFile('0000000d');
        rmSync(link);
        symlinkSync(outside, link);
        const store = storeOn(storage);
        await store.load();
        assert.deepEqual(
          store
            .all()
            .map((c) => c.id)
            .sort(),
          ['0000000a', '0000000c'],
        );
        const messages = store.unreadable.map((record) => record.message).join('\n');
        assert.match(messages, /0000000b[\\/]change\.json holds change 0000000a, but lies in the place of change 0000000b/);
        assert.match(messages, /0000000d[\\/]change\.json could not be read \(it is a symbolic link, not a file\)/);
      });
    });

    describe('ids with path characters', () => {
      it('never name a place outside the changes folder', async () => {
        const store = storeOn(storage);
        await store.load();
        for (const id of ['../../escape', '..', '0000000a/../../x', '/etc/passwd', 'ABCDEF12', '0000000g']) {
          await assert.rejects(store.add(sample(id)), /A change id is 8 hex characters/, id);
          assert.throws(() => storage.changeDir(id), /is not a change id/, id);
          await assert.rejects(new ChangeFolderPersistence(storage).write(id, '{}'), /is not a change id/, id);
        }
        assert.ok(!existsSync(join(base, 'escape')) && !existsSync(join(dirname(base), 'escape')));
        assert.ok(!existsSync(storage.changesDir), 'nothing was written');
      });

      it('folders whose names are not change ids are not read as changes', async () => {
        mkdirSync(join(storage.changesDir, '..weird'), { recursive: true });
        writeFileSync(join(storage.changesDir, '..weird', 'change.json'), JSON.stringify(sample('0000000e')));
        mkdirSync(storage.changeDir('0000000f'), { recursive: true });
        writeFileSync(join(storage.changeDir('0000000f'), 'evidence.json'), '{}');
        const store = storeOn(storage);
        await store.load();
        assert.deepEqual(store.all(), []);
        assert.deepEqual(store.unreadable, []);
      });
    });

    describe('a crash', () => {
      it('between the temporary file and the rename leaves the old record, and the next writes go on', async () => {
        const store = storeOn(storage);
        await store.add(sample('c0ffee00', { title: 'Before' }));
        // What a writer killed after writing (part of) its temporary file and before the rename leaves.
        const record = storage.changeRecordFile('c0ffee00');
        writeFileSync(`${record}.1a2b3c4d.tmp`, JSON.stringify(sample('c0ffee00', { title: 'After' })).slice(0, 50));
        writeFileSync(`${record}.5e6f7a8b.tmp`, JSON.stringify(sample('c0ffee00', { title: 'After, complete' })));
        const reloaded = storeOn(storage);
        await reloaded.load();
        assert.equal(reloaded.get('c0ffee00')?.title, 'Before');
        assert.deepEqual(reloaded.unreadable, []);
        await reloaded.update('c0ffee00', (c) => ({ ...c, title: 'Later' }));
        const again = storeOn(storage);
        await again.load();
        assert.equal(again.get('c0ffee00')?.title, 'Later');
      });

      it('of a writer killed with SIGKILL mid-write: a reader never sees half a record; it holds every write reported done', async function () {
        this.timeout(60_000);
        await storeOn(storage).add(sample('c0ffee00'));
        const record = storage.changeRecordFile('c0ffee00');
        let reads = 0;
        const torn: string[] = [];
        for (let round = 0; round < 3; round++) {
          const child = spawn(process.execPath, [__filename], {
            env: { ...process.env, CHANGE_STORE_CRASH_CHILD: base },
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          // Another window reading the record while it is rewritten, over and over.
          const reader = setInterval(() => {
            const text = readFileSync(record, 'utf8');
            reads++;
            try {
              JSON.parse(text);
            } catch {
              torn.push(`${text.length} characters`);
            }
          }, 1);
          let output = '';
          let lastDurable = 0;
          try {
            await new Promise<void>((resolve, reject) => {
              child.on('error', reject);
              child.on('exit', (code) => reject(new Error(`the writer exited early with ${code}`)));
              child.stdout.on('data', (chunk: Buffer) => {
                output += chunk.toString();
                const durable = [...output.matchAll(/durable (\d+)/g)];
                lastDurable = Number(durable[durable.length - 1]?.[1] ?? 0);
                if (lastDurable >= 40 && child.exitCode === null && !child.killed) {
                  child.removeAllListeners('exit');
                  child.on('exit', () => resolve());
                  setTimeout(() => child.kill('SIGKILL'), Math.random() * 10);
                }
              });
            });
          } finally {
            clearInterval(reader);
          }
          const store = storeOn(storage);
          await store.load();
          assert.deepEqual(store.unreadable, [], 'the record is whole');
          const count = Number(store.get('c0ffee00')!.title.split(' ')[0]);
          assert.ok(count >= lastDurable, `the record holds write ${count} but ${lastDurable} was reported done`);
          assert.ok(count <= lastDurable + 1);
        }
        assert.ok(reads > 50, `the reader read ${reads} times`);
        assert.deepEqual(torn, [], `of ${reads} reads, ${torn.length} saw half a record`);
      });
    });

    describe('the one-file store of earlier versions', () => {
      it('is migrated once into one record per change, fields of a newer version kept, then deleted', async () => {
        mkdirSync(storage.root, { recursive: true });
        const legacy = [sample('00000001', { lane: 'review' }), { ...sample('00000002'), futureField: { x: 1 } }];
        writeFileSync(storage.legacyChangesFile, JSON.stringify({ version: 1, changes: legacy }));
        const store = storeOn(storage);
        await store.load();
        assert.equal(store.get('00000001')?.lane, 'review');
        assert.equal(store.all().length, 2);
        assert.ok(!existsSync(storage.legacyChangesFile), 'the old file is gone once every record is written');
        assert.ok(!existsSync(`${storage.legacyChangesFile}.lock`));
        assert.deepEqual(JSON.parse(readFileSync(storage.changeRecordFile('00000002'), 'utf8')).futureField, { x: 1 });
        // Later loads read the records.
        await store.update('00000002', (c) => ({ ...c, title: 'Renamed' }));
        const reloaded = storeOn(storage);
        await reloaded.load();
        assert.equal(reloaded.get('00000002')?.title, 'Renamed');
      });

      it('interrupted midway is done again from the old file, which was kept', async () => {
        mkdirSync(storage.root, { recursive: true });
        writeFileSync(storage.legacyChangesFile, JSON.stringify({ version: 1, changes: [sample('00000001'), sample('00000002')] }));
        // A migration that crashed after its first record (and a torn temporary file of its second).
        mkdirSync(storage.changeDir('00000001'), { recursive: true });
        writeFileSync(storage.changeRecordFile('00000001'), JSON.stringify(sample('00000001')));
        mkdirSync(storage.changeDir('00000002'), { recursive: true });
        writeFileSync(`${storage.changeRecordFile('00000002')}.0badf00d.tmp`, '{"id":"000');
        const store = storeOn(storage);
        await store.load();
        assert.deepEqual(
          store
            .all()
            .map((c) => c.id)
            .sort(),
          ['00000001', '00000002'],
        );
        assert.ok(!existsSync(storage.legacyChangesFile));
      });

      it('by two windows at once: migrated once, both see every change', async () => {
        mkdirSync(storage.root, { recursive: true });
        const changes = Array.from({ length: 30 }, (_, i) => sample(String(i).padStart(8, '0')));
        writeFileSync(storage.legacyChangesFile, JSON.stringify({ version: 1, changes }));
        const first = storeOn(storage);
        const second = storeOn(storageIn(base));
        await Promise.all([first.load(), second.load()]);
        assert.equal(first.all().length, 30);
        assert.equal(second.all().length, 30);
        assert.ok(!existsSync(storage.legacyChangesFile));
      });

      it('that is corrupt is reported clearly and left as it is', async () => {
        mkdirSync(storage.root, { recursive: true });
        writeFileSync(storage.legacyChangesFile, '{ not json');
        const store = storeOn(storage);
        await assert.rejects(store.load(), /changes\.json are not valid JSON.*left as they are/);
        assert.equal(readFileSync(storage.legacyChangesFile, 'utf8'), '{ not json');
        writeFileSync(storage.legacyChangesFile, JSON.stringify({ version: 1, changes: [{ id: '../../x' }] }));
        await assert.rejects(store.load(), /do not match the expected format at changes\.0\.id/);
        assert.ok(!existsSync(storage.changesDir), 'nothing was migrated');
        assert.ok(!existsSync(`${storage.legacyChangesFile}.lock`));
      });
    });
  });
}
