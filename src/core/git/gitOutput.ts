/**
 * Parsers for git's machine-readable output (-z forms), kept pure so they are
 * tested on crafted strings, including paths git itself would never produce.
 */

export interface StatusEntry {
  /** 'ordinary', 'renamed' (or copied), 'unmerged', 'untracked', 'ignored'. */
  kind: 'ordinary' | 'renamed' | 'unmerged' | 'untracked' | 'ignored';
  /** Index and worktree status letters ("." = unchanged). */
  xy: string;
  path: string;
  origPath?: string;
  /** The whole record, to compare two snapshots exactly. */
  record: string;
}

export interface PorcelainV2Status {
  headSha?: string;
  /** undefined when detached. */
  branch?: string;
  entries: StatusEntry[];
}

/** Parses `git status --porcelain=v2 -z [--branch]`. */
export function parsePorcelainV2(output: string): PorcelainV2Status {
  const result: PorcelainV2Status = { entries: [] };
  const fields = output.split('\0');
  for (let i = 0; i < fields.length; i++) {
    const record = fields[i]!;
    if (!record) continue;
    if (record.startsWith('# ')) {
      const [, key, value] = /^# (\S+) (.*)$/.exec(record) ?? [];
      if (key === 'branch.oid' && value && value !== '(initial)') result.headSha = value;
      if (key === 'branch.head' && value && value !== '(detached)') result.branch = value;
      continue;
    }
    const type = record[0];
    if (type === '1') {
      // 1 XY sub mH mI mW hH hI path
      const parts = record.split(' ');
      result.entries.push({ kind: 'ordinary', xy: parts[1] ?? '', path: parts.slice(8).join(' '), record });
    } else if (type === '2') {
      // 2 XY sub mH mI mW hH hI Xscore path, then the original path as the next field
      const parts = record.split(' ');
      const origPath = fields[++i] ?? '';
      result.entries.push({
        kind: 'renamed',
        xy: parts[1] ?? '',
        path: parts.slice(9).join(' '),
        origPath,
        record: `${record}\0${origPath}`,
      });
    } else if (type === 'u') {
      // u XY sub m1 m2 m3 mW h1 h2 h3 path
      const parts = record.split(' ');
      result.entries.push({ kind: 'unmerged', xy: parts[1] ?? '', path: parts.slice(10).join(' '), record });
    } else if (type === '?') {
      result.entries.push({ kind: 'untracked', xy: '??', path: record.slice(2), record });
    } else if (type === '!') {
      result.entries.push({ kind: 'ignored', xy: '!!', path: record.slice(2), record });
    }
  }
  return result;
}

export function countUncommitted(entries: readonly StatusEntry[]): {
  staged: number;
  unstaged: number;
  untracked: number;
  conflicted: number;
} {
  const counts = { staged: 0, unstaged: 0, untracked: 0, conflicted: 0 };
  for (const entry of entries) {
    if (entry.kind === 'untracked') counts.untracked++;
    else if (entry.kind === 'unmerged') counts.conflicted++;
    else if (entry.kind !== 'ignored') {
      if (entry.xy[0] !== '.') counts.staged++;
      if (entry.xy[1] !== '.') counts.unstaged++;
    }
  }
  return counts;
}

export interface WorktreeListEntry {
  path: string;
  head?: string;
  /** Full ref name, e.g. refs/heads/lanes/…; undefined when detached or bare. */
  branchRef?: string;
  bare: boolean;
  detached: boolean;
  locked?: string;
  prunable?: string;
}

/** Parses `git worktree list --porcelain -z`. */
export function parseWorktreeList(output: string): WorktreeListEntry[] {
  const worktrees: WorktreeListEntry[] = [];
  let current: WorktreeListEntry | undefined;
  for (const field of output.split('\0')) {
    if (!field) {
      current = undefined;
      continue;
    }
    const space = field.indexOf(' ');
    const key = space < 0 ? field : field.slice(0, space);
    const value = space < 0 ? '' : field.slice(space + 1);
    if (key === 'worktree') {
      current = { path: value, bare: false, detached: false };
      worktrees.push(current);
      continue;
    }
    if (!current) continue;
    if (key === 'HEAD') current.head = value;
    else if (key === 'branch') current.branchRef = value;
    else if (key === 'bare') current.bare = true;
    else if (key === 'detached') current.detached = true;
    else if (key === 'locked') current.locked = value;
    else if (key === 'prunable') current.prunable = value || 'prunable';
  }
  return worktrees;
}

const UTF8 = new TextEncoder();
const C_ESCAPES: Record<string, number> = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 34, '\\': 92 };

/** Undoes git's C-style quoting of a path ("a\tb", "\303\251"); unquoted paths come back as they are. */
export function unquoteGitPath(text: string): string {
  if (!text.startsWith('"') || !text.endsWith('"') || text.length < 2) return text;
  const bytes: number[] = [];
  const body = text.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    const char = String.fromCodePoint(body.codePointAt(i)!);
    if (char !== '\\') {
      bytes.push(...UTF8.encode(char));
      i += char.length - 1;
      continue;
    }
    const next = body[i + 1] ?? '';
    if (/[0-7]/.test(next)) {
      bytes.push(parseInt(body.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(C_ESCAPES[next] ?? next.charCodeAt(0));
      i += 1;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
