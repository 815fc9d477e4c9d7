import picomatch from 'picomatch';
import type { FileChange, Flag, TaskEvidence } from '../evidence';

/** Where tests usually live, across the ecosystems the summary parsers know. */
const TEST_FILE_GLOBS = [
  '**/test/**',
  '**/tests/**',
  '**/__tests__/**',
  '**/spec/**',
  '**/*.test.*',
  '**/*.spec.*',
  '**/*_test.go',
  '**/test_*.py',
  '**/*_test.py',
  '**/conftest.py',
];

const isTestPath = picomatch(TEST_FILE_GLOBS, { dot: true });

/** @internal Exported for its unit tests; the product calls it inside this module. */
export function isTestFile(path: string): boolean {
  return isTestPath(path);
}

/** True when the change adds or edits test files: then the test tasks also run on the base commit. */
export function changeTouchesTests(files: readonly FileChange[]): boolean {
  return files.some((file) => file.status !== 'deleted' && isTestFile(file.path));
}

/**
 * What "the change's tests against the base commit's other files" means as
 * file operations on a worktree at the base: the change's test files (added,
 * edited, renamed or copied to a test path) are checked out from the head,
 * and the test files it deletes or renames away are removed.
 */
export interface BaseOverlay {
  checkout: string[];
  remove: string[];
}

export function baseOverlay(files: readonly FileChange[]): BaseOverlay {
  const checkout = new Set<string>();
  const remove = new Set<string>();
  for (const file of files) {
    if (file.gitlink) continue;
    if (file.status === 'deleted') {
      if (isTestFile(file.path)) remove.add(file.path);
      continue;
    }
    if (isTestFile(file.path)) checkout.add(file.path);
    if (file.status === 'renamed' && file.oldPath && isTestFile(file.oldPath)) remove.add(file.oldPath);
  }
  for (const path of checkout) remove.delete(path);
  return { checkout: [...checkout].sort(), remove: [...remove].sort() };
}

/**
 * What a base-commit run says about a test: it failed there (the change makes
 * it pass: good), it passed there too (it does not exercise the change), or
 * it could not tell (cancelled, errored, skipped).
 */
export function failsOnBaseFrom(outcome: TaskEvidence['outcome']): boolean | null {
  if (outcome === 'failed' || outcome === 'timedOut') return true;
  if (outcome === 'passed') return false;
  return null;
}

/** The change's task evidence with `failsOnBase` (and, where known, per test file) filled in from the base run. */
export function applyBaseResults(
  tasks: readonly TaskEvidence[],
  baseResults: ReadonlyMap<string, boolean | null>,
  baseFiles: ReadonlyMap<string, TestFileResult[]> = new Map(),
): TaskEvidence[] {
  return tasks.map((task) => {
    if (!baseResults.has(task.id)) return task;
    const files = baseFiles.get(task.id);
    return { ...task, failsOnBase: baseResults.get(task.id)!, ...(files?.length ? { baseFiles: files } : {}) };
  });
}

/** A flag for each test task that passes on the change and on the base alike, naming the test files that pass there. */
export function testsDoNotExerciseFlags(tasks: readonly TaskEvidence[]): Flag[] {
  return tasks
    .filter((task) => task.outcome === 'passed' && task.failsOnBase === false)
    .map((task) => {
      const passing = (task.baseFiles ?? []).filter((file) => !file.failsOnBase).map((file) => file.path);
      const named = passing.length
        ? ` (${passing.slice(0, 5).join(', ')}${passing.length > 5 ? `, and ${passing.length - 5} more` : ''})`
        : '';
      return {
        kind: 'testsDoNotExercise' as const,
        detail: `The test task "${task.id}" passes on the base commit too, with the change's test files${named}: the change's tests do not fail without the change.`,
      };
    });
}

export interface TestFileResult {
  path: string;
  failsOnBase: boolean;
}

// Colours and cursor moves that reporters print when they think stdout is a terminal.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]/g;
const TAP_RESULT = /^(\s*)(not ok|ok) \d+(?: - (.*?))?(\s+# (?:SKIP|TODO)\b.*)?$/i;
const TAP_LOCATION = /^\s+location: '(.+?):\d+:\d+'\s*$/;
const JEST_FILE = /^\s*(PASS|FAIL)\s+(\S+)/;
const VITEST_FILE = /^\s*(✓|❯|×)\s+(\S+)\s+\(\d+ tests?\b/;
const PYTEST_VERBOSE = /^(\S+\.py)::\S+ (PASSED|FAILED|ERROR|XPASS|XFAIL|SKIPPED)\b/;
const PYTEST_SUMMARY = /^(FAILED|ERROR) (\S+\.py)(?:::|\s|$)/;
const PYTEST_PROGRESS = /^(\S+\.py) ([.FEsxX]+)\s*(?:\[\s*\d+%\])?\s*$/;

/**
 * Which of the given test files passed or failed, from a test runner's
 * output, for the runners that name files: node's test runner (TAP, each
 * result's `location`), jest and vitest (a line per file), pytest (`-v`,
 * progress and summary lines). A file the output does not name is left out;
 * paths in the output may be absolute (inside the container) and match a
 * test file by their ending.
 */
export function testFileResults(output: string, testFiles: readonly string[]): TestFileResult[] {
  if (!testFiles.length || !output) return [];
  // Longest first: `a/test/x.test.js` is not taken for `test/x.test.js`.
  const byLength = [...testFiles].sort((a, b) => b.length - a.length);
  const fileOf = (reported: string): string | undefined => {
    const path = reported
      .replace(/^file:\/\//, '')
      .replace(/\\/g, '/')
      .replace(/^\.\//, '');
    return byLength.find((file) => path === file || path.endsWith(`/${file}`));
  };
  const failed = new Map<string, boolean>();
  const note = (reported: string | undefined, fails: boolean) => {
    const file = reported && fileOf(reported);
    if (file) failed.set(file, (failed.get(file) ?? false) || fails);
  };
  const lines = output.replace(ANSI, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const tap = TAP_RESULT.exec(line);
    if (tap) {
      if (tap[4]) continue; // skipped or todo: says nothing about the file
      const fails = tap[2]!.toLowerCase() === 'not ok';
      // node's TAP puts the test's location in the YAML block under it.
      let location: string | undefined;
      for (let j = i + 1; j < Math.min(lines.length, i + 40); j++) {
        const next = lines[j]!;
        if (TAP_RESULT.test(next) || /^\s*# Subtest:/.test(next)) break;
        const at = TAP_LOCATION.exec(next);
        if (at) {
          location = at[1];
          break;
        }
      }
      note(location ?? tap[3], fails);
      continue;
    }
    const jest = JEST_FILE.exec(line) ?? VITEST_FILE.exec(line);
    if (jest) {
      note(jest[2], jest[1] === 'FAIL' || jest[1] === '❯' || jest[1] === '×');
      continue;
    }
    const verbose = PYTEST_VERBOSE.exec(line);
    if (verbose) {
      note(verbose[1], verbose[2] === 'FAILED' || verbose[2] === 'ERROR');
      continue;
    }
    const summary = PYTEST_SUMMARY.exec(line);
    if (summary) {
      note(summary[2], true);
      continue;
    }
    const progress = PYTEST_PROGRESS.exec(line);
    if (progress) note(progress[1], /[FE]/.test(progress[2]!));
  }
  return testFiles.filter((file) => failed.has(file)).map((file) => ({ path: file, failsOnBase: failed.get(file)! }));
}
