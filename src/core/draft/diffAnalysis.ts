import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import picomatch from 'picomatch';
import { addedDependencies, manifestKind } from './dependencyManifests';
import type { FileChange, Flag, FlagKind } from '../evidence';
import { unquoteGitPath } from '../git/gitOutput';
import { isGitComponent } from './worktreePaths';
import { BUILTIN_SECRET_PATTERNS, type SecretPattern, redactText } from '../redaction';
import { type HistoryInput, historyFlags, secretTokens } from './historyScan';
import { LaneError } from '../errors';

// ---------------------------------------------------------------------------
// Parsing git's output

export interface RawDiffEntry {
  /** A, M, D, R, C, T (type change), U, X. */
  status: string;
  /** Similarity for R and C. */
  score?: number;
  oldMode: string;
  newMode: string;
  oldSha: string;
  newSha: string;
  path: string;
  oldPath?: string;
}

export interface NumstatEntry {
  path: string;
  oldPath?: string;
  /** null for a binary file. */
  additions: number | null;
  deletions: number | null;
}

/** @internal Exported for its unit tests; the product calls it inside this module. */
export class DiffParseError extends LaneError {
  override name = 'DiffParseError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('diffParse', message, options);
  }
}

/** Parses `git diff --raw --numstat -z` (raw records first, then numstat records). */
export function parseRawNumstat(output: string): { raw: RawDiffEntry[]; numstat: NumstatEntry[] } {
  const fields = output.split('\0');
  const raw: RawDiffEntry[] = [];
  const numstat: NumstatEntry[] = [];
  let i = 0;
  const next = (what: string): string => {
    const field = fields[i++];
    if (field === undefined) throw new DiffParseError(`git diff output ended early (expected ${what}).`);
    return field;
  };
  while (i < fields.length) {
    const field = fields[i++]!;
    if (field === '' && i >= fields.length) break;
    if (field.startsWith(':')) {
      const match = /^:(\d{6}) (\d{6}) ([0-9a-f]+) ([0-9a-f]+) ([A-Z])(\d*)$/.exec(field);
      if (!match) throw new DiffParseError(`Unexpected raw diff record "${field.slice(0, 80)}".`);
      const [, oldMode, newMode, oldSha, newSha, status, score] = match;
      const entry: RawDiffEntry = { status: status!, oldMode: oldMode!, newMode: newMode!, oldSha: oldSha!, newSha: newSha!, path: '' };
      if (score) entry.score = Number(score);
      if (status === 'R' || status === 'C') {
        entry.oldPath = next('the source path');
        entry.path = next('the destination path');
      } else {
        entry.path = next('a path');
      }
      raw.push(entry);
      continue;
    }
    const match = /^(-|\d+)\t(-|\d+)\t([\s\S]*)$/.exec(field);
    if (!match) throw new DiffParseError(`Unexpected numstat record "${field.slice(0, 80)}".`);
    const [, added, deleted, path] = match;
    const entry: NumstatEntry = {
      additions: added === '-' ? null : Number(added),
      deletions: deleted === '-' ? null : Number(deleted),
      path: path!,
    };
    if (path === '') {
      entry.oldPath = next('the source path');
      entry.path = next('the destination path');
    }
    numstat.push(entry);
  }
  return { raw, numstat };
}

export interface AddedLine {
  line: number;
  text: string;
}

/**
 * Reads `git diff -U0` output one line at a time and hands over each file's
 * added lines when its section ends (a new `diff --git`, a new `+++` header or
 * the end), so a patch of any size is read holding one file at a time. Only
 * what follows a `+++ b/…` header counts, so binary sections and deletions add
 * nothing. Consecutive sections of one path (a type change is a deletion and an
 * addition) are handed over as one.
 */
export class AddedLinesReader {
  /** The path being read and its lines, kept until another path starts. */
  private path: string | undefined;
  private pending: AddedLine[] = [];
  /** Where an added line goes: the pending lines inside a `+++ b/…` section, else nowhere. */
  private current: AddedLine[] | undefined;
  private lineNumber = 0;
  private inHunk = false;

