import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { simpleGit } from 'simple-git';

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
  const git = simpleGit({ baseDir: folder, timeout: { block: 15_000 } });
  let output: string;
  try {
    output = await git.raw(['rev-parse', '--is-bare-repository', '--is-inside-work-tree', '--git-common-dir', '--show-toplevel']);
  } catch (error) {
    const text = String((error as Error).message);
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
