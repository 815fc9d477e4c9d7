import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { parsePatch } from 'diff';
import { dirname, join } from 'node:path';
import { hasControlCharacters } from '../../core/draft/draft';
import { manifestKind } from '../../core/draft/dependencyManifests';
import {
  type AddedLine,
  type AddedLinesScan,
  AddedLinesReader,
  type DiffAnalysis,
  type NumstatEntry,
  type DiffAnalysisOptions,
  type RawDiffEntry,
  analyzeDiff,
  parseAddedLines,
  parseRawNumstat,
  scanAddedLines,
  symlinkEscapes,
} from '../../core/draft/diffAnalysis';
import { BUILTIN_SECRET_PATTERNS } from '../../core/redaction';
import {
  COMMIT_FORMAT,
  type HistoryCommit,
  type HistoryInput,
  type HistoryPatch,
  PATCH_FORMAT,
  newRuns,
  parseCommits,
  parseHistoryPatches,
} from '../../core/draft/historyScan';
import { git, gitBytes, gitLines } from './gitProcess';
import { isInsideFolder, realpathOfNearestExisting } from '../draft/worktreeFiles';

/** Manifests larger than this are not parsed (flagged as unreadable instead). */
const MAX_MANIFEST_BYTES = 5 * 1024 * 1024;
/** git calls a blob binary when a NUL byte occurs this early in it. */
const BINARY_CHECK_BYTES = 8000;
/** Blobs git called binary are read (to check their content) up to this size; larger ones stay binary. */
const MAX_CONTENT_CHECK_BYTES = 8 * 1024 * 1024;
const ZERO_ID = /^0+$/;

/**
 * Options that make the diff independent of the user's git configuration
 * (external diff tools, textconv filters, prefixes, relative diffs) and keep huge
 * files out of the text diff.
 */
const DIFF_CONFIG = ['-c', 'core.bigFileThreshold=64m', '-c', 'diff.noprefix=false', '-c', 'diff.mnemonicPrefix=false'];
const DIFF_OPTIONS = ['--no-color', '--no-ext-diff', '--no-textconv', '--no-relative', '--find-renames'];

export interface AnalyzeChangeOptions extends DiffAnalysisOptions {
  /** The user's repository (its checkout is only read: the attributes come from there, not from the agent's worktree). */
  repoRoot: string;
  baseSha: string;
  /** The lane's head commit. */
  headSha: string;
  /** The change's worktree at headSha: symlinks are also resolved on disk, through links that already existed. */
  worktreePath?: string;
}

/** Refuses what could be read as an option or carries spaces or control characters. */
export function assertRevision(value: string, what: string): void {
  if (!value || value.startsWith('-') || value.includes(' ') || hasControlCharacters(value))
    throw new Error(`The ${what} "${value}" is not a commit id or ref.`);
}

