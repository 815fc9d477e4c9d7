import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { DAY_MS, revertedShas, type IntactGitAnswer, type IntactGitFacts } from '../../core/metrics/intact';
import { git } from './gitProcess';

/** A merged change as the audit log records it. */
export interface MergeToMeasure {
  mergeCommitSha: string;
  /** The branch it was merged into; HEAD's history when the log does not say. */
  baseRef?: string;
}

export interface IntactFactsOptions {
  days: number;
  /** Where decided answers are kept (their window has closed, so they cannot change); none when omitted. */
  cacheFile?: string;
  /** At most this many files of one change are blamed; the others are counted at the share measured. */
  maxBlameFiles?: number;
  now?: () => number;
}

interface FirstParentHistory {
  /** Newest first. */
  shas: string[];
  /** Committer times, ms. */
  times: number[];
  index: Map<string, number>;
}

/** A merge to measure: where it is on its base branch's first-parent history, and the window's last commit there. */
interface Measured {
  commit: { sha: string; time: number; parents: string[] };
  first: string;
  tip: string;
  windowSha: string;
  historyPastWindow: boolean;
  /** What an earlier read found, at an earlier window end on this history. */
  prior?: Prior;
}

/** A provisional answer (its window still open or not yet past in the history read) and what lets it be updated. */
interface Prior {
  tip: string;
  windowSha: string;
  facts: IntactGitFacts;
  /** The paths holding the change's lines at windowSha. */
  paths: string[];
  /** The change's own commits (the merge, and a merge commit's branch commits). */
  own: string[];
}

/** Whether a diff-tree group's last field completes an entry (a numstat record; a status and its paths). */
function entryEnds(group: readonly string[], options: readonly string[]): boolean {
  if (options.includes('--numstat')) return true;
  // name-status: status, path (and a second path for R/C). A group is whole when its fields pair up that way.
  let i = 0;
  while (i < group.length) i += /^[RC]/.test(group[i]!) ? 3 : 2;
  return i === group.length;
}

const CACHE_VERSION = 1;
/** Changes measured at once (each blames its files one after the other). */
const BLAME_CONCURRENCY = 3;
/** A merge commit's own commits beyond this many (a long-lived branch merged) are not searched for reverts. */
const MAX_BRANCH_COMMITS = 500;

/**
 * Gathers, in one repository, what the intact rate needs of each merged change: the reverts of its merge commit,
 * and how many of the lines it added blame still gives to it at the last commit of the base branch within N days
 * (`git blame` of the window only: first parent..window end, so it never walks older history). Files the window did
 * not touch are not blamed at all. Answers whose window has closed are kept in memory and in `cacheFile`.
 */
export class IntactFacts {
  private readonly decided = new Map<string, IntactGitFacts>();
  /** Provisional answers, by merge commit and the base tip they were read at (still right while the tip stays). */
  private readonly provisional = new Map<string, Prior>();
  private readonly histories = new Map<string, Promise<FirstParentHistory>>();
  private readonly revertIndexes = new Map<string, Promise<Map<string, { sha: string; time: number }[]>>>();
  private cacheLoaded = false;
  private readonly maxBlameFiles: number;
  private readonly now: () => number;

  constructor(
    readonly repoRoot: string,
    private readonly options: IntactFactsOptions,
  ) {
    this.maxBlameFiles = options.maxBlameFiles ?? 40;
    this.now = options.now ?? Date.now;
  }

  /** The git common directory's `agent-lanes/intact-cache.json`: where the CLI keeps decided answers. */
  static async cacheInGitDir(repoRoot: string): Promise<string> {
    const common = (await git(repoRoot, ['rev-parse', '--git-common-dir'])).stdout.trim();
    return resolve(repoRoot, common, 'agent-lanes', 'intact-cache.json');
  }

