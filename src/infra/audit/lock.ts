import { randomBytes } from 'node:crypto';
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { AuditLogError } from './auditLogError';
import { isMissing } from './lines';

/** Whether a process with this id runs (a lock's owner); EPERM means it runs as someone else. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A token that names this process and one holding of a lock, written into the lock file. */
export function newLockToken(): string {
  return `${process.pid} ${randomBytes(6).toString('hex')}`;
}

/** Creates the lock file holding `token`; false when another holder has it. */
export async function createLockFile(lockFile: string, token: string): Promise<boolean> {
  try {
    await writeFile(lockFile, token, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  }
}

/** Who holds a lock file, since when, and whether its holder is gone (the lock may be taken over). */
export async function inspectLockFile(lockFile: string): Promise<{ pid: number; ageMs: number; abandoned: boolean }> {
  const holder = await readFile(lockFile, 'utf8').catch(() => '');
  const pid = Number(holder.split(' ')[0]);
  const ageMs = await stat(lockFile).then(
    (s) => Date.now() - s.mtimeMs,
    () => 0,
  );
  // An empty lock is a writer that died between creating and filling it.
  const abandoned = holder === '' ? ageMs > 1000 : !Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && !processAlive(pid));
  return { pid, ageMs, abandoned };
}

/** Deletes the lock file if it still holds `token` (a lock taken over by another process is theirs). */
export async function releaseLockFile(lockFile: string, token: string): Promise<void> {
  const holder = await readFile(lockFile, 'utf8').catch(() => '');
  if (holder === token) await unlink(lockFile).catch(() => undefined);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `work` holding `<file>.lock`, so two editor windows on worktrees of one
 * repository (which share the log) never interleave or fork the chain. A lock
 * left by a process that no longer runs is taken over.
 */
export async function withAuditLock<T>(file: string, work: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const lockFile = `${file}.lock`;
  const deadline = Date.now() + timeoutMs;
  const token = newLockToken();
  for (let attempt = 0; !(await createLockFile(lockFile, token)); attempt++) {
    const { pid, ageMs, abandoned } = await inspectLockFile(lockFile);
    if (abandoned || ageMs > 60_000) {
      await unlink(lockFile).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new AuditLogError(
        'locked',
        `The audit log ${file} is locked by process ${pid || '?'}. If no Agent Lanes window or command is running, delete ${lockFile} and try again.`,
      );
    }
    await sleep(Math.min(50, 2 + attempt * 2));
  }
  try {
    return await work();
  } finally {
    await releaseLockFile(lockFile, token);
  }
}

/**
 * The file's size at a moment no batch is being written (taken under the
 * lock), so a reader never mistakes another process's write in progress for a
 * torn line. Best effort: a copy in a read-only folder has no writer to wait for.
 */
export async function settledSize(file: string): Promise<number> {
  try {
    return await withAuditLock(file, async () => (await stat(file)).size, 2_000);
  } catch (error) {
    if (isMissing(error)) throw error;
    return Infinity;
  }
}
