import { randomBytes } from 'node:crypto';
import { copyFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { parsePatch } from 'diff';
import { LaneError } from '../../core/errors';
import { GIT_STATUS_WORDS, type NumstatEntry, type RawDiffEntry, diffHash, parseRawNumstat } from '../../core/draft/diffAnalysis';
import {
  MAX_RENDERED_BYTES_PER_FILE,
  MAX_RENDERED_LINE_LENGTH,
  MAX_RENDERED_LINES_PER_FILE,
  formatBytes,
} from '../../core/review/reviewModel';
import type { FileDiff, FileEntry } from '../../core/review/reviewProtocol';
import { assertRevision } from '../git/gitDiff';
import { git, gitBytes } from '../git/gitProcess';
import { pathExists } from '../storage/fileStore';

/**
 * The same diff whatever the user's git configuration says (external diff
 * tools, textconv filters, prefixes, relative diffs, colour).
 */
const DIFF_CONFIG = [
  '-c',
  'core.bigFileThreshold=64m',
  '-c',
  'diff.noprefix=false',
  '-c',
  'diff.mnemonicPrefix=false',
  '-c',
  'core.quotePath=false',
];
const DIFF_OPTIONS = ['--no-color', '--no-ext-diff', '--no-textconv', '--no-relative', '--find-renames'];
const ZERO_ID = /^0+$/;
const OBJECT_ID = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
const FILE_DIFF_CONCURRENCY = 4;

/** One file of the reviewed diff, with what the host needs to show and open it. */
interface ReviewFile extends FileEntry {
  oldBlob?: string;
  newBlob?: string;
}

export interface ReviewDiffListing {
  /** The canonical diff hash (the one evidence records): what an approval is bound to. */
  hash: string;
  baseSha: string;
  headSha: string;
  files: ReviewFile[];
  totals: { files: number; additions: number; deletions: number };
}

/** @internal Exported for its unit tests; the product calls it inside this module. */
export class WorktreeMissingError extends LaneError {
  constructor(readonly worktreePath: string) {
    super('worktreeMissing', `The worktree ${worktreePath} no longer exists.`);
  }
}

const STATUS_WORDS: Record<string, FileEntry['status']> = { ...GIT_STATUS_WORDS, U: 'unmerged' };

/** Blob sizes from one `cat-file --batch-check`, by id. */
async function blobSizes(repoRoot: string, ids: readonly string[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const unique = [...new Set(ids)];
  if (!unique.length) return sizes;
  const out = await git(repoRoot, ['cat-file', '--batch-check=%(objectname) %(objectsize)'], { input: `${unique.join('\n')}\n` });
  for (const line of out.stdout.split('\n')) {
    const [id, size] = line.split(' ');
    if (id && size && /^\d+$/.test(size)) sizes.set(id, Number(size));
  }
  return sizes;
}

function classify(
  entry: RawDiffEntry,
  numstat: NumstatEntry | undefined,
  sizes: ReadonlyMap<string, number>,
): Pick<FileEntry, 'display' | 'note'> {
  if (entry.oldMode === '160000' || entry.newMode === '160000') {
    return {
      display: 'submodule',
      note: `Submodule (gitlink) ${ZERO_ID.test(entry.oldSha) ? '' : `${entry.oldSha.slice(0, 10)} → `}${ZERO_ID.test(entry.newSha) ? 'removed' : entry.newSha.slice(0, 10)}`,
    };
  }
  if (!numstat || numstat.additions === null || numstat.deletions === null)
    return { display: 'binary', note: 'Binary file: not shown here. Open it to compare.' };
  const lines = numstat.additions + numstat.deletions;
  const biggest = Math.max(sizes.get(entry.oldSha) ?? 0, sizes.get(entry.newSha) ?? 0);
  if (lines > MAX_RENDERED_LINES_PER_FILE || biggest > MAX_RENDERED_BYTES_PER_FILE) {
    return {
      display: 'tooLarge',
      note: `Too large to show here (${lines.toLocaleString('en-US')} changed lines, ${formatBytes(biggest)}). Open it in VS Code's diff editor.`,
    };
  }
  if (entry.newMode === '120000' || entry.oldMode === '120000')
    return { display: 'text', note: 'Symbolic link: the diff shows its target.' };
  return { display: 'text' };
}

/**
 * Lists base..head file by file (two git processes whatever the size), with
 * line counts, how each file is shown, and the canonical diff hash.
 */
export async function listReviewDiff(repoRoot: string, baseSha: string, headSha: string): Promise<ReviewDiffListing> {
  assertRevision(baseSha, 'base');
  assertRevision(headSha, 'head');
  const out = await git(repoRoot, [
    ...DIFF_CONFIG,
    'diff',
    ...DIFF_OPTIONS,
    '--raw',
    '--numstat',
    '-z',
    '--no-abbrev',
    baseSha,
    headSha,
    '--',
  ]);
  const { raw, numstat } = parseRawNumstat(out.stdout);
  const counts = new Map<string, NumstatEntry>();
  for (const entry of numstat) counts.set(`${entry.oldPath ?? entry.path}\0${entry.path}`, entry);
  const liveIds = raw.flatMap((entry) => [entry.oldSha, entry.newSha]).filter((id) => !ZERO_ID.test(id));
  const sizes = await blobSizes(repoRoot, liveIds);
  let additions = 0;
  let deletions = 0;
  const files = raw.map((entry): ReviewFile => {
    const count = counts.get(`${entry.oldPath ?? entry.path}\0${entry.path}`);
    additions += count?.additions ?? 0;
    deletions += count?.deletions ?? 0;
    return {
      path: entry.path,
      ...(entry.oldPath !== undefined ? { oldPath: entry.oldPath } : {}),
      status: STATUS_WORDS[entry.status] ?? 'unknown',
      additions: count?.additions ?? null,
      deletions: count?.deletions ?? null,
      ...classify(entry, count, sizes),
      ...(ZERO_ID.test(entry.oldSha) ? {} : { oldBlob: entry.oldSha }),
      ...(ZERO_ID.test(entry.newSha) ? {} : { newBlob: entry.newSha }),
    };
  });
  return { hash: diffHash(raw), baseSha, headSha, files, totals: { files: files.length, additions, deletions } };
}

/** `:(literal)` so a path is never read as a glob or a magic pathspec. */
const literal = (path: string) => `:(literal)${path}`;

async function fileDiff(repoRoot: string, listing: ReviewDiffListing, file: ReviewFile): Promise<FileDiff> {
  if (file.display !== 'text') return { path: file.path, kind: file.display, message: file.note ?? '' };
  const paths = file.oldPath !== undefined && file.oldPath !== file.path ? [file.oldPath, file.path] : [file.path];
  const out = await git(repoRoot, [
    ...DIFF_CONFIG,
    'diff',
    ...DIFF_OPTIONS,
    '-U3',
    listing.baseSha,
    listing.headSha,
    '--',
    ...paths.map(literal),
  ]);
  let truncatedLines = 0;
  const hunks = parsePatch(out.stdout).flatMap((patch) =>
    patch.hunks.map((hunk) => ({
      // jsdiff counts an empty side from 1; git's header says 0.
      header: `@@ -${hunk.oldLines === 0 ? hunk.oldStart - 1 : hunk.oldStart},${hunk.oldLines} +${hunk.newLines === 0 ? hunk.newStart - 1 : hunk.newStart},${hunk.newLines} @@`,
      oldStart: hunk.oldStart,
      newStart: hunk.newStart,
      lines: hunk.lines.map((line) => {
        if (line.length <= MAX_RENDERED_LINE_LENGTH) return line;
        truncatedLines++;
        return `${line.slice(0, MAX_RENDERED_LINE_LENGTH)}…`;
      }),
    })),
  );
  if (!hunks.length) {
    const why =
      file.status === 'renamed'
        ? `Renamed from ${file.oldPath} without changes to its content.`
        : 'No changes to the content (for example, only the file mode changed).';
    return { path: file.path, kind: 'empty', message: why };
  }
  return { path: file.path, kind: 'text', hunks, truncatedLines };
}

/**
 * The diffs of some files of a listing, for the webview to render on demand.
 * Paths that are not in the listing are answered with an error, never passed to git.
 */
export async function loadFileDiffs(repoRoot: string, listing: ReviewDiffListing, paths: readonly string[]): Promise<FileDiff[]> {
  const byPath = new Map(listing.files.map((file) => [file.path, file]));
  const results: FileDiff[] = new Array(paths.length);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const index = next++;
      const path = paths[index]!;
      const file = byPath.get(path);
      if (!file) {
        results[index] = { path, kind: 'error', message: 'This file is not part of the reviewed diff.' };
        continue;
      }
      try {
        results[index] = await fileDiff(repoRoot, listing, file);
      } catch (error) {
        results[index] = {
          path,
          kind: 'error',
          message: `git could not produce this file's diff: ${(error as Error).message.split('\n')[0]}`,
        };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FILE_DIFF_CONCURRENCY, paths.length) }, worker));
  return results;
}