  /** One answer per merge commit (lower-case sha). */
  async answers(merges: readonly MergeToMeasure[]): Promise<Map<string, IntactGitAnswer>> {
    await this.loadCache();
    const out = new Map<string, IntactGitAnswer>();
    const todo = new Map<string, MergeToMeasure>();
    for (const merge of merges) {
      const sha = merge.mergeCommitSha.toLowerCase();
      const known = this.decided.get(sha);
      if (known) out.set(sha, { ok: true, facts: known });
      else if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha))
        out.set(sha, { ok: false, reason: `"${merge.mergeCommitSha}" is not a commit id` });
      else todo.set(sha, { ...merge, mergeCommitSha: sha });
    }
    if (!todo.size) return out;
    // HEAD only for a log that does not name the base branch.
    const refs = await this.refs([...todo.values()].some((merge) => !merge.baseRef));
    const present = await this.presentCommits([...todo.keys()]);
    const commits = await this.commitInfo([...todo.keys()].filter((sha) => present.has(sha)));
    const measure: Measured[] = [];
    for (const [sha, merge] of todo) {
      const commit = commits.get(sha);
      if (!commit) {
        out.set(sha, {
          ok: false,
          reason: `merge commit ${sha.slice(0, 12)} is not in the repository at ${this.repoRoot}; fetch the base branch ("git fetch") and run again`,
        });
        continue;
      }
      const base = merge.baseRef ?? 'HEAD';
      const candidates = refs.filter((ref) =>
        base === 'HEAD'
          ? ref.name === 'HEAD'
          : ref.name === `refs/heads/${base}` || /^refs\/remotes\/[^/]+\/(.+)$/.exec(ref.name)?.[1] === base,
      );
      let found: { tip: string; history: FirstParentHistory; at: number } | undefined;
      for (const candidate of candidates) {
        const history = await this.history(candidate.sha);
        const at = history.index.get(sha);
        if (at !== undefined && (!found || history.times[0]! > found.history.times[0]!)) found = { tip: candidate.sha, history, at };
      }
      if (!found) {
        out.set(sha, {
          ok: false,
          reason: `merge commit ${sha.slice(0, 12)} is not on the first-parent history of ${base === 'HEAD' ? 'HEAD (the log does not name the base branch)' : `"${base}" (local or remote-tracking)`}; fetch it ("git fetch") and run again`,
        });
        continue;
      }
      const prior = this.provisional.get(sha);
      if (prior?.tip === found.tip)
        out.set(sha, {
          ok: true,
          facts: { ...prior.facts, windowClosed: prior.facts.windowClosed || this.now() >= commit.time + this.options.days * DAY_MS },
        });
      else if (!commit.parents[0])
        out.set(sha, { ok: false, reason: `commit ${sha.slice(0, 12)} has no parent: a first commit is not a merged change` });
      else {
        // The window's last commit: from the merge towards the tip along the first parents, while within N days.
        const end = commit.time + this.options.days * DAY_MS;
        const { history } = found;
        let windowEnd = found.at;
        while (windowEnd > 0 && history.times[windowEnd - 1]! <= end) windowEnd--;
        // A window read before, whose end is still on this history: only what came after it needs a look.
        const priorEnd = prior ? history.index.get(prior.windowSha) : undefined;
        measure.push({
          commit,
          first: commit.parents[0],
          tip: found.tip,
          windowSha: history.shas[windowEnd]!,
          historyPastWindow: windowEnd > 0,
          ...(prior && priorEnd !== undefined && priorEnd >= windowEnd ? { prior } : {}),
        });
      }
    }
    let newlyDecided = false;
    for (const [index, { facts, paths, own }] of (await this.measureAll(measure)).entries()) {
      const item = measure[index]!;
      if (facts.windowClosed && item.historyPastWindow) {
        this.decided.set(item.commit.sha, facts);
        this.provisional.delete(item.commit.sha);
        newlyDecided = true;
      } else this.provisional.set(item.commit.sha, { tip: item.tip, windowSha: item.windowSha, facts, paths, own });
      out.set(item.commit.sha, { ok: true, facts });
    }
    if (newlyDecided) await this.saveCache();
    return out;
  }

  /**
   * The facts of each merge, with a few git processes for all of them (one diff-tree for the lines each added, one for
   * what each window changed) and one blame per file a window touched, which only those changes need.
   */
  private async measureAll(all: readonly Measured[]): Promise<{ facts: IntactGitFacts; paths: string[]; own: string[] }[]> {
    if (!all.length) return [];
    const reverts = new Map<string, Map<string, { sha: string; time: number }[]>>();
    const revertTimes = async (tip: string, own: Iterable<string>): Promise<number[]> => {
      let index7 = reverts.get(tip);
      if (!index7) reverts.set(tip, (index7 = await this.revertIndex(tip)));
      const times: number[] = [];
      for (const sha of own)
        for (const revert of index7.get(sha.slice(0, 7)) ?? []) if (sha.startsWith(revert.sha)) times.push(revert.time);
      return times;
    };
    const windowClosed = (item: Measured) => item.historyPastWindow || this.now() >= item.commit.time + this.options.days * DAY_MS;
    // Read before: when the commits since the earlier window's end touched none of the files holding its lines, only
    // the reverts and the window's state can have changed (one diff-tree for all of them).
    const results = new Map<Measured, { facts: IntactGitFacts; paths: string[]; own: string[] }>();
    const again = all.filter((item) => item.prior);
    const spans = [...new Set(again.map((item) => `${item.windowSha} ${item.prior!.windowSha}`))];
    const touchedBySpan = new Map(
      (await this.diffTree(spans, ['--name-status', '--no-renames'], (entries) => new Set(entries.filter((_, i) => i % 2 === 1)))).map(
        (paths, index) => [spans[index]!, paths],
      ),
    );
    for (const item of again) {
      const prior = item.prior!;
      const touched = touchedBySpan.get(`${item.windowSha} ${prior.windowSha}`)!;
      if (prior.paths.some((path) => touched.has(path))) continue;
      results.set(item, {
        facts: { ...prior.facts, revertTimes: await revertTimes(item.tip, prior.own), windowClosed: windowClosed(item) },
        paths: prior.paths,
        own: prior.own,
      });
    }
    const items = all.filter((item) => !results.has(item));
    const added = await this.diffTree(
      items.map((item) => `${item.commit.sha} ${item.first}`),
      ['--numstat', '--no-renames'],
      (entries) => {
        const lines = new Map<string, number>();
        for (const entry of entries) {
          const match = /^(\d+|-)\t(\d+|-)\t([\s\S]+)$/.exec(entry);
          if (match && match[1] !== '-' && Number(match[1]) > 0) lines.set(match[3]!, Number(match[1]));
        }
        return lines;
      },
    );
    const moved = items.filter((item, index) => item.windowSha !== item.commit.sha && [...added[index]!.values()].some(Boolean));
    const changedLists = await this.diffTree(
      moved.map((item) => `${item.windowSha} ${item.commit.sha}`),
      ['--name-status', '-M'],
      (entries) => {
        const changed = new Map<string, string | null>();
        for (let i = 0; i < entries.length;) {
          const status = entries[i++]!;
          if (status.startsWith('R') || status.startsWith('C')) {
            const from = entries[i++]!;
            const to = entries[i++]!;
            if (status.startsWith('R')) changed.set(from, to);
          } else {
            const path = entries[i++]!;
            changed.set(path, status === 'D' ? null : path);
          }
        }
        return changed;
      },
    );
    const changedOf = new Map(moved.map((item, index) => [item, changedLists[index]!]));
    // A few changes at a time: their blames are separate git processes.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const index = next++;
        const item = items[index]!;
        const { commit, first } = item;
        // The change's own commits: the merge, and for a merge commit the commits it brought in.
        const own = new Set([commit.sha]);
        if (commit.parents.length > 1) {
          const listed = await git(this.repoRoot, ['rev-list', `--max-count=${MAX_BRANCH_COMMITS}`, `${first}..${commit.sha}`]);
          for (const sha of listed.stdout.split('\n')) if (sha) own.add(sha);
        }
        const addedByPath = added[index]!;
        let addedLines = 0;
        for (const count of addedByPath.values()) addedLines += count;
        let survivingLines = addedLines;
        let capped = false;
        const changed = changedOf.get(item);
        // Where the change's lines are at the window's end (a file renamed since: its new path; deleted: none).
        const paths = [...addedByPath.keys()].flatMap((path) => {
          const now = changed ? changed.get(path) : path;
          return now === null ? [] : [now ?? path];
        });
        if (changed) {
          const touched = [...addedByPath].filter(([path]) => changed.has(path)).sort((a, b) => b[1] - a[1]);
          let measuredAdded = 0;
          let measuredSurviving = 0;
          let unmeasuredAdded = 0;
          for (const [position, [path, count]] of touched.entries()) {
            if (position >= this.maxBlameFiles) {
              unmeasuredAdded += count;
              continue;
            }
            const now = changed.get(path);
            measuredAdded += count;
            measuredSurviving +=
              now === null || now === undefined ? 0 : Math.min(count, await this.ownLines(first, item.windowSha, now, own));
          }
          const lost = measuredAdded - measuredSurviving;
          capped = unmeasuredAdded > 0;
          const lostUnmeasured = capped && measuredAdded ? Math.round((unmeasuredAdded * lost) / measuredAdded) : 0;
          survivingLines = addedLines - lost - lostUnmeasured;
        }
        const facts: IntactGitFacts = {
          mergedAt: commit.time,
          revertTimes: await revertTimes(item.tip, own),
          addedLines,
          survivingLines,
          // Closed when history reaches past the window, or the time has passed (then kept in memory only: a stale
          // local branch may still be missing a revert, so it is not cached for good).
          windowClosed: windowClosed(item),
          ...(capped ? { capped } : {}),
        };
        results.set(item, { facts, paths, own: [...own] });
      }
    };
    await Promise.all(Array.from({ length: Math.min(BLAME_CONCURRENCY, items.length) }, worker));
    return all.map((item) => results.get(item)!);
  }

  /** One `git diff-tree --stdin` for many "<commit> <parent>" pairs: each pair's entries (-z fields), in order. */
  private async diffTree<T>(pairs: readonly string[], options: readonly string[], read: (entries: string[]) => T): Promise<T[]> {
    if (!pairs.length) return [];
    const result = await git(this.repoRoot, ['diff-tree', '--stdin', '--always', '-r', '-z', '--no-ext-diff', ...options], {
      input: pairs.map((pair) => `${pair}\n`).join(''),
    });
    const fields = result.stdout.split('\0');
    const groups: string[][] = [];
    for (const field of fields) {
      // Each pair's output starts with its commit id; a path cannot stand where a header does (after a whole entry).
      if (/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(field) && (groups.length === 0 || entryEnds(groups.at(-1)!, options))) groups.push([]);
      else if (field && groups.length) groups.at(-1)!.push(field);
    }
    if (groups.length !== pairs.length) throw new Error(`git diff-tree gave ${groups.length} answers for ${pairs.length} commits`);
    return groups.map(read);
  }

  /** Every branch and remote-tracking branch, and HEAD. */
  private async refs(withHead: boolean): Promise<{ name: string; sha: string }[]> {
    const [listed, head] = await Promise.all([
      git(this.repoRoot, ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/remotes']),
      withHead ? git(this.repoRoot, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okExitCodes: [1] }) : undefined,
    ]);
    const refs = listed.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const space = line.indexOf(' ');
        return { sha: line.slice(0, space), name: line.slice(space + 1) };
      })
      .filter((ref) => !ref.name.endsWith('/HEAD'));
    if (head?.stdout.trim()) refs.push({ name: 'HEAD', sha: head.stdout.trim() });
    return refs;
  }

  private async presentCommits(shas: string[]): Promise<Set<string>> {
    const checked = await git(this.repoRoot, ['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
      input: shas.map((sha) => `${sha}\n`).join(''),
    });
    const present = new Set<string>();
    for (const line of checked.stdout.split('\n')) {
      const [sha, type] = line.split(' ');
      if (type === 'commit' && sha) present.add(sha);
    }
    return present;
  }

  private async commitInfo(shas: string[]): Promise<Map<string, { sha: string; time: number; parents: string[] }>> {
    const info = new Map<string, { sha: string; time: number; parents: string[] }>();
    if (!shas.length) return info;
    const listed = await git(this.repoRoot, ['log', '--no-walk=unsorted', '--stdin', '--format=%H %ct %P'], {
      input: shas.map((sha) => `${sha}\n`).join(''),
    });
    for (const line of listed.stdout.split('\n')) {
      const [sha, time, ...parents] = line.trim().split(' ');
      if (sha && time) info.set(sha, { sha, time: Number(time) * 1000, parents: parents.filter(Boolean) });
    }
    return info;
  }

  private history(tip: string): Promise<FirstParentHistory> {
    let found = this.histories.get(tip);
    if (!found) {
      found = git(this.repoRoot, ['log', '--first-parent', '--format=%H %ct', tip]).then((result) => {
        const shas: string[] = [];
        const times: number[] = [];
        const index = new Map<string, number>();
        for (const line of result.stdout.split('\n')) {
          const space = line.indexOf(' ');
          if (space < 0) continue;
          index.set(line.slice(0, space), shas.length);
          shas.push(line.slice(0, space));
          times.push(Number(line.slice(space + 1)) * 1000);
        }
        return { shas, times, index };
      });
      this.histories.set(tip, found);
    }
    return found;
  }

  /** The reverts reachable from `tip`, by the first 7 characters of the sha they name. */
  private revertIndex(tip: string): Promise<Map<string, { sha: string; time: number }[]>> {
    let found = this.revertIndexes.get(tip);
    if (!found) {
      found = git(this.repoRoot, ['log', '-E', '-i', '--grep=This reverts commit [0-9a-f]{7}', '--format=%ct%x00%B%x1e', tip]).then(
        (result) => {
          const index = new Map<string, { sha: string; time: number }[]>();
          for (const entry of result.stdout.split('\x1e')) {
            const nul = entry.indexOf('\0');
            if (nul < 0) continue;
            const time = Number(entry.slice(0, nul).trim()) * 1000;
            for (const sha of revertedShas(entry.slice(nul + 1))) {
              const list = index.get(sha.slice(0, 7)) ?? [];
              list.push({ sha, time });
              index.set(sha.slice(0, 7), list);
            }
          }
          return index;
        },
      );
      this.revertIndexes.set(tip, found);
    }
    return found;
  }

  /** Lines of `path` at the window's end that blame gives to the change's own commits (whitespace changes ignored). */
  private async ownLines(first: string, windowEnd: string, path: string, own: ReadonlySet<string>): Promise<number> {
    const blamed = await git(this.repoRoot, ['blame', '--porcelain', '-w', `${first}..${windowEnd}`, '--', path]);
    let count = 0;
    for (const line of blamed.stdout.split('\n')) {
      if (line.charCodeAt(0) === 9 /* tab: the line's text */) continue;
      const match = /^([0-9a-f]{40,64}) \d+ \d+/.exec(line);
      if (match && own.has(match[1]!)) count++;
    }
    return count;
  }

  private async loadCache(): Promise<void> {
    if (this.cacheLoaded || !this.options.cacheFile) return;
    this.cacheLoaded = true;
    try {
      const parsed = JSON.parse(await readFile(this.options.cacheFile, 'utf8')) as {
        version?: unknown;
        entries?: Record<string, IntactGitFacts>;
      };
      if (parsed.version !== CACHE_VERSION || !parsed.entries) return;
      const suffix = `:${this.options.days}`;
      for (const [key, facts] of Object.entries(parsed.entries)) {
        if (key.endsWith(suffix) && typeof facts?.mergedAt === 'number' && Array.isArray(facts.revertTimes))
          this.decided.set(key.slice(0, -suffix.length), facts);
      }
    } catch {
      // No cache yet, or an unreadable one: measured again.
    }
  }

  private async saveCache(): Promise<void> {
    const file = this.options.cacheFile;
    if (!file) return;
    let entries: Record<string, IntactGitFacts> = {};
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { version?: unknown; entries?: Record<string, IntactGitFacts> };
      if (parsed.version === CACHE_VERSION && parsed.entries) entries = parsed.entries;
    } catch {
      // Written fresh.
    }
    for (const [sha, facts] of this.decided) entries[`${sha}:${this.options.days}`] = facts;
    await mkdir(dirname(file), { recursive: true });
    const temporary = `${file}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify({ version: CACHE_VERSION, entries }));
    await rename(temporary, file);
  }
}
