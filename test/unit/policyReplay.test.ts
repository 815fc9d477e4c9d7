import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runPolicyCli } from '../../src/cli/policy';
import { parseAuditLine } from '../../src/core/audit/audit';
import { MetricsReducer } from '../../src/core/metrics/metrics';
import { type ChangeFacts } from '../../src/core/policy/evaluate';
import { mergePolicies, type EffectivePolicy } from '../../src/core/policy/merge';
import { INLINE_FACTS_MAX_BYTES } from '../../src/core/policy/replay';
import { parsePolicy } from '../../src/core/policy/schema';
import { exportAudit } from '../../src/infra/audit/export';
import { exportProofBundle } from '../../src/infra/audit/proofBundle';
import { type LaneContext, decide } from '../../src/infra/lanes/laneContext';
import { PolicyDeniedError } from '../../src/infra/policy/policyService';
import { replayAuditFiles } from '../../src/infra/policy/replayAudit';
import { SECRET_SAMPLES } from './redactionSamples';
import { cleanupTemp, runGit, tempDir, writeFiles } from './support/draftRepo';
import { createLaneContext } from './support/laneContext';

const logger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** The candidate a platform team proposes: infra/ becomes off limits, and one approval is no longer required. */
const CANDIDATE = `apiVersion: agentlanes.dev/v1
metadata: { id: acme-next, version: "2" }
lanes:
  approvals: { minApprovals: 0 }
pathRules:
  - { glob: "infra/**", effect: block, reason: Terraform only. }
  - { glob: "generated/**", effect: block, reason: Generated code comes from the generator. }
`;

function candidate(text = CANDIDATE): EffectivePolicy {
  const parsed = parsePolicy(text, 'candidate.yaml');
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join('\n'));
  return mergePolicies({ level: 'org', document: parsed.policy, source: 'candidate.yaml' });
}

const EVIDENCE: ChangeFacts['evidence'] = ['filesTouched', 'agent', 'prompt', 'baseAndHead'];

/** The files a real commit touched, as git counts them. */
function filesOf(repo: string, rev: string): NonNullable<ChangeFacts['files']> {
  return runGit(repo, ['diff', '--numstat', `${rev}~1`, rev])
    .trim()
    .split('\n')
    .map((line) => {
      const [additions, deletions, path] = line.split('\t') as [string, string, string];
      return { path, additions: Number(additions), deletions: Number(deletions), status: 'added' as const, binary: false };
    });
}

