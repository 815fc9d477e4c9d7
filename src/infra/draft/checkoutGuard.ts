import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { parsePorcelainV2 } from '../../core/git/gitOutput';
import { git } from '../git/gitProcess';

/** Uncommitted files whose size and modification time are recorded, at most. */
const MAX_STATTED_FILES = 5_000;

/**
 * The user's checkout as it was: HEAD, branch, every status record (porcelain v2
 * records carry the index's object ids, so a staged change shows), and the size
 * and modification time of each uncommitted file, so a further edit to an
 * already-modified file shows too.
 */
export interface CheckoutSnapshot {
  repoRoot: string;
  takenAt: string;
  headSha?: string;
  branch?: string;
  /** Status records by path. */
  records: Record<string, string>;
  /** "size:mtimeMs:mode", or "missing", by path of each uncommitted file. */
  fileStats: Record<string, string>;
}

export interface CheckoutVerdict {
  untouched: boolean;
  /** What changed, one short sentence each (capped). */
  differences: string[];
}

async function statOf(path: string): Promise<string> {
  try {
    const info = await lstat(path);
    return `${info.size}:${info.mtimeMs}:${info.mode}`;
  } catch {
    return 'missing';
  }
}

/** Records the user's checkout before an agent starts. */
export async function snapshotCheckout(repoRoot: string): Promise<CheckoutSnapshot> {
  // --no-optional-locks: our own status must not rewrite the user's index.
  const status = await git(repoRoot, [
    '--no-optional-locks',
    'status',
    '--porcelain=v2',
    '-z',
    '--branch',
    '--untracked-files=all',
    '--ignore-submodules=none',
  ]);
  const parsed = parsePorcelainV2(status.stdout);
  const records: Record<string, string> = {};
  const fileStats: Record<string, string> = {};
  let statted = 0;
  for (const entry of parsed.entries) {
    records[entry.path] = entry.record;
    if (entry.kind === 'ignored' || statted >= MAX_STATTED_FILES) continue;
    fileStats[entry.path] = await statOf(join(repoRoot, entry.path));
    statted++;
  }
  return {
    repoRoot,
    takenAt: new Date().toISOString(),
    ...(parsed.headSha ? { headSha: parsed.headSha } : {}),
    ...(parsed.branch ? { branch: parsed.branch } : {}),
    records,
    fileStats,
  };
}

const MAX_DIFFERENCES = 50;

/** Compares two snapshots of the same checkout. */
/** @internal Exported for its unit tests; the product calls it inside this module. */
export function compareCheckoutSnapshots(before: CheckoutSnapshot, after: CheckoutSnapshot): CheckoutVerdict {
  const differences: string[] = [];
  if (before.headSha !== after.headSha)
    differences.push(`HEAD moved from ${before.headSha?.slice(0, 12) ?? '(no commit)'} to ${after.headSha?.slice(0, 12) ?? '(no commit)'}`);
  if (before.branch !== after.branch)
    differences.push(`the checked-out branch changed from ${before.branch ?? '(detached)'} to ${after.branch ?? '(detached)'}`);
  const paths = [...new Set([...Object.keys(before.records), ...Object.keys(after.records)])].sort();
  for (const path of paths) {
    const was = before.records[path];
    const now = after.records[path];
    if (was === undefined) differences.push(`${path} ${now?.startsWith('?') ? 'appeared (untracked)' : 'was changed'}`);
    else if (now === undefined) differences.push(`${path} went back to its committed state`);
    else if (was !== now) differences.push(`${path} changed its status`);
    else if (
      before.fileStats[path] !== undefined &&
      after.fileStats[path] !== undefined &&
      before.fileStats[path] !== after.fileStats[path]
    ) {
      differences.push(`${path} was modified again`);
    }
  }
  const shown = differences.slice(0, MAX_DIFFERENCES);
  if (differences.length > MAX_DIFFERENCES) shown.push(`and ${differences.length - MAX_DIFFERENCES} more`);
  return { untouched: differences.length === 0, differences: shown };
}

/**
 * Takes a new snapshot and compares it with the one taken before the agent ran.
 * A difference means the agent (or the user, working at the same time) wrote into
 * the user's own checkout: show it loudly, and flag the change (checkoutTouchedFlag).
 */
export async function verifyCheckout(before: CheckoutSnapshot): Promise<CheckoutVerdict & { after: CheckoutSnapshot }> {
  const after = await snapshotCheckout(before.repoRoot);
  return { ...compareCheckoutSnapshots(before, after), after };
}
