import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileChange, TaskEvidence } from '../../src/core/evidence';
import {
  applyBaseResults,
  baseOverlay,
  changeTouchesTests,
  failsOnBaseFrom,
  isTestFile,
  testFileResults,
  testsDoNotExerciseFlags,
} from '../../src/core/sandbox/baseRun';
import { LanesConfigError, mergeTasks, parseLanesConfig } from '../../src/core/sandbox/lanesConfig';
import { preparationReach, sandboxPolicyFrom } from '../../src/core/sandbox/sandboxPolicy';
import { CappedLog, LineRedactor } from '../../src/core/sandbox/taskLog';

function configError(text: string): LanesConfigError {
  try {
    parseLanesConfig(text);
  } catch (error) {
    assert.ok(error instanceof LanesConfigError, String(error));
    return error;
  }
  assert.fail('expected a LanesConfigError');
}

function taskEvidence(id: string, outcome: TaskEvidence['outcome'], failsOnBase: boolean | null = null): TaskEvidence {
  return {
    id,
    command: 'npm test',
    required: true,
    isolation: 'container',
    networkMode: 'none',
    outcome,
    exitCode: outcome === 'passed' ? 0 : 1,
    durationMs: 10,
    logDigest: 'sha256:0',
    logTruncated: false,
    redaction: { total: 0, byKind: {} },
    failsOnBase,
    startedAt: '2026-11-21T00:00:00.000Z',
  };
}

