import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sealEvent, type VerifyResult } from '../../src/core/audit/audit';
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
});