  constructor(
    private readonly onFile: (path: string, lines: AddedLine[]) => void,
    private readonly dstPrefix = 'b/',
  ) {}

  line(line: string): void {
    if (line.startsWith('diff --git ')) {
      this.current = undefined;
      this.inHunk = false;
      return;
    }
    if (!this.inHunk || line.startsWith('@@')) {
      if (line.startsWith('+++ ')) {
        const target = unquoteGitPath(line.slice(4));
        if (target === '/dev/null') this.current = undefined;
        else {
          const path = target.startsWith(this.dstPrefix) ? target.slice(this.dstPrefix.length) : target;
          if (path !== this.path) {
            this.flush();
            this.path = path;
            this.pending = [];
          }
          this.current = this.pending;
        }
        return;
      }
      const hunk = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
      if (hunk) {
        this.lineNumber = Number(hunk[1]);
        this.inHunk = this.current !== undefined;
      }
      return;
    }
    if (line.startsWith('+')) {
      this.current!.push({ line: this.lineNumber, text: line.slice(1) });
      this.lineNumber++;
    } else if (line.startsWith(' ')) {
      this.lineNumber++;
    } else if (!line.startsWith('-') && !line.startsWith('\\')) {
      this.inHunk = false;
    }
  }

  /** Hands over the last file. */
  end(): void {
    this.flush();
  }

  private flush(): void {
    if (this.path !== undefined) this.onFile(this.path, this.pending);
    this.path = undefined;
    this.pending = [];
    this.current = undefined;
  }
}

/** Added lines per (new) path from a whole `git diff -U0` output (see AddedLinesReader). */
export function parseAddedLines(patch: string, dstPrefix = 'b/'): Map<string, AddedLine[]> {
  const added = new Map<string, AddedLine[]>();
  const reader = new AddedLinesReader((path, lines) => added.set(path, [...(added.get(path) ?? []), ...lines]), dstPrefix);
  let start = 0;
  while (start < patch.length) {
    let end = patch.indexOf('\n', start);
    if (end < 0) end = patch.length;
    reader.line(patch.slice(start, end));
    start = end + 1;
  }
  reader.end();
  return added;
}

/** What the secret scan found in one file's added lines: all the review needs of them. */
export interface AddedLinesScan {
  /** Matches, in the order found. */
  count: number;
  /** Their kinds, sorted, each once. */
  kinds: string[];
  /** The first 10 distinct line numbers holding a match. */
  lines: number[];
  /** The tokens themselves (head's tokens: the history scan reports only what head no longer holds). */
  tokens: string[];
}

/** Scans one file's added lines in one pass (the lines joined, each match placed back on its line). */
export function scanAddedLines(lines: readonly AddedLine[], patterns: readonly SecretPattern[]): AddedLinesScan {
  const starts: number[] = [];
  let offset = 0;
  const text = lines
    .map((line) => {
      starts.push(offset);
      offset += line.text.length + 1;
      return line.text;
    })
    .join('\n');
  const found = secretTokens(text, patterns);
  return {
    count: found.length,
    kinds: [...new Set(found.map((match) => match.kind))].sort(),
    lines: [...new Set(found.map((match) => lineNumberOf(lines, starts, match.index)))].slice(0, 10),
    tokens: found.map((match) => match.token),
  };
}

// ---------------------------------------------------------------------------
// The diff hash

export const GIT_STATUS_WORDS: Record<string, FileChange['status']> = {
  A: 'added',
  M: 'modified',
  D: 'deleted',
  R: 'renamed',
  C: 'copied',
  T: 'typeChanged',
};

/**
 * SHA-256 (hex) of the RFC 8785 canonical JSON of the change's entries, with
 * renames and copies undone into deletions and additions, sorted by path: every
 * side of every touched path as (path, mode, blob id). It depends only on the two
 * trees, not on rename detection, diff algorithm or git configuration, and any
 * change to a touched file's bytes, mode or name changes it.
 */
