import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sealEvent, type VerifyResult } from '../../src/core/audit/audit';
import { LaneError } from '../../src/core/errors';
import { AuditLogError } from '../../src/infra/audit/auditLogError';
import { AuditLog, verifyAuditFile } from '../../src/infra/audit/log';
import { withAuditLock } from '../../src/infra/audit/lock';

const REPO = '1'.repeat(64);
const agent = { type: 'agent', id: 'coder' } as const;

describe('audit log lock', function () {
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

  it('does not mistake a batch another process is writing for a torn line', async () => {
    const log = await AuditLog.open(file, { repoKey: REPO });
    await log.append({ actor: agent, action: 'agent.start' });
    await log.close();
    const next =
      sealEvent({ seq: 3, at: new Date().toISOString(), actor: agent, action: 'agent.stop', details: {}, prevHash: log.head.hash }).line +
      '\n';
    let verifying: Promise<VerifyResult> | undefined;
    // Like another window in the middle of its write: the lock is held and half a line is on disk.
    await withAuditLock(file, async () => {
      await appendFile(file, next.slice(0, 50));
      verifying = verifyAuditFile(file);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await appendFile(file, next.slice(50));
    });
    const result = await verifying!;
    assert.ok(result.ok && result.count === 3, JSON.stringify(result));
  });

  it('takes over a lock left by a process that no longer runs', async () => {
    await mkdir(join(dir, 'storage'));
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(`${file}.lock`, `${gone} 0123456789ab`);
    assert.equal(await withAuditLock(file, async () => 'done', 1_000), 'done');
    assert.deepEqual(await readdir(join(dir, 'storage')), [], 'the lock is gone afterwards');
  });

  it('waits for a live holder, then says who holds the lock and what to do', async () => {
    await mkdir(join(dir, 'storage'));
    // This process holds it, as another window of the editor would.
    await writeFile(`${file}.lock`, `${process.pid} someoneelse0`);
    const started = Date.now();
    await assert.rejects(
      withAuditLock(file, async () => 'never', 200),
      (error: unknown) => {
        assert.ok(error instanceof AuditLogError && error instanceof LaneError);
        assert.equal(error.kind, 'locked');
        assert.match(error.message, new RegExp(`locked by process ${process.pid}\\. .*delete .*audit\\.jsonl\\.lock`));
        return true;
      },
    );
    assert.ok(Date.now() - started >= 200, 'it waited for the holder first');
  });

  it('releases the lock when the work fails', async () => {
    await mkdir(join(dir, 'storage'));
    await assert.rejects(
      withAuditLock(file, async () => {
        throw new Error('work failed');
      }),
      /work failed/,
    );
    assert.deepEqual(await readdir(join(dir, 'storage')), []);
  });
});
