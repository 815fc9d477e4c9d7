import type { Flag } from '../evidence';
import { unquoteGitPath } from '../git/gitOutput';
import { type SecretPattern, findSecrets, redactText } from '../redaction';

// ---------------------------------------------------------------------------
// Text inside bytes that git calls binary

/** Runs shorter than this carry no token any pattern finds. */
const MIN_RUN = 8;

const printable = (byte: number | undefined): boolean => byte !== undefined && ((byte >= 0x20 && byte <= 0x7e) || byte === 0x09);

/**
 * The printable text runs of a binary blob, as `strings` finds them: ASCII
 * (and the ASCII parts of UTF-8), UTF-16 little endian and big endian. A token
 * between NUL bytes, in a UTF-16 file or in an image's metadata is a run.
 */
function printableRuns(bytes: Uint8Array): string[] {
  const runs: string[] = [];
  const collect = (start: number, step: number, isChar: (i: number) => boolean, charAt: number) => {
    let run = '';
    for (let i = start; i < bytes.length; i += step) {
      if (isChar(i)) run += String.fromCharCode(bytes[i + charAt]!);
      else {
        if (run.length >= MIN_RUN) runs.push(run);
        run = '';
      }
    }
    if (run.length >= MIN_RUN) runs.push(run);
  };
  collect(0, 1, (i) => printable(bytes[i]), 0);
  if (bytes.includes(0)) {
    const le = (i: number) => printable(bytes[i]) && bytes[i + 1] === 0;
    const be = (i: number) => bytes[i] === 0 && printable(bytes[i + 1]);
    for (const start of [0, 1]) {
      collect(start, 2, le, 0);
      collect(start, 2, be, 1);
    }
  }
  return runs;
}

/** The runs of the new blob that the old one did not have (a token already in the old version is not the change's). */
export function newRuns(oldBytes: Uint8Array | undefined, newBytes: Uint8Array): string[] {
  const old = new Set(oldBytes ? printableRuns(oldBytes) : []);
  return [...new Set(printableRuns(newBytes))].filter((run) => !old.has(run));
}

// ---------------------------------------------------------------------------
// The commits between base and head

export interface HistoryCommit {
  sha: string;
  parents: string[];
  /** "name <email>" of the author and of the committer. */
  people: string;
  message: string;
}

/** Field and record marks of COMMIT_FORMAT: a record starts with RS, fields end with NUL. */
const RS = '\x1e';
/** `git log --format` for parseCommits: sha, parents, author, committer, message. */
export const COMMIT_FORMAT = '%x1e%H%x00%P%x00%an <%ae>%x00%cn <%ce>%x00%B';
const SHA = /^[0-9a-f]{40,64}$/;

/**
 * Parses `git log --format=COMMIT_FORMAT`. A record separator inside a message
 * does not start a commit whose id is not an id: that text stays in the message
 * before it, so nothing a message holds escapes the scan.
 */
export function parseCommits(output: string): HistoryCommit[] {
  const commits: HistoryCommit[] = [];
  for (const record of output.split(RS)) {
    const fields = record.split('\0');
    const sha = fields[0]?.trim() ?? '';
    if (SHA.test(sha) && fields.length >= 5) {
      commits.push({
        sha,
        parents: (fields[1] ?? '').split(' ').filter(Boolean),
        people: `${fields[2] ?? ''}\n${fields[3] ?? ''}`,
        message: fields.slice(4).join('\0'),
      });
    } else if (record && commits.length) commits[commits.length - 1]!.message += RS + record;
  }
  return commits;
}

interface HistoryFile {
  path: string;
  added: { line: number; text: string }[];
  removed: string[];
}

export interface HistoryPatch {
  sha: string;
  /** Paths a commit adds or gives a new name (from --raw). */
  names: string[];
  /** What --raw says the commit does to each path it adds or changes: the blob ids before and after. */
  changes: { path: string; oldSha: string; newSha: string; gitlink: boolean }[];
  files: HistoryFile[];
}

