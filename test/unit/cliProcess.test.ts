import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// The `agent-lanes` command line as a platform team runs it in CI: the built
// dist/cli.js (package.json's bin), in a child process, through `npx` too.
const ROOT = resolve(__dirname, '../../..');
const CLI = join(ROOT, 'dist', 'cli.js');
const POLICY = join(ROOT, 'test', 'fixtures', 'policy', 'sample-org-policy.yaml');
const CASES = join(ROOT, 'test', 'fixtures', 'policy', 'sample-org-policy.cases.yaml');

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, npm_config_yes: 'false' },
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('agent-lanes policy test (the built CLI in a child process)', function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    if (!existsSync(CLI)) {
      const build = run(process.execPath, ['esbuild.mjs']);
      assert.equal(build.code, 0, `node esbuild.mjs failed:\n${build.stderr}`);
    }
    dir = mkdtempSync(join(tmpdir(), 'lanes-cli-process-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("passes the sample policy's cases with exit code 0", () => {
    const { code, stdout } = run(process.execPath, [CLI, 'policy', 'test', POLICY, CASES]);
    assert.equal(code, 0, stdout);
    assert.match(
      stdout,
      /^Testing acme-platform@2026\.11\.1 \(.*sample-org-policy\.yaml\) with \d+ cases from .*sample-org-policy\.cases\.yaml$/m,
    );
    assert.match(stdout, /^ {2}✓ a change to infra\/ is blocked$/m);
    assert.match(stdout, /^\d+ passed, 0 failed$/m);
  });

  it('reports a failing case with its reason and exits 1', () => {
    const cases = join(dir, 'failing.cases.yaml');
    writeFileSync(
      cases,
      'cases:\n  - name: infra is fine (wrong)\n    action: gate.draftToSandbox\n    facts: { files: [infra/main.tf] }\n    expect: { effect: allow, reason: fine }\n',
    );
    const { code, stdout } = run(process.execPath, [CLI, 'policy', 'test', POLICY, cases]);
    assert.equal(code, 1, stdout);
    assert.match(
      stdout,
      /^ {2}✗ infra is fine \(wrong\)\n {6}expected effect allow, got block\n {6}expected the reason to contain fine\n {6}decision: block: Blocked: Draft → Sandbox: infra\/main\.tf matches "infra\/\*\*"/m,
    );
    assert.match(stdout, /^0 passed, 1 failed$/m);
  });

  it('exits 2 with the problem for bad usage and for an invalid cases file', () => {
    const usage = run(process.execPath, [CLI, 'policy', 'test', POLICY]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /needs exactly two files, POLICY and CASES; got 1/);
    const cases = join(dir, 'invalid.cases.yaml');
    writeFileSync(cases, 'cases:\n  - name: no action\n    expect: { effect: allow }\n');
    const invalid = run(process.execPath, [CLI, 'policy', 'test', POLICY, cases]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /action/);
    assert.match(invalid.stderr, /No case was run: fix the file above first\./);
  });

  it('runs from a copy of dist/cli.js alone in an empty folder: the one file platform teams put in their CI', () => {
    const alone = join(dir, 'agent-lanes.cjs');
    copyFileSync(CLI, alone);
    const { code, stdout, stderr } = run(process.execPath, [alone, 'policy', 'validate', POLICY]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /valid/i);
  });

  it('is built by npm ci itself (the prepare script), so `npx agent-lanes` works in a fresh clone', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
      scripts: Record<string, string>;
    };
    assert.equal(manifest.bin['agent-lanes'], './dist/cli.js');
    assert.equal(manifest.scripts.prepare, 'node esbuild.mjs');
  });

  it('runs as `npx agent-lanes` from the repository (package.json bin), never installing anything', () => {
    const { code, stdout, stderr } = run(process.platform === 'win32' ? 'npx.cmd' : 'npx', [
      '--no',
      'agent-lanes',
      'policy',
      'test',
      POLICY,
      CASES,
    ]);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /^\d+ passed, 0 failed$/m);
  });
});
