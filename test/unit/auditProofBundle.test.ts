import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAuditLine } from '../../src/core/audit/audit';
import type { DecisionRecord } from '../../src/core/decision';
import { AuditLog } from '../../src/infra/audit/log';
import { exportProofBundle, readChangeDiff, readChangeLogs } from '../../src/infra/audit/proofBundle';
import { RepoStorage } from '../../src/infra/storage/repoStorage';
import { SECRET_SAMPLES } from './redactionSamples';

const run = promisify(execFile);
const REPO = '1'.repeat(64);
const user = { type: 'user', id: 'dev' } as const;
const agent = { type: 'agent', id: 'coder' } as const;

describe('proof bundle', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanes-audit-'));
    file = join(dir, 'storage', 'audit.jsonl');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a proof bundle that plain tar opens, with a README, checksums and nothing secret', async () => {
    const log = await AuditLog.open(file, { repoKey: REPO });
    await log.append({ actor: user, action: 'change.create', changeId: 'c0ffee00', details: { title: 'add retries' } });
    await log.append({ actor: agent, action: 'agent.start', changeId: 'beefbeef' });
    await log.append({ actor: user, action: 'review.approve', changeId: 'c0ffee00', decisionId: 'dec-1', policy: 'acme@3' });
    const everything = SECRET_SAMPLES.map((sample) => sample.text).join('\n');
    const decision: DecisionRecord = {
      decisionId: 'dec-1',
      at: '2026-11-21T10:00:00.000Z',
      action: 'promote.review',
      subject: 'c0ffee00',
      effect: 'allow',
      matchedRules: [{ policy: 'acme@3', rule: 'requiredTasks', effect: 'allow' }],
      explanation: 'required tasks passed',
    };
    const dest = join(dir, 'bundles', 'c0ffee00.tar.gz');
    const bundle = await exportProofBundle({
      changeId: 'c0ffee00',
      diffText: `diff --git a/.env b/.env\n+${everything.split('\n').join('\n+')}\n`,
      evidence: { schemaVersion: 1, changeId: 'c0ffee00', prompt: { ref: 'p1', redacted: everything } },
      logs: [
        { name: 'npm test', text: `> npm test\n${everything}\n` },
        { name: '../../etc/passwd', text: 'ok' },
      ],
      decisions: [decision],
      release: {
        repository: 'acme/app',
        branch: 'main',
        mergedSha: 'a'.repeat(40),
        runs: [{ actionId: 'deploy-staging', state: 'failed', message: `GitHub said: ${SECRET_SAMPLES[6]!.text}` }],
      },
      auditFile: file,
      dest,
      log,
    });
    await log.close();
    assert.equal(bundle.file, dest);
    assert.equal(bundle.eventCount, 2);
    assert.ok(bundle.redaction.total >= SECRET_SAMPLES.length * 3);

    const out = join(dir, 'unpacked');
    await mkdir(out);
    await run('tar', ['xzf', dest, '-C', out]);
    const root = join(out, 'agent-lanes-proof-c0ffee00');
    assert.deepEqual((await readdir(root)).sort(), [
      'README.md',
      'SHA256SUMS',
      'audit-events.jsonl',
      'change.diff',
      'checkpoint.json',
      'decisions.json',
      'evidence.json',
      'logs',
      'release.json',
    ]);
    const release = await readFile(join(root, 'release.json'), 'utf8');
    assert.match(release, /"actionId": "deploy-staging"/);
    assert.ok(!release.includes(SECRET_SAMPLES[6]!.secret), 'the release record is redacted too');
    assert.deepEqual((await readdir(join(root, 'logs'))).sort(), ['etc-passwd.log', 'npm-test.log']);
    const { stdout } = await run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: root });
    assert.match(stdout, /change\.diff: OK/);

    const readme = await readFile(join(root, 'README.md'), 'utf8');
    for (const name of [
      'change.diff',
      'evidence.json',
      'decisions.json',
      'audit-events.jsonl',
      'checkpoint.json',
      'logs/npm-test.log',
      'SHA256SUMS',
    ]) {
      assert.ok(readme.includes(`\`${name}\``), `README explains ${name}`);
    }
    const events = (await readFile(join(root, 'audit-events.jsonl'), 'utf8')).split('\n').filter(Boolean);
    assert.deepEqual(
      events.map((line) => parseAuditLine(line)?.action),
      ['change.create', 'review.approve'],
      'only this change, every line intact',
    );
    const checkpoint = JSON.parse(await readFile(join(root, 'checkpoint.json'), 'utf8')) as { count: number; headHash: string };
    assert.equal(checkpoint.count, 4);
    assert.equal(checkpoint.headHash, log.head.hash);
    assert.equal(JSON.parse(await readFile(join(root, 'decisions.json'), 'utf8'))[0].decisionId, 'dec-1');

    for (const name of ['change.diff', 'evidence.json', 'logs/npm-test.log']) {
      const text = await readFile(join(root, name), 'utf8');
      assert.ok(text.includes('[REDACTED:'), name);
      for (const sample of SECRET_SAMPLES) assert.ok(!text.includes(sample.secret), `${sample.kind} survived in ${name}`);
    }
    assert.deepEqual(await readdir(join(dir, 'bundles')), ['c0ffee00.tar.gz'], 'no temporary file left');
  });
});

