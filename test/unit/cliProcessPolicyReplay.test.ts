import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ChangeFacts } from '../../src/core/policy/evaluate';
import { type LaneContext, decide } from '../../src/infra/lanes/laneContext';
import { cleanupTemp, runGit, tempDir, writeFiles } from './support/draftRepo';
import { createLaneContext } from './support/laneContext';

// `agent-lanes policy replay` as a platform team runs it in CI: the built
// dist/cli.js in a child process, on an audit log the product wrote.
const ROOT = resolve(__dirname, '../../..');
const CLI = join(ROOT, 'dist', 'cli.js');
const logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

const CANDIDATE = `apiVersion: agentlanes.dev/v1
metadata: { id: acme-next, version: "2" }
lanes:
  approvals: { minApprovals: 0 }
pathRules:
  - { glob: "infra/**", effect: block, reason: Terraform only. }
`;

function run(args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('agent-lanes policy replay (the built CLI in a child process)', function () {
  this.timeout(120_000);
  let dir: string;
  let ctx: LaneContext;

  before(async () => {
    // Built when missing or older than this command.
    if (!existsSync(CLI) || !readFileSync(CLI, 'utf8').includes('policy replay CANDIDATE')) {
      const build = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(build.status, 0, `node esbuild.mjs failed:\n${build.stderr}`);
    }
    dir = tempDir('lanes-cli-replay-');
    const repo = join(dir, 'repo');
    runGit(dir, ['init', '-q', '-b', 'main', repo]);
    writeFiles(repo, { 'README.md': 'hello\n', 'infra/main.tf': 'resource "x" "y" {}\n' });
    runGit(repo, ['add', '.']);
    runGit(repo, ['commit', '-qm', 'change']);
    ctx = await createLaneContext(dir, repo, { logger });
    const files: ChangeFacts['files'] = runGit(repo, ['show', '--numstat', '--format=', 'HEAD'])
      .trim()
      .split('\n')
      .map((line) => {
        const [additions, deletions, path] = line.split('\t') as [string, string, string];
        return { path, additions: Number(additions), deletions: Number(deletions) };
      });
    const evidence: ChangeFacts['evidence'] = ['filesTouched', 'agent', 'prompt', 'baseAndHead'];
    const allowed = await decide(ctx, 'gate.draftToSandbox', { changeId: 'c0ffee01', agentId: 'codex', files, evidence });
    assert.equal(allowed.effect, 'allow', allowed.explanation);
    const pending = await decide(ctx, 'gate.reviewToPullRequest', {
      changeId: 'c0ffee02',
      agentId: 'codex',
      files: [{ path: 'README.md', additions: 1, deletions: 0 }],
      evidence,
      baseBranch: 'main',
    });
    assert.equal(pending.effect, 'requireApproval', pending.explanation);
    await ctx.audit.close();
    ctx.policy.dispose();
    writeFileSync(join(dir, 'candidate.yaml'), CANDIDATE);
  });
  after(() => cleanupTemp());

  it('lists the decisions that would flip, with change, action, old → new effect and the rules (exit 0)', () => {
    const { code, stdout, stderr } = run(['policy', 'replay', join(dir, 'candidate.yaml'), ctx.audit.file]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^Replaying 2 decisions against acme-next@2 /m);
    assert.match(stdout, /^c0ffee01 +\d+ +gate\.draftToSandbox +allow → block +stricter$/m);
    assert.match(stdout, /^ {4}candidate rules: pathRules\[0\] "infra\/\*\*" \(block, acme-next@2\)$/m);
    assert.match(stdout, /^c0ffee02 +\d+ +gate\.reviewToPullRequest +requireApproval → allow +looser$/m);
    assert.match(stdout, /^ {4}recorded rules: {2}lanes\.approvals\.minApprovals \(requireApproval, agent-lanes-local@.+\)$/m);
    assert.match(stdout, /^2 would flip \(1 stricter, 1 looser\), 0 unchanged, 0 not replayable$/m);
  });

  it('--format json gives the same flips', () => {
    const { code, stdout, stderr } = run(['policy', 'replay', '--format', 'json', join(dir, 'candidate.yaml'), ctx.audit.file]);
    assert.equal(code, 0, stderr);
    const report = JSON.parse(stdout) as { replayed: number; flips: { changeId?: string; subject: string; from: string; to: string }[] };
    assert.equal(report.replayed, 2);
    assert.deepEqual(
      report.flips.map((flip) => [flip.subject, flip.from, flip.to]),
      [
        ['c0ffee01', 'allow', 'block'],
        ['c0ffee02', 'requireApproval', 'allow'],
      ],
    );
  });

  it('an invalid candidate: the validator errors, nothing replayed, exit 2', () => {
    const invalid = join(dir, 'invalid.yaml');
    writeFileSync(invalid, CANDIDATE.replace('effect: block', 'effect: deny'));
    const { code, stdout, stderr } = run(['policy', 'replay', invalid, ctx.audit.file]);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /invalid\.yaml:\d+:\d+: pathRules\[0\]\.effect: expected one of "allow", "requireApproval", "block", got "deny"/);
    assert.match(stderr, /is not a valid policy \(1 problem\): nothing was replayed\./);
  });

  it('a broken log is replayed up to the break, with a warning and exit 1', () => {
    const broken = join(dir, 'broken.jsonl');
    const lines = readFileSync(ctx.audit.file, 'utf8').trimEnd().split('\n');
    // The last decision's effect edited: its hash no longer matches.
    const last = lines.length - 1;
    lines[last] = lines[last]!.replace('"effect":"requireApproval"', '"effect":"allow"');
    writeFileSync(broken, `${lines.join('\n')}\n`);
    const { code, stdout, stderr } = run(['policy', 'replay', join(dir, 'candidate.yaml'), broken]);
    assert.equal(code, 1, stdout);
    assert.match(stderr, new RegExp(`^Warning: .*broken\\.jsonl is broken at seq ${last + 1} `, 'm'));
    assert.match(stdout, /^Replaying 1 decision against acme-next@2 /m);
    assert.match(stdout, /^1 would flip \(1 stricter, 0 looser\)/m);
  });

  it('bad usage exits 2 and says what is needed', () => {
    const { code, stderr } = run(['policy', 'replay', join(dir, 'candidate.yaml')]);
    assert.equal(code, 2);
    assert.match(stderr, /needs a candidate policy and at least one audit log/);
  });
});
