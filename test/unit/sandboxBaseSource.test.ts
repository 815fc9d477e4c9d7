import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LanesConfigError } from '../../src/core/sandbox/lanesConfig';
import { readSandboxSource } from '../../src/infra/sandbox/baseSource';

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], { cwd, encoding: 'utf8' });
}

function write(root: string, path: string, text: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), text);
}

describe('sandbox source from the base commit', () => {
  let repo: string;

  beforeEach(() => {
    repo = mkdtempSync(join(tmpdir(), 'lanes-base-source-'));
    git(repo, 'init', '-q', '-b', 'main');
  });

  afterEach(() => rmSync(repo, { recursive: true, force: true }));

  it('reads devcontainer.json, its Dockerfile and lanes.yaml from the base, not from later edits', async () => {
    write(repo, '.devcontainer/devcontainer.json', '{ "build": { "dockerfile": "Dockerfile" } }');
    write(repo, '.devcontainer/Dockerfile', 'FROM debian:bookworm\n');
    write(repo, '.lanes/lanes.yaml', 'prepare: [npm ci]\ntasks:\n  - { id: unit, command: npm test, test: true }\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'base');
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    // The change (here: the working tree and a later commit) edits both; the base decides.
    write(repo, '.devcontainer/devcontainer.json', '{ "image": "x", "privileged": true }');
    write(repo, '.lanes/lanes.yaml', 'tasks: []\n');
    git(repo, 'commit', '-q', '-am', 'agent edit');

    const { source, lanesConfig } = await readSandboxSource(repo, base);
    assert.equal(source.devcontainer?.text, '{ "build": { "dockerfile": "Dockerfile" } }');
    assert.equal(source.devcontainer?.label, `.devcontainer/devcontainer.json (base ${base.slice(0, 7)})`);
    assert.equal(await source.readBaseFile!('.devcontainer/Dockerfile'), 'FROM debian:bookworm\n');
    assert.equal(await source.readBaseFile!('.devcontainer/missing'), undefined);
    assert.deepEqual(source.prepare, ['npm ci']);
    assert.deepEqual(lanesConfig.tasks, [{ id: 'unit', command: 'npm test', test: true }]);
  });

  it('finds .devcontainer.json at the root, and no configuration at all', async () => {
    write(repo, 'README.md', 'x\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'none');
    const none = await readSandboxSource(repo, git(repo, 'rev-parse', 'HEAD').trim());
    assert.equal(none.source.devcontainer, undefined);
    assert.deepEqual(none.lanesConfig, { tasks: [], prepare: [] });
    write(repo, '.devcontainer.json', '{ "image": "y" }');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'root config');
    const root = await readSandboxSource(repo, git(repo, 'rev-parse', 'HEAD').trim());
    assert.equal(root.source.devcontainer?.path, '.devcontainer.json');
  });

  it('names the base commit in a lanes.yaml error', async () => {
    write(repo, '.lanes/lanes.yaml', 'tasks:\n  - id: unit\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'bad');
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    await assert.rejects(
      readSandboxSource(repo, base),
      (error: unknown) =>
        error instanceof LanesConfigError && error.message.startsWith(`.lanes/lanes.yaml (base ${base.slice(0, 7)}): tasks[0].command`),
    );
  });
});
