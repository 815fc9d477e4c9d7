import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rename } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { VerifyResult } from '../../core/audit/audit';
import { writeFileAtomic } from '../storage/fileStore';
import { withAuditLock } from './lock';
import { checkpointFor, type AuditCheckpointFile, type AuditLog } from './log';

export interface AuditExport {
  logFile: string;
  checkpointFile: string;
  checkpoint: AuditCheckpointFile;
  verification: VerifyResult;
}

/**
 * Copies the log to `destDir/audit.jsonl` (under the log's lock, so no batch
 * is half copied) and writes `destDir/checkpoint.json` with its count and head hash.
 */
export async function exportAudit(file: string, destDir: string, options: { log?: AuditLog; now?: Date } = {}): Promise<AuditExport> {
  await options.log?.flush();
  await mkdir(destDir, { recursive: true });
  const logFile = join(destDir, 'audit.jsonl');
  const temp = `${logFile}.${randomBytes(4).toString('hex')}.tmp`;
  await withAuditLock(file, () => copyFile(file, temp));
  await rename(temp, logFile);
  const { checkpoint, verification } = await checkpointFor(logFile, basename(logFile), options.now ?? new Date());
  const checkpointFile = join(destDir, 'checkpoint.json');
  await writeFileAtomic(checkpointFile, JSON.stringify(checkpoint, null, 2) + '\n');
  return { logFile, checkpointFile, checkpoint, verification };
}
