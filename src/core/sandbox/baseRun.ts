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
 * What a base-commit run says about a test: it failed there (the change makes
 * it pass: good), it passed there too (it does not exercise the change), or
 * it could not tell (cancelled, errored, skipped).
 */
export function failsOnBaseFrom(outcome: TaskEvidence['outcome']): boolean | null {
  if (outcome === 'failed' || outcome === 'timedOut') return true;
  if (outcome === 'passed') return false;
  return null;
}

/** The change's task evidence with `failsOnBase` filled in from the base run's outcomes. */
export function applyBaseResults(tasks: readonly TaskEvidence[], baseResults: ReadonlyMap<string, boolean | null>): TaskEvidence[] {
  return tasks.map((task) => (baseResults.has(task.id) ? { ...task, failsOnBase: baseResults.get(task.id)! } : task));
}

/** A flag for each test task that passes on the change and on the base alike. */
export function testsDoNotExerciseFlags(tasks: readonly TaskEvidence[]): Flag[] {
  return tasks
    .filter((task) => task.outcome === 'passed' && task.failsOnBase === false)
    .map((task) => ({
      kind: 'testsDoNotExercise' as const,
      detail: `The test task "${task.id}" passes on the base commit too: the change's tests do not fail without the change.`,
    }));
}
