import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { GitCommandError, git } from './gitProcess';

export type RepositoryProbe =
  | { kind: 'repository'; root: string; commonDir: string }
  | { kind: 'bare'; path: string }
  | { kind: 'notRepository'; path: string }
  | { kind: 'missing'; path: string; message: string };

/** Finds what kind of git folder a workspace folder is, without changing anything. */
export async function probeRepository(folder: string): Promise<RepositoryProbe> {
  try {
    const info = await stat(folder);
    if (!info.isDirectory()) return { kind: 'missing', path: folder, message: 'is not a folder' };
  } catch {
    return { kind: 'missing', path: folder, message: 'does not exist' };
  }
  let output: string;
  try {
    output = (
      await git(folder, ['rev-parse', '--is-bare-repository', '--is-inside-work-tree', '--git-common-dir', '--show-toplevel'], {
        timeoutMs: 15_000,
      })
    ).stdout;
  } catch (error) {
    if (!(error instanceof GitCommandError)) throw error;
    const text = error.stderr;
    if (/not a git repository/i.test(text)) return { kind: 'notRepository', path: folder };
    // `--show-toplevel` fails inside a bare repository (and inside .git).
    if (/must be run in a work tree|this operation must be run in a work tree/i.test(text)) return { kind: 'bare', path: folder };
    throw error;
  }
  const [isBare, insideWorkTree, commonDir, topLevel] = output.trim().split(/\r?\n/);
  if (isBare === 'true' || insideWorkTree !== 'true' || !topLevel) return { kind: 'bare', path: folder };
  const root = await realpath(topLevel);
  return { kind: 'repository', root, commonDir: await realpath(resolve(root, commonDir ?? '.git')) };
}
