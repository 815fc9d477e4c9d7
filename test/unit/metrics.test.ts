import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { parseAuditLine } from '../../src/core/audit/audit';
import type { Actor } from '../../src/core/change';
import { formatMetricsCsv, formatMetricsTable } from '../../src/core/metrics/format';
import { MetricsReducer, UNCLASSIFIED } from '../../src/core/metrics/metrics';
import { AuditLog } from '../../src/infra/audit/log';

const dev: Actor = { type: 'user', id: 'dev@example.com' };
const ext: Actor = { type: 'extension', id: 'agent-lanes' };

/** Writes a real audit log (through AuditLog) for two changes with the same id; returns its events. */
async function recordLog(dir: string, repoKey: string, agentId: string, rejectSecond: boolean): Promise<string> {
  const file = join(dir, `${repoKey.slice(0, 4)}.jsonl`);
  const log = await AuditLog.open(file, { repoKey });
  let minute = 0;
  const at = () => new Date(Date.UTC(2026, 10, 2, 9, minute++ * 30)).toISOString();
  const move = (changeId: string, event: string, from: string, to: string) =>
    log.append({ actor: dev, action: 'lane.transition', changeId, at: at(), details: { event, from, to } });
  await log.append({ actor: dev, action: 'change.create', changeId: 'c1', at: at(), details: { agentId, title: 'Fix' } });
  await log.append({ actor: dev, action: 'agent.start', changeId: 'c1', at: at(), details: { agentId } });
  await log.append({ actor: dev, action: 'agent.start', changeId: 'c1', at: at(), details: { agentId } });
  await move('c1', 'promote', 'draft', 'sandbox');
  await log.append({
    actor: dev,
    action: 'policy.decision',
    changeId: 'c1',
    at: at(),
    policy: 'acme@3',
    decisionId: 'd1',
    details: {
      action: 'gate.sandboxToReview',
      effect: 'block',
      subject: 'c1',
      explanation: 'a required task failed',
      rules: [{ rule: 'requiredTasks', effect: 'block', policy: 'acme@3' }],
    },
  });
  await move('c1', 'promote', 'sandbox', 'review');
  await log.append({ actor: dev, action: 'review.requestChanges', changeId: 'c1', at: at(), details: { comment: 'tests' } });
  await log.append({ actor: dev, action: 'review.approve', changeId: 'c1', at: at(), details: {} });
  await move('c1', 'promote', 'review', 'pullRequest');
  await log.append({ actor: dev, action: 'pr.create', changeId: 'c1', at: at(), details: { outcome: 'created' } });
  await log.append({ actor: ext, action: 'pr.closed', changeId: 'c1', at: at(), details: { state: 'merged' } });
  await move('c1', 'pullRequestMerged', 'pullRequest', 'closed');
  await log.append({ actor: dev, action: 'change.create', changeId: 'c2', at: at(), details: { agentId } });
  await move('c2', 'promote', 'draft', 'sandbox');
  if (rejectSecond) await move('c2', 'sendBack', 'sandbox', 'draft');
  else await move('c2', 'promote', 'sandbox', 'review');
  await log.close();
  return file;
}

function reduce(files: { repo: string; file: string }[], brokenAt?: number): MetricsReducer {
  const reducer = new MetricsReducer();
  for (const { repo, file } of files) {
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    for (const [index, line] of lines.entries()) {
      if (brokenAt !== undefined && index + 1 >= brokenAt) break;
      const event = parseAuditLine(line);
      assert.ok(event, `line ${index + 1} is an audit event`);
      reducer.add(repo, event);
    }
  }
  return reducer;
}

