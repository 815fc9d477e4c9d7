import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAuditLine, type VerifyResult } from '../../core/audit/audit';
import { FACTS_FOLDER, factsFileOf } from '../../core/policy/replay';
import { writeFileAtomic } from '../storage/fileStore';
import { withAuditLock } from './lock';
import { checkpointFor, type AuditCheckpointFile, type AuditLog } from './log';

export interface AuditExport {
  logFile: string;
  checkpointFile: string;
  checkpoint: AuditCheckpointFile;
  verification: VerifyResult;
  /** Facts files the log's decisions refer to that were not beside it (those decisions cannot be replayed from the export). */
  missingFacts: string[];
}

/**
 * Copies the log to `destDir/audit.jsonl` (under the log's lock, so no batch
 * is half copied) and writes `destDir/checkpoint.json` with its count and head
 * hash. The facts files its policy decisions refer to go to `destDir/facts/`,
 * so `agent-lanes policy replay` can replay the export as it does the log.
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
  const missingFacts = await copyFactsFiles(logFile, join(dirname(file), FACTS_FOLDER), join(destDir, FACTS_FOLDER));
  return { logFile, checkpointFile, checkpoint, verification, missingFacts };
}

/** Copies the facts files the log's decisions name; returns the names that were not in `from`. */
async function copyFactsFiles(logFile: string, from: string, to: string): Promise<string[]> {
  const names = new Set<string>();
  const lines = createInterface({ input: createReadStream(logFile, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.includes('"factsSha256"')) continue;
    const event = parseAuditLine(line);
    const name = event && factsFileOf(event);
    if (name) names.add(name);
  }
  const missing: string[] = [];
  if (names.size) await mkdir(to, { recursive: true });
  for (const name of names) {
    await copyFile(join(from, name), join(to, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      missing.push(name);
    });
  }
  return missing;
}