describe('sandbox .lanes/lanes.yaml', () => {
  it('parses tasks and prepare commands', () => {
    const config = parseLanesConfig(
      'prepare:\n  - npm ci --offline\ntasks:\n  - id: unit\n    command: npm test\n    timeoutSeconds: 600\n    test: true\n  - id: lint\n    command: npm run lint\n    required: false\n',
    );
    assert.deepEqual(config, {
      prepare: ['npm ci --offline'],
      tasks: [
        { id: 'unit', command: 'npm test', timeoutSeconds: 600, test: true },
        { id: 'lint', command: 'npm run lint', required: false },
      ],
    });
  });

  it('treats a missing or empty file as no tasks', () => {
    assert.deepEqual(parseLanesConfig(undefined), { tasks: [], prepare: [] });
    assert.deepEqual(parseLanesConfig('# nothing yet\n'), { tasks: [], prepare: [] });
  });

  it('names the file, line and column of a YAML error', () => {
    const error = configError('tasks:\n  - id: unit\n    command: x\n    command: y\n');
    assert.equal(error.fileName, '.lanes/lanes.yaml');
    assert.equal(
      error.message,
      '.lanes/lanes.yaml has a YAML error at line 4, column 5: Map keys must be unique. Fix the file in the base commit and run the tasks again.',
    );
    assert.match(configError('tasks:\n\t- id: a\n').message, /line 2, column 1: Tabs are not allowed/);
  });

  it('names the field and its position for a schema error', () => {
    const error = configError('tasks:\n  - id: unit\n    command: npm test\n    timeoutSeconds: soon\n');
    assert.match(error.message, /tasks\[0\]\.timeoutSeconds \(line 4, column 21\): Invalid input: expected number/);
    assert.match(error.message, /Expected tasks: \[\{ id, command/);
    assert.equal(error.line, 4);
  });

  it('refuses unknown keys, duplicate ids and bad ids', () => {
    assert.match(configError('tasks:\n  - id: unit\n    command: x\n    network: open\n').message, /Unrecognized key: "network"/);
    assert.match(
      configError('tasks:\n  - { id: a, command: x }\n  - { id: a, command: y }\n').message,
      /tasks\[1\]\.id \(line 3, column 11\): the task id "a" appears twice/,
    );
    assert.match(configError('tasks:\n  - { id: "../x", command: x }\n').message, /a task id is 1 to 64 letters/);
    assert.match(configError('tasks:\n  - { id: a }\n').message, /tasks\[0\]\.command/);
  });

  it('merges: policy tasks first, the repository adds, and cannot override or drop', () => {
    const repository = parseLanesConfig(
      'tasks:\n  - { id: unit, command: "true", required: false }\n  - { id: e2e, command: npm run e2e, test: true, timeoutSeconds: 7200 }\n  - { id: docs, command: make docs, required: false }\n',
    );
    const merged = mergeTasks([{ id: 'unit', command: 'npm test', test: true }], repository, {
      defaultTimeoutSeconds: 600,
      maxTimeoutSeconds: 3600,
    });
    assert.deepEqual(merged.tasks, [
      { id: 'unit', command: 'npm test', timeoutSeconds: 600, test: true, required: true, source: 'policy' },
      { id: 'e2e', command: 'npm run e2e', timeoutSeconds: 3600, test: true, required: true, source: 'repository' },
      { id: 'docs', command: 'make docs', timeoutSeconds: 600, test: false, required: false, source: 'repository' },
    ]);
    assert.equal(merged.notes.length, 2);
    assert.match(merged.notes[0]!, /task "unit" is ignored: policy requires a task with this id.*"npm test"/);
    assert.match(merged.notes[1]!, /task "e2e" asks for 7200 s; policy's limit of 3600 s applies/);
  });
});

describe('sandbox task log', () => {
  it('keeps everything under the cap', () => {
    const log = new CappedLog(1000);
    log.append('one\n');
    log.append('two\n');
    assert.equal(log.text(), 'one\ntwo\n');
    assert.equal(log.truncated, false);
  });

  it('keeps the head and the tail of a long log on line boundaries, with a marker', () => {
    const log = new CappedLog(2000);
    for (let line = 0; line < 1000; line++) log.append(`line ${line}\n`);
    const text = log.text();
    assert.equal(log.truncated, true);
    assert.ok(text.length <= 2200, `length ${text.length}`);
    assert.ok(text.startsWith('line 0\nline 1\n'));
    assert.ok(text.endsWith('line 998\nline 999\n'));
    assert.match(text, /\[agent-lanes: log capped at 2000 characters; \d+ characters omitted here, the end of the log follows\]/);
    // No half line on either side of the marker.
    for (const line of text.split('\n')) assert.match(line, /^(line \d+|\[agent-lanes: .*\]|)$/);
  });

  it('redacts streamed output even when a secret is split across chunks', () => {
    const out: string[] = [];
    const redactor = new LineRedactor((text) => out.push(text));
    redactor.write('token: ghp_0123456789abcdef');
    redactor.write('ABCDEFGHIJ0123456789xyz\nnext line\npartial');
    const summary = redactor.end();
    assert.equal(out.join(''), 'token: [REDACTED:githubToken]\nnext line\npartial');
    assert.equal(summary.total, 1);
  });
});

describe('sandbox base-commit run', () => {
  it('recognises test files', () => {
    for (const path of ['test/unit/a.test.ts', 'src/a.spec.js', 'pkg/calc_test.go', 'tests/test_calc.py', 'lib/__tests__/x.js'])
      assert.ok(isTestFile(path), path);
    for (const path of ['src/a.ts', 'README.md', 'testing.md']) assert.ok(!isTestFile(path), path);
    const file = (path: string, status: FileChange['status']): FileChange => ({ path, status, additions: 1, deletions: 0, binary: false });
    assert.ok(changeTouchesTests([file('src/a.ts', 'modified'), file('test/a.test.ts', 'added')]));
    assert.ok(!changeTouchesTests([file('src/a.ts', 'modified'), file('test/a.test.ts', 'deleted')]));
  });

  it('turns base outcomes into failsOnBase and flags tests that pass without the change', () => {
    assert.equal(failsOnBaseFrom('failed'), true);
    assert.equal(failsOnBaseFrom('timedOut'), true);
    assert.equal(failsOnBaseFrom('passed'), false);
    assert.equal(failsOnBaseFrom('cancelled'), null);
    const tasks = applyBaseResults(
      [taskEvidence('unit', 'passed'), taskEvidence('e2e', 'passed'), taskEvidence('lint', 'passed')],
      new Map([
        ['unit', true],
        ['e2e', false],
      ]),
    );
    assert.deepEqual(
      tasks.map((task) => task.failsOnBase),
      [true, false, null],
    );
    const flags = testsDoNotExerciseFlags(tasks);
    assert.deepEqual(
      flags.map((flag) => flag.kind),
      ['testsDoNotExercise'],
    );
    assert.match(flags[0]!.detail, /"e2e" passes on the base commit too/);
  });

  it("puts the change's test files over the base: added, edited, renamed in; deleted and renamed away out", () => {
    const file = (path: string, status: FileChange['status'], oldPath?: string): FileChange => ({
      path,
      status,
      additions: 1,
      deletions: 0,
      binary: false,
      ...(oldPath ? { oldPath } : {}),
    });
    assert.deepEqual(
      baseOverlay([
        file('src/greeting.js', 'added'),
        file('test/greeting.test.js', 'added'),
        file('test/old.test.js', 'modified'),
        file('test/gone.test.js', 'deleted'),
        file('test/new-name.test.js', 'renamed', 'test/old-name.test.js'),
        file('test/helpers/copy.js', 'copied', 'test/helpers/orig.js'),
        file('src/moved-out.js', 'renamed', 'test/was-a-test.js'),
        { ...file('test/vendor', 'added'), gitlink: true },
      ]),
      {
        checkout: ['test/greeting.test.js', 'test/helpers/copy.js', 'test/new-name.test.js', 'test/old.test.js'],
        remove: ['test/gone.test.js', 'test/old-name.test.js', 'test/was-a-test.js'],
      },
    );
  });

  it("reads per test file results from node's test runner (real output, TAP)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'lanes-node-test-'));
    try {
      mkdirSync(join(dir, 'test'));
      mkdirSync(join(dir, 'src'));
      writeFileSync(join(dir, 'test', 'greeting.test.js'), "require('../src/greeting');\n");
      writeFileSync(join(dir, 'test', 'plain.test.js'), "console.log('fine');\n");
      writeFileSync(
        join(dir, 'test', 'cases.test.js'),
        "const test = require('node:test');\ntest('adds', () => {});\ntest('breaks', () => { throw new Error('no'); });\n",
      );
      writeFileSync(join(dir, 'test', 'skipped.test.js'), "require('node:test')('later', { skip: true }, () => {});\n");
      const run = spawnSync(process.execPath, ['--test', 'test/'], { cwd: dir, encoding: 'utf8' });
      const output = run.stdout + run.stderr;
      assert.deepEqual(
        testFileResults(output, [
          'test/cases.test.js',
          'test/greeting.test.js',
          'test/plain.test.js',
          'test/skipped.test.js',
          'test/absent.test.js',
        ]),
        [
          { path: 'test/cases.test.js', failsOnBase: true },
          { path: 'test/greeting.test.js', failsOnBase: true },
          { path: 'test/plain.test.js', failsOnBase: false },
        ],
        output,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads per test file results from jest, vitest and pytest, matching paths by their end', () => {
    const jest = 'PASS src/a.test.ts\nFAIL /workspaces/app/src/b.test.ts\n  ● b › works\nTests: 1 failed, 3 passed, 4 total\n';
    assert.deepEqual(testFileResults(jest, ['src/a.test.ts', 'src/b.test.ts', 'x/src/b.test.ts']), [
      { path: 'src/a.test.ts', failsOnBase: false },
      { path: 'src/b.test.ts', failsOnBase: true },
    ]);
    const vitest = ' ✓ test/one.test.ts (2 tests) 3ms\n ❯ test/two.test.ts (3 tests | 1 failed) 9ms\n   × adds\n';
    assert.deepEqual(testFileResults(vitest, ['test/one.test.ts', 'test/two.test.ts']), [
      { path: 'test/one.test.ts', failsOnBase: false },
      { path: 'test/two.test.ts', failsOnBase: true },
    ]);
    const pytest =
      'tests/test_a.py ..                                    [ 50%]\ntests/test_b.py .F                                    [100%]\n' +
      '=========================== short test summary info ============================\nFAILED tests/test_c.py::test_x - assert 1 == 2\n';
    assert.deepEqual(testFileResults(pytest, ['tests/test_a.py', 'tests/test_b.py', 'tests/test_c.py']), [
      { path: 'tests/test_a.py', failsOnBase: false },
      { path: 'tests/test_b.py', failsOnBase: true },
      { path: 'tests/test_c.py', failsOnBase: true },
    ]);
    assert.deepEqual(testFileResults('  12 passing (4ms)\n', ['test/a.test.js']), [], "mocha's summary names no file");
  });

  it('names the test files that pass on the base in the flag', () => {
    const [task] = applyBaseResults(
      [taskEvidence('unit', 'passed')],
      new Map([['unit', false]]),
      new Map([['unit', [{ path: 'test/a.test.js', failsOnBase: false }]]]),
    );
    assert.deepEqual(task!.baseFiles, [{ path: 'test/a.test.js', failsOnBase: false }]);
    assert.match(testsDoNotExerciseFlags([task!])[0]!.detail, /with the change's test files \(test\/a\.test\.js\)/);
  });

  it("maps the effective policy's sandbox section", () => {
    const view = sandboxPolicyFrom({
      network: { tasks: 'none', preparation: { registries: ['registry.npmjs.org'] } },
      limits: { cpus: 2, memoryMb: 4096, timeoutSeconds: 1800 },
      requiredTasks: [{ id: 'unit', command: 'npm test', timeoutSeconds: 300 }],
      processSandbox: 'forbidden',
      devcontainer: {
        allowPrivileged: false,
        allowHostNetwork: true,
        allowedMounts: ['/opt/cache'],
        allowedCapabilities: ['SYS_PTRACE'],
        allowedFeatures: ['ghcr.io/devcontainers/features/node'],
      },
    });
    assert.deepEqual(view, {
      policy: {
        taskNetwork: 'none',
        preparationNetwork: 'registries',
        preparationRegistries: ['registry.npmjs.org'],
        limits: { cpus: 2, memoryMb: 4096 },
        devcontainer: {
          allowPrivileged: false,
          allowHostNetwork: true,
          allowMounts: ['/opt/cache'],
          allowCapAdd: ['SYS_PTRACE'],
          allowFeatures: ['ghcr.io/devcontainers/features/node'],
        },
        allowProcessSandbox: false,
      },
      requiredTasks: [{ id: 'unit', command: 'npm test', timeoutSeconds: 300 }],
      maxTimeoutSeconds: 1800,
    });
  });

  it('records what the preparation could reach', () => {
    assert.deepEqual(preparationReach({}), { networkMode: 'none', reachable: [] });
    assert.deepEqual(preparationReach({ preparationNetwork: 'open' }), { networkMode: 'bridge', reachable: ['any host'] });
    assert.match(
      preparationReach({ preparationNetwork: 'registries', preparationRegistries: ['registry.npmjs.org'] }).reachable[0]!,
      /registry\.npmjs\.org; not enforced per host/,
    );
  });
});
