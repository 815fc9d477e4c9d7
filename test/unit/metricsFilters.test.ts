import assert from 'node:assert/strict';
import { MetricsReducer, type MetricsEvent } from '../../src/core/metrics/metrics';

// Filters that combine (agent AND task class AND period) and the changes behind each figure, which the editor's
// view lists when a number is clicked: the ids behind a number are exactly the changes it counts.

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 5, 12);
const iso = (ms: number) => new Date(ms).toISOString();

interface Walk {
  id: string;
  agent: string;
  taskClass: string;
  daysAgo: number;
  /** sandbox: promoted to Sandbox, passed: on to Review after a block, approved, merged. */
  to: 'draft' | 'sandbox' | 'passed' | 'approved' | 'merged';
  requestChanges?: boolean;
  reruns?: number;
}

function events(walk: Walk): MetricsEvent[] {
  let t = NOW - walk.daysAgo * DAY;
  const at = () => iso((t += 60_000));
  const out: MetricsEvent[] = [
    { action: 'change.create', at: at(), changeId: walk.id, details: { agentId: walk.agent, taskClass: walk.taskClass } },
  ];
  for (let run = 0; run <= (walk.reruns ?? 0); run++) out.push({ action: 'agent.start', at: at(), changeId: walk.id, details: {} });
  if (walk.to === 'draft') return out;
  out.push({ action: 'lane.transition', at: at(), changeId: walk.id, details: { from: 'draft', to: 'sandbox', event: 'promote' } });
  if (walk.to === 'sandbox') return out;
  out.push({
    action: 'policy.decision',
    at: at(),
    changeId: walk.id,
    details: { action: 'gate.sandboxToReview', effect: 'block', rules: [{ rule: 'requiredTasks', effect: 'block', policy: 'acme@1' }] },
  });
  out.push({ action: 'lane.transition', at: at(), changeId: walk.id, details: { from: 'sandbox', to: 'review', event: 'promote' } });
  if (walk.requestChanges) out.push({ action: 'review.requestChanges', at: at(), changeId: walk.id, details: {} });
  if (walk.to === 'passed') return out;
  out.push({ action: 'review.approve', at: at(), changeId: walk.id, details: {} });
  if (walk.to === 'approved') return out;
  out.push({ action: 'pr.create', at: at(), changeId: walk.id, details: { outcome: 'created' } });
  out.push({ action: 'pr.closed', at: at(), changeId: walk.id, details: { state: 'merged' } });
  return out;
}

const WALKS: Walk[] = [
  { id: 'a0000001', agent: 'claude-code', taskClass: 'docs', daysAgo: 2, to: 'merged' },
  { id: 'a0000002', agent: 'claude-code', taskClass: 'docs', daysAgo: 20, to: 'passed', requestChanges: true, reruns: 2 },
  { id: 'a0000003', agent: 'claude-code', taskClass: 'docs', daysAgo: 45, to: 'merged' },
  { id: 'a0000004', agent: 'claude-code', taskClass: 'code', daysAgo: 3, to: 'sandbox' },
  { id: 'a0000005', agent: 'codex', taskClass: 'docs', daysAgo: 4, to: 'approved', requestChanges: true },
  { id: 'a0000006', agent: 'codex', taskClass: 'code', daysAgo: 1, to: 'draft', reruns: 1 },
];

function reducerOf(walks: Walk[], keepChanges: boolean): MetricsReducer {
  const reducer = new MetricsReducer({ keepChanges });
  // Interleaved as a log would have them: by time.
  const all = walks.flatMap(events).sort((a, b) => (a.at < b.at ? -1 : 1));
  for (const event of all) reducer.add('repo', event);
  return reducer;
}

