import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const swapCase = (name: string): string =>
  [...name].map((char) => (char === char.toLowerCase() ? char.toUpperCase() : char.toLowerCase())).join('');

/**
 * Whether the file system holding `folder` ignores case (macOS and Windows by
 * default, and case-folding Linux mounts): the nearest folder name with a
 * letter, in swapped case, is found as the same folder. Only reads: the
 * checkout is never written, not even for a probe file.
 */
export async function fileSystemIgnoresCase(folder: string): Promise<boolean> {
  let current = folder;
  for (;;) {
    const name = basename(current);
    const swapped = swapCase(name);
    if (swapped !== name) {
      const [original, other] = await Promise.all([
        stat(current).catch(() => undefined),
        stat(join(dirname(current), swapped)).catch(() => undefined),
      ]);
      if (!original || !other) return false;
      return original.dev === other.dev && original.ino === other.ino;
    }
    const parent = dirname(current);
    // No letter anywhere in the path: go by the platform's default.
    if (parent === current) return process.platform === 'darwin' || process.platform === 'win32';
    current = parent;
  }
}
