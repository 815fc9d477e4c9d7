import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ChangeFileSchema } from '../../core/change';
import { type ChangePersistence, ChangeStoreError, type StoredChangeRecord, isChangeId } from '../../core/changeStore';
import { createLockFile, inspectLockFile, newLockToken, releaseLockFile } from '../audit/lock';
import type { RepoStorage } from './repoStorage';

/** Flushes a file written without flushing. */
async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a folder's entries (a rename or a new file in it) to disk; where folders cannot be opened (Windows), nothing. */
async function syncFolder(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (['EISDIR', 'EPERM', 'EACCES'].includes((error as NodeJS.ErrnoException).code ?? '')) return;
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!['EINVAL', 'EPERM', 'EBADF'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Writes a file so a crash leaves either the old or the new contents, never half of one.
 * `durable`: the rename is flushed too (the folder), so the new contents survive a power loss once this resolves.
 * `folderExists`: the caller knows the folder is there (one system call less; a missing folder still fails with ENOENT).
 */
export async function writeFileAtomic(
  path: string,
  contents: string,
  { durable = false, folderExists = false }: { durable?: boolean; folderExists?: boolean } = {},
): Promise<void> {
  if (!folderExists) await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(contents, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  if (durable) await syncFolder(dirname(path));
}

export async function readFileIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

const READ_BATCH = 100;
const FLUSH_BATCH = 64;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The change records of one repository, one file per change
 * (`changes/<id>/change.json`, beside the change's evidence and logs). Writing
 * a change replaces its file alone, atomically (temporary file, fsync,
 * rename): a crash leaves the old record or the new one. Windows
 * on worktrees of one repository share the folder; each write touches only
 * the change it is about, so one window never overwrites another's changes.
 * The one-file store of earlier versions (`changes.json`) is migrated on the
 * first load.
 */
export class ChangeFolderPersistence implements ChangePersistence {
  constructor(
    private readonly storage: Pick<RepoStorage, 'root' | 'changesDir' | 'legacyChangesFile' | 'changeDir' | 'changeRecordFile'>,
  ) {}

  /** The changes whose records this store read or wrote: their folders are there. */
  private readonly onDisk = new Set<string>();

  async readAll(): Promise<StoredChangeRecord[]> {
    if (await pathExists(this.storage.legacyChangesFile)) await this.migrate();
    let names: string[];
    try {
      names = (await readdir(this.storage.changesDir, { withFileTypes: true }))
        // A link or a file among the change folders is no change; neither is a folder whose name is not an id.
        .filter((entry) => entry.isDirectory() && isChangeId(entry.name))
        .map((entry) => entry.name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return this.readRecords(names);
  }

  async write(id: string, contents: string): Promise<void> {
    // changeRecordFile refuses anything but a change id: no id leads out of the changes folder.
    const file = this.storage.changeRecordFile(id);
    if (this.onDisk.has(id)) {
      try {
        await writeFileAtomic(file, contents, { folderExists: true });
        return;
      } catch (error) {
        // Its folder was taken away behind the store's back: write it as a new record.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        this.onDisk.delete(id);
      }
    }
    await this.writeRecord(file, contents);
    this.onDisk.add(id);
  }

  /**
   * A record is replaced by rename, after its temporary file is flushed: a
   * crash at any point leaves the old record or the new one, whole. A new
   * change's folder and record are flushed into their folders too, so a change
   * once added is never lost. An update's rename is not flushed on its own (a
   * second fsync, twice the cost of a write): a power loss in the seconds
   * before the file system commits it brings back the change's previous
   * record, never half of one. (On ext4 the audit event that follows every lane
   * move is fsynced, which commits the rename with it.)
   */
  private async writeRecord(file: string, contents: string): Promise<void> {
    const created = await mkdir(dirname(file), { recursive: true });
    const isNew = created !== undefined || !(await pathExists(file));
    await writeFileAtomic(file, contents, { durable: isNew });
    if (created !== undefined) {
      await syncFolder(this.storage.changesDir);
      if (created !== dirname(file)) await syncFolder(this.storage.root);
    }
  }

  /**
   * The records of these change folders, not following links; a folder with
   * no record (evidence without a change) is left out. Read synchronously in
   * batches, between which the event loop runs: a thousand small async reads
   * cost several times as long on the thread pool.
   */
  private async readRecords(ids: readonly string[]): Promise<StoredChangeRecord[]> {
    const records: StoredChangeRecord[] = [];
    const flag = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0);
    for (let start = 0; start < ids.length; start += READ_BATCH) {
      if (start) await new Promise((resolve) => setImmediate(resolve));
      for (const id of ids.slice(start, start + READ_BATCH)) {
        const source = this.storage.changeRecordFile(id);
        try {
          const fd = openSync(source, flag);
          try {
            records.push({ id, source, text: readFileSync(fd, 'utf8') });
            this.onDisk.add(id);
          } finally {
            closeSync(fd);
          }
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') continue;
          records.push({ id, source, error: code === 'ELOOP' ? 'it is a symbolic link, not a file' : (error as Error).message });
        }
      }
    }
    return records;
  }

  /**
   * Moves the one-file store of earlier versions into one record per change,
   * under a lock (two windows may open the repository at once). The old file
   * stays where it is until every record is written and flushed, then it is
   * deleted: a crash midway leaves it, and the next load migrates again from it.
   */
  private async migrate(): Promise<void> {
    const legacy = this.storage.legacyChangesFile;
    await withLock(legacy, async () => {
      const text = await readFileIfExists(legacy);
      // Another window migrated it while this one waited for the lock.
      if (text === undefined) return;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw new ChangeStoreError(
          `The change records in ${legacy} are not valid JSON (${(error as Error).message}). They were left as they are; move the file aside to start afresh.`,
        );
      }
      const parsed = ChangeFileSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ChangeStoreError(
          `The change records in ${legacy} do not match the expected format at ${issue?.path.join('.') || '(root)'}: ${issue?.message}. They were left as they are.`,
        );
      }
      // Each change as it was written, fields of a newer version too (the schema keeps them, but not their order).
      // Written straight to their places (the old file is the backup until the end), then all flushed at once.
      const written = new Map((json as { changes: { id: string }[] }).changes.map((change) => [change.id, change]));
      for (const [id, change] of written) {
        await mkdir(this.storage.changeDir(id), { recursive: true });
        await writeFile(this.storage.changeRecordFile(id), `${JSON.stringify(change, null, 2)}\n`, { mode: 0o600 });
      }
      const ids = [...written.keys()];
      for (let start = 0; start < ids.length; start += FLUSH_BATCH) {
        const batch = ids.slice(start, start + FLUSH_BATCH);
        await Promise.all(batch.flatMap((id) => [syncFile(this.storage.changeRecordFile(id)), syncFolder(this.storage.changeDir(id))]));
      }
      await syncFolder(this.storage.changesDir);
      await unlink(legacy);
      await syncFolder(this.storage.root);
    });
  }
}

/** Runs `work` holding `<file>.lock`; a lock left by a process that no longer runs is taken over. */
async function withLock<T>(file: string, work: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const lockFile = `${file}.lock`;
  const token = newLockToken();
  const deadline = Date.now() + timeoutMs;
  await mkdir(dirname(file), { recursive: true });
  while (!(await createLockFile(lockFile, token))) {
    const { pid, ageMs, abandoned } = await inspectLockFile(lockFile);
    if (abandoned || ageMs > 5 * 60_000) {
      await unlink(lockFile).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline)
      throw new ChangeStoreError(
        `The change records in ${file} are being migrated by process ${pid || '?'}. If no Agent Lanes window is open on this repository, delete ${lockFile} and reload the window.`,
      );
    await sleep(50);
  }
  try {
    return await work();
  } finally {
    await releaseLockFile(lockFile, token);
  }
}

/** Whether something (a file, folder or link) is at the path; other errors than "not there" are thrown. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw error;
  }
}