describe('metrics from audit events', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'lanes-metrics-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('counts the funnel, first-pass rates, rework, block reasons and lane time from a recorded log', async () => {
    const file = await recordLog(dir, 'a'.repeat(64), 'codex', false);
    const report = reduce([{ repo: 'repo-a', file }]).report('agent');
    assert.equal(report.groups.length, 1);
    const group = report.groups[0]!;
    assert.equal(group.key, 'codex');
    assert.equal(group.changes, 2);
    const funnel = Object.fromEntries(group.funnel.map((s) => [s.stage, s]));
    assert.deepEqual(
      [funnel.drafted!.count, funnel.sandboxPassed!.count, funnel.approved!.count, funnel.prOpened!.count, funnel.merged!.count],
      [2, 2, 1, 1, 1],
    );
    // c1 was blocked at the sandbox gate, c2 was not: half passed the sandbox first time.
    assert.equal(funnel.sandboxPassed!.firstPassRate, 0.5);
    // c1's approval came after a requested-changes round.
    assert.equal(funnel.approved!.firstPassRate, 0);
    assert.equal(funnel.approved!.conversion, 0.5);
    assert.equal(funnel.merged!.firstPassRate, 1);
    assert.deepEqual(group.rework, { requestedChangesRounds: 1, changesWithRequestedChanges: 1, agentReruns: 1, editsAfterApproval: 0 });
    assert.deepEqual(group.reasons, [{ rule: 'requiredTasks', effect: 'block', policy: 'acme@3', count: 1, changes: 1 }]);
    // c1: draft from minute 0 to 90 (1.5 h); c2: draft 30 min (it is still in review, so review counts only c1).
    assert.equal(group.laneHours.draft.count, 2);
    assert.equal(group.laneHours.review.count, 1);
    assert.equal(group.laneHours.review.median, 1.5);
    assert.equal(report.groups[0]!.funnel[0]!.count, 2);
    const table = formatMetricsTable(report).join('\n');
    assert.match(table, /agent codex: 2 changes/);
    assert.match(table, /requiredTasks \(acme@3\): 1 decisions, 1 changes/);
    const csv = formatMetricsCsv(report);
    assert.equal(csv.length, 2);
    assert.match(csv[1]!, /^agent,codex,2,2,,1,2,1,0\.5,/);
  });

  it('keeps changes with the same id in two repositories apart, and groups by repository and task class', async () => {
    const a = await recordLog(dir, 'a'.repeat(64), 'codex', false);
    const b = await recordLog(dir, 'b'.repeat(64), 'claude', true);
    const reducer = reduce([
      { repo: 'repo-a', file: a },
      { repo: 'repo-b', file: b },
    ]);
    assert.equal(reducer.changeCount, 4);
    const byRepo = reducer.report('repository');
    assert.deepEqual(
      byRepo.groups.map((g) => [g.key, g.changes, g.funnel[1]!.count]),
      [
        ['repo-a', 2, 2],
        ['repo-b', 2, 1],
      ],
    );
    const byClass = reducer.report('taskClass');
    assert.deepEqual(
      byClass.groups.map((g) => [g.key, g.changes]),
      [[UNCLASSIFIED, 4]],
    );
    assert.deepEqual(
      reducer.report('period').groups.map((g) => g.key),
      ['2026-11'],
    );
  });

  it('agent-lanes metrics streams several logs and prints JSON, CSV and a table', async () => {
    const a = await recordLog(dir, 'a'.repeat(64), 'codex', false);
    const b = await recordLog(dir, 'b'.repeat(64), 'claude', true);
    const logs: string[] = [];
    const errors: string[] = [];
    const out = { log: (s: string) => logs.push(s), error: (s: string) => errors.push(s) };
    assert.equal(await main(['metrics', a, b, '--format', 'json', '--by', 'repository'], out), 0);
    assert.deepEqual(errors, []);
    const report = JSON.parse(logs.join('\n')) as { groups: { key: string; changes: number }[]; events: number };
    assert.deepEqual(
      report.groups.map((g) => [g.key, g.changes]),
      [
        ['a'.repeat(12), 2],
        ['b'.repeat(12), 2],
      ],
    );
    logs.length = 0;
    assert.equal(await main(['metrics', a, '--format', 'csv'], out), 0);
    assert.match(logs[1]!, /^agent,codex,2,/);
    assert.equal(await main(['metrics', a, '--by', 'colour'], out), 2);
    assert.match(errors.at(-1)!, /--by must be one of agent, repository, taskClass, period; got "colour"/);
    assert.equal(await main(['metrics', join(dir, 'missing.jsonl')], out), 2);
    assert.match(errors.at(-1)!, /no such file/);
  });

  it('counts a broken log only up to its first broken event and names it', async () => {
    const file = await recordLog(dir, 'a'.repeat(64), 'codex', false);
    const lines = readFileSync(file, 'utf8').split('\n');
    // Line 8 is c1's review.requestChanges: edit it, so the chain breaks there.
    assert.match(lines[7]!, /review.requestChanges/);
    lines[7] = lines[7]!.replace('"tests"', '"fine"');
    writeFileSync(file, lines.join('\n'));
    const logs: string[] = [];
    const errors: string[] = [];
    const code = await main(['metrics', file, '--format', 'json'], { log: (s) => logs.push(s), error: (s) => errors.push(s) });
    assert.equal(code, 1);
    assert.match(errors[0]!, /is broken at seq 8 \(line 8, edited\).*Metrics count its events 1 to 7 only/);
    const report = JSON.parse(logs.join('\n')) as {
      events: number;
      groups: { funnel: { stage: string; count: number }[]; rework: { requestedChangesRounds: number } }[];
    };
    assert.equal(report.events, 7);
    assert.equal(report.groups[0]!.rework.requestedChangesRounds, 0);
    assert.equal(report.groups[0]!.funnel.find((s) => s.stage === 'sandboxPassed')!.count, 1);
  });
});