/** Blob sizes (from `cat-file --batch-check`), by blob id. */
async function blobSizes(repoRoot: string, ids: readonly string[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  if (!ids.length) return sizes;
  const out = await git(repoRoot, ['cat-file', '--batch-check=%(objectname) %(objectsize)'], { input: `${ids.join('\n')}\n` });
  for (const line of out.stdout.split('\n')) {
    const [id, size] = line.split(' ');
    if (id && size && /^\d+$/.test(size)) sizes.set(id, Number(size));
  }
  return sizes;
}

/** Blob contents (from `cat-file --batch`), by blob id. */
async function blobContents(repoRoot: string, ids: readonly string[]): Promise<Map<string, Buffer>> {
  const contents = new Map<string, Buffer>();
  const unique = [...new Set(ids)];
  if (!unique.length) return contents;
  const out = Buffer.from((await gitBytes(repoRoot, ['cat-file', '--batch'], { input: `${unique.join('\n')}\n` })).stdout);
  let offset = 0;
  while (offset < out.length) {
    const newline = out.indexOf(0x0a, offset);
    if (newline < 0) break;
    const header = out.subarray(offset, newline).toString('utf8').split(' ');
    offset = newline + 1;
    if (header[1] === 'missing' || header.length < 3) continue;
    const size = Number(header[2]);
    contents.set(header[0]!, out.subarray(offset, offset + size));
    offset += size + 1;
  }
  return contents;
}

/** `:(literal)` so a path is never read as a glob or a magic pathspec. */
const literal = (path: string) => `:(literal)${path}`;

/**
 * Line counts and added lines of files that git called binary although their
 * content is text. `--text` makes the patch ignore the attributes (numstat does
 * not), so the counts come from its zero-context hunks.
 */
async function diffAsText(
  repoRoot: string,
  baseSha: string,
  headSha: string,
  entries: readonly RawDiffEntry[],
): Promise<{ numstat: NumstatEntry[]; addedLines: Map<string, AddedLine[]> }> {
  const paths = [...new Set(entries.flatMap((entry) => (entry.oldPath !== undefined ? [entry.oldPath, entry.path] : [entry.path])))];
  const out = await git(repoRoot, [
    ...DIFF_CONFIG,
    '-c',
    'core.quotePath=false',
    'diff',
    ...DIFF_OPTIONS,
    '--text',
    '-U0',
    '--src-prefix=a/',
    '--dst-prefix=b/',
    baseSha,
    headSha,
    '--',
    ...paths.map(literal),
  ]);
  const numstat: NumstatEntry[] = [];
  for (const patch of parsePatch(out.stdout)) {
    const path =
      patch.newFileName && patch.newFileName !== '/dev/null'
        ? patch.newFileName.replace(/^b\//, '')
        : patch.oldFileName?.replace(/^a\//, '');
    if (!path) continue;
    const count = (side: 'oldLines' | 'newLines') => patch.hunks.reduce((sum, hunk) => sum + hunk[side], 0);
    numstat.push({ path, additions: count('newLines'), deletions: count('oldLines') });
  }
  return { numstat, addedLines: parseAddedLines(out.stdout) };
}

/** The gzip stream's content (up to the content check limit), or undefined when it is not one. */
function gunzipped(bytes: Uint8Array | undefined): Buffer | undefined {
  if (!bytes || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return undefined;
  try {
    return gunzipSync(bytes, { maxOutputLength: MAX_CONTENT_CHECK_BYTES });
  } catch {
    // Not gzip after all, or larger than the limit: its printable runs were read as they are.
    return undefined;
  }
}

const HISTORY_OPTIONS = [
  '--no-show-signature',
  '--no-abbrev',
  '--diff-merges=first-parent',
  // A root commit (an unrelated history merged in) shows what it adds, whatever log.showRoot says.
  '--root',
  `--format=${PATCH_FORMAT}`,
  '--src-prefix=a/',
  '--dst-prefix=b/',
];

/** No commit, or one commit whose only parent is the base: the change's diff is that commit's own. */
function isOneCommitOn(commits: readonly HistoryCommit[], baseSha: string): boolean {
  return commits.length === 0 || (commits.length === 1 && commits[0]!.parents.length === 1 && commits[0]!.parents[0] === baseSha);
}

/**
 * The commits base..head (messages, author, committer) and, when the change is
 * more than one commit on its base, what each commit adds against its first
 * parent. A path whose blobs a commit changes exactly as the whole change does
 * (base's blob to head's) was scanned with head, and a pair of blobs seen in an
 * earlier commit was scanned there: their patches are never asked for. So a
 * change of one commit costs nothing more than its log, and one of many commits
 * a `--raw` walk plus the patches of the commits that hold something new.
 * Attributes and textconv decide nothing (`--text`, `--no-textconv`).
 */
async function readHistory(
  repoRoot: string,
  baseSha: string,
  headSha: string,
  log: string,
  raw: readonly RawDiffEntry[],
): Promise<HistoryInput> {
  const commits = parseCommits(log);
  if (isOneCommitOn(commits, baseSha)) return { commits };
  const config = [...DIFF_CONFIG, '-c', 'core.quotePath=false'];
  const listed = parseHistoryPatches(
    (await git(repoRoot, [...config, 'log', ...DIFF_OPTIONS, ...HISTORY_OPTIONS, '--reverse', '--raw', `${baseSha}..${headSha}`, '--']))
      .stdout,
  );
  const asInHead = new Set(raw.map((entry) => `${entry.path}\0${entry.oldSha}\0${entry.newSha}`));
  const seenPairs = new Set<string>();
  const wanted = new Set<string>();
  const wantedCommits: string[] = [];
  for (const patch of listed) {
    for (const change of patch.changes) {
      const pair = `${change.oldSha}\0${change.newSha}`;
      if (change.gitlink || asInHead.has(`${change.path}\0${pair}`) || seenPairs.has(pair)) continue;
      seenPairs.add(pair);
      wanted.add(`${patch.sha}\0${change.path}`);
      if (wantedCommits[wantedCommits.length - 1] !== patch.sha) wantedCommits.push(patch.sha);
    }
  }
  const files = new Map<string, HistoryPatch['files']>();
  if (wantedCommits.length) {
    const out = await git(
      repoRoot,
      [...config, 'log', ...DIFF_OPTIONS, ...HISTORY_OPTIONS, '--text', '-p', '-U0', '--no-walk=unsorted', '--stdin', '--'],
      { input: `${wantedCommits.join('\n')}\n` },
    );
    for (const patch of parseHistoryPatches(out.stdout))
      files.set(
        patch.sha,
        patch.files.filter((file) => wanted.has(`${patch.sha}\0${file.path}`)),
      );
  }
  return { commits, patches: listed.map((patch) => ({ ...patch, files: files.get(patch.sha) ?? [] })) };
}

/** Symlinks of the diff that resolve outside the worktree on disk (e.g. through a link that already existed). */
async function symlinksEscapingOnDisk(worktreePath: string, links: ReadonlyMap<string, string>): Promise<Set<string>> {
  const escaping = new Set<string>();
  if (!links.size) return escaping;
  const root = await realpath(worktreePath);
  for (const [path, target] of links) {
    if (symlinkEscapes(path, target)) continue;
    const resolved = await realpath(join(root, path)).catch(() => realpathOfNearestExisting(join(root, dirname(path), target)));
    if (!isInsideFolder(root, resolved, true)) escaping.add(path);
  }
  return escaping;
}

/**
 * A copy of a string that shares no memory with the one it came from: a path
 * or token sliced from a chunk of git's output would otherwise keep the whole
 * chunk (64 KiB) alive as long as it is kept.
 */
const ownCopy = (text: string) => Buffer.from(text, 'utf16le').toString('utf16le');

function mergeScans(a: AddedLinesScan, b: AddedLinesScan): AddedLinesScan {
  return {
    count: a.count + b.count,
    kinds: [...new Set([...a.kinds, ...b.kinds])].sort(),
    lines: [...new Set([...a.lines, ...b.lines])].slice(0, 10),
    tokens: [...a.tokens, ...b.tokens],
  };
}

/** A line's digest: head's added lines are kept as these (not as text) for the history scan to compare with. */
const lineDigest = (text: string) => createHash('sha256').update(text).digest('base64');

/**
 * The zero-context patch of base..head read as a stream: each file's added
 * lines are scanned when its section ends and only the scan is kept, so memory
 * does not grow with the patch. While `keepLines` is unsettled, and after when
 * it says yes (the change has more than one commit, whose own diffs are
 * compared with head's lines), a digest of every added line is kept too.
 */
async function scanPatch(
  repoRoot: string,
  baseSha: string,
  headSha: string,
  patterns: AnalyzeChangeOptions['secretPatterns'],
  keepLines: Promise<boolean>,
): Promise<{ scans: Map<string, AddedLinesScan>; lines: Set<string> }> {
  const scans = new Map<string, AddedLinesScan>();
  const lines = new Set<string>();
  // Read beside the log, which decides whether head's lines are kept: kept until it says no, then dropped.
  let keep: boolean | undefined;
  const decided = keepLines.then(
    (value) => (keep = value),
    () => (keep = false),
  );
  void decided.then(() => keep || lines.clear());
  const reader = new AddedLinesReader((path, added) => {
    if (keep !== false) for (const line of added) lines.add(lineDigest(line.text));
    if (!added.length) return;
    const found = scanAddedLines(added, patterns ?? BUILTIN_SECRET_PATTERNS);
    const scan = { ...found, tokens: found.tokens.map(ownCopy) };
    // A path git shows in two places apart (git never does in one diff) keeps what both scans found.
    const key = ownCopy(path);
    const earlier = scans.get(key);
    scans.set(key, earlier ? mergeScans(earlier, scan) : scan);
  });
  await gitLines(
    repoRoot,
    [...DIFF_CONFIG, 'diff', ...DIFF_OPTIONS, '-U0', '--src-prefix=a/', '--dst-prefix=b/', baseSha, headSha, '--'],
    (line) => reader.line(line),
  );
  reader.end();
  if (!(await decided)) lines.clear();
  return { scans, lines };
}

/**
 * Analyses base..head of a change with four git processes whatever its size:
 * raw + numstat, a zero-context patch for the added lines (read as a stream:
 * each file's added lines are scanned and dropped), and two cat-file batches
 * (sizes; symlink targets, manifests, and files git called binary, whose
 * content decides: text called binary by an attribute gets two more, as text).
 */
export async function analyzeChange(options: AnalyzeChangeOptions): Promise<DiffAnalysis> {
  const { repoRoot, baseSha, headSha } = options;
  assertRevision(baseSha, 'base');
  assertRevision(headSha, 'head');
  const patterns = options.secretPatterns ?? BUILTIN_SECRET_PATTERNS;
  const rawRead = git(repoRoot, [
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
  // Awaited below; until then a failure must not count as unhandled.
  rawRead.catch(() => undefined);
  // The log beside the patch: only a change of more than one commit needs head's lines kept for the history scan.
  const logRead = git(repoRoot, ['log', '--no-show-signature', `--format=${COMMIT_FORMAT}`, `${baseSha}..${headSha}`, '--']);
  const keepRead = logRead.then((log) => !isOneCommitOn(parseCommits(log.stdout), baseSha));
  const patchRead = scanPatch(repoRoot, baseSha, headSha, patterns, keepRead);
  patchRead.catch(() => undefined);
  const logOut = await logRead;
  const keepLines = await keepRead;
  const { raw, numstat } = parseRawNumstat((await rawRead).stdout);
  const historyRead = readHistory(repoRoot, baseSha, headSha, logOut.stdout, raw);
  historyRead.catch(() => undefined);
  const { scans, lines: headLineDigests } = await patchRead;

  const live = raw.filter((entry) => entry.status !== 'D' && entry.newMode !== '160000');
  // Binary to git may only mean an attribute (`-diff`, `binary`, e.g. planted in .git/info/attributes) says so.
  const countsByPath = new Map(numstat.map((entry) => [entry.path, entry]));
  const calledBinary = raw.filter(
    (entry) => countsByPath.get(entry.path)?.additions === null && entry.oldMode !== '160000' && entry.newMode !== '160000',
  );
  const calledBinaryIds = calledBinary.flatMap((entry) => [entry.oldSha, entry.newSha]).filter((id) => !ZERO_ID.test(id));
  const sizes = await blobSizes(repoRoot, [...new Set([...live.map((entry) => entry.newSha), ...calledBinaryIds])]);

  const links = live.filter((entry) => entry.newMode === '120000');
  const manifests = raw.filter((entry) => entry.status !== 'D' && manifestKind(entry.path) === 'manifest');
  const wanted: string[] = links.map((entry) => entry.newSha);
  const readable = (id: string) => (sizes.get(id) ?? Infinity) <= MAX_MANIFEST_BYTES;
  const oldIds = new Map<RawDiffEntry, string>();
  for (const entry of manifests) {
    if (readable(entry.newSha)) wanted.push(entry.newSha);
    if (!/^0+$/.test(entry.oldSha) && entry.oldMode !== '160000' && entry.status !== 'C') {
      oldIds.set(entry, entry.oldSha);
      wanted.push(entry.oldSha);
    }
  }
  const checkable = (entry: RawDiffEntry) =>
    [entry.oldSha, entry.newSha].every((id) => ZERO_ID.test(id) || (sizes.get(id) ?? Infinity) <= MAX_CONTENT_CHECK_BYTES);
  for (const entry of calledBinary.filter(checkable)) wanted.push(...[entry.oldSha, entry.newSha].filter((id) => !ZERO_ID.test(id)));
  const contents = await blobContents(repoRoot, wanted);
  const textByContent = calledBinary.filter(
    (entry) =>
      checkable(entry) &&
      [entry.oldSha, entry.newSha].every((id) => ZERO_ID.test(id) || !contents.get(id)?.subarray(0, BINARY_CHECK_BYTES).includes(0)),
  );
  if (textByContent.length) {
    const text = await diffAsText(repoRoot, baseSha, headSha, textByContent);
    for (const entry of text.numstat) {
      const index = numstat.findIndex((counted) => counted.path === entry.path);
      if (index >= 0) numstat[index] = entry;
    }
    for (const [path, lines] of text.addedLines) {
      scans.set(path, scanAddedLines(lines, patterns));
      if (keepLines) for (const line of lines) headLineDigests.add(lineDigest(line.text));
    }
  }
  // Binary stays binary, but its printable text (and a gzip stream's) is scanned: the runs its old version did not have.
  const binaryTexts = new Map<string, string[]>();
  const asText = new Set(textByContent);
  for (const entry of calledBinary) {
    if (asText.has(entry) || !checkable(entry) || ZERO_ID.test(entry.newSha) || entry.newMode === '120000') continue;
    const newBytes = contents.get(entry.newSha);
    if (!newBytes) continue;
    const oldBytes = ZERO_ID.test(entry.oldSha) ? undefined : contents.get(entry.oldSha);
    const runs = newRuns(oldBytes, newBytes);
    const unpacked = gunzipped(newBytes);
    if (unpacked) runs.push(...newRuns(gunzipped(oldBytes), unpacked));
    if (runs.length) binaryTexts.set(entry.path, runs);
  }
  const symlinkTargets = new Map(links.map((entry) => [entry.path, contents.get(entry.newSha)?.toString('utf8') ?? ''] as const));
  const manifestTexts = new Map<string, { old?: string; new?: string }>();
  for (const entry of manifests) {
    const newText = contents.get(entry.newSha)?.toString('utf8');
    const oldId = oldIds.get(entry);
    const oldText = oldId ? contents.get(oldId)?.toString('utf8') : undefined;
    manifestTexts.set(entry.path, {
      ...(newText !== undefined ? { new: newText } : {}),
      ...(oldText !== undefined ? { old: oldText } : {}),
    });
  }
  const symlinkEscapesOnDisk = options.worktreePath ? await symlinksEscapingOnDisk(options.worktreePath, symlinkTargets) : undefined;

  return analyzeDiff(
    {
      raw,
      numstat,
      blobSizes: sizes,
      symlinkTargets,
      addedLineScans: scans,
      headLines: { has: (text) => headLineDigests.has(lineDigest(text)) },
      manifests: manifestTexts,
      binaryTexts,
      history: await historyRead,
      ...(symlinkEscapesOnDisk ? { symlinkEscapesOnDisk } : {}),
    },
    options,
  );
}
