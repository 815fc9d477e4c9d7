import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { main } from '../../src/cli/main';
import { intactFigure, intactVerdict, type IntactVerdict } from '../../src/core/metrics/intact';
import { AuditLog } from '../../src/infra/audit/log';
import { IntactFacts } from '../../src/infra/git/intactFacts';
import { RepoStorage } from '../../src/infra/storage/repoStorage';

// The intact rate (docs/metrics.md): of the merged changes, those neither reverted nor mostly rewritten within N days,
// read from real git repositories whose commits carry chosen dates.

const DAY = 86_400_000;
/** Day 0 of every history here: long past, so a 30-day window after it has closed. */
const START = Date.UTC(2025, 0, 6, 12);
const dateOf = (day: number) => new Date(START + day * DAY).toISOString();

function git(cwd: string, args: string[], day?: number): string {
  const date = day === undefined ? {} : { GIT_AUTHOR_DATE: dateOf(day), GIT_COMMITTER_DATE: dateOf(day) };
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'Lanes Tester',
      GIT_AUTHOR_EMAIL: 'tester@example.com',
      GIT_COMMITTER_NAME: 'Lanes Tester',
      GIT_COMMITTER_EMAIL: 'tester@example.com',
      ...date,
    },
  }).trim();
}

const lines = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix} line ${i + 1}`).join('\n') + '\n';

function write(repo: string, path: string, text: string): void {
  mkdirSync(dirname(join(repo, path)), { recursive: true });
  writeFileSync(join(repo, path), text);
}

/** A commit on the current branch of `files` at `day`; its sha. */
function commit(repo: string, day: number | undefined, message: string, files: Record<string, string>): string {
  for (const [path, text] of Object.entries(files)) write(repo, path, text);
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', message], day);
  return git(repo, ['rev-parse', 'HEAD']);
}

function newRepository(dir: string): string {
  mkdirSync(dir, { recursive: true });
  git(dir, ['init', '-q', '-b', 'main']);
  commit(dir, -10, 'Initial commit', { 'README.md': '# app\n' });
  return realpathSync(dir);
}

/** A change merged the way GitHub's "Create a merge commit" does: a branch commit, then a --no-ff merge into main. */
function mergeBranch(repo: string, day: number, name: string, files: Record<string, string>): string {
  git(repo, ['checkout', '-q', '-b', name]);
  commit(repo, day - 1, `Work on ${name}`, files);
  git(repo, ['checkout', '-q', 'main']);
  git(repo, ['merge', '-q', '--no-ff', '-m', `Merge ${name}`, name], day);
  return git(repo, ['rev-parse', 'HEAD']);
}

async function verdicts(repo: string, shas: string[], days = 30, cacheFile?: string): Promise<IntactVerdict[]> {
  const facts = new IntactFacts(repo, { days, ...(cacheFile ? { cacheFile } : {}) });
  const answers = await facts.answers(shas.map((sha) => ({ mergeCommitSha: sha, baseRef: 'main' })));
  return shas.map((sha) => intactVerdict(answers.get(sha), days).verdict);
}

describe('The intact rate, from git', () => {
  let dir: string;
  beforeEach(() => (dir = realpathSync(mkdtempSync(join(tmpdir(), 'lanes-intact-')))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reverted within N days is reverted; reverted after N days is intact; untouched is intact', async () => {
    const repo = newRepository(join(dir, 'app'));
    const early = commit(repo, 0, 'Add a parser', { 'src/parse.js': lines('parse', 10) });
    const late = commit(repo, 1, 'Add a printer', { 'src/print.js': lines('print', 10) });
    const untouched = commit(repo, 2, 'Add a logger', { 'src/log.js': lines('log', 10) });
    git(repo, ['revert', '--no-edit', early], 5);
    git(repo, ['revert', '--no-edit', late], 40);
    commit(repo, 45, 'Later work', { 'NOTES.md': 'notes\n' });
    assert.deepEqual(await verdicts(repo, [early, late, untouched]), ['reverted', 'intact', 'intact']);
    // A shorter window sees neither revert; a longer one sees both.
    assert.deepEqual(await verdicts(repo, [early, late], 3), ['intact', 'intact']);
    assert.deepEqual(await verdicts(repo, [early, late], 60), ['reverted', 'reverted']);
  });

  it('a follow-up commit that rewrites most of its lines within N days makes it rewritten; a small fix does not', async () => {
    const repo = newRepository(join(dir, 'app'));
    const rewritten = commit(repo, 0, 'Add a parser', { 'src/parse.js': lines('parse', 10) });
    const fixed = commit(repo, 1, 'Add a printer', { 'src/print.js': lines('print', 10) });
    const latePrinter = lines('print', 10).replace('print line 1\n', 'print line one\n').replace('print line 2\n', 'print line two\n');
    commit(repo, 3, 'Rewrite the parser; fix two printer lines', {
      'src/parse.js': lines('parse', 2) + lines('new parser', 8),
      'src/print.js': latePrinter,
    });
    // Rewritten after the window: it stood for 30 days.
    const rewrittenLate = commit(repo, 4, 'Add a formatter', { 'src/format.js': lines('format', 10) });
    commit(repo, 50, 'Replace the formatter', { 'src/format.js': lines('other', 10) });
    assert.deepEqual(await verdicts(repo, [rewritten, fixed, rewrittenLate]), ['rewritten', 'intact', 'intact']);
  });

  it('a merge commit: the lines its branch commits added are its own; a deleted file counts as rewritten', async () => {
    const repo = newRepository(join(dir, 'app'));
    const kept = mergeBranch(repo, 0, 'feature-a', { 'src/a.js': lines('a', 6) });
    const deleted = mergeBranch(repo, 1, 'feature-b', { 'src/b.js': lines('b', 6) });
    const reverted = mergeBranch(repo, 2, 'feature-c', { 'src/c.js': lines('c', 6) });
    const edited = mergeBranch(repo, 3, 'feature-d', { 'src/d.js': lines('d', 6) });
    commit(repo, 4, 'Fix one line of d', { 'src/d.js': lines('d', 6).replace('d line 3\n', 'd line three\n') });
    git(repo, ['rm', '-q', 'src/b.js']);
    git(repo, ['commit', '-q', '-m', 'Drop b'], 4);
    git(repo, ['revert', '--no-edit', '-m', '1', reverted], 6);
    commit(repo, 60, 'Later work', { 'NOTES.md': 'notes\n' });
    assert.deepEqual(await verdicts(repo, [kept, deleted, reverted, edited]), ['intact', 'rewritten', 'reverted', 'intact']);
  });

  it('an open window is pending; a commit not in the repository is not measurable; decided answers are cached', async () => {
    const repo = newRepository(join(dir, 'app'));
    const old = commit(repo, 0, 'Add a parser', { 'src/parse.js': lines('parse', 10) });
    commit(repo, 40, 'Later work', { 'NOTES.md': 'notes\n' });
    write(repo, 'src/new.js', lines('new', 4));
    git(repo, ['add', '-A']);
    git(repo, ['commit', '-q', '-m', 'Merged today']);
    const today = git(repo, ['rev-parse', 'HEAD']);
    const cacheFile = join(dir, 'cache', 'intact-cache.json');
    const missing = 'f'.repeat(40);
    assert.deepEqual(await verdicts(repo, [old, today, missing], 30, cacheFile), ['intact', 'pending', 'notMeasurable']);
    const facts = new IntactFacts(repo, { days: 30 });
    const answer = (await facts.answers([{ mergeCommitSha: missing, baseRef: 'main' }])).get(missing);
    assert.ok(answer && !answer.ok);
    assert.match(answer.reason, /is not in the repository .*fetch/);
    const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as { entries: Record<string, unknown> };
    assert.deepEqual(Object.keys(cached.entries), [`${old}:30`], 'only the decided answer is kept');
    // The same reader again after the branch moved: commits that leave its files alone change nothing; a rewrite does.
    const reader = new IntactFacts(repo, { days: 30 });
    const ask = async () => intactVerdict((await reader.answers([{ mergeCommitSha: today, baseRef: 'main' }])).get(today), 30).verdict;
    assert.equal(await ask(), 'pending');
    commit(repo, undefined, 'Unrelated', { 'NOTES.md': 'more notes\n' });
    assert.equal(await ask(), 'pending');
    commit(repo, undefined, 'Rewrite the new file', { 'src/new.js': lines('rewritten', 4) });
    assert.equal(await ask(), 'rewritten');
    // The cache answers without git: a second reader gives the same verdict for a commit the repository lost.
    const copy = newRepository(join(dir, 'other'));
    assert.deepEqual(await verdicts(copy, [old, today], 30, cacheFile), ['intact', 'notMeasurable']);
  });

  it('no merge commit in the log is not measurable; the figure counts only decided changes in the rate', () => {
    assert.equal(intactVerdict(undefined, 30).verdict, 'notMeasurable');
    assert.deepEqual(intactFigure(['intact', 'intact', 'intact', 'reverted', 'rewritten', 'pending', 'notMeasurable']), {
      merged: 7,
      measured: 5,
      intact: 3,
      reverted: 1,
      rewritten: 1,
      pending: 1,
      notMeasurable: 1,
      rate: 0.6,
    });
  });

  describe('agent-lanes metrics --git', () => {
    /** A log of `repo` (its repoKey, as the lanes compute it) with merged changes; `merges`: change id → merge sha (undefined: an old log). */
    async function logFor(repo: string, file: string, merges: Record<string, string | undefined>): Promise<string> {
      const commonDir = realpathSync(join(repo, git(repo, ['rev-parse', '--git-common-dir'])));
      const log = await AuditLog.open(file, { repoKey: RepoStorage.keyFor(commonDir) });
      const actor = { type: 'user' as const, id: 'dev' };
      for (const [changeId, sha] of Object.entries(merges)) {
        await log.append({ actor, action: 'change.create', changeId, details: { agentId: 'codex', taskClass: 'docs' } });
        await log.append({
          actor,
          action: 'pr.closed',
          changeId,
          details: { state: 'merged', ...(sha ? { mergeCommitSha: sha, baseRef: 'main' } : {}) },
        });
      }
      await log.close();
      return file;
    }

    async function run(args: string[]): Promise<{ code: number; logs: string[]; errors: string[] }> {
      const logs: string[] = [];
      const errors: string[] = [];
      const code = await main(['metrics', ...args], { log: (s) => logs.push(s), error: (s) => errors.push(s) });
      return { code, logs, errors };
    }

    it('prints the intact figures per group, keeps colliding change ids of two repositories apart, and says what it cannot measure', async () => {
      const a = newRepository(join(dir, 'repo-a'));
      const b = newRepository(join(dir, 'repo-b'));
      const aReverted = commit(a, 0, 'Add a parser', { 'src/parse.js': lines('parse', 10) });
      const aKept = commit(a, 1, 'Add a printer', { 'src/print.js': lines('print', 10) });
      git(a, ['revert', '--no-edit', aReverted], 2);
      commit(a, 40, 'Later', { 'NOTES.md': 'x\n' });
      const bKept = commit(b, 0, 'Add a parser', { 'src/parse.js': lines('parse', 10) });
      commit(b, 40, 'Later', { 'NOTES.md': 'x\n' });
      // The same change id in both logs: measured in its own repository each.
      const logA = await logFor(a, join(dir, 'a.jsonl'), { c0ffee01: aReverted, c0ffee02: aKept, c0ffee03: undefined });
      const logB = await logFor(b, join(dir, 'b.jsonl'), { c0ffee01: bKept });

      const table = await run([logA, logB, '--git', a, '--git', b, '--by', 'repository', '--intact-days', '30']);
      assert.equal(table.code, 0, table.errors.join('\n'));
      // Groups come in the order of their repository keys (hashes): sorted here.
      const intactLines = table.logs.filter((line) => line.includes('intact after')).sort();
      assert.deepEqual(intactLines, [
        '  intact after 30 days: 100% of 1 measured (1 intact, 0 reverted, 0 rewritten); 0 pending, 0 not measurable',
        '  intact after 30 days: 50% of 2 measured (1 intact, 1 reverted, 0 rewritten); 0 pending, 1 not measurable',
      ]);
      assert.match(table.errors.join('\n'), /Intact rate: 1 merged change not measurable: the log does not record the merge commit/);

      const json = await run([logA, logB, '--git', a, '--git', b, '--by', 'repository', '--format', 'json']);
      const report = JSON.parse(json.logs.join('\n')) as { intactDays: number; groups: { intact: { reverted: number; rate: number } }[] };
      assert.equal(report.intactDays, 30);
      assert.deepEqual(report.groups.map((group) => [group.intact.reverted, group.intact.rate]).sort(), [
        [0, 1],
        [1, 0.5],
      ]);
      const csv = await run([logA, '--git', a, '--format', 'csv']);
      const [header, row] = csv.logs.map((line) => line.split(','));
      assert.equal(row![header!.indexOf('intactRate')], '0.5');
      assert.equal(row![header!.indexOf('intactReverted')], '1');

      // Without --git: no intact figures, and a log whose repository was not given is not measured.
      assert.ok(!(await run([logA])).logs.some((line) => line.includes('intact')));
      const onlyB = await run([logA, logB, '--git', b, '--by', 'repository']);
      assert.match(onlyB.logs.join('\n'), /0 measured .*3 not measurable/);
      assert.match(onlyB.errors.join('\n'), /no --git repository given for the log of repository/);
    });

    it('refuses a repository no log belongs to, unless its key is named; and a bad --intact-days', async () => {
      const a = newRepository(join(dir, 'repo-a'));
      const sha = commit(a, 0, 'Add a parser', { 'src/parse.js': lines('parse', 10) });
      commit(a, 40, 'Later', { 'NOTES.md': 'x\n' });
      // Another clone of the same history (its key differs: the key is the git directory's path).
      git(dir, ['clone', '-q', a, join(dir, 'clone')]);
      const other = realpathSync(join(dir, 'clone'));
      const log = await logFor(a, join(dir, 'a.jsonl'), { c0ffee01: sha });
      const refused = await run([log, '--git', other]);
      assert.equal(refused.code, 2);
      assert.match(refused.errors.join('\n'), /is not the repository of any log given \(their keys: [0-9a-f]{12}\).*--git KEY=/);
      const key = /their keys: ([0-9a-f]{12})/.exec(refused.errors.join('\n'))![1]!;
      const named = await run([log, '--git', `${key}=${other}`]);
      assert.equal(named.code, 0, named.errors.join('\n'));
      assert.match(named.logs.join('\n'), /intact after 30 days: 100% of 1 measured/);
      assert.equal((await run([log, '--git', a, '--intact-days', '0'])).code, 2);
      assert.match((await run([log, '--intact-days', '7'])).errors.join('\n'), /--intact-days needs --git/);
      assert.match((await run([log, '--git', join(dir, 'nowhere')])).errors.join('\n'), /nowhere does not exist/);
      assert.ok(existsSync(join(other, '.git', 'agent-lanes', 'intact-cache.json')), 'the CLI keeps decided answers in the git directory');
    });
  });
});