describe("a change's diff and logs for its proof bundle", function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lanes-proof-parts-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the diff from base to head with git, and says so in its place when the commits are gone', async () => {
    const repo = join(dir, 'repo');
    const gitIn = (...args: string[]) => run('git', ['-c', 'user.name=dev', '-c', 'user.email=dev@example.com', ...args], { cwd: repo });
    await mkdir(repo);
    await gitIn('init', '-q', '-b', 'main');
    await writeFile(join(repo, 'greeting.txt'), 'hello\n');
    await gitIn('add', '.');
    await gitIn('commit', '-q', '-m', 'base');
    const baseSha = (await gitIn('rev-parse', 'HEAD')).stdout.trim();
    await writeFile(join(repo, 'greeting.txt'), 'hello, world\n');
    await gitIn('commit', '-q', '-am', 'change');
    const headSha = (await gitIn('rev-parse', 'HEAD')).stdout.trim();

    const diff = await readChangeDiff(repo, { baseSha, headSha });
    assert.match(diff, /^diff --git a\/greeting\.txt b\/greeting\.txt$/m);
    assert.match(diff, /^-hello$/m);
    assert.match(diff, /^\+hello, world$/m);
    assert.equal(await readChangeDiff(repo, { baseSha, headSha: baseSha }), '', 'no commit yet: no diff');
    assert.match(
      await readChangeDiff(repo, { baseSha, headSha: 'f'.repeat(40) }),
      new RegExp(`^# The diff of ${baseSha.slice(0, 12)}\\.\\.ffffffffffff is not available: .+\\n$`),
    );
  });

  it("collects the change's logs from the repository's storage only, and the end of a large one", async () => {
    const storage = new RepoStorage(join(dir, 'storage'), 'k'.repeat(64), 'repo');
    const changeDir = storage.changeDir('c0ffee00');
    const logsDir = join(storage.logsDir, 'c0ffee00');
    await mkdir(changeDir, { recursive: true });
    await mkdir(logsDir, { recursive: true });
    await writeFile(join(changeDir, 'agent.log'), 'the agent ran\n');
    await writeFile(join(changeDir, 'notes.txt'), 'not a log');
    await writeFile(join(logsDir, 'npm-test.log'), `${'x'.repeat(11 * 1024 * 1024)}the end\n`);
    const outside = join(dir, 'elsewhere.log');
    await writeFile(outside, 'private');
    const warnings: string[] = [];
    const logger = { trace() {}, debug() {}, info() {}, warn: (message: string) => void warnings.push(message), error() {} };

    const logs = await readChangeLogs(storage, 'c0ffee00', { tasks: [{ logFile: outside }, {}] }, logger);
    assert.deepEqual(
      logs.map((entry) => entry.name),
      ['agent.log', 'npm-test.log'],
    );
    assert.equal(logs[0]!.text, 'the agent ran\n');
    assert.match(logs[1]!.text, /^\[agent-lanes: the log has 11534344 bytes; only its last 10485760 are in this bundle\]\n/);
    assert.ok(logs[1]!.text.endsWith('the end\n'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /skipped .*elsewhere\.log, which is outside the repository's storage/);
  });
});
