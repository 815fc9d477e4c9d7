// Generated workspaces for the integration and end-to-end tests and the demo:
// real git repositories, made fresh for each run.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Lanes Tester',
  GIT_AUTHOR_EMAIL: 'tester@example.com',
  GIT_COMMITTER_NAME: 'Lanes Tester',
  GIT_COMMITTER_EMAIL: 'tester@example.com',
};

export function git(cwd, ...args) {
  return execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' }).trim();
}

export function tempDir(prefix = 'lanes-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A small Node project with a test, committed on main. */
export function createSampleRepository(dir, { name = 'sample-app' } = {}) {
  mkdirSync(join(dir, 'src'), { recursive: true });
  mkdirSync(join(dir, 'test'), { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name, version: '1.0.0', private: true, scripts: { test: 'node --test test/' } }, null, 2) + '\n',
  );
  writeFileSync(join(dir, 'src', 'math.js'), 'exports.add = (a, b) => a + b;\n');
  writeFileSync(
    join(dir, 'test', 'math.test.js'),
    "const test = require('node:test');\nconst assert = require('node:assert');\nconst { add } = require('../src/math');\ntest('adds', () => assert.strictEqual(add(2, 3), 5));\n",
  );
  writeFileSync(join(dir, 'README.md'), `# ${name}\n\nA sample repository for Agent Lanes.\n`);
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'config', 'user.name', 'Lanes Tester');
  git(dir, 'config', 'user.email', 'tester@example.com');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'Initial commit');
  return dir;
}

export function createBareRepository(dir) {
  git(dir, 'init', '-q', '--bare');
  return dir;
}

/** A multi-root workspace file with two repositories and a plain folder. */
export function createMultiRootWorkspace(root) {
  const repoA = createSampleRepository(join(root, 'repo-a'), { name: 'repo-a' });
  const repoB = createSampleRepository(join(root, 'repo-b'), { name: 'repo-b' });
  const plain = join(root, 'notes');
  mkdirSync(plain, { recursive: true });
  writeFileSync(join(plain, 'todo.txt'), 'not a repository\n');
  const file = join(root, 'lanes.code-workspace');
  writeFileSync(file, JSON.stringify({ folders: [{ path: repoA }, { path: repoB }, { path: plain }] }, null, 2));
  return { file, repoA, repoB, plain };
}

function mkdirp(dir) {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * The workspaces the integration scenarios open, by scenario name. `reload`
 * reopens the `repository` scenario's folder to prove records persist.
 */
export function createScenarioWorkspaces(root) {
  const repository = createSampleRepository(mkdirp(join(root, 'repository')));
  const notRepository = mkdirp(join(root, 'plain-folder'));
  writeFileSync(join(notRepository, 'hello.txt'), 'hello\n');
  const bare = createBareRepository(mkdirp(join(root, 'bare.git')));
  const multi = createMultiRootWorkspace(mkdirp(join(root, 'multi')));
  return {
    repository: { folder: repository },
    reload: { folder: repository },
    notRepository: { folder: notRepository },
    bare: { folder: bare },
    noFolder: {},
    multiRoot: { workspace: multi.file },
    draft: { folder: createSampleRepository(mkdirp(join(root, 'draft-app')), { name: 'draft-app' }) },
    sandbox: { folder: createSampleRepository(mkdirp(join(root, 'sandbox-app')), { name: 'sandbox-app' }) },
    policy: { folder: createSampleRepository(mkdirp(join(root, 'policy-app')), { name: 'policy-app' }) },
    audit: { folder: createSampleRepository(mkdirp(join(root, 'audit-app')), { name: 'audit-app' }) },
    pullRequest: { folder: createSampleRepository(mkdirp(join(root, 'pr-app')), { name: 'pr-app' }) },
    review: { folder: createSampleRepository(mkdirp(join(root, 'review-app')), { name: 'review-app' }) },
  };
}