/**
 * The canonical diff hash of base → the worktree as it is on disk now
 * (committed or not, untracked files included, ignored files not): a
 * temporary index seeded from the worktree's own (so only changed files are
 * hashed again), `add -A`, `write-tree`. Equal to the hash of base..head when
 * the worktree is clean at head; any edit that changes content, mode or
 * names changes it, and a touch that changes nothing does not.
 */
export async function worktreeDiffHash(worktreePath: string, baseSha: string): Promise<string> {
  assertRevision(baseSha, 'base');
  if (!(await pathExists(worktreePath))) throw new WorktreeMissingError(worktreePath);
  const indexPath = (await git(worktreePath, ['rev-parse', '--git-path', 'index'])).stdout.trim();
  const realIndex = isAbsolute(indexPath) ? indexPath : join(worktreePath, indexPath);
  const tempIndex = join(tmpdir(), `agent-lanes-index-${randomBytes(6).toString('hex')}`);
  try {
    await copyFile(realIndex, tempIndex).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    const env = { GIT_INDEX_FILE: tempIndex };
    await git(worktreePath, ['add', '--all', '--', '.'], { env });
    const tree = (await git(worktreePath, ['write-tree'], { env })).stdout.trim();
    const out = await git(worktreePath, [
      ...DIFF_CONFIG,
      'diff',
      '--no-color',
      '--no-ext-diff',
      '--no-textconv',
      '--no-relative',
      '--no-renames',
      '--raw',
      '-z',
      '--no-abbrev',
      baseSha,
      tree,
      '--',
    ]);
    return diffHash(parseRawNumstat(out.stdout).raw);
  } finally {
    await unlink(tempIndex).catch(() => undefined);
  }
}

/** The contents of a blob of the repository (for the diff editors); empty for the all-zero id. */
export async function readBlob(repoRoot: string, blobId: string): Promise<Uint8Array> {
  if (ZERO_ID.test(blobId)) return new Uint8Array();
  if (!OBJECT_ID.test(blobId)) throw new Error(`"${blobId}" is not a git object id.`);
  return (await gitBytes(repoRoot, ['cat-file', 'blob', blobId])).stdout;
}

/** The commit a change's review shows: its recorded head, else the tip of its branch. */
export async function resolveReviewHead(repoRoot: string, change: { headSha?: string; branch: string }): Promise<string> {
  if (change.headSha) return change.headSha;
  assertRevision(change.branch, 'branch');
  const out = await git(repoRoot, ['rev-parse', '--verify', '--quiet', '--end-of-options', `refs/heads/${change.branch}^{commit}`], {
    okExitCodes: [1],
  });
  if (out.exitCode !== 0 || !out.stdout.trim())
    throw new Error(`The change has no head commit and its branch ${change.branch} does not exist.`);
  return out.stdout.trim();
}
