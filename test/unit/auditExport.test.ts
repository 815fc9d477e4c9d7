import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportAudit } from '../../src/infra/audit/export';
import { AuditLog, readCheckpointFile, verifyAuditFile } from '../../src/infra/audit/log';

const REPO = '1'.repeat(64);
const agent = { type: 'agent', id: 'coder' } as const;

describe('audit log export', function () {
  this.timeout(30_000);
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanes-audit-'));
    file = join(dir, 'storage', 'audit.jsonl');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exports the log with a checkpoint that catches later truncation', async () => {
    const log = await AuditLog.open(file, { repoKey: REPO });
    for (let i = 0; i < 10; i++) await log.append({ actor: agent, action: 'task.run', details: { i } });
    const dest = join(dir, 'export');
    const exported = await exportAudit(file, dest, { log });
    await log.close();
    assert.deepEqual((await readdir(dest)).sort(), ['audit.jsonl', 'checkpoint.json']);
    const checkpoint = await readCheckpointFile(exported.checkpointFile);
    assert.equal(checkpoint.count, 11);
    assert.equal(checkpoint.headHash, log.head.hash);
    assert.equal(checkpoint.verified, true);
    assert.equal(checkpoint.repoKey, REPO);
    const copy = await readFile(exported.logFile);
    assert.deepEqual(copy, await readFile(file));
    assert.equal(checkpoint.sha256, (await import('node:crypto')).createHash('sha256').update(copy).digest('hex'));

    const text = copy.toString('utf8').split('\n');
    await writeFile(exported.logFile, text.slice(0, 8).join('\n') + '\n');
    const result = await verifyAuditFile(exported.logFile, { checkpoint });
    assert.equal(!result.ok && result.problem, 'truncated');
  });
});
