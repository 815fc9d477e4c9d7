import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, rm, rmdir, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { WorktreePathError, isGitComponent, normalizeWorktreePath } from '../../core/draft/worktreePaths';

/** Whether `path` lies inside `folder` (both real paths). */
export function isInsideFolder(folder: string, path: string, allowEqual = false): boolean {
  const inside = relative(folder, path);
  if (inside === '') return allowEqual;
  return !inside.startsWith(`..${sep}`) && inside !== '..' && !isAbsolute(inside);
}

/** The real path of `path`, resolving its nearest existing ancestor when it does not exist yet. */
export async function realpathOfNearestExisting(path: string): Promise<string> {
  const missing: string[] = [];
  let current = path;
  for (;;) {
    try {
      const real = await realpath(current);
      return missing.length ? join(real, ...missing.reverse()) : real;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
      const parent = dirname(current);
      if (parent === current) return path;
      missing.push(current.slice(parent.length).replace(/^[\\/]+/, ''));
      current = parent;
    }
  }
}

export interface WorktreeFileLimits {
  maxReadBytes: number;
  maxWriteBytes: number;
  maxListEntries: number;
}

const DEFAULT_WORKTREE_FILE_LIMITS: WorktreeFileLimits = Object.freeze({
  maxReadBytes: 1024 * 1024,
  maxWriteBytes: 1024 * 1024,
  maxListEntries: 2_000,
});

export interface ListedEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  sizeBytes?: number;
}

/**
 * Files of ONE change's worktree, for the language model tools. Every path is
 * relative to the worktree root; absolute paths, "..", anything under .git and
 * any path that a symbolic link leads out of the worktree are refused.
 */
export class WorktreeFiles {
  private constructor(
    readonly root: string,
    private readonly limits: WorktreeFileLimits,
  ) {}

  static async open(worktreePath: string, limits: Partial<WorktreeFileLimits> = {}): Promise<WorktreeFiles> {
    let root: string;
    try {
      root = await realpath(worktreePath);
    } catch {
      throw new WorktreePathError(
        `The change's worktree ${worktreePath} is missing; restore it with "Agent Lanes: Reconcile" before using the file tools.`,
      );
    }
    return new WorktreeFiles(root, { ...DEFAULT_WORKTREE_FILE_LIMITS, ...limits });
  }

  /** Checks that a real path is inside the worktree and not inside its .git. */
  private confine(real: string, asked: string): void {
    if (!isInsideFolder(this.root, real, true)) {
      throw new WorktreePathError(
        `"${asked}" leads outside the change's worktree through a symbolic link; only files inside the worktree can be used.`,
      );
    }
    if (relative(this.root, real).split(sep).some(isGitComponent)) {
      throw new WorktreePathError(`"${asked}" leads into .git through a symbolic link; git's own files are off limits to agents.`);
    }
  }

  /** The absolute, confined path of an existing entry or of its nearest existing ancestor. */
  async resolve(asked: unknown, options: { allowRoot?: boolean } = {}): Promise<{ relativePath: string; absolute: string }> {
    const relativePath = normalizeWorktreePath(asked, options);
    const absolute = relativePath ? join(this.root, ...relativePath.split('/')) : this.root;
    this.confine(await realpathOfNearestExisting(absolute), String(asked));
    return { relativePath, absolute };
  }