describe('policy replay: recorded decisions against a candidate policy (real git, real audit log)', function () {
  this.timeout(60_000);
  let repo: string;
  let ctx: LaneContext;
  let changes = 0;

  beforeEach(async () => {
    const base = tempDir('lanes-replay-');
    repo = join(base, 'repo');
    runGit(base, ['init', '-q', '-b', 'main', repo]);
    writeFiles(repo, { 'README.md': 'hello\n' });
    runGit(repo, ['add', '.']);
    runGit(repo, ['commit', '-qm', 'base']);
    ctx = await createLaneContext(base, repo, { logger });
    changes = 0;
  });
  afterEach(async () => {
    ctx.policy.dispose();
    await ctx.audit.close();
    cleanupTemp();
  });

  /**
   * A commit in the real repository as a change in the store, and the
   * decision the built-in policy makes on it, recorded in the audit log by decide().
   */
  async function decided(
    files: Record<string, string>,
    action: 'gate.draftToSandbox' | 'gate.reviewToPullRequest',
    extra: Partial<ChangeFacts> = {},
  ) {
    const baseSha = runGit(repo, ['rev-parse', 'HEAD']).trim();
    writeFiles(repo, files);
    runGit(repo, ['add', '.']);
    runGit(repo, ['commit', '-qm', 'agent change']);
    const now = new Date().toISOString();
    const id = `c0ffee0${++changes}`;
    const change = await ctx.store.add({
      id,
      title: `Change ${id}`,
      task: 'task',
      agentId: 'codex',
      baseRef: 'main',
      baseSha,
      headSha: runGit(repo, ['rev-parse', 'HEAD']).trim(),
      branch: `lanes/${id}`,
      worktreePath: repo,
      lane: 'draft',
      createdAt: now,
      updatedAt: now,
      history: [],
    });
    return decide(ctx, action, { files: filesOf(repo, 'HEAD'), evidence: EVIDENCE, ...extra }, change);
  }

  it('an allow on a path the candidate forbids flips to block; a requireApproval the candidate no longer needs flips to allow', async () => {
    const allowed = await decided({ 'infra/main.tf': 'resource "x" "y" {}\n', 'src/app.ts': 'export {};\n' }, 'gate.draftToSandbox');
    assert.equal(allowed.effect, 'allow', allowed.explanation);
    const pending = await decided({ 'src/feature.ts': 'export const f = 1;\n' }, 'gate.reviewToPullRequest', { baseBranch: 'main' });
    assert.equal(pending.effect, 'requireApproval', pending.explanation);

    // The events carry the matched rules and the facts.
    await ctx.audit.flush();
    const events = readFileSync(ctx.audit.file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => parseAuditLine(line)!);
    const recorded = events.filter((event) => event.action === 'policy.decision');
    assert.equal(recorded.length, 2);
    assert.deepEqual(recorded[1]!.details.rules, [
      { rule: 'lanes.approvals.minApprovals', effect: 'requireApproval', policy: pending.matchedRules[0]!.policy },
    ]);
    assert.deepEqual(
      (recorded[0]!.details.facts as ChangeFacts).files?.map((file) => file.path),
      ['infra/main.tf', 'src/app.ts'],
    );
    assert.match(String(recorded[0]!.details.factsSha256), /^[0-9a-f]{64}$/);
    assert.deepEqual(recorded[0]!.details.factsSummary, { files: 2, changedLines: 2, flags: 0, tasks: 0 });

    const report = await replayAuditFiles(candidate(), [ctx.audit.file]);
    assert.deepEqual(report.warnings, []);
    assert.equal(report.decisions, 2);
    assert.equal(report.replayed, 2);
    assert.deepEqual(
      report.flips.map((flip) => [flip.changeId ?? flip.subject, flip.action, flip.from, flip.to, flip.direction]),
      [
        ['c0ffee01', 'gate.draftToSandbox', 'allow', 'block', 'stricter'],
        ['c0ffee02', 'gate.reviewToPullRequest', 'requireApproval', 'allow', 'looser'],
      ],
    );
    assert.deepEqual(report.flips[0]!.candidateRules, [{ rule: 'pathRules[0] "infra/**"', effect: 'block', policy: 'acme-next@2' }]);
    assert.deepEqual(
      report.flips[1]!.recordedRules.map((rule) => rule.rule),
      ['lanes.approvals.minApprovals'],
    );
    assert.match(report.flips[0]!.explanation, /infra\/main\.tf matches "infra\/\*\*": Terraform only/);

    // The same policy as recorded flips nothing.
    const same = await replayAuditFiles(ctx.policy.effective, [ctx.audit.file]);
    assert.equal(same.flips.length, 0);
    assert.equal(same.unchanged, 2);
  });

  it('large facts go to facts/<sha256>.json beside the log and replay from there; a changed file is not replayable', async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 90; i++)
      many[`generated/api/client/v2/models/module-${String(i).padStart(3, '0')}.ts`] = `export const v${i} = ${i};\n`;
    const allowed = await decided(many, 'gate.draftToSandbox');
    assert.equal(allowed.effect, 'allow', allowed.explanation);
    await ctx.audit.flush();
    const event = readFileSync(ctx.audit.file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => parseAuditLine(line)!)
      .find((e) => e.action === 'policy.decision')!;
    assert.equal(event.details.facts, undefined, 'the facts are not inline');
    assert.ok(Buffer.byteLength(JSON.stringify(event)) < INLINE_FACTS_MAX_BYTES, 'the event stays small');
    assert.deepEqual(event.details.factsSummary, { files: 90, changedLines: 90, flags: 0, tasks: 0 });
    const folder = join(dirname(ctx.audit.file), 'facts');
    assert.deepEqual(readdirSync(folder), [`${String(event.details.factsSha256)}.json`]);

    const report = await replayAuditFiles(candidate(), [ctx.audit.file]);
    assert.deepEqual(
      report.flips.map((flip) => [flip.from, flip.to, flip.candidateRules[0]?.rule]),
      [['allow', 'block', 'pathRules[1] "generated/**"']],
    );

    // A pull-request decision this large: metrics read its size from the summary in the event.
    const few: Record<string, string> = {};
    for (let i = 0; i < 95; i++) few[`src/api/client/v2/models/resources/model-${String(i).padStart(3, '0')}.ts`] = 'a\nb\n';
    await decided(few, 'gate.reviewToPullRequest', { baseBranch: 'main' });
    await ctx.audit.flush();
    const metrics = new MetricsReducer();
    for (const line of readFileSync(ctx.audit.file, 'utf8').trim().split('\n')) metrics.add('repo', parseAuditLine(line)!);
    const [group] = metrics.report('repository').groups;
    assert.deepEqual([group!.prFiles.median, group!.prLines.median], [95, 190]);
    assert.equal(readdirSync(folder).length, 2);

    // An export and a proof bundle carry the facts files, so they replay as the log does.
    const exported = await exportAudit(ctx.audit.file, join(dirname(folder), 'export'), { log: ctx.audit });
    assert.deepEqual(exported.missingFacts, []);
    assert.deepEqual(readdirSync(join(dirname(folder), 'export', 'facts')).sort(), readdirSync(folder).sort());
    const fromExport = await replayAuditFiles(candidate(), [exported.logFile]);
    const fromLog = await replayAuditFiles(candidate(), [ctx.audit.file]);
    assert.equal(fromExport.flips.length, 2);
    assert.deepEqual(
      fromExport.flips.map((flip) => [flip.action, flip.from, flip.to]),
      fromLog.flips.map((flip) => [flip.action, flip.from, flip.to]),
    );
    assert.equal(fromExport.notReplayable, 0);
    const bundle = await exportProofBundle({
      changeId: String(event.changeId),
      diffText: '',
      evidence: {},
      logs: [],
      decisions: [],
      auditFile: ctx.audit.file,
      dest: join(dirname(folder), 'bundle.tar.gz'),
    });
    assert.ok(
      bundle.files.some((name) => name.endsWith(`/facts/${String(event.details.factsSha256)}.json`)),
      bundle.files.join(', '),
    );

    const file = join(folder, `${String(event.details.factsSha256)}.json`);
    writeFileSync(file, readFileSync(file, 'utf8').replace('module-000', 'module-999'));
    const tampered = await replayAuditFiles(candidate(), [ctx.audit.file]);
    assert.equal(tampered.flips.filter((flip) => flip.action === 'gate.draftToSandbox').length, 0);
    assert.equal(tampered.notReplayable, 1);
    assert.match(tampered.notReplayableReasons[0]!.reason, /does not match the digest the event recorded/);
  });

  it('a block is recorded with its rules (metrics count them by rule), and a decision without facts is counted as not replayable', async () => {
    await assert.rejects(decided({ '.github/workflows/ci.yml': 'on: push\n' }, 'gate.draftToSandbox'), PolicyDeniedError);
    // A decision event as logs written before facts were recorded have it.
    await ctx.audit.append({
      actor: { type: 'extension', id: 'agent-lanes' },
      action: 'policy.decision',
      changeId: 'old',
      details: { action: 'gate.draftToSandbox', effect: 'allow', subject: 'old', explanation: 'Allowed.' },
    });
    await ctx.audit.flush();

    const metrics = new MetricsReducer();
    for (const line of readFileSync(ctx.audit.file, 'utf8').trim().split('\n')) metrics.add('repo', parseAuditLine(line)!);
    const reasons = metrics.report('agent').groups.flatMap((group) => group.reasons.map((reason) => reason.rule));
    assert.ok(reasons.includes('pathRules[0] ".github/workflows/**"'), reasons.join(', '));

    const report = await replayAuditFiles(candidate(), [ctx.audit.file]);
    assert.equal(report.decisions, 2);
    assert.equal(report.replayed, 1);
    assert.equal(report.notReplayable, 1);
    assert.match(report.notReplayableReasons[0]!.reason, /no facts recorded/);
  });

  it('keeps secrets out: a secret-like file name is redacted in the event and in the facts file, and the redactions are counted', async () => {
    const token = SECRET_SAMPLES.find((sample) => sample.kind === 'githubToken')!.secret;
    const small = await decided({ [`notes/${token}.md`]: 'x\n' }, 'gate.draftToSandbox');
    assert.equal(small.effect, 'allow', small.explanation);
    const many: Record<string, string> = { [`config/${token}.txt`]: 'x\n' };
    for (let i = 0; i < 90; i++)
      many[`generated/api/client/v2/models/module-${String(i).padStart(3, '0')}.ts`] = `export const v${i} = ${i};\n`;
    await decided(many, 'gate.draftToSandbox');
    await ctx.audit.flush();

    const log = readFileSync(ctx.audit.file, 'utf8');
    const folder = join(dirname(ctx.audit.file), 'facts');
    const stored = readdirSync(folder).map((name) => readFileSync(join(folder, name), 'utf8'));
    assert.equal(stored.length, 1);
    for (const text of [log, ...stored]) {
      assert.ok(!text.includes(token), 'the token is not stored');
      assert.ok(text.includes('[REDACTED:githubToken]'), 'its place is marked');
    }
    const decisions = log
      .trim()
      .split('\n')
      .map((line) => parseAuditLine(line)!)
      .filter((event) => event.action === 'policy.decision');
    assert.deepEqual(
      decisions.map((event) => event.details.factsRedactions),
      [
        { total: 1, byKind: { githubToken: 1 } },
        { total: 1, byKind: { githubToken: 1 } },
      ],
    );
    // The redacted facts still replay: the generated files are what the candidate forbids.
    const report = await replayAuditFiles(candidate(), [ctx.audit.file]);
    assert.equal(report.replayed, 2);
    assert.deepEqual(
      report.flips.map((flip) => [flip.changeId, flip.to]),
      [['c0ffee02', 'block']],
    );
  });

  it('agent-lanes policy replay: an invalid candidate prints the validator errors and replays nothing (exit 2); a valid one lists the flips', async () => {
    await decided({ 'infra/main.tf': 'x\n' }, 'gate.draftToSandbox');
    await ctx.audit.flush();
    const dir = dirname(repo);
    const invalid = join(dir, 'invalid.yaml');
    writeFileSync(invalid, CANDIDATE.replace('effect: block, reason: Terraform', 'effect: deny, reason: Terraform'));
    const logs: string[] = [];
    const errors: string[] = [];
    const out = { log: (s: string) => logs.push(s), error: (s: string) => errors.push(s) };
    assert.equal(await runPolicyCli(['policy', 'replay', invalid, ctx.audit.file], out), 2);
    assert.deepEqual(logs, []);
    assert.match(errors.join('\n'), /pathRules\[0\]\.effect/);
    assert.match(errors.at(-1)!, /is not a valid policy \(1 problem\): nothing was replayed/);

    const valid = join(dir, 'candidate.yaml');
    writeFileSync(valid, CANDIDATE);
    errors.length = 0;
    assert.equal(await runPolicyCli(['policy', 'replay', valid, ctx.audit.file, '--format', 'json'], out), 0, errors.join('\n'));
    const report = JSON.parse(logs.join('\n')) as { flips: { from: string; to: string; changeId: string }[] };
    assert.deepEqual(
      report.flips.map((flip) => [flip.changeId, flip.from, flip.to]),
      [['c0ffee01', 'allow', 'block']],
    );
  });
});
