import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditChangeIndex } from '../../src/infra/audit/changeIndex';
import { AuditLog, readChangeEvents } from '../../src/infra/audit/log';

const REPO = '2'.repeat(64);
const agent = { type: 'agent', id: 'coder' } as const;
const CHANGES = ['c0ffee00', 'c0ffee01', 'c0ffee02'];

/** What the History view shows, by the index and by a scan of the whole log: the same events, the same lines. */
async function both(file: string, index: AuditChangeIndex, changeId: string) {
  const end = (await stat(file)).size;
  const indexed = await index.eventsFor(changeId, end);
  const scanned = await readChangeEvents(file, changeId, end);
  assert.deepEqual(indexed.lines, scanned.lines, `the index and the scan agree on ${changeId}`);
  assert.deepEqual(indexed.events, scanned.events);
  return indexed.events;
}

describe('audit log index by change (the History view)', () => {
  let file: string;
  let log: AuditLog;

  beforeEach(async () => {
    file = join(await mkdtemp(join(tmpdir(), 'lanes-audit-index-')), 'audit.jsonl');
    log = await AuditLog.open(file, { repoKey: REPO });
    for (let round = 0; round < 20; round++)
      for (const changeId of CHANGES) await log.append({ actor: agent, action: 'task.run', changeId, details: { round } });
    await log.append({ actor: agent, action: 'policy.refresh', details: {} });
    await log.flush();
  });

  afterEach(() => log.close());

  it('finds the events a scan finds, writes itself beside the log, and later indexes only what was appended', async () => {
    const index = new AuditChangeIndex(file);
    for (const changeId of CHANGES) assert.equal((await both(file, index, changeId)).length, 20);
    assert.equal(index.rebuilds, 1);
    const written = JSON.parse(await readFile(index.indexFile, 'utf8'));
    assert.equal(written.end, (await stat(file)).size);

    await log.append({ actor: agent, action: 'task.run', changeId: 'c0ffee01', details: { late: true } });
    // An event of no change that names one in its details: not the change's event, for the index as for the scan.
    await log.append({ actor: agent, action: 'policy.refresh', details: { changeId: 'c0ffee01' } });
    await log.flush();
    // A new session: the index comes from its file, anchored to the log, and catches up with the new line.
    const later = new AuditChangeIndex(file);
    const events = await both(file, later, 'c0ffee01');
    assert.equal(events.length, 21);
    assert.deepEqual(events.at(-1)?.details, { late: true });
    assert.equal(later.rebuilds, 0, 'the index on disk was used, not rebuilt');
    assert.deepEqual(await both(file, later, 'ffffffff'), []);
  });

  it('the AuditLog reads a change’s events through it', async () => {
    const events = await log.eventsFor('c0ffee02');
    assert.equal(events.length, 20);
    assert.ok(events.every((event) => event.changeId === 'c0ffee02'));
    assert.equal(JSON.parse(await readFile(`${file}.index.json`, 'utf8')).changes.c0ffee02.split(',').length, 20);
  });

  it('is rebuilt when its file is missing, not JSON, or of another shape', async () => {
    const index = new AuditChangeIndex(file);
    await both(file, index, 'c0ffee00');
    for (const text of ['{ torn', JSON.stringify({ version: 2 }), '[]']) {
      await writeFile(index.indexFile, text);
      const fresh = new AuditChangeIndex(file);
      assert.equal((await both(file, fresh, 'c0ffee00')).length, 20);
      assert.equal(fresh.rebuilds, 1, text);
    }
  });

  it('is rebuilt when the log was cut or replaced under it (its anchor event is gone)', async () => {
    const index = new AuditChangeIndex(file);
    await both(file, index, 'c0ffee00');
    // Another, longer log at the same place: where the anchor was, another line (or part of one).
    await log.close();
    const other = join(await mkdtemp(join(tmpdir(), 'lanes-audit-other-')), 'audit.jsonl');
    const otherLog = await AuditLog.open(other, { repoKey: REPO });
    for (let round = 0; round < 80; round++)
      await otherLog.append({ actor: agent, action: 'task.run', changeId: round % 2 ? 'c0ffee09' : 'c0ffee00', details: { other: round } });
    await otherLog.close();
    await writeFile(file, await readFile(other));
    const reopened = new AuditChangeIndex(file);
    // A change the old index never saw, with events before and after where the old index ended.
    assert.equal((await both(file, reopened, 'c0ffee09')).length, 40);
    assert.equal((await both(file, reopened, 'c0ffee00')).length, 40);
    assert.equal(reopened.rebuilds, 1);
    // Cut: the log is shorter than the index says.
    await truncate(file, (await stat(file)).size - 200);
    const afterCut = new AuditChangeIndex(file);
    const lines = (await readFile(file, 'utf8')).split('\n');
    const end = (await stat(file)).size - lines.at(-1)!.length;
    const found = await afterCut.eventsFor('c0ffee00', end);
    assert.deepEqual(found.lines, (await readChangeEvents(file, 'c0ffee00', end)).lines);
    assert.equal(afterCut.rebuilds, 1);
    log = await AuditLog.open(other, { repoKey: REPO });
  });

  it('an entry pointing at another change’s line (an edited index) is caught and the index rebuilt', async () => {
    const index = new AuditChangeIndex(file);
    await both(file, index, 'c0ffee00');
    const written = JSON.parse(await readFile(index.indexFile, 'utf8'));
    written.changes.c0ffee00 = written.changes.c0ffee01;
    await writeFile(index.indexFile, JSON.stringify(written));
    const edited = new AuditChangeIndex(file);
    assert.equal((await both(file, edited, 'c0ffee00')).length, 20);
    assert.equal(edited.rebuilds, 1);
  });

  it('leaves out an event edited by hand (its own hash no longer matches), as a scan does; a torn last line waits', async () => {
    const text = await readFile(file, 'utf8');
    const target = text.split('\n').find((line) => line.includes('"changeId":"c0ffee01"') && line.includes('"round":3'))!;
    await writeFile(file, text.replace(target, target.replace('"round":3', '"round":4')));
    await appendFile(file, '{"seq":999,"changeId":"c0ffee01"');
    const index = new AuditChangeIndex(file);
    const events = await both(file, index, 'c0ffee01');
    assert.equal(events.length, 19);
    assert.ok(!events.some((event) => (event.details as { round?: number }).round === 3));
  });
});
