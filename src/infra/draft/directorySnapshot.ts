import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every folder of a tree as it was at one moment: inode, change time (ctime)
 * and modification time. Adding, removing or renaming any entry, file or
 * folder, tracked, untracked or ignored, changes its parent folder's ctime,
 * which no program can set back (utimes sets mtime and itself changes ctime).
 * So comparing a few thousand folder stats says whether anything was added
 * to or taken from a tree, without reading every name in it; what it cannot
 * see is a file written in place, which `git status --untracked-files=no`
 * sees from the index (see WorktreePool).
 */
export interface DirectorySnapshot {
  /** Folder path relative to the root ('' for the root) → `inode:ctime:mtime` in nanoseconds. */
  readonly folders: ReadonlyMap<string, string>;
}

/**
 * How long before the snapshot the last folder change must lie for a later
 * change to show as a new time stamp: a change within the same tick of the
 * file system's clock would keep the time. Whole-second file systems (FAT,
 * some network ones) need seconds; finer ones (ext4, tmpfs, APFS, NTFS) a little.
 */
const SETTLED_NS_COARSE = 2_000_000_000n;
const SETTLED_NS_FINE = 50_000_000n;

async function folderStamp(path: string): Promise<{ stamp: string; changedNs: bigint; whole: boolean } | undefined> {
  const info = await lstat(path, { bigint: true }).catch(() => undefined);
  if (!info?.isDirectory()) return undefined;
  const changedNs = info.ctimeNs > info.mtimeNs ? info.ctimeNs : info.mtimeNs;
  return { stamp: `${info.ino}:${info.ctimeNs}:${info.mtimeNs}`, changedNs, whole: info.ctimeNs % 1_000_000_000n === 0n };
}

/**
 * Snapshots every folder under `root` (symbolic links are not followed).
 * Undefined when a folder changed too recently for a later change to be told
 * apart, or the tree could not be read: the caller then checks in full.
 */
export async function snapshotDirectories(root: string): Promise<DirectorySnapshot | undefined> {
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const folders = new Map<string, string>();
  let newestNs = 0n;
  let whole = true;
  const visit = async (relative: string): Promise<boolean> => {
    const path = relative ? join(root, relative) : root;
    // The folder's stamp before its listing: an entry added after the stamp changes it; one added before is listed.
    const stamp = await folderStamp(path);
    if (!stamp) return false;
    const entries = await readdir(path, { withFileTypes: true }).catch(() => undefined);
    if (!entries) return false;
    folders.set(relative, stamp.stamp);
    if (stamp.changedNs > newestNs) newestNs = stamp.changedNs;
    whole &&= stamp.whole;
    const children = entries.filter((entry) => entry.isDirectory()).map((entry) => (relative ? join(relative, entry.name) : entry.name));
    return (await Promise.all(children.map(visit))).every(Boolean);
  };
  if (!(await visit(''))) return undefined;
  if (newestNs > startedNs - (whole ? SETTLED_NS_COARSE : SETTLED_NS_FINE)) return undefined;
  return { folders };
}

/** Whether every folder of the snapshot is still there with the same inode and times (nothing added, removed or renamed). */
export async function directoriesUnchanged(root: string, snapshot: DirectorySnapshot): Promise<boolean> {
  const stamps = await Promise.all(
    [...snapshot.folders].map(async ([relative, stamp]) => (await folderStamp(relative ? join(root, relative) : root))?.stamp === stamp),
  );
  return stamps.every(Boolean);
}
