import { createHash } from 'node:crypto';
import { lstat, readFile, readdir } from 'node:fs/promises';
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
  /**
   * What runs or steers git later, by name: config, hooks, info/ (attributes,
   * exclude), HEAD and every ref but the lanes' own, as digests; and the
   * ignored files of the checkout (.env), as "size:mtimeMs:mode".
   */
  gitState?: Record<string, string>;
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

const MAX_GIT_STATE_ENTRIES = 2_000;

async function digestOf(path: string): Promise<string> {
  try {
    const info = await lstat(path);
    if (info.isDirectory()) return `dir:${info.mode}`;
    if (info.isSymbolicLink()) return `link:${info.mode}`;
    return `${info.mode}:${createHash('sha256')
      .update(await readFile(path))
      .digest('hex')}`;
  } catch {
    return 'missing';
  }
}

/** Digests of the files in `dir` (recursively, capped), keyed `prefix/relative`. */
async function digestTree(dir: string, prefix: string, into: Record<string, string>): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (Object.keys(into).length >= MAX_GIT_STATE_ENTRIES) return;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await digestTree(path, `${prefix}/${entry.name}`, into);
    else into[`${prefix}/${entry.name}`] = await digestOf(path);
  }
}

/**
 * The parts of the repository a process with the user's rights could change to
 * run code or hide things later: config, hooks, info/, HEAD, refs (less the
 * lanes' own branches), and the ignored files of the checkout.
 */
async function snapshotGitState(repoRoot: string): Promise<Record<string, string>> {
  const dirs = (await git(repoRoot, ['rev-parse', '--path-format=absolute', '--git-dir', '--git-common-dir'])).stdout.trim().split('\n');
  const [gitDir, commonDir] = [dirs[0]!, dirs[1] ?? dirs[0]!];
  const files = ['config', 'config.worktree', 'packed-refs', 'HEAD', 'commondir'].flatMap((name) =>
    [...new Set([gitDir, commonDir])].map((dir) => ({ key: `${dir === gitDir ? 'git' : 'common'}:${name}`, path: join(dir, name) })),
  );
  // Independent reads, at once: the guard runs before and after every agent, so its time is the lane's.
  const trees: Record<string, string> = {};
  const [digests, , refs, ignored] = await Promise.all([
    Promise.all(files.map(async ({ key, path }) => [key, await digestOf(path)] as const)),
    (async () => {
      await digestTree(join(commonDir, 'hooks'), 'hooks', trees);
      await digestTree(join(commonDir, 'info'), 'info', trees);
    })(),
    git(repoRoot, ['for-each-ref', '--format=%(refname) %(objectname) %(symref)']),
    // Ignored files (.env) and folders, as status lists them without descending into ignored folders.
    git(repoRoot, ['--no-optional-locks', 'status', '--porcelain=v2', '-z', '--ignored=matching', '--untracked-files=normal']),
  ]);
  const state: Record<string, string> = { ...Object.fromEntries(digests), ...trees };
  for (const line of refs.stdout.split('\n')) {
    const [name, ...rest] = line.split(' ');
    if (name && !name.startsWith('refs/heads/lanes/')) state[`ref:${name}`] = rest.join(' ');
  }
  const ignoredPaths = ignored.stdout
    .split('\0')
    .filter((record) => record.startsWith('! '))
    .slice(0, MAX_GIT_STATE_ENTRIES)
    .map((record) => record.slice(2));
  const stats = await Promise.all(ignoredPaths.map((path) => statOf(join(repoRoot, path))));
  ignoredPaths.forEach((path, index) => (state[`ignored:${path}`] = stats[index]!));
  return state;
}

/** Records the user's checkout before an agent starts. */
export async function snapshotCheckout(repoRoot: string): Promise<CheckoutSnapshot> {
  // --no-optional-locks: our own status must not rewrite the user's index.
  const [status, gitState] = await Promise.all([
    git(repoRoot, [
      '--no-optional-locks',
      'status',
      '--porcelain=v2',
      '-z',
      '--branch',
      '--untracked-files=all',
      '--ignore-submodules=none',
    ]),
    snapshotGitState(repoRoot),
  ]);
  const parsed = parsePorcelainV2(status.stdout);
  const records: Record<string, string> = {};
  for (const entry of parsed.entries) records[entry.path] = entry.record;
  const statted = parsed.entries
    .filter((entry) => entry.kind !== 'ignored')
    .slice(0, MAX_STATTED_FILES)
    .map((entry) => entry.path);
  const stats = await Promise.all(statted.map((path) => statOf(join(repoRoot, path))));
  const fileStats: Record<string, string> = Object.fromEntries(statted.map((path, index) => [path, stats[index]!]));
  return {
    repoRoot,
    takenAt: new Date().toISOString(),
    gitState,
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
  if (before.gitState && after.gitState) {
    const names = [...new Set([...Object.keys(before.gitState), ...Object.keys(after.gitState)])].sort();
    for (const name of names) {
      const was = before.gitState[name];
      const now = after.gitState[name];
      if (was === now) continue;
      const [kind, ...rest] = name.split(':');
      const what = rest.join(':');
      if (kind === 'ref')
        differences.push(
          was === undefined ? `ref ${what} was created` : now === undefined ? `ref ${what} was deleted` : `ref ${what} moved`,
        );
      else if (kind === 'ignored')
        differences.push(`the ignored file ${what} ${now === 'missing' ? 'was deleted' : was === undefined ? 'appeared' : 'was modified'}`);
      else
        differences.push(
          `.git ${kind === 'git' || kind === 'common' ? what : name} ${was === undefined || was === 'missing' ? 'was created' : now === undefined || now === 'missing' ? 'was deleted' : 'was modified'}`,
        );
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