describe('metrics filters and the changes behind each figure', () => {
  it('combines agent, task class and period filters: only the changes that meet every one are counted', () => {
    const reducer = reducerOf(WALKS, true);
    const ids = (filter: Parameters<MetricsReducer['report']>[1]) =>
      reducer
        .report('taskClass', filter)
        .changes!.map((change) => change.id)
        .sort();
    assert.deepEqual(ids({ agent: 'claude-code', taskClass: 'docs', since: NOW - 30 * DAY }), ['a0000001', 'a0000002']);
    assert.deepEqual(ids({ agent: 'claude-code', taskClass: 'docs' }), ['a0000001', 'a0000002', 'a0000003']);
    assert.deepEqual(ids({ taskClass: 'docs', since: NOW - 7 * DAY }), ['a0000001', 'a0000005']);
    assert.deepEqual(ids({ agent: 'codex', since: NOW - 7 * DAY }), ['a0000005', 'a0000006']);
    assert.deepEqual(ids({ period: '2026-10' }), ['a0000003']);
    assert.deepEqual(ids({ agent: 'codex', period: '2026-10' }), []);
    assert.deepEqual(ids({ agent: 'nobody' }), [], 'a value the log never had matches no change');
    assert.equal(ids({}).length, 6);
    // The groups' figures follow the filter, not only the list of changes.
    const report = reducer.report('agent', { taskClass: 'docs', since: NOW - 30 * DAY });
    assert.deepEqual(
      report.groups.map((group) => [group.key, group.changes, group.funnel.map((stage) => stage.count)]),
      [
        ['claude-code', 2, [2, 2, 1, 1, 1]],
        ['codex', 1, [1, 1, 1, 0, 0]],
      ],
    );
    assert.deepEqual(reducer.values('agent'), ['claude-code', 'codex']);
    assert.deepEqual(reducer.values('period'), ['2026-10', '2026-11', '2026-12']);
  });

  it('names exactly the changes each number counts: funnel stages, first passes, block rules, rework', () => {
    const report = reducerOf(WALKS, true).report('agent');
    const claude = report.groups.find((group) => group.key === 'claude-code')!;
    const byStage = Object.fromEntries(claude.funnel.map((stage) => [stage.stage, stage]));
    assert.deepEqual(claude.changeIds?.sort(), ['a0000001', 'a0000002', 'a0000003', 'a0000004']);
    assert.deepEqual(byStage.drafted!.changeIds, ['a0000003', 'a0000002', 'a0000004', 'a0000001']);
    assert.deepEqual(byStage.sandboxPassed!.changeIds, ['a0000003', 'a0000002', 'a0000001']);
    assert.deepEqual(byStage.approved!.changeIds, ['a0000003', 'a0000001']);
    assert.deepEqual(byStage.merged!.changeIds, ['a0000003', 'a0000001']);
    // Passing the sandbox came after a block (a setback): not first pass; approval came with none in between.
    assert.deepEqual(byStage.sandboxPassed!.firstPassIds, []);
    assert.deepEqual(byStage.approved!.firstPassIds, ['a0000003', 'a0000001']);
    for (const group of report.groups) {
      for (const stage of group.funnel) {
        assert.equal(stage.changeIds!.length, stage.count, `${group.key} ${stage.stage}: one id per change counted`);
        if (stage.count) assert.equal(stage.firstPassIds!.length, Math.round(stage.firstPassRate! * stage.count), 'first pass numerator');
      }
      for (const reason of group.reasons) assert.equal(reason.changeIds!.length, reason.changes);
      assert.equal(group.rework.changeIds!.requestedChanges.length, group.rework.changesWithRequestedChanges);
    }
    assert.deepEqual(
      claude.reasons.map((reason) => [reason.rule, reason.changeIds]),
      [['requiredTasks', ['a0000003', 'a0000002', 'a0000001']]],
    );
    assert.deepEqual(claude.rework.changeIds, { requestedChanges: ['a0000002'], agentReruns: ['a0000002'], editsAfterApproval: [] });
    const codex = report.groups.find((group) => group.key === 'codex')!;
    assert.deepEqual(codex.rework.changeIds, { requestedChanges: ['a0000005'], agentReruns: ['a0000006'], editsAfterApproval: [] });
    const five = report.changes!.find((change) => change.id === 'a0000005');
    assert.deepEqual(five, {
      id: 'a0000005',
      repository: 'repo',
      agent: 'codex',
      taskClass: 'docs',
      lane: 'review',
      stage: 'approved',
      createdAt: iso(NOW - 4 * DAY + 60_000),
    });
  });

  it('keeps no ids unless asked (the CLI’s big runs), and says what a time filter needs', () => {
    const reducer = reducerOf(WALKS, false);
    const report = reducer.report('agent', { agent: 'codex' });
    assert.equal(report.changes, undefined);
    assert.equal(report.groups.length, 1);
    assert.ok(!JSON.stringify(report).includes('changeIds') && !JSON.stringify(report).includes('a00000'), 'no id in the report');
    assert.throws(
      () => reducer.report('agent', { since: NOW - DAY }),
      /A metrics filter by time needs a reducer made with \{ keepChanges: true \}/,
    );
  });
});
