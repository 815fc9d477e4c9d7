import assert from 'node:assert/strict';
import {
  AuditChainVerifier,
  GENESIS_HASH,
  genesisDetails,
  parseAuditLine,
  sealEvent,
  type UnhashedAuditEvent,
} from '../../src/core/audit/audit';
import { readMetricsEvent } from '../../src/core/metrics/eventLine';
import { MetricsReducer } from '../../src/core/metrics/metrics';

const READ = [
  'action',
  'agentId',
  'baseRef',
  'effect',
  'event',
  'facts',
  'factsSummary',
  'from',
  'mergeCommitSha',
  'outcome',
  'rules',
  'state',
  'taskClass',
  'to',
];

/** Seals `events` into a chain the way the log writer does; returns its lines. */
function seal(events: Omit<UnhashedAuditEvent, 'seq' | 'prevHash'>[]): string[] {
  let prevHash = GENESIS_HASH;
  return events.map((event, index) => {
    const { event: sealed, line } = sealEvent({ ...event, seq: index + 1, prevHash });
    prevHash = sealed.hash;
    return line;
  });
}

const dev = { type: 'user' as const, id: 'dev@example.com' };
const at = (second: number) => new Date(Date.UTC(2026, 1, 28, 23, 59, second, 7)).toISOString();

/** Events with every shape the reader must handle: nested values, escapes, unicode, absent members. */
const EVENTS: Omit<UnhashedAuditEvent, 'seq' | 'prevHash'>[] = [
  { at: at(0), actor: { type: 'extension', id: 'agent-lanes' }, action: 'audit.created', details: genesisDetails('c'.repeat(64)) },
  {
    at: at(1),
    actor: dev,
    action: 'change.create',
    changeId: 'c0ffee01',
    details: {
      agentId: 'codex',
      title: 'Fix "quotes" \\ and } braces ] in a title',
      taskClass: 'bugfix',
      warnings: ['a "w"', { x: [1, { y: '}' }] }],
    },
  },
  {
    at: at(2),
    actor: dev,
    action: 'lane.transition',
    changeId: 'c0ffee01',
    details: { event: 'promote', from: 'draft', to: 'sandbox', reason: 'ünïcödé ✓' },
  },
  {
    at: at(3),
    actor: { type: 'extension', id: 'agent-lanes' },
    action: 'policy.decision',
    changeId: 'c0ffee01',
    decisionId: 'd-1',
    policy: 'acme@3',
    details: {
      action: 'createPullRequest',
      effect: 'block',
      explanation: 'line\nbreak and tab\t',
      facts: {
        files: [
          { path: 'a"b.ts', additions: 3, deletions: 1 },
          { path: 'c.ts', additions: 2.5 },
        ],
      },
      rules: [{ rule: 'maxFiles', effect: 'block', policy: 'acme@3' }],
      subject: 'c0ffee01',
    },
  },
  // Facts too large for the event live in a file beside the log; the reducer reads their summary.
  {
    at: at(3),
    actor: { type: 'extension', id: 'agent-lanes' },
    action: 'policy.decision',
    changeId: 'c0ffee02',
    decisionId: 'd-2',
    policy: 'acme@3',
    details: {
      action: 'gate.reviewToPullRequest',
      effect: 'allow',
      factsSha256: 'f'.repeat(64),
      factsSummary: { files: 20000, changedLines: 40000, flags: 0, tasks: 2 },
      rules: [],
    },
  },
  // A value the reducer reads that is not a plain string: taken as JSON, not skipped.
  {
    at: at(4),
    actor: dev,
    action: 'lane.transition',
    changeId: 'c0ffee01',
    details: { event: 'sendBack', from: 'sandbox', to: 'dr\\"aft', n: null, ok: true, x: -1.5e3 },
  },
  { at: at(5), actor: dev, action: 'pr.create', changeId: 'c0ffee01', details: { outcome: 7 } },
  { at: at(6), actor: dev, action: 'review.approve', changeId: 'c0ffee01', details: {} },
  { at: at(7), actor: dev, action: 'task.run', details: { command: 'npm test' } },
  // Times on another day and without milliseconds: the pattern and Date.parse decide.
  {
    at: '2026-03-01T00:00:00Z',
    actor: dev,
    action: 'pr.closed',
    changeId: 'c0ffee01',
    // What the intact rate needs from git.
    details: { state: 'merged', baseRef: 'main', mergeCommitSha: 'a'.repeat(40), headSha: 'b'.repeat(40) },
  },
  { at: '2026-03-01T00:00:01.123456Z', actor: dev, action: 'pr.closed', changeId: 'c0ffee01', details: { state: 'closed' } },
];