export function diffHash(raw: readonly RawDiffEntry[]): string {
  const ZERO = /^0+$/;
  const entries: { path: string; old: [string, string] | null; new: [string, string] | null }[] = [];
  for (const entry of raw) {
    if (entry.status === 'R' && entry.oldPath !== undefined) {
      entries.push({ path: entry.oldPath, old: [entry.oldMode, entry.oldSha], new: null });
      entries.push({ path: entry.path, old: null, new: [entry.newMode, entry.newSha] });
    } else if (entry.status === 'C') {
      entries.push({ path: entry.path, old: null, new: [entry.newMode, entry.newSha] });
    } else {
      entries.push({
        path: entry.path,
        old: ZERO.test(entry.oldMode) ? null : [entry.oldMode, entry.oldSha],
        new: ZERO.test(entry.newMode) ? null : [entry.newMode, entry.newSha],
      });
    }
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const canonical = canonicalize({ version: 1, entries }) ?? '';
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

// ---------------------------------------------------------------------------
// Flags

/** Security-sensitive paths flagged when policy gives no list: auth, crypto, secrets, CI. */
const DEFAULT_SENSITIVE_PATHS: readonly string[] = Object.freeze([
  // auth
  '**/{auth,authn,authz,authentication,authorization,oauth,oauth2,oidc,saml,sso,login,session,sessions,permissions,rbac,acl,iam}/**',
  '**/*{,_,-,.}{auth,authn,authz,authentication,authorization,oidc,saml,sso,login,session,password,passwd,permission,permissions,rbac,acl}{,.*,_*,-*}',
  // crypto
  '**/{crypto,cryptography,encryption,tls,ssl,certs,certificates,pki,kms}/**',
  '**/*{,_,-,.}{crypto,cipher,encrypt,decrypt,encryption,signing,hmac,jwt,tls,ssl}{,.*,_*,-*}',
  '**/*.{pem,key,p12,pfx,crt,cer,der,jks,keystore,gpg,asc}',
  // secrets
  '**/{secrets,secret,credentials,creds,vault}/**',
  '**/*{,_,-,.}{secret,secrets,credential,credentials,creds,vault,apikey,api-key,api_key}{,.*,_*,-*}',
  '**/.env',
  '**/.env.*',
  '**/{.npmrc,.pypirc,.netrc,.pgpass,.htpasswd}',
  '**/id_{rsa,dsa,ecdsa,ed25519}*',
  '**/.ssh/**',
  '**/.aws/**',
  '**/kubeconfig*',
  // CI and review routing
  '.github/workflows/**',
  '.github/actions/**',
  '**/action.{yml,yaml}',
  '.github/dependabot.{yml,yaml}',
  '**/CODEOWNERS',
  '.gitlab-ci.yml',
  '.gitlab/**',
  '.circleci/**',
  'azure-pipelines*.{yml,yaml}',
  '.azure-pipelines/**',
  '**/Jenkinsfile',
  '.buildkite/**',
  'bitbucket-pipelines.yml',
  '.travis.yml',
  '.drone.yml',
  '.woodpecker/**',
  '.woodpecker.{yml,yaml}',
  'cloudbuild.{yml,yaml}',
]);

/**
 * Files whose contents run code later, outside the sandbox: when a person opens
 * the folder, starts a debug session, commits, or an agent tool loads its
 * configuration; and `.gitattributes`, which chooses filters and diff drivers.
 */
const EXECUTES_LATER_PATHS: readonly string[] = Object.freeze([
  '.vscode/tasks.json',
  '.vscode/launch.json',
  '.vscode/settings.json',
  '**/*.code-workspace',
  '.claude/settings.json',
  '.claude/settings.local.json',
  '.mcp.json',
  '.cursor/**',
  '.husky/**',
  '**/.gitattributes',
]);
/** package.json members that name commands npm, pnpm or yarn run (scripts) or link onto PATH (bin). */
const PACKAGE_RUN_KEYS = ['scripts', 'bin', 'directories.bin'] as const;

/** The package.json members among PACKAGE_RUN_KEYS that differ between two versions; undefined when one cannot be read. */
function changedRunKeys(oldText: string | undefined, newText: string): string[] | undefined {
  const read = (text: string | undefined): Record<string, unknown> | undefined => {
    if (text === undefined) return {};
    try {
      const value: unknown = JSON.parse(text);
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const before = read(oldText);
  const after = read(newText);
  if (!before || !after) return undefined;
  const member = (json: Record<string, unknown>, key: string): string => {
    let value: unknown = json;
    for (const part of key.split('.'))
      value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    return canonicalize(value ?? null) ?? '';
  };
  return PACKAGE_RUN_KEYS.filter((key) => member(before, key) !== member(after, key));
}

const isExecutableMode = (mode: string | undefined): boolean => mode === '100755';

const SANDBOX_CONFIG_PATHS: readonly string[] = Object.freeze([
  '.devcontainer/**',
  '.devcontainer.json',
  '.lanes/lanes.yaml',
  '.lanes/lanes.yml',
]);
const POLICY_FILE_PATHS: readonly string[] = Object.freeze(['.lanes/policy.yaml', '.lanes/policy.yml']);
const AGENT_INSTRUCTION_PATHS: readonly string[] = Object.freeze([
  '**/AGENTS.md',
  '**/CLAUDE.md',
  '**/GEMINI.md',
  '.github/copilot-instructions.md',
  '.github/instructions/**',
  '.github/prompts/**',
  '.cursorrules',
  '.cursor/rules/**',
  '.windsurfrules',
  '.clinerules',
]);

interface ScopeLimits {
  /** More files than this is unusual. */
  maxFiles: number;
  /** More distinct top-level folders than this is unusual. */
  maxTopLevelDirs: number;
  /** More changed lines (additions + deletions) than this is unusual. */
  maxChangedLines: number;
}

const DEFAULT_SCOPE_LIMITS: ScopeLimits = Object.freeze({ maxFiles: 100, maxTopLevelDirs: 6, maxChangedLines: 5_000 });
const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;
const DEFAULT_MAX_FLAGS_PER_KIND = 50;

export interface DiffAnalysisOptions {
  /** Globs (picomatch, case-insensitive, dot files included) from policy, flagged in addition to DEFAULT_SENSITIVE_PATHS. */
  sensitivePaths?: readonly string[];
  /** A new or edited file larger than this is flagged oversizedFile. */
  maxFileBytes?: number;
  scope?: Partial<ScopeLimits>;
  secretPatterns?: readonly SecretPattern[];
  /** Beyond this many flags of one kind, one summary flag stands for the rest. */
  maxFlagsPerKind?: number;
}

export interface DiffAnalysisInput {
  raw: readonly RawDiffEntry[];
  numstat: readonly NumstatEntry[];
  /** Sizes of new-side blobs, by blob id. */
  blobSizes: ReadonlyMap<string, number>;
  /** Symbolic link targets, by (new) path. */
  symlinkTargets: ReadonlyMap<string, string>;
  /** Symlinks that resolve outside the worktree on disk (infra's realpath check), by path. */
  symlinkEscapesOnDisk?: ReadonlySet<string>;
  /** Added lines by (new) path (the whole text: tests and small diffs). */
  addedLines?: ReadonlyMap<string, readonly AddedLine[]>;
  /**
   * Or, read as a stream: the scan of each (new) path's added lines
   * (scanAddedLines with the same patterns), and a membership test for the
   * lines head adds (needed only when history has patches). Takes the place of
   * addedLines.
   */
  addedLineScans?: ReadonlyMap<string, AddedLinesScan>;
  headLines?: { has(text: string): boolean };
  /** Old and new text of dependency manifests, by (new) path. */
  manifests: ReadonlyMap<string, { old?: string; new?: string }>;
  /** Printable text runs that a binary file's new version adds (infra's printableRuns, unpacked when gzip), by path. */
  binaryTexts?: ReadonlyMap<string, readonly string[]>;
  /** The commits between base and head: messages, people, and (when more than one) each commit's own diff. */
  history?: HistoryInput;
}

export interface DiffAnalysis {
  hash: string;
  files: FileChange[];
  totals: { files: number; additions: number; deletions: number };
  flags: Flag[];
}

/** `..`, `.` or empty components, or an absolute path: none of which git stores, so someone crafted it. */
function hasTraversal(path: string): boolean {
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return true;
  return path.split(/[\\/]/).some((part) => part === '..');
}

/** A `.git` component, including the spellings other file systems treat as `.git`. */
function hasGitComponent(path: string): boolean {
  return path.split(/[\\/]/).some(isGitComponent);
}

/** Whether a link at `linkPath` (relative to the root) pointing at `target` leaves the root, lexically. */
export function symlinkEscapes(linkPath: string, target: string): boolean {
  if (target.startsWith('/') || /^[A-Za-z]:[\\/]/.test(target) || target.startsWith('\\') || target.startsWith('~')) return true;
  const parts = linkPath.split('/').slice(0, -1);
  for (const part of target.split(/[\\/]/)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return true;
      parts.pop();
    } else parts.push(part);
  }
  return false;
}

function isGitlinkMode(mode: string): boolean {
  return mode === '160000';
}

class FlagCollector {
  private readonly flags: Flag[] = [];
  private readonly counts = new Map<FlagKind, number>();
  constructor(private readonly maxPerKind: number) {}

  add(kind: FlagKind, detail: string, path?: string): void {
    const count = (this.counts.get(kind) ?? 0) + 1;
    this.counts.set(kind, count);
    if (count <= this.maxPerKind) this.flags.push({ kind, detail, ...(path !== undefined ? { path } : {}) });
  }

  result(): Flag[] {
    const flags = [...this.flags];
    for (const [kind, count] of this.counts) {
      if (count > this.maxPerKind) flags.push({ kind, detail: `…and ${count - this.maxPerKind} more of this kind.` });
    }
    return flags;
  }
}

function lineNumberOf(lines: readonly AddedLine[], starts: readonly number[], index: number): number {
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (starts[mid]! <= index) low = mid;
    else high = mid - 1;
  }
  return lines[low]?.line ?? 0;
}

/**
 * secretLike flags for new names (an added file, the new name of a rename or
 * copy) that hold a token: all names in one scan, so 2,000 paths cost one pass.
 */
function scanNames(
  raw: readonly RawDiffEntry[],
  scan: (text: string) => { kind: string; index: number }[],
  flags: FlagCollector,
  patterns: readonly SecretPattern[],
): void {
  const named = raw.filter((entry) => entry.status !== 'D' && entry.status !== 'M' && entry.status !== 'T');
  const starts: number[] = [];
  let offset = 0;
  const text = named
    .map((entry) => {
      starts.push(offset);
      offset += entry.path.length + 1;
      return entry.path;
    })
    .join('\n');
  const byEntry = new Map<number, string[]>();
  for (const match of scan(text)) {
    let index = starts.length - 1;
    while (index > 0 && starts[index]! > match.index) index--;
    byEntry.set(index, [...(byEntry.get(index) ?? []), match.kind]);
  }
  for (const [index, kinds] of byEntry) {
    const entry = named[index]!;
    flags.add(
      'secretLike',
      `The ${entry.status === 'A' ? '' : 'new '}name of ${redactText(entry.path, patterns).text} holds ${kinds.length === 1 ? 'a secret-like token' : `${kinds.length} secret-like tokens`} (${[...new Set(kinds)].sort().join(', ')}).`,
      entry.path,
    );
  }
}

/**
 * Analyses a change's diff: files with their status, counts, binary, symlink,
 * mode, gitlink and size; totals; the diff hash; and the flags. Pure: the git
 * calls that feed it are in infra/gitDiff.ts.
 */
export function analyzeDiff(input: DiffAnalysisInput, options: DiffAnalysisOptions = {}): DiffAnalysis {
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const scope = { ...DEFAULT_SCOPE_LIMITS, ...options.scope };
  const flags = new FlagCollector(options.maxFlagsPerKind ?? DEFAULT_MAX_FLAGS_PER_KIND);
  // Policy's globs add to the defaults, never replace them.
  const sensitiveGlobs = [...new Set([...DEFAULT_SENSITIVE_PATHS, ...(options.sensitivePaths ?? [])])];
  const matcherOptions = { dot: true, nocase: true };
  const executesLater = picomatch([...EXECUTES_LATER_PATHS], matcherOptions);
  const sensitive = sensitiveGlobs.map((glob) => ({ glob, test: picomatch(glob, matcherOptions) }));
  const sandboxConfig = picomatch([...SANDBOX_CONFIG_PATHS], matcherOptions);
  const policyFile = picomatch([...POLICY_FILE_PATHS], matcherOptions);
  const agentInstructions = picomatch([...AGENT_INSTRUCTION_PATHS], matcherOptions);
  const patterns = options.secretPatterns ?? BUILTIN_SECRET_PATTERNS;

  /** Every token head holds: the history scan reports only what head no longer has. */
  const headTokens = new Set<string>();
  const scan = (text: string) => {
    const found = secretTokens(text, patterns);
    for (const match of found) headTokens.add(match.token);
    return found;
  };
  scanNames(input.raw, scan, flags, patterns);

  const numstatByPath = new Map<string, NumstatEntry>();
  input.numstat.forEach((entry) => numstatByPath.set(entry.path, entry));

  const files: FileChange[] = [];
  let additions = 0;
  let deletions = 0;
  const topLevel = new Set<string>();

  for (const entry of input.raw) {
    const status = GIT_STATUS_WORDS[entry.status];
    if (!status)
      throw new DiffParseError(
        `Unexpected diff status "${entry.status}" for ${entry.path}; the two commits cannot be compared as a change.`,
      );
    const counts = numstatByPath.get(entry.path);
    const deleted = status === 'deleted';
    const gitlink = isGitlinkMode(entry.oldMode) || isGitlinkMode(entry.newMode);
    const binary = counts ? counts.additions === null : false;
    const file: FileChange = {
      path: entry.path,
      status,
      additions: counts?.additions ?? 0,
      deletions: counts?.deletions ?? 0,
      binary,
      mode: {
        ...(status !== 'added' && status !== 'copied' ? { old: entry.oldMode } : {}),
        ...(!deleted ? { new: entry.newMode } : {}),
      },
    };
    if (entry.oldPath !== undefined) file.oldPath = entry.oldPath;
    if (gitlink) file.gitlink = true;
    const size = deleted || isGitlinkMode(entry.newMode) ? undefined : input.blobSizes.get(entry.newSha);
    if (size !== undefined) file.sizeBytes = size;
    if (entry.newMode === '120000') {
      const target = input.symlinkTargets.get(entry.path) ?? '';
      file.symlink = { target, escapesWorktree: symlinkEscapes(entry.path, target) || !!input.symlinkEscapesOnDisk?.has(entry.path) };
    }
    files.push(file);
    additions += file.additions;
    deletions += file.deletions;

    const paths = entry.oldPath !== undefined ? [entry.path, entry.oldPath] : [entry.path];
    for (const path of paths) topLevel.add(path.includes('/') ? path.slice(0, path.indexOf('/')) : '.');

    // Path-based flags look at both names of a rename.
    const touched = paths.join(' (was ') + (paths.length > 1 ? ')' : '');
    if (paths.some(hasTraversal))
      flags.add(
        'pathTraversal',
        `${JSON.stringify(touched)} has a ".." component or is absolute; git never stores such a path, so the diff was crafted.`,
        entry.path,
      );
    if (paths.some(hasGitComponent))
      flags.add('gitPath', `${touched} is inside a .git folder: it could change git's own configuration or hooks.`, entry.path);
    if (gitlink) {
      const what = isGitlinkMode(entry.newMode)
        ? isGitlinkMode(entry.oldMode)
          ? 'moves the submodule to another commit'
          : deleted
            ? 'removes a submodule'
            : 'adds a submodule (gitlink)'
        : 'replaces a submodule';
      flags.add(
        'gitlink',
        `${entry.path} ${what}${!deleted && isGitlinkMode(entry.newMode) ? ` at ${entry.newSha.slice(0, 12)}` : ''}.`,
        entry.path,
      );
    }
    if (paths.some((path) => path === '.gitmodules' || path.endsWith('/.gitmodules')))
      flags.add('gitlink', `${entry.path}: the submodule list (.gitmodules) is ${status}.`, entry.path);
    for (const { glob, test } of sensitive) {
      if (paths.some((path) => test(path))) {
        flags.add('sensitivePath', `${touched} is a security-sensitive path (matches ${glob}).`, entry.path);
        break;
      }
    }
    if (paths.some((path) => sandboxConfig(path)))
      flags.add(
        'sandboxConfigEdited',
        `${touched} configures the sandbox; the sandbox lane uses what is on the base, and a reviewer should read this edit.`,
        entry.path,
      );
    if (paths.some((path) => policyFile(path))) flags.add('policyFileEdited', `${touched} is the repository's lanes policy.`, entry.path);
    if (paths.some((path) => agentInstructions(path)))
      flags.add('agentInstructionsEdited', `${touched} holds instructions for coding agents.`, entry.path);
    if (paths.some((path) => executesLater(path)))
      flags.add(
        'executesLater',
        `${touched} is ${status}: its contents run code later, outside the sandbox (when the folder is opened, a task or debug session starts, git runs a hook or filter, or an agent tool loads it).`,
        entry.path,
      );
    if (!deleted && isExecutableMode(entry.newMode) && !isExecutableMode(entry.oldMode) && !/^0+$/.test(entry.oldMode))
      flags.add('executesLater', `${entry.path} is made executable (mode ${entry.oldMode} → ${entry.newMode}).`, entry.path);
    if (!deleted && /(^|\/)package\.json$/i.test(entry.path)) {
      const contents = input.manifests.get(entry.path);
      const changed = contents?.new === undefined ? undefined : changedRunKeys(contents.old, contents.new);
      if (changed === undefined)
        flags.add('executesLater', `${entry.path} could not be read, so a change to its scripts or bin cannot be ruled out.`, entry.path);
      else if (changed.length)
        flags.add(
          'executesLater',
          `${entry.path} changes ${changed.map((key) => `"${key}"`).join(', ')}: commands that npm, pnpm or yarn run later.`,
          entry.path,
        );
    }

    if (deleted) continue;
    // Content-based flags look at the new side.
    if (file.symlink?.escapesWorktree)
      flags.add(
        'symlinkEscape',
        `${entry.path} is a symbolic link to ${JSON.stringify(file.symlink.target)}, outside the worktree.`,
        entry.path,
      );
    if (binary && !gitlink)
      flags.add(
        'binaryFile',
        `${entry.path} is a binary file${size !== undefined ? ` (${size} bytes)` : ''}; its content cannot be reviewed as text.`,
        entry.path,
      );
    if (size !== undefined && size > maxFileBytes)
      flags.add('oversizedFile', `${entry.path} is ${size} bytes, over the limit of ${maxFileBytes}.`, entry.path);
    const lines = input.addedLineScans ? undefined : input.addedLines?.get(entry.path);
    const scanned = input.addedLineScans
      ? input.addedLineScans.get(entry.path)
      : lines?.length
        ? scanAddedLines(lines, patterns)
        : undefined;
    if (scanned) {
      for (const token of scanned.tokens) headTokens.add(token);
      if (scanned.count)
        flags.add(
          'secretLike',
          `${entry.path}: ${scanned.count} secret-like token${scanned.count === 1 ? '' : 's'} (${scanned.kinds.join(', ')}) in added line${scanned.lines.length === 1 ? '' : 's'} ${scanned.lines.join(', ')}.`,
          entry.path,
        );
    }
    const runs = input.binaryTexts?.get(entry.path);
    if (runs?.length) {
      const found = scan(runs.join('\n'));
      if (found.length)
        flags.add(
          'secretLike',
          `${entry.path}: ${found.length} secret-like token${found.length === 1 ? '' : 's'} (${[...new Set(found.map((match) => match.kind))].sort().join(', ')}) in the printable text of this binary file.`,
          entry.path,
        );
    }
    const kind = manifestKind(entry.path);
    if (kind === 'lockFile') {
      flags.add(
        'newDependency',
        `${entry.path}: a lock file is ${status}; it can bring in new or different dependency versions.`,
        entry.path,
      );
    } else if (kind === 'manifest') {
      const contents = input.manifests.get(entry.path);
      if (contents?.new === undefined) {
        flags.add(
          'newDependency',
          `${entry.path}: a dependency manifest is ${status} and could not be read; check it for new dependencies.`,
          entry.path,
        );
      } else {
        const change = addedDependencies(entry.path, contents.old, contents.new);
        if (change.unreadable)
          flags.add('newDependency', `${entry.path}: ${change.unreadable}, so new dependencies cannot be ruled out.`, entry.path);
        else if (change.added.length) {
          const shown = change.added.slice(0, 10).join(', ') + (change.added.length > 10 ? `, and ${change.added.length - 10} more` : '');
          flags.add(
            'newDependency',
            `${entry.path} adds ${change.added.length === 1 ? 'a dependency' : `${change.added.length} dependencies`}: ${shown}.`,
            entry.path,
          );
        }
      }
    }
  }

  const changedLines = additions + deletions;
  const reasons: string[] = [];
  if (files.length > scope.maxFiles) reasons.push(`${files.length} files (more than ${scope.maxFiles})`);
  if (topLevel.size > scope.maxTopLevelDirs) reasons.push(`${topLevel.size} top-level folders (more than ${scope.maxTopLevelDirs})`);
  if (changedLines > scope.maxChangedLines) reasons.push(`${changedLines} changed lines (more than ${scope.maxChangedLines})`);
  if (reasons.length) flags.add('unusualScope', `The change is unusually wide: ${reasons.join(', ')}.`);
  if (input.history) {
    // Lines head adds (only needed when there are commits' patches to compare with).
    let lines: { has(text: string): boolean } = new Set<string>();
    if (input.history.patches?.length) {
      if (input.headLines) lines = input.headLines;
      else {
        const texts = new Set<string>();
        for (const added of input.addedLines?.values() ?? []) for (const line of added) texts.add(line.text);
        lines = texts;
      }
    }
    for (const flag of historyFlags(input.history, { tokens: headTokens, lines }, patterns)) flags.add(flag.kind, flag.detail, flag.path);
  }

  return { hash: diffHash(input.raw), files, totals: { files: files.length, additions, deletions }, flags: flags.result() };
}

/** gitPath flags for the paths git refused to commit (they stay in the worktree, outside the lane's commit). */
export function refusedPathFlags(paths: readonly string[]): Flag[] {
  return paths.map((path) => ({
    kind: 'gitPath' as const,
    path,
    detail: `${path} was written by the agent but git refuses to store it (a .git path or an invalid name); it is not in the commit and stays in the worktree.`,
  }));
}

/** The flag for a touched user checkout (from infra/checkoutGuard). */
export function checkoutTouchedFlag(differences: readonly string[]): Flag {
  const shown = differences.slice(0, 5).join('; ');
  return {
    kind: 'checkoutTouched',
    detail: `Your own checkout changed while the agent ran: ${shown}${differences.length > 5 ? `; and ${differences.length - 5} more` : ''}. Check it: the agent may have written outside its worktree.`,
  };
}
