import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ChangeFileSchema } from '../../core/change';
import { type ChangePersistence, ChangeStoreError, type StoredChangeRecord, isChangeId } from '../../core/changeStore';
import { createLockFile, inspectLockFile, newLockToken, releaseLockFile } from '../audit/lock';
import type { RepoStorage } from './repoStorage';

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
 */
export async function writeFileAtomic(path: string, contents: string, { durable = false }: { durable?: boolean } = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(contents, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The change records of one repository, one file per change
 * (`changes/<id>/change.json`, beside the change's evidence and logs). Writing
 * a change replaces its file alone, atomically (temporary file, fsync, rename,
 * fsync of the folder): a crash leaves the old record or the new one. Windows
 * on worktrees of one repository share the folder; each write touches only
 * the change it is about, so one window never overwrites another's changes.
 * The one-file store of earlier versions (`changes.json`) is migrated on the
 * first load.
 */
export class ChangeFolderPersistence implements ChangePersistence {
  constructor(
    private readonly storage: Pick<RepoStorage, 'root' | 'changesDir' | 'legacyChangesFile' | 'changeDir' | 'changeRecordFile'>,
  ) {}

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
    const records = await Promise.all(names.map((id) => this.readRecord(id)));
    return records.filter((record) => record !== undefined);
  }

  async write(id: string, contents: string): Promise<void> {
    // changeRecordFile refuses anything but a change id: no id leads out of the changes folder.
    await this.writeRecord(this.storage.changeRecordFile(id), contents);
  }

  private async writeRecord(file: string, contents: string): Promise<void> {
    // A new change's folder is itself a new entry of the changes folder: flush that too.
    const created = await mkdir(dirname(file), { recursive: true });
    await writeFileAtomic(file, contents, { durable: true });
    if (created !== undefined) {
      await syncFolder(this.storage.changesDir);
      if (created !== dirname(file)) await syncFolder(this.storage.root);
    }
  }

  /** A change folder's record, not following a link; undefined when the folder has none (evidence without a record). */
  private async readRecord(id: string): Promise<StoredChangeRecord | undefined> {
    const source = this.storage.changeRecordFile(id);
    let handle;
    try {
      handle = await open(source, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      return { id, source, error: code === 'ELOOP' ? 'it is a symbolic link, not a file' : (error as Error).message };
    }
    try {
      return { id, source, text: await handle.readFile('utf8') };
    } catch (error) {
      return { id, source, error: (error as Error).message };
    } finally {
      await handle.close();
    }
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
      const written = (json as { changes: { id: string }[] }).changes;
      for (const change of written)
        await this.writeRecord(this.storage.changeRecordFile(change.id), `${JSON.stringify(change, null, 2)}\n`);
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