/** `git log` format for parseHistoryPatches: one RS-marked line per commit, before its --raw and -p output. */
export const PATCH_FORMAT = '%x1e%H';

/**
 * Parses `git log --format=PATCH_FORMAT --raw -p -U0`: per commit, the names it
 * adds and its added and removed lines per path. Hunks are read by their line
 * counts, so a content line never passes for a header.
 */
export function parseHistoryPatches(output: string): HistoryPatch[] {
  const patches: HistoryPatch[] = [];
  let patch: HistoryPatch | undefined;
  let file: HistoryFile | undefined;
  let oldPath: string | undefined;
  let oldLeft = 0;
  let newLeft = 0;
  let line = 0;
  let start = 0;
  while (start < output.length) {
    let end = output.indexOf('\n', start);
    if (end < 0) end = output.length;
    const text = output.slice(start, end);
    start = end + 1;
    if (oldLeft > 0 || newLeft > 0) {
      if (text.startsWith('+') && newLeft > 0) {
        file?.added.push({ line: line++, text: text.slice(1) });
        newLeft--;
        continue;
      }
      if (text.startsWith('-') && oldLeft > 0) {
        file?.removed.push(text.slice(1));
        oldLeft--;
        continue;
      }
      if (text.startsWith('\\')) continue;
      oldLeft = newLeft = 0;
    }
    if (text.startsWith(RS)) {
      const sha = text.slice(1).trim();
      patch = { sha, names: [], changes: [], files: [] };
      patches.push(patch);
      file = undefined;
      continue;
    }
    if (!patch) continue;
    const raw = /^:(\d{6}) (\d{6}) ([0-9a-f]+)\.* ([0-9a-f]+)\.* ([A-Z])\d*\t(.*)$/.exec(text);
    if (raw) {
      const [, oldMode, newMode, oldSha, newSha, status, paths] = raw;
      if (status === 'D' || newMode === '000000') continue;
      const parts = paths!.split('\t');
      const path = unquoteGitPath(parts[parts.length - 1]!);
      if (status !== 'M' && status !== 'T') patch.names.push(path);
      patch.changes.push({ path, oldSha: oldSha!, newSha: newSha!, gitlink: oldMode === '160000' || newMode === '160000' });
      continue;
    }
    if (text.startsWith('diff --git ')) {
      file = undefined;
      oldPath = undefined;
      continue;
    }
    if (text.startsWith('--- ')) {
      const path = unquoteGitPath(text.slice(4));
      oldPath = path === '/dev/null' ? undefined : path.replace(/^a\//, '');
      continue;
    }
    if (text.startsWith('+++ ')) {
      const path = unquoteGitPath(text.slice(4));
      const name = path === '/dev/null' ? oldPath : path.replace(/^b\//, '');
      file = name === undefined ? undefined : { path: name, added: [], removed: [] };
      if (file) patch.files.push(file);
      continue;
    }
    const hunk = /^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(text);
    if (hunk) {
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      line = Number(hunk[2]);
      newLeft = hunk[3] === undefined ? 1 : Number(hunk[3]);
    }
  }
  return patches;
}

// ---------------------------------------------------------------------------
// Flags

export interface HistoryInput {
  commits: readonly HistoryCommit[];
  /** Absent when the change is one commit on its base: its diff is the change's diff, already scanned. */
  patches?: readonly HistoryPatch[];
}

/** The tokens of `texts`, as strings (to compare history with head). */
export function secretTokens(text: string, patterns: readonly SecretPattern[]): { kind: string; token: string; index: number }[] {
  return findSecrets(text, patterns).map((match) => ({
    kind: match.kind,
    token: text.slice(match.index, match.index + match.length),
    index: match.index,
  }));
}

/** A line with NUL bytes (UTF-16, binary content shown as text) is also read with them taken out. */
function scanText(line: string): string {
  return line.includes('\0') ? `${line}\n${line.replace(/\0/g, '')}` : line;
}

const short = (sha: string) => sha.slice(0, 12);
const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

/**
 * secretInHistory flags: tokens that some commit between base and head adds
 * (to a file's lines, a file's name, its message, its author or committer) and
 * that head no longer holds, so only the history carries them, and the push
 * would publish them. A token that this or an earlier commit removed was
 * already in the base; a token head still holds is head's secretLike flag, not
 * a second one. Each file's added lines are scanned in one pass.
 */
export function historyFlags(
  history: HistoryInput,
  head: { tokens: ReadonlySet<string>; lines: { has(text: string): boolean } },
  patterns: readonly SecretPattern[],
): Flag[] {
  const flags: Flag[] = [];
  for (const commit of history.commits) {
    const people = secretTokens(commit.people, patterns);
    if (people.length)
      flags.push({
        kind: 'secretInHistory',
        detail: `The author or committer of commit ${short(commit.sha)} holds ${plural(people.length, 'secret-like token')} (${kindsOf(people)}).`,
      });
    const message = secretTokens(commit.message, patterns);
    if (message.length)
      flags.push({
        kind: 'secretInHistory',
        detail: `The message of commit ${short(commit.sha)} holds ${plural(message.length, 'secret-like token')} (${kindsOf(message)}); a push publishes it with the history.`,
      });
  }
  if (!history.patches) return flags;
  const known = new Set<string>(head.tokens);
  const reported = new Set<string>();
  const removedSoFar: string[] = [];
  for (const patch of history.patches) {
    for (const name of patch.names) {
      const found = secretTokens(name, patterns).filter((match) => !known.has(match.token));
      if (!found.length || reported.has(`name\0${name}`)) continue;
      reported.add(`name\0${name}`);
      const shown = redactText(name, patterns).text;
      flags.push({
        kind: 'secretInHistory',
        path: shown,
        detail: `Commit ${short(patch.sha)} adds a file whose name holds ${plural(found.length, 'secret-like token')} (${kindsOf(found)}): ${shown}; head no longer has it, the pushed history does.`,
      });
    }
    // What this commit and the ones before it removed: a token found there was already in the base.
    for (const file of patch.files) if (file.removed.length) removedSoFar.push(file.removed.map(scanText).join('\n'));
    for (const file of patch.files) {
      // A line head adds too was scanned with head: whatever token it holds is head's.
      const added = file.added.filter((line) => !head.lines.has(line.text));
      if (!added.length) continue;
      // One scan per file, as for head: the lines joined, a match placed back on its line.
      const starts: number[] = [];
      let offset = 0;
      const text = added
        .map((added) => {
          const line = scanText(added.text);
          starts.push(offset);
          offset += line.length + 1;
          return line;
        })
        .join('\n');
      const hits: { kind: string; line: number }[] = [];
      for (const match of secretTokens(text, patterns)) {
        if (known.has(match.token)) continue;
        known.add(match.token);
        if (removedSoFar.some((removed) => removed.includes(match.token))) continue;
        hits.push({ kind: match.kind, line: added[indexAt(starts, match.index)]!.line });
      }
      if (!hits.length) continue;
      const lines = [...new Set(hits.map((hit) => hit.line))].slice(0, 10);
      flags.push({
        kind: 'secretInHistory',
        path: file.path,
        detail: `Commit ${short(patch.sha)} adds ${plural(hits.length, 'secret-like token')} (${kindsOf(hits)}) to ${file.path} in line${lines.length === 1 ? '' : 's'} ${lines.join(', ')}; head no longer has ${hits.length === 1 ? 'it' : 'them'}, the pushed history does.`,
      });
    }
  }
  return flags;
}

/** The index of the last start at or before `index`. */
function indexAt(starts: readonly number[], index: number): number {
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (starts[mid]! <= index) low = mid;
    else high = mid - 1;
  }
  return low;
}

function kindsOf(matches: readonly { kind: string }[]): string {
  return [...new Set(matches.map((match) => match.kind))].sort().join(', ');
}