  async list(
    asked: unknown = '.',
    options: { recursive?: boolean; maxEntries?: number } = {},
  ): Promise<{ entries: ListedEntry[]; truncated: boolean }> {
    const { relativePath, absolute } = await this.resolve(asked, { allowRoot: true });
    const max = Math.min(options.maxEntries ?? this.limits.maxListEntries, this.limits.maxListEntries);
    const start = await realpath(absolute).catch(() => {
      throw new WorktreePathError(`"${String(asked)}" does not exist in the change's worktree.`);
    });
    if (!(await lstat(start)).isDirectory()) throw new WorktreePathError(`"${String(asked)}" is a file, not a folder; read it instead.`);
    const entries: ListedEntry[] = [];
    const queue: [string, string][] = [[start, relativePath]];
    while (queue.length) {
      const [folder, prefix] = queue.shift()!;
      const children = (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
      for (const child of children) {
        if (isGitComponent(child.name)) continue;
        if (entries.length >= max) return { entries, truncated: true };
        const path = prefix ? `${prefix}/${child.name}` : child.name;
        const full = join(folder, child.name);
        if (child.isSymbolicLink()) entries.push({ path, type: 'symlink' });
        else if (child.isDirectory()) {
          entries.push({ path, type: 'directory' });
          if (options.recursive) queue.push([full, path]);
        } else if (child.isFile()) entries.push({ path, type: 'file', sizeBytes: (await lstat(full)).size });
        else entries.push({ path, type: 'other' });
      }
    }
    return { entries, truncated: false };
  }

  async read(asked: unknown): Promise<{ path: string; content: string; sizeBytes: number }> {
    const { relativePath, absolute } = await this.resolve(asked);
    const real = await realpath(absolute).catch(() => {
      throw new WorktreePathError(`"${String(asked)}" does not exist in the change's worktree; list the folder to see what is there.`);
    });
    const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const info = await handle.stat();
      if (info.isDirectory()) throw new WorktreePathError(`"${String(asked)}" is a folder; list it instead.`);
      if (!info.isFile()) throw new WorktreePathError(`"${String(asked)}" is not a regular file.`);
      if (info.size > this.limits.maxReadBytes) {
        throw new WorktreePathError(
          `"${String(asked)}" is ${info.size} bytes, over the read limit of ${this.limits.maxReadBytes}; read a smaller file.`,
        );
      }
      const bytes = await handle.readFile();
      if (bytes.subarray(0, 8000).includes(0))
        throw new WorktreePathError(`"${String(asked)}" is a binary file; only text files can be read.`);
      return { path: relativePath, content: bytes.toString('utf8'), sizeBytes: info.size };
    } finally {
      await handle.close();
    }
  }

  async write(asked: unknown, content: string): Promise<{ path: string; sizeBytes: number; created: boolean }> {
    if (typeof content !== 'string') throw new WorktreePathError('The content to write must be a string.');
    const bytes = Buffer.from(content, 'utf8');
    if (bytes.length > this.limits.maxWriteBytes) {
      throw new WorktreePathError(
        `The content is ${bytes.length} bytes, over the write limit of ${this.limits.maxWriteBytes}; write smaller files.`,
      );
    }
    const { relativePath, absolute } = await this.resolve(asked);
    let target = absolute;
    let created = true;
    const existing = await lstat(absolute).catch(() => undefined);
    if (existing?.isDirectory()) throw new WorktreePathError(`"${String(asked)}" is a folder; give a file path.`);
    if (existing?.isSymbolicLink()) {
      // Writing through a link is fine only when it stays inside (resolve() checked a dangling one by its parent only).
      target = await realpath(absolute).catch(() => {
        throw new WorktreePathError(
          `"${String(asked)}" is a symbolic link to a missing target; delete the link first or write another path.`,
        );
      });
      this.confine(target, String(asked));
    }
    if (existing) created = false;
    await mkdir(dirname(target), { recursive: true });
    // The folders just made must still be inside (nothing may swap a link in between).
    this.confine(await realpath(dirname(target)), String(asked));
    const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
    return { path: relativePath, sizeBytes: bytes.length, created };
  }

  async delete(asked: unknown, options: { recursive?: boolean } = {}): Promise<{ path: string; type: 'file' | 'directory' | 'symlink' }> {
    const relativePath = normalizeWorktreePath(asked);
    const absolute = join(this.root, ...relativePath.split('/'));
    // The entry itself may be a link (deleting a link never touches its target); its folder must be inside.
    this.confine(await realpathOfNearestExisting(dirname(absolute)), String(asked));
    const info = await lstat(absolute).catch(() => {
      throw new WorktreePathError(`"${String(asked)}" does not exist in the change's worktree.`);
    });
    if (info.isSymbolicLink()) {
      await unlink(absolute);
      return { path: relativePath, type: 'symlink' };
    }
    if (info.isDirectory()) {
      if (options.recursive) await rm(absolute, { recursive: true });
      else {
        try {
          await rmdir(absolute);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOTEMPTY')
            throw new WorktreePathError(
              `The folder "${String(asked)}" is not empty; delete its files first, or ask for a recursive delete.`,
            );
          throw error;
        }
      }
      return { path: relativePath, type: 'directory' };
    }
    await unlink(absolute);
    return { path: relativePath, type: 'file' };
  }
}