describe('readMetricsEvent: the metrics reader of verified audit lines', () => {
  it('reads what JSON.parse reads, for the members the metrics use, and the time Date.parse gives', () => {
    const lines = seal(EVENTS);
    for (const line of lines) {
      const full = parseAuditLine(line);
      assert.ok(full, line);
      const read = readMetricsEvent(line);
      assert.ok(read, `read ${line}`);
      assert.equal(read.action, full.action);
      assert.equal(read.at, full.at);
      assert.equal(read.time, Date.parse(full.at));
      assert.equal(read.changeId, full.changeId);
      assert.equal(read.policy, full.policy);
      const expected = Object.fromEntries(Object.entries(full.details).filter(([key]) => READ.includes(key)));
      assert.deepEqual(read.details, expected);
    }
  });

  it('leaves a line it cannot read in canonical order to the full parser', () => {
    const [line] = seal([{ at: at(1), actor: dev, action: 'change.create', changeId: 'c1', details: { agentId: 'codex' } }]);
    assert.ok(line && readMetricsEvent(line));
    // Escapes in a top-level member, members out of order, an unknown member, an invalid time, a bad policy reference.
    assert.equal(readMetricsEvent(line.replace('"action":"change.create"', '"action":"change\\u002ecreate"')), undefined);
    assert.equal(readMetricsEvent(JSON.stringify(JSON.parse(line) as object, null, 1)), undefined);
    assert.equal(readMetricsEvent(line.replace('"actor":{', '"actor":{"extra":1,')), undefined);
    assert.equal(readMetricsEvent(line.replace(at(1), '2026-02-30T10:00:00.000Z')), undefined);
    assert.equal(readMetricsEvent(line.replace(at(1), '2026-02-28 23:59:01.007Z')), undefined);
    assert.equal(readMetricsEvent(line.replace(',"prevHash":', ',"policy":"nope","prevHash":')), undefined);
    assert.equal(readMetricsEvent(line.replace('"changeId":"c1"', '"changeId":""')), undefined);
    assert.equal(readMetricsEvent(line.slice(0, 120)), undefined);
    assert.equal(readMetricsEvent('not json'), undefined);
  });

  it('pushBytes says whether each line extends the chain', () => {
    const lines = seal(EVENTS);
    const verifier = new AuditChainVerifier();
    const accepted = [...lines.slice(0, 3), lines[4]!, lines[3]!].map((line) => verifier.pushBytes(Buffer.from(line)));
    // Lines 1-3 link; line 5 comes before line 4, so neither it nor anything after is accepted.
    assert.deepEqual(accepted, [true, true, true, false, false]);
    assert.equal(verifier.finish().ok, false);
  });
});

describe('MetricsReducer: compact per-change rows', () => {
  it('keeps thousands of changes apart by repository and id, hex ids and others alike, through its tables growing', () => {
    const reducer = new MetricsReducer();
    const agents = ['codex', 'aider', 'claude-code'];
    const expected = new Map<string, { changes: number; reruns: number; blocks: number }>();
    const perRepository = 5000;
    const id = (i: number) =>
      i % 7 === 0
        ? `change-${i}`
        : i % 11 === 0
          ? (Math.imul(i, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0').toUpperCase()
          : (Math.imul(i, 0x9e3779b1) >>> 0).toString(16).padStart(8, '0');
    for (const repository of ['repo-a', 'repo-b']) {
      for (let i = 0; i < perRepository; i++) {
        const agent = agents[i % 3]!;
        const figures = expected.get(agent) ?? { changes: 0, reruns: 0, blocks: 0 };
        expected.set(agent, figures);
        const changeId = id(i);
        const at = new Date(Date.UTC(2026, i % 12, 1 + (i % 28))).toISOString();
        reducer.add(repository, { action: 'change.create', at, changeId, details: { agentId: agent } });
        figures.changes++;
        const runs = 1 + (i % 4);
        for (let run = 0; run < runs; run++) reducer.add(repository, { action: 'agent.start', at, changeId, details: { agentId: agent } });
        figures.reruns += runs - 1;
        if (i % 5 === 0) {
          const decision = {
            action: 'policy.decision',
            at,
            changeId,
            policy: 'acme@1',
            details: { action: 'gate.sandboxToReview', effect: 'block', rules: [{ rule: 'requiredTasks', effect: 'block' }] },
          };
          reducer.add(repository, decision);
          reducer.add(repository, decision);
          figures.blocks++;
        }
      }
    }
    assert.equal(reducer.changeCount, 2 * perRepository);
    const report = reducer.report('agent');
    for (const group of report.groups) {
      const figures = expected.get(group.key)!;
      assert.equal(group.changes, figures.changes, group.key);
      assert.equal(group.funnel[0]!.count, figures.changes, group.key);
      assert.equal(group.rework.agentReruns, figures.reruns, group.key);
      assert.deepEqual(group.reasons, [
        { rule: 'requiredTasks', effect: 'block', policy: 'acme@1', count: 2 * figures.blocks, changes: figures.blocks },
      ]);
    }
    assert.deepEqual(
      reducer.report('repository').groups.map((group) => [group.key, group.changes]),
      [
        ['repo-a', perRepository],
        ['repo-b', perRepository],
      ],
    );
  });
});
